//! Reaching a NATed party inside a dialog (Kamailio's set_contact_alias /
//! handle_ruri_alias): its Contact gets `;alias=ip~port~transport` naming
//! the address its messages came from; a request whose Request-URI carries
//! the alias goes to that address, the alias taken off.

use std::net::{IpAddr, SocketAddr};

use crate::config::Transport;
use crate::sip::{addr_uri, format_host, Message, Uri};

fn transport_code(t: Transport) -> u8 {
    match t {
        Transport::Udp => 1,
        Transport::Tcp => 2,
        Transport::Tls => 3,
    }
}

/// Adds the alias of `source` to the first Contact URI of `msg` (once).
pub fn add_alias(msg: &mut Message, source: SocketAddr, transport: Transport) {
    let Some(contact) = msg
        .header_values("Contact")
        .into_iter()
        .next()
        .map(str::to_owned)
    else {
        return;
    };
    let uri = addr_uri(&contact).to_owned();
    if uri.is_empty() || contact.trim() == "*" || Uri::parse(&uri).is_none() {
        return;
    }
    if uri.contains(";alias=") {
        return;
    }
    let ip = source.ip().to_string();
    let alias = format!(
        "{uri};alias={ip}~{}~{}",
        source.port(),
        transport_code(transport)
    );
    let new = match contact.find('<') {
        Some(_) => contact.replacen(&format!("<{uri}>"), &format!("<{alias}>"), 1),
        // addr-spec: the header's parameters follow the URI.
        None => {
            let rest = contact.trim().strip_prefix(uri.as_str()).unwrap_or("");
            format!("<{alias}>{rest}")
        }
    };
    msg.replace_first_value("Contact", new);
}

/// The address an aliased Request-URI names, and the URI without its alias.
pub fn alias_target(ruri: &str) -> Option<(SocketAddr, Transport, String)> {
    let at = ruri.find(";alias=")?;
    let value_start = at + ";alias=".len();
    let end = ruri[value_start..]
        .find([';', '?', '>'])
        .map_or(ruri.len(), |e| value_start + e);
    let mut f = ruri[value_start..end].split('~');
    let ip: IpAddr = f.next()?.parse().ok()?;
    let port: u16 = f.next()?.parse().ok()?;
    let transport = match f.next()? {
        "1" => Transport::Udp,
        "2" => Transport::Tcp,
        "3" => Transport::Tls,
        _ => return None,
    };
    if port == 0 {
        return None;
    }
    let stripped = format!("{}{}", &ruri[..at], &ruri[end..]);
    Some((SocketAddr::new(ip, port), transport, stripped))
}

/// `host:port` of an address, as in a URI.
pub fn hostport(addr: SocketAddr) -> String {
    format!("{}:{}", format_host(&addr.ip()), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_goes_on_and_comes_off() {
        let text = "INVITE sip:101@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.10;branch=z9hG4bK1\r\nFrom: <sip:100@besip.test>;tag=1\r\nTo: <sip:101@besip.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:100@192.168.1.10:5060;transport=udp>;expires=60\r\nContent-Length: 0\r\n\r\n";
        let mut msg = Message::parse(text.as_bytes()).expect("parse");
        let src: SocketAddr = "127.0.0.20:40010".parse().unwrap();
        add_alias(&mut msg, src, Transport::Udp);
        add_alias(&mut msg, src, Transport::Udp);
        let c = msg.header("Contact").unwrap().to_owned();
        assert_eq!(
            c,
            "<sip:100@192.168.1.10:5060;transport=udp;alias=127.0.0.20~40010~1>;expires=60"
        );
        let (dest, t, uri) = alias_target(addr_uri(&c)).expect("alias");
        assert_eq!((dest, t), (src, Transport::Udp));
        assert_eq!(uri, "sip:100@192.168.1.10:5060;transport=udp");
        assert!(alias_target("sip:100@192.168.1.10;alias=x~1~1").is_none());
        assert!(alias_target("sip:100@192.168.1.10").is_none());
    }
}
