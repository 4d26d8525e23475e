//! The client side of digest authentication (RFC 3261 §22.2-22.3, RFC 7616,
//! RFC 8760): answering a provider's 401/407 challenge with the trunk's
//! credentials. The hashing is the server's (`auth::digest_response`).

use crate::auth::digest_response;
use crate::config::Algorithm;
use crate::sip::{list_items, Message};

/// One parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered qop=auth.
    pub qop_auth: bool,
    pub stale: bool,
}

fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = Some(Algorithm::Md5);
    let mut qop_auth = false;
    let mut stale = false;
    for item in list_items(rest) {
        let Some((k, v)) = item.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        match k.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v.to_owned()),
            "nonce" => nonce = Some(v.to_owned()),
            "opaque" => opaque = Some(v.to_owned()),
            "stale" => stale = v.eq_ignore_ascii_case("true"),
            "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
            "algorithm" => {
                algorithm = match v.to_ascii_uppercase().as_str() {
                    "MD5" => Some(Algorithm::Md5),
                    "SHA-256" => Some(Algorithm::Sha256),
                    _ => None, // MD5-sess, SHA-512-256…: not ours to answer
                }
            }
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        opaque,
        algorithm: algorithm?,
        qop_auth,
        stale,
    })
}

/// The challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) we
/// can answer, SHA-256 preferred over MD5 (RFC 8760 §2.4). Also returns the
/// name of the header the credentials go in.
pub fn pick_challenge(resp: &Message) -> Option<(Challenge, &'static str)> {
    let (challenge_header, credentials_header) = match resp.status()? {
        401 => ("WWW-Authenticate", "Authorization"),
        407 => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    let mut offered: Vec<Challenge> = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(challenge_header))
        .filter_map(|h| parse_challenge(&h.value))
        .collect();
    offered.sort_by_key(|c| match c.algorithm {
        Algorithm::Sha256 => 0,
        Algorithm::Md5 => 1,
    });
    offered.into_iter().next().map(|c| (c, credentials_header))
}

/// The credentials header value answering `c` for `method` on `uri`.
pub fn credentials(
    c: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let cnonce = format!("{:016x}", rand::random::<u64>());
    let nc = format!("{nc:08x}");
    let qop = c.qop_auth.then_some((nc.as_str(), cnonce.as_str()));
    let response = digest_response(
        c.algorithm,
        user,
        &c.realm,
        password,
        method,
        uri,
        &c.nonce,
        qop,
    );
    let alg = match c.algorithm {
        Algorithm::Md5 => "MD5",
        Algorithm::Sha256 => "SHA-256",
    };
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={alg}",
        c.realm, c.nonce
    );
    if qop.is_some() {
        v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &c.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Authenticator, Verdict};

    #[test]
    fn our_credentials_satisfy_our_own_server_side() {
        for algs in [
            vec![Algorithm::Md5],
            vec![Algorithm::Md5, Algorithm::Sha256],
        ] {
            let server = Authenticator::new("prov".into(), algs.clone(), 300);
            let mut text = String::from("SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n");
            for ch in server.challenges(false) {
                text.push_str(&format!("WWW-Authenticate: {ch}\r\n"));
            }
            text.push_str("Content-Length: 0\r\n\r\n");
            let resp = Message::parse(text.as_bytes()).expect("parse");
            let (c, header) = pick_challenge(&resp).expect("challenge");
            assert_eq!(header, "Authorization");
            assert_eq!(c.algorithm, *algs.last().expect("alg"));
            let v = credentials(&c, "alice", "pw", "REGISTER", "sip:prov", 1);
            let pw = |u: &str| (u == "alice").then(|| "pw".to_owned());
            assert_eq!(
                server.verify([v.as_str()], "REGISTER", "sip:prov", |_| false, pw),
                Verdict::Ok("alice".into())
            );
            let wrong = credentials(&c, "alice", "bad", "REGISTER", "sip:prov", 2);
            assert!(matches!(
                server.verify([wrong.as_str()], "REGISTER", "sip:prov", |_| false, pw),
                Verdict::Failed(_)
            ));
        }
    }

    #[test]
    fn unusable_challenges_are_ignored() {
        for bad in [
            "Basic realm=\"x\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess",
        ] {
            assert_eq!(parse_challenge(bad), None, "{bad}");
        }
        let c = parse_challenge(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth,auth-int\", opaque=\"o\", stale=TRUE",
        )
        .expect("ok");
        assert!(c.qop_auth && c.stale);
        assert_eq!(c.opaque.as_deref(), Some("o"));
    }
}
