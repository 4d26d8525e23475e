//! Digest authentication (RFC 7616 over SIP, RFC 8760 SHA-256) with stateless
//! nonces: `<unix time hex><salt hex><HMAC-SHA256(secret, time|salt|realm)
//! hex>`, so no table
//! of issued nonces can be flooded. Replay is caught by remembering the last
//! nonce-count per nonce in a bounded LRU.
//!
//! Answers without qop (RFC 2069 style) carry no nonce count, so a captured
//! one could be replayed for the nonce's whole lifetime. They are still
//! accepted, for old phones, but tracked in the same table as if they were
//! nc=1: a nonce answered without qop is good for exactly one request (a
//! one-time nonce, as Kamailio's auth module with otn_enabled), and a
//! client reusing it gets a fresh challenge. Refusing them outright would
//! lock such phones out and protect nothing more.

pub mod uac;

use std::num::NonZeroUsize;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::Md5;
use parking_lot::Mutex;
use sha2::Sha256;

use crate::config::Algorithm;

const NONCE_COUNTS_KEPT: usize = 100_000;
/// Hex of time stamp (8 bytes), salt (8) and MAC (16).
const NONCE_LEN: usize = 64;

pub struct Authenticator {
    secret: [u8; 32],
    /// HMAC already keyed with `secret` (cloned per nonce: saves the key schedule).
    keyed: Option<Hmac<Sha256>>,
    pub realm: String,
    algorithms: Vec<Algorithm>,
    lifetime: u64,
    /// Last nonce-count + 1, keyed by the nonce's 128-bit MAC (unique per
    /// issued nonce; no string kept or hashed).
    nonce_counts: Mutex<lru::LruCache<u128, u64>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Credentials verified for this user name.
    Ok(String),
    /// Right password, but the nonce expired: challenge again with stale=true.
    Stale,
    /// No usable credentials for our realm: challenge.
    Missing,
    /// Wrong credentials (bad password, unknown user, replay, forged nonce).
    Failed(&'static str),
}

/// The parsed parameters of a `Digest` credentials header, borrowed from it.
#[derive(Debug, Default)]
struct Credentials<'a> {
    username: &'a str,
    realm: &'a str,
    nonce: &'a str,
    uri: &'a str,
    /// Compared case-insensitively (hex).
    response: &'a str,
    /// Compared case-insensitively.
    algorithm: &'a str,
    qop: Option<&'a str>,
    nc: Option<&'a str>,
    cnonce: Option<&'a str>,
}

fn parse_credentials(value: &str) -> Option<Credentials<'_>> {
    let value = value.trim_ascii();
    let sp = value.find(|c: char| c.is_ascii_whitespace())?;
    if !value[..sp].eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut c = Credentials {
        algorithm: "MD5",
        ..Default::default()
    };
    let rest = &value[sp..];
    let b = rest.as_bytes();
    let mut i = 0;
    // One pass over `k=v, k="v", …`; every cut is at an ASCII byte.
    loop {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let eq = i + memchr::memchr(b'=', &b[i..])?;
        if memchr::memchr(b',', &b[i..eq]).is_some() {
            return None; // a parameter without '=': not digest credentials
        }
        let k = rest[i..eq].trim_ascii();
        i = eq + 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let v = if i < b.len() && b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            while j < b.len() {
                match b[j] {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => break,
                    _ => {}
                }
                j += 1;
            }
            let v = &rest[start..j];
            // Anything between the closing quote and the next comma is ignored.
            i = memchr::memchr(b',', &b[j.min(b.len())..]).map_or(b.len(), |p| j + p);
            v
        } else {
            let end = memchr::memchr(b',', &b[i..]).map_or(b.len(), |p| i + p);
            let v = rest[i..end].trim_ascii();
            i = end;
            v
        };
        // Dispatch on length first: one comparison per parameter.
        let first = k.as_bytes().first().map_or(0, u8::to_ascii_lowercase);
        let slot = match (k.len(), first) {
            (8, b'u') if k.eq_ignore_ascii_case("username") => &mut c.username,
            (5, b'r') if k.eq_ignore_ascii_case("realm") => &mut c.realm,
            (5, b'n') if k.eq_ignore_ascii_case("nonce") => &mut c.nonce,
            (3, b'u') if k.eq_ignore_ascii_case("uri") => &mut c.uri,
            (8, b'r') if k.eq_ignore_ascii_case("response") => &mut c.response,
            (9, b'a') if k.eq_ignore_ascii_case("algorithm") => &mut c.algorithm,
            (3, b'q') if k.eq_ignore_ascii_case("qop") => {
                c.qop = Some(v);
                continue;
            }
            (2, b'n') if k.eq_ignore_ascii_case("nc") => {
                c.nc = Some(v);
                continue;
            }
            (6, b'c') if k.eq_ignore_ascii_case("cnonce") => {
                c.cnonce = Some(v);
                continue;
            }
            _ => continue,
        };
        *slot = v;
    }
    Some(c)
}

/// Lower-case hex of a digest, on the stack (MD5: 32, SHA-256: 64 characters).
struct Hex {
    buf: [u8; 64],
    len: usize,
}

impl Hex {
    fn of(bytes: &[u8]) -> Hex {
        let mut h = Hex {
            buf: [0; 64],
            len: bytes.len() * 2,
        };
        // Digests are at most 32 bytes: this cannot fail.
        let _ = hex::encode_to_slice(bytes, &mut h.buf[..h.len]);
        h
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// H(p0 ":" p1 ":" …) without building the joined string.
fn hash_parts(alg: Algorithm, parts: &[&str]) -> Hex {
    fn run<D: md5::Digest>(parts: &[&str]) -> Hex {
        let mut d = D::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                d.update(b":");
            }
            d.update(p.as_bytes());
        }
        Hex::of(&d.finalize())
    }
    match alg {
        Algorithm::Md5 => run::<Md5>(parts),
        Algorithm::Sha256 => run::<Sha256>(parts),
    }
}

/// The digest response a client computes (RFC 7616 §3.4.1, qop=auth or none).
#[allow(clippy::too_many_arguments)]
pub fn digest_response(
    alg: Algorithm,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    digest_hex(alg, user, realm, password, method, uri, nonce, qop)
        .as_str()
        .to_owned()
}

/// `digest_response` on the stack.
#[allow(clippy::too_many_arguments)]
fn digest_hex(
    alg: Algorithm,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> Hex {
    let ha1 = hash_parts(alg, &[user, realm, password]);
    let ha2 = hash_parts(alg, &[method, uri]);
    match qop {
        Some((nc, cnonce)) => hash_parts(
            alg,
            &[ha1.as_str(), nonce, nc, cnonce, "auth", ha2.as_str()],
        ),
        None => hash_parts(alg, &[ha1.as_str(), nonce, ha2.as_str()]),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Constant-time comparison so the response check leaks no prefix length.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `same` for an expected lower-case hex string and a received one in any case.
fn same_hex(expected: &str, got: &str) -> bool {
    expected.len() == got.len()
        && expected
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y.to_ascii_lowercase()))
            == 0
}

impl Authenticator {
    pub fn new(realm: String, algorithms: Vec<Algorithm>, lifetime: u64) -> Authenticator {
        let secret: [u8; 32] = rand::random();
        Authenticator {
            secret,
            keyed: Hmac::<Sha256>::new_from_slice(&secret).ok(),
            realm,
            algorithms,
            lifetime,
            nonce_counts: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(NONCE_COUNTS_KEPT).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Same secret (issued nonces stay valid), new settings: used by reload.
    pub fn rebuild(
        &self,
        realm: String,
        algorithms: Vec<Algorithm>,
        lifetime: u64,
    ) -> Authenticator {
        let mut a = Authenticator::new(realm, algorithms, lifetime);
        a.secret = self.secret;
        a.keyed = self.keyed.clone();
        a
    }

    fn mac(&self, ts: u64, salt: u64) -> Hex {
        let Some(mut mac) = self.keyed.clone() else {
            return Hex::of(&[]);
        };
        mac.update(&ts.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(self.realm.as_bytes());
        Hex::of(&mac.finalize().into_bytes()[..16])
    }

    /// A fresh nonce: time stamp, random salt (so two clients challenged in
    /// the same second get different nonces and nonce counts), and the MAC.
    /// The salt has 64 bits: with 32, two of the ~20 000 challenges a busy
    /// second issues shared a nonce about once in 300 000 (the birthday
    /// bound), and the second client's nc=1 was refused as a replay.
    pub fn nonce_at(&self, ts: u64) -> String {
        let salt: u64 = rand::random();
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&ts.to_be_bytes());
        head[8..].copy_from_slice(&salt.to_be_bytes());
        let mut nonce = String::with_capacity(NONCE_LEN);
        nonce.push_str(Hex::of(&head).as_str());
        nonce.push_str(self.mac(ts, salt).as_str());
        nonce
    }

    /// Some((age, MAC)) for a nonce we issued; None for a forged or garbled one.
    fn nonce_age(&self, nonce: &str) -> Option<(u64, u128)> {
        if nonce.len() != NONCE_LEN || !nonce.is_ascii() {
            return None;
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let salt = u64::from_str_radix(&nonce[16..32], 16).ok()?;
        let mac = u128::from_str_radix(&nonce[32..], 16).ok()?;
        same(&nonce[32..], self.mac(ts, salt).as_str()).then(|| (now().saturating_sub(ts), mac))
    }

    /// Values of WWW-Authenticate / Proxy-Authenticate, in order of preference.
    pub fn challenges(&self, stale: bool) -> Vec<String> {
        let nonce = self.nonce_at(now());
        self.algorithms
            .iter()
            .map(|alg| {
                let name = match alg {
                    Algorithm::Md5 => "MD5",
                    Algorithm::Sha256 => "SHA-256",
                };
                let mut v = String::with_capacity(128 + self.realm.len());
                for part in [
                    "Digest realm=\"",
                    &self.realm,
                    "\", nonce=\"",
                    &nonce,
                    "\", qop=\"auth\", algorithm=",
                    name,
                    if stale { ", stale=true" } else { "" },
                ] {
                    v.push_str(part);
                }
                v
            })
            .collect()
    }

    /// Checks the credentials in `header` (Authorization or Proxy-Authorization
    /// values). `password_of` gives the password of a known, enabled user.
    /// Unknown users go through the same computation with a random password,
    /// so they are indistinguishable from a wrong password.
    pub fn verify<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a str>,
        method: &str,
        request_uri: &str,
        uri_is_ours: impl Fn(&str) -> bool,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Verdict {
        let Some(c) = headers
            .into_iter()
            .filter_map(parse_credentials)
            .find(|c| c.realm == self.realm)
        else {
            return Verdict::Missing;
        };
        let alg = if c.algorithm.eq_ignore_ascii_case("MD5")
            && self.algorithms.contains(&Algorithm::Md5)
        {
            Algorithm::Md5
        } else if c.algorithm.eq_ignore_ascii_case("SHA-256")
            && self.algorithms.contains(&Algorithm::Sha256)
        {
            Algorithm::Sha256
        } else {
            return Verdict::Failed("unsupported digest algorithm");
        };
        let Some((age, nonce_mac)) = self.nonce_age(c.nonce) else {
            return Verdict::Failed("nonce not issued by us");
        };
        // RFC 7616 §3.4.6: the digest-uri names this request. Some clients
        // (sipp) put our address there instead of the Request-URI: accept that.
        if c.uri != request_uri && !uri_is_ours(c.uri) {
            return Verdict::Failed("digest uri differs from the Request-URI");
        }
        let known_password = password_of(c.username);
        let known = known_password.is_some();
        let password = known_password.unwrap_or_else(|| hex::encode(self.secret));
        let qop = match (c.qop, c.nc, c.cnonce) {
            (Some("auth"), Some(nc), Some(cn)) => Some((nc, cn)),
            (None, _, _) => None,
            _ => return Verdict::Failed("bad qop parameters"),
        };
        let expected = digest_hex(
            alg,
            c.username,
            &self.realm,
            &password,
            method,
            c.uri,
            c.nonce,
            qop,
        );
        if !same_hex(expected.as_str(), c.response) || !known {
            return Verdict::Failed("wrong credentials");
        }
        if age > self.lifetime {
            return Verdict::Stale;
        }
        {
            let nc = match qop {
                Some((nc, _)) => match u32::from_str_radix(nc, 16) {
                    Ok(nc) => nc,
                    Err(_) => return Verdict::Failed("bad nonce count"),
                },
                // Without qop: one use per nonce (see the module comment).
                None => 1,
            };
            // One lookup: a new nonce enters with 0 ("nothing seen yet").
            let mut counts = self.nonce_counts.lock();
            let last = counts.get_or_insert_mut(nonce_mac, || 0);
            if u64::from(nc) < *last {
                return Verdict::Failed("nonce count replayed");
            }
            *last = u64::from(nc) + 1;
        }
        Verdict::Ok(c.username.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new("pbx".into(), vec![Algorithm::Md5, Algorithm::Sha256], 300)
    }

    fn creds(a: &Authenticator, alg: Algorithm, pw: &str, nonce: &str, nc: &str) -> String {
        let name = if alg == Algorithm::Md5 {
            "MD5"
        } else {
            "SHA-256"
        };
        let r = digest_response(
            alg,
            "100",
            &a.realm,
            pw,
            "REGISTER",
            "sip:pbx",
            nonce,
            Some((nc, "abc")),
        );
        format!("Digest username=\"100\", realm=\"pbx\", nonce=\"{nonce}\", uri=\"sip:pbx\", response=\"{r}\", algorithm={name}, qop=auth, nc={nc}, cnonce=\"abc\"")
    }

    fn pw(u: &str) -> Option<String> {
        (u == "100").then(|| "secret".to_owned())
    }

    #[test]
    fn md5_and_sha256_verify_and_replay_is_refused() {
        let a = auth();
        for (i, alg) in [Algorithm::Md5, Algorithm::Sha256].into_iter().enumerate() {
            // Counts are per nonce: each algorithm gets its own nonce here.
            let nonce = a.nonce_at(now() - i as u64);
            let h = creds(&a, alg, "secret", &nonce, "00000001");
            assert_eq!(
                a.verify([h.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
                Verdict::Ok("100".into())
            );
            assert!(matches!(
                a.verify([h.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
                Verdict::Failed(_)
            ));
            let h3 = creds(&a, alg, "secret", &nonce, "00000003");
            assert_eq!(
                a.verify([h3.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
                Verdict::Ok("100".into())
            );
            // A lower count after a higher one is a replay too; the response
            // hex may come in upper case.
            let h2 = creds(&a, alg, "secret", &nonce, "00000002");
            assert!(matches!(
                a.verify([h2.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
                Verdict::Failed(_)
            ));
            let h4 = creds(&a, alg, "secret", &nonce, "00000004");
            let r = h4
                .split("response=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let upper = h4.replace(r, &r.to_ascii_uppercase());
            assert_eq!(
                a.verify([upper.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
                Verdict::Ok("100".into())
            );
        }
    }

    #[test]
    fn nonces_of_one_second_never_repeat() {
        // 200 000 challenges in one second: with a 32-bit salt a repeat was
        // near certain (p ≈ 0.99); with 64 bits it is ≈ 1e-9.
        let a = auth();
        let ts = now();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200_000 {
            assert!(seen.insert(a.nonce_at(ts)), "a nonce was issued twice");
        }
    }

    #[test]
    fn an_answer_without_qop_is_good_once() {
        let a = auth();
        let nonce = a.nonce_at(now());
        let r = digest_response(
            Algorithm::Md5,
            "100",
            "pbx",
            "secret",
            "REGISTER",
            "sip:pbx",
            &nonce,
            None,
        );
        let h = format!("Digest username=\"100\", realm=\"pbx\", nonce=\"{nonce}\", uri=\"sip:pbx\", response=\"{r}\", algorithm=MD5");
        let verify = |h: &str| a.verify([h], "REGISTER", "sip:pbx", |_| false, pw);
        assert_eq!(verify(&h), Verdict::Ok("100".into()));
        assert_eq!(verify(&h), Verdict::Failed("nonce count replayed"));
        // Nor can the same nonce be reused with qop and nc=1 afterwards.
        let q = creds(&a, Algorithm::Md5, "secret", &nonce, "00000001");
        assert!(matches!(verify(&q), Verdict::Failed(_)));
    }

    #[test]
    fn credentials_parser_handles_quotes_commas_and_junk() {
        let c = parse_credentials(
            r#"Digest username="a,b", realm = "r\"x" , nonce=n1,uri="sip:x;a=b",response=ABC, qop=auth,nc=00000001,cnonce="c,"  "#,
        )
        .unwrap();
        assert_eq!(c.username, "a,b");
        assert_eq!(c.realm, r#"r\"x"#);
        assert_eq!(c.nonce, "n1");
        assert_eq!(c.uri, "sip:x;a=b");
        assert_eq!(c.response, "ABC");
        assert_eq!(
            (c.qop, c.nc, c.cnonce),
            (Some("auth"), Some("00000001"), Some("c,"))
        );
        assert_eq!(c.algorithm, "MD5");
        assert!(parse_credentials("Digest stale, realm=\"r\"").is_none());
        assert!(parse_credentials("Basic abc=").is_none());
        let c = parse_credentials("Digest realm=\"unterminated").unwrap();
        assert_eq!(c.realm, "unterminated");
    }

    #[test]
    fn wrong_password_forged_and_stale_nonces() {
        let a = auth();
        let nonce = a.nonce_at(now());
        let h = creds(&a, Algorithm::Md5, "wrong", &nonce, "00000001");
        assert!(matches!(
            a.verify([h.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
            Verdict::Failed(_)
        ));
        let forged = format!("{:016x}{}", now(), "0".repeat(40));
        let h = creds(&a, Algorithm::Md5, "secret", &forged, "00000001");
        assert!(matches!(
            a.verify([h.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
            Verdict::Failed(_)
        ));
        let old = a.nonce_at(now() - 1000);
        let h = creds(&a, Algorithm::Md5, "secret", &old, "00000001");
        assert_eq!(
            a.verify([h.as_str()], "REGISTER", "sip:pbx", |_| false, pw),
            Verdict::Stale
        );
        assert_eq!(
            a.verify(["garbage"], "REGISTER", "sip:pbx", |_| false, pw),
            Verdict::Missing
        );
        assert!(a.challenges(true)[0].contains("stale=true"));
    }
}
