//! Caller ID (YANG /pbx/extension/caller-id-*, /pbx/trunk/caller-id-number
//! and send-pai, /pbx/feature-codes/anonymous, /pbx/phonebook) and speed
//! dials (/pbx/speed-dial).
//!
//! Dialled codes are turned into the number they stand for before the
//! number is routed, so a speed dial or a *67 call is checked as if the
//! number itself had been dialled: the caller's routes and call classes
//! apply, and a stranger is refused as a relay. The privacy prefix adds
//! `Privacy: id` (RFC 3323) to the request, which is then what the phone
//! itself could have asked for.
//!
//! Towards a trunk, From carries the extension's caller ID (else the
//! trunk's); with privacy asked, From is anonymous and the identity goes
//! only in P-Asserted-Identity (RFC 3325) to a trunk with send-pai. A
//! P-Asserted-Identity sent by the phone is never passed on.

use crate::call::Target;
use crate::config::Config;
use crate::features::outbound::Origin;
use crate::sip::{addr_uri, param, Message, Uri};

/// The anonymous From of RFC 3323 section 4.1.1.3.
pub const ANONYMOUS_URI: &str = "sip:anonymous@anonymous.invalid";

/// The privacy prefix was dialled alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberMissing;

/// What a new INVITE dialled to `user` is routed as: the number behind
/// the privacy prefix and a speed dial code. Marks the request with
/// `Privacy: id` and sets its Request-URI to the number. None: unchanged;
/// Err: the prefix without a number.
pub fn dialled(
    cfg: &Config,
    msg: &mut Message,
    user: &str,
) -> Result<Option<String>, NumberMissing> {
    let mut number = user;
    let mut private = false;
    if let Some(rest) = cfg
        .caller_id
        .anonymous
        .as_deref()
        .and_then(|code| user.strip_prefix(code))
    {
        if rest.is_empty() {
            return Err(NumberMissing);
        }
        number = rest;
        private = true;
    }
    let number = cfg
        .caller_id
        .speed_dials
        .get(number)
        .map(String::as_str)
        .unwrap_or(number)
        .to_owned();
    if private {
        msg.set_header("Privacy", "id".into());
    }
    if number == user {
        return Ok(None);
    }
    if let Some((scheme, rest)) = msg.uri().split_once(':') {
        if let Some((_, host)) = rest.split_once('@') {
            let uri = format!("{scheme}:{number}@{host}");
            msg.set_uri(uri);
        }
    }
    // The To of a new request is what was dialled: the number, not the code.
    if let Some(to) = msg.header("To").map(str::to_owned) {
        let to = to.replacen(&format!(":{user}@"), &format!(":{number}@"), 1);
        msg.set_header("To", to);
    }
    Ok(Some(number))
}

/// An inbound call from a phonebook number: its From gets the name.
pub fn phonebook(cfg: &Config, msg: &mut Message) {
    let Some(from) = msg.header("From").map(str::to_owned) else {
        return;
    };
    let Some(user) = Uri::parse(addr_uri(&from)).and_then(|u| u.user) else {
        return;
    };
    let Some(name) = cfg.caller_id.phonebook.get(&user) else {
        return;
    };
    let tag = param(&from, "tag")
        .map(|t| format!(";tag={t}"))
        .unwrap_or_default();
    msg.set_header("From", format!("\"{name}\" <{}>{tag}", addr_uri(&from)));
}

/// The identity a call of an extension shows to a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub number: String,
    pub name: Option<String>,
    pub send_pai: bool,
    /// The caller asked for privacy (Privacy: id).
    pub private: bool,
    /// A call forwarded out by the extension: it is named in Diversion
    /// (RFC 5806) as the party that diverted it.
    pub diverted: bool,
}

impl Outgoing {
    /// The From URI (without display name) with `host` as domain.
    pub fn uri(&self, host: &str) -> String {
        match self.private {
            true => ANONYMOUS_URI.to_owned(),
            false => format!("sip:{}@{host}", self.number),
        }
    }

    fn identity(&self, host: &str) -> String {
        let uri = format!("sip:{}@{host}", self.number);
        match &self.name {
            Some(n) => format!("\"{n}\" <{uri}>"),
            None => format!("<{uri}>"),
        }
    }

    /// Sets From (keeping `tag`), P-Asserted-Identity and Privacy of a
    /// request towards the trunk.
    pub fn apply(&self, msg: &mut Message, host: &str, tag: &str) {
        let from = match (self.private, &self.name) {
            (true, _) => format!("\"Anonymous\" <{ANONYMOUS_URI}>;tag={tag}"),
            (false, Some(n)) => format!("\"{n}\" <{}>;tag={tag}", self.uri(host)),
            (false, None) => format!("<{}>;tag={tag}", self.uri(host)),
        };
        msg.set_header("From", from);
        msg.remove_headers("P-Asserted-Identity");
        msg.remove_headers("P-Preferred-Identity");
        if self.send_pai {
            msg.add_header("P-Asserted-Identity", self.identity(host));
        }
        if self.private {
            msg.set_header("Privacy", "id".into());
        }
        msg.remove_headers("Diversion");
        if self.diverted {
            msg.add_header(
                "Diversion",
                format!("<sip:{}@{host}>;reason=unknown;counter=1", self.number),
            );
        }
    }
}

/// The identity of a new call of an extension going out through a
/// trunk, or anonymous to our own phones when the caller asked for
/// privacy; None for other calls.
pub fn outgoing(
    cfg: &Config,
    msg: &Message,
    origin: &Origin,
    targets: &[Target],
) -> Option<Outgoing> {
    let (ext, diverted) = match origin {
        Origin::Extension(e) => (e, false),
        // Forwarded out: the identity is the forwarding extension's (the
        // one the provider knows), the caller's shown as the name.
        Origin::Forwarded { extension, .. } => (extension, true),
        _ => return None,
    };
    let private = msg
        .header_values("Privacy")
        .iter()
        .any(|v| v.split(';').any(|p| p.trim().eq_ignore_ascii_case("id")));
    let Some(trunk) = targets.iter().find_map(|t| t.trunk.as_deref()) else {
        // A call to our own phones (or forwarded to a SIP address) keeps
        // the phone's From unless the caller asked for privacy.
        return (private && !diverted).then(|| Outgoing {
            number: ext.clone(),
            name: None,
            send_pai: false,
            private,
            diverted: false,
        });
    };
    let trunk = cfg.caller_id.trunks.get(trunk).cloned().unwrap_or_default();
    let own = cfg
        .caller_id
        .extensions
        .get(ext)
        .cloned()
        .unwrap_or_default();
    let name = match diverted {
        true => caller_name(msg),
        false => own.name,
    };
    Some(Outgoing {
        number: own.number.or(trunk.number).unwrap_or_else(|| ext.clone()),
        name,
        send_pai: trunk.send_pai,
        private,
        diverted,
    })
}

/// The caller's display name in From, else its number; None for an
/// anonymous caller.
fn caller_name(msg: &Message) -> Option<String> {
    let from = msg.header("From")?;
    let display = from
        .split_once('<')
        .map(|(d, _)| d.trim().trim_matches('"').trim())
        .filter(|d| !d.is_empty());
    let name = match display {
        Some(d) => d.to_owned(),
        None => Uri::parse(addr_uri(from))?.user?,
    };
    // A name is quoted into From: nothing that could break out of it.
    let safe = name
        .chars()
        .all(|c| !matches!(c, '"' | '\\' | '<' | '>' | '\r' | '\n'));
    (safe && !name.eq_ignore_ascii_case("anonymous") && name.len() <= 64).then_some(name)
}

/// Proxy mode: rewrites From, P-Asserted-Identity and Privacy of a new
/// call of an extension (see `outgoing`).
pub fn rewrite(cfg: &Config, msg: &mut Message, origin: &Origin, targets: &[Target]) {
    let Some(out) = outgoing(cfg, msg, origin, targets) else {
        return;
    };
    let from = msg.header("From").unwrap_or("").to_owned();
    let tag = param(&from, "tag").unwrap_or("").to_owned();
    let host = Uri::parse(addr_uri(&from))
        .map(|u| {
            // An IPv6 literal is written back in brackets.
            let host = match u.host.parse::<std::net::IpAddr>() {
                Ok(ip) => crate::sip::format_host(&ip),
                Err(_) => u.host,
            };
            match u.port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            }
        })
        .unwrap_or_default();
    out.apply(msg, &host, &tag);
}

/// B2BUA: the display name of the caller's From (a phonebook name, the
/// phone's own) shown on the other leg too.
pub fn copy_display_name(a_from: &str, b_req: &mut Message) {
    let Some((display, _)) = a_from.split_once('<') else {
        return;
    };
    let display = display.trim();
    if display.is_empty() {
        return;
    }
    let Some(from) = b_req.header("From").map(str::to_owned) else {
        return;
    };
    b_req.set_header("From", format!("{display} {from}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "config pbx 'main'\n\toption mode 'proxy'\n\n\
config extension 'e100'\n\toption number '100'\n\toption password 'pw'\n\toption caller_id_number '0301100'\n\toption display_name 'Alice'\n\n\
config extension 'e101'\n\toption number '101'\n\toption password 'pw'\n\n\
config trunk 't'\n\toption name 'prov'\n\toption host '192.0.2.1'\n\toption caller_id_number '0301000'\n\toption send_pai '1'\n\n\
config phonebook 'p'\n\toption number '0555777'\n\toption name 'Bob'\n\n\
config speed_dial 's'\n\toption code '*11'\n\toption number '0555123'\n";
        let pkg = besip_core::uci::Package::parse("besip_pbx", text).expect("uci");
        Config::from_package(&pkg, "besip_pbx").expect("config")
    }

    fn invite(to: &str, from: &str) -> Message {
        let text = format!(
            "INVITE sip:{to}@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\n\
From: {from};tag=a1\r\nTo: <sip:{to}@besip.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).expect("message")
    }

    fn trunk_target() -> Vec<Target> {
        let mut t = Target::outside(
            "sip:0555123@192.0.2.1".into(),
            "192.0.2.1:5060".parse().unwrap(),
            crate::config::Transport::Udp,
        );
        t.trunk = Some("prov".into());
        vec![t]
    }

    #[test]
    fn privacy_prefix_and_speed_dial_resolve_to_the_number() {
        let cfg = config();
        let mut m = invite("*67*11", "<sip:100@besip.test>");
        assert_eq!(dialled(&cfg, &mut m, "*67*11"), Ok(Some("0555123".into())));
        assert_eq!(m.uri(), "sip:0555123@besip.test");
        assert_eq!(m.header("Privacy"), Some("id"));
        assert_eq!(m.header("To"), Some("<sip:0555123@besip.test>"));
        let mut m = invite("*67", "<sip:100@besip.test>");
        assert_eq!(dialled(&cfg, &mut m, "*67"), Err(NumberMissing));
        let mut m = invite("102", "<sip:100@besip.test>");
        assert_eq!(dialled(&cfg, &mut m, "102"), Ok(None));
        assert_eq!(m.header("Privacy"), None);
    }

    #[test]
    fn forwarded_out_shows_the_forwarding_extension_and_names_the_caller() {
        let cfg = config();
        let fwd = Origin::Forwarded {
            extension: "100".into(),
            number: "0555123".into(),
        };
        // An outside caller (a phonebook name, or just a number) to 100,
        // forwarded out through the trunk.
        let mut m = invite("100", "\"Bob\" <sip:0555777@192.0.2.7>");
        m.add_header("Diversion", "<sip:1@evil>".into());
        rewrite(&cfg, &mut m, &fwd, &trunk_target());
        assert_eq!(
            m.header("From"),
            Some("\"Bob\" <sip:0301100@192.0.2.7>;tag=a1")
        );
        assert_eq!(
            m.header_values("Diversion"),
            vec!["<sip:0301100@192.0.2.7>;reason=unknown;counter=1"]
        );
        let mut m = invite("100", "<sip:0555888@192.0.2.7>");
        rewrite(&cfg, &mut m, &fwd, &trunk_target());
        assert_eq!(
            m.header("From"),
            Some("\"0555888\" <sip:0301100@192.0.2.7>;tag=a1")
        );
        // A name that would break out of its quotes is not shown.
        let mut m = invite("100", "\"x\\\" <sip:0555888@192.0.2.7>");
        rewrite(&cfg, &mut m, &fwd, &trunk_target());
        assert_eq!(m.header("From"), Some("<sip:0301100@192.0.2.7>;tag=a1"));
    }

    #[test]
    fn from_and_pai_towards_the_trunk() {
        let cfg = config();
        let own = Origin::Extension("100".into());
        let mut m = invite("0555123", "\"Phone\" <sip:100@besip.test>");
        m.add_header("P-Asserted-Identity", "<sip:999@evil>".into());
        rewrite(&cfg, &mut m, &own, &trunk_target());
        assert_eq!(
            m.header("From"),
            Some("\"Alice\" <sip:0301100@besip.test>;tag=a1")
        );
        assert_eq!(
            m.header_values("P-Asserted-Identity"),
            vec!["\"Alice\" <sip:0301100@besip.test>"]
        );
        let mut m = invite("0555123", "<sip:101@besip.test>");
        rewrite(
            &cfg,
            &mut m,
            &Origin::Extension("101".into()),
            &trunk_target(),
        );
        assert_eq!(m.header("From"), Some("<sip:0301000@besip.test>;tag=a1"));
        let mut m = invite("0555123", "<sip:100@besip.test>");
        m.add_header("Privacy", "id".into());
        rewrite(&cfg, &mut m, &own, &trunk_target());
        assert_eq!(
            m.header("From"),
            Some("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=a1")
        );
        let mut m = invite("0555123", "<sip:101@[2001:db8::1]:5070>");
        rewrite(
            &cfg,
            &mut m,
            &Origin::Extension("101".into()),
            &trunk_target(),
        );
        assert_eq!(
            m.header("From"),
            Some("<sip:0301000@[2001:db8::1]:5070>;tag=a1")
        );
        // Not towards a trunk, or not an extension: unchanged.
        let mut m = invite("0555123", "<sip:100@besip.test>");
        rewrite(&cfg, &mut m, &Origin::Stranger, &trunk_target());
        assert_eq!(m.header("From"), Some("<sip:100@besip.test>;tag=a1"));
    }

    #[test]
    fn a_speed_dial_may_not_shadow_an_extension() {
        let text = "config pbx 'main'\n\n\
config extension 'e100'\n\toption number '100'\n\toption password 'pw'\n\n\
config speed_dial 's'\n\toption code '100'\n\toption number '0555123'\n";
        let pkg = besip_core::uci::Package::parse("besip_pbx", text).expect("uci");
        assert!(Config::from_package(&pkg, "besip_pbx").is_err());
    }

    #[test]
    fn phonebook_names_the_caller() {
        let cfg = config();
        let mut m = invite("0301000", "<sip:0555777@prov.test>");
        phonebook(&cfg, &mut m);
        assert_eq!(
            m.header("From"),
            Some("\"Bob\" <sip:0555777@prov.test>;tag=a1")
        );
        let mut m = invite("0301000", "\"X\" <sip:0555000@prov.test>");
        phonebook(&cfg, &mut m);
        assert_eq!(
            m.header("From"),
            Some("\"X\" <sip:0555000@prov.test>;tag=a1")
        );
    }
}
