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

/// What a new INVITE dialled to `user` is routed as: the number behind
/// the privacy prefix and a speed dial code. Marks the request with
/// `Privacy: id` and sets its Request-URI to the number. None: unchanged;
/// Err: the prefix without a number.
pub fn dialled(cfg: &Config, msg: &mut Message, user: &str) -> Result<Option<String>, ()> {
    let mut number = user;
    let mut private = false;
    if let Some(rest) = cfg
        .caller_id
        .anonymous
        .as_deref()
        .and_then(|code| user.strip_prefix(code))
    {
        if rest.is_empty() {
            return Err(());
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
    }
}

/// The identity of a new call of an extension going out through a
/// trunk; None for other calls.
pub fn outgoing(
    cfg: &Config,
    msg: &Message,
    origin: &Origin,
    targets: &[Target],
) -> Option<Outgoing> {
    let Origin::Extension(ext) = origin else {
        return None;
    };
    let trunk = targets.iter().find_map(|t| t.trunk.as_deref())?;
    let trunk = cfg.caller_id.trunks.get(trunk).cloned().unwrap_or_default();
    let own = cfg
        .caller_id
        .extensions
        .get(ext)
        .cloned()
        .unwrap_or_default();
    let private = msg
        .header_values("Privacy")
        .iter()
        .any(|v| v.split(';').any(|p| p.trim().eq_ignore_ascii_case("id")));
    Some(Outgoing {
        number: own.number.or(trunk.number).unwrap_or_else(|| ext.clone()),
        name: own.name,
        send_pai: trunk.send_pai,
        private,
    })
}

/// Proxy mode: rewrites From, P-Asserted-Identity and Privacy of a new
/// call of an extension going out through a trunk.
pub fn rewrite(cfg: &Config, msg: &mut Message, origin: &Origin, targets: &[Target]) {
    let Some(out) = outgoing(cfg, msg, origin, targets) else {
        return;
    };
    let from = msg.header("From").unwrap_or("").to_owned();
    let tag = param(&from, "tag").unwrap_or("").to_owned();
    let host = Uri::parse(addr_uri(&from))
        .map(|u| match u.port {
            Some(p) => format!("{}:{p}", u.host),
            None => u.host,
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
