//! Header names: compact forms and canonical spellings (RFC 3261 §7.3.3).

use std::borrow::Cow;

/// Compact forms (RFC 3261 §7.3.3 and later RFCs) and canonical spellings.
const CANONICAL: &[(&str, &str)] = &[
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
];
/// Every long name we canonicalise (`known_name` holds them by length).
#[cfg(test)]
pub(super) const KNOWN: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Route",
    "Record-Route",
    "Expires",
    "Min-Expires",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "User-Agent",
    "Server",
    "Allow",
    "Path",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Supported",
    "Content-Encoding",
    "Subject",
    "Event",
    "Refer-To",
    "Referred-By",
    "Session-Expires",
    "Allow-Events",
];

pub(super) fn canonical_name(name: &str) -> Cow<'static, str> {
    if name.len() == 1 {
        if let Some((_, long)) = CANONICAL.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)) {
            return Cow::Borrowed(long);
        }
    }
    match known_name(name) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(name.to_owned()),
    }
}

/// The canonical spelling of a name in `KNOWN`: only the names of the same
/// length are compared (this runs for every header of every message).
pub(super) fn known_name(name: &str) -> Option<&'static str> {
    let candidates: &[&'static str] = match name.len() {
        2 => &["To"],
        3 => &["Via"],
        4 => &["From", "CSeq", "Path"],
        5 => &["Route", "Allow", "Event"],
        6 => &["Server"],
        7 => &["Call-ID", "Contact", "Expires", "Require", "Subject"],
        8 => &["Refer-To"],
        9 => &["Supported"],
        10 => &["User-Agent"],
        11 => &["Min-Expires", "Referred-By", "Unsupported"],
        12 => &[
            "Max-Forwards",
            "Record-Route",
            "Content-Type",
            "Allow-Events",
        ],
        13 => &["Authorization", "Proxy-Require"],
        14 => &["Content-Length"],
        15 => &["Session-Expires"],
        16 => &["WWW-Authenticate", "Content-Encoding"],
        18 => &["Proxy-Authenticate"],
        19 => &["Proxy-Authorization"],
        _ => &[],
    };
    candidates
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
}
