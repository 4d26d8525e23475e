//! SIP syntax: messages, URIs, name-addr values and Via headers.

pub mod message;
mod names;
pub mod text;

pub use message::{response_to, Message, ParseError, StartLine};
pub use text::{list_items, split_list};

use std::net::{IpAddr, SocketAddr};

/// A parsed SIP URI (RFC 3261 §19.1), IPv6 literals included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `;name[=value]` URI parameters, in order.
    pub params: Vec<(String, Option<String>)>,
}

impl Uri {
    pub fn parse(text: &str) -> Option<Uri> {
        let text = text.trim();
        let (scheme, rest) = text.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        let (user, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let user = user.map(|u| u.split(':').next().unwrap_or(u).to_owned());
        let mut pieces = hostpart.split(';');
        let hostport = pieces.next()?;
        let (host, port) = split_hostport(hostport)?;
        let params = pieces
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
                None => (p.to_ascii_lowercase(), None),
            })
            .collect();
        if user.as_deref() == Some("") {
            return None;
        }
        Some(Uri {
            scheme,
            user,
            host,
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The socket address when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }

    pub fn transport(&self) -> Option<&str> {
        self.param("transport")
    }
}

/// `host[:port]`, host possibly `[v6]`; the returned host has no brackets.
pub fn split_hostport(hostport: &str) -> Option<(String, Option<u16>)> {
    let hostport = hostport.trim();
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (hostport, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Host for a Via/URI: IPv6 literals in brackets.
pub fn format_host(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The URI inside a name-addr or addr-spec value (`"Bob" <sip:b@x>;tag=1`).
pub fn addr_uri(value: &str) -> &str {
    if let Some(open) = value.find('<') {
        let rest = &value[open + 1..];
        return rest.split('>').next().unwrap_or(rest).trim();
    }
    // addr-spec: parameters after ';' belong to the header, not the URI.
    value.split(';').next().unwrap_or(value).trim()
}

/// A header parameter (after the URI) such as `tag` or `expires`; `Some("")` for a flag.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(close) => &value[close + 1..],
        None => value.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find_map(|p| match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case(name) => Some(v.trim().trim_matches('"')),
            None if p.eq_ignore_ascii_case(name) => Some(""),
            _ => None,
        })
}

/// A parsed Via value (RFC 3261 §20.42, RFC 3581).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    /// `Some(None)`: rport asked for; `Some(Some(p))`: filled in.
    pub rport: Option<Option<u16>>,
}

impl Via {
    pub fn parse(value: &str) -> Option<Via> {
        // RFC 4475 wsinv: whitespace may surround the '/' of the protocol.
        let odd = |v: &str| v.contains(" /") || v.contains("/ ") || v.contains("\t/");
        let mut value = std::borrow::Cow::Borrowed(value.trim());
        while odd(&value) {
            value = value
                .replace(" /", "/")
                .replace("/ ", "/")
                .replace("\t/", "/")
                .into();
        }
        let (proto, rest) = value.split_once(char::is_whitespace)?;
        let mut proto_parts = proto.split('/');
        let (Some(name), Some(version), Some(transport), None) = (
            proto_parts.next(),
            proto_parts.next(),
            proto_parts.next(),
            proto_parts.next(),
        ) else {
            return None;
        };
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        let mut pieces = rest.split(';');
        let (host, port) = split_hostport(pieces.next()?)?;
        let mut via = Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            branch: None,
            received: None,
            rport: None,
        };
        for p in pieces {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            if k.eq_ignore_ascii_case("branch") {
                via.branch = v.map(str::to_owned);
            } else if k.eq_ignore_ascii_case("received") {
                via.received = v.map(str::to_owned);
            } else if k.eq_ignore_ascii_case("rport") {
                via.rport = Some(v.and_then(|p| p.parse().ok()));
            }
        }
        Some(via)
    }

    /// Where a response to this hop goes (RFC 3261 §18.2.2, RFC 3581 §4).
    pub fn response_target(&self) -> Option<SocketAddr> {
        let host = self.received.as_deref().unwrap_or(&self.host);
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        let port = match self.rport {
            Some(Some(p)) => p,
            _ => self.port.unwrap_or(5060),
        };
        Some(SocketAddr::new(ip, port))
    }

    /// True for RFC 3261 branches (magic cookie).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with("z9hG4bK") && b.len() > 7)
    }
}

/// Adds `received` (and fills `rport`) to the top Via value (RFC 3581).
pub fn stamp_via(value: &str, source: SocketAddr) -> String {
    match Via::parse(value) {
        Some(via) => stamp_parsed_via(value, &via, source),
        None => value.to_owned(),
    }
}

/// `stamp_via` for a value already parsed into `via`.
pub fn stamp_parsed_via(value: &str, via: &Via, source: SocketAddr) -> String {
    let mut s = String::with_capacity(value.len() + 48);
    for (i, part) in value.split(';').enumerate() {
        if i > 0 {
            let key = part.split('=').next().unwrap_or("").trim();
            if key.eq_ignore_ascii_case("rport") || key.eq_ignore_ascii_case("received") {
                continue;
            }
            s.push(';');
        }
        s.push_str(part);
    }
    let host_ip = via.host.parse::<IpAddr>().ok();
    if host_ip != Some(source.ip()) || via.rport.is_some() {
        s.push_str(";received=");
        text::push_ip(&mut s, source.ip());
    }
    if via.rport.is_some() {
        s.push_str(";rport=");
        s.push_str(text::decimal(usize::from(source.port()), &mut [0; 20]));
    }
    s
}

#[cfg(test)]
mod tests;
