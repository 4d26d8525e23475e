//! Who sends a request: HTTP Basic against the box's users (the password
//! check is the server's, throttled like SSH logins), then a session cookie
//! so a browser or script does not pay the slow password hash per request.

use crate::backend::{Backend, Principal, Refusal};
use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use besip_core::access::Group;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "besip_restconf";
/// A session unused this long must authenticate again.
const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// A verified password is trusted this long (and only while running, which
/// holds the users, is unchanged).
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Bounds on memory whatever clients send.
const MAX_SESSIONS: usize = 1024;
const MAX_VERIFIED: usize = 1024;

struct Session {
    user: String,
    group: Group,
    last_seen: Instant,
    /// Running's generation when the user was last looked up.
    generation: u64,
}

struct Verified {
    group: Group,
    at: Instant,
    generation: u64,
}

pub struct Authenticator {
    sessions: Mutex<HashMap<String, Session>>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Salt of the in-memory fingerprints of verified passwords.
    salt: [u8; 16],
}

/// Why a request is not let in (401).
#[derive(Debug)]
pub enum Denied {
    NoCredentials,
    Malformed,
    Refused(Refusal),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Authenticator {
    fn default() -> Self {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Authenticator {
            sessions: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            salt,
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| Denied::Malformed)?;
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Err(Denied::Malformed);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Denied::Malformed);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| Denied::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Denied::Malformed)?;
    let (user, password) = decoded.split_once(':').ok_or(Denied::Malformed)?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

impl Authenticator {
    fn fingerprint(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The principal, and a Set-Cookie value when a session was opened.
    pub async fn authenticate<B: Backend>(
        &self,
        backend: &B,
        headers: &HeaderMap,
        source: IpAddr,
    ) -> Result<(Principal, Option<HeaderValue>), Denied> {
        let generation = backend.version().generation;
        let credentials = basic(headers)?;
        if credentials.is_none() {
            if let Some(token) = cookie_token(headers) {
                if let Some(p) = self.by_session(backend, &token, source, generation).await {
                    return Ok((p, None));
                }
            }
            return Err(Denied::NoCredentials);
        }
        let (user, password) = credentials.ok_or(Denied::NoCredentials)?;
        let print = self.fingerprint(&user, &password);
        let cached = lock(&self.verified).get(&print).and_then(|v| {
            (v.generation == generation && v.at.elapsed() < VERIFIED_FOR).then_some(v.group)
        });
        let group = match cached {
            Some(g) => g,
            None => {
                let group = backend
                    .check_password(&user, &password, source)
                    .await
                    .map_err(Denied::Refused)?;
                let mut verified = lock(&self.verified);
                if verified.len() >= MAX_VERIFIED {
                    verified.clear();
                }
                verified.insert(
                    print,
                    Verified {
                        group,
                        at: Instant::now(),
                        generation,
                    },
                );
                group
            }
        };
        let principal = Principal {
            user: user.clone(),
            group,
            source,
        };
        // A client already holding a live session is not given another.
        let has_session = cookie_token(headers)
            .is_some_and(|t| lock(&self.sessions).get(&t).is_some_and(|s| s.user == user));
        let cookie = (!has_session).then(|| self.open_session(&user, group, generation));
        Ok((principal, cookie.flatten()))
    }

    async fn by_session<B: Backend>(
        &self,
        backend: &B,
        token: &str,
        source: IpAddr,
        generation: u64,
    ) -> Option<Principal> {
        let (user, mut group, stale) = {
            let mut sessions = lock(&self.sessions);
            let s = sessions.get_mut(token)?;
            if s.last_seen.elapsed() > SESSION_IDLE {
                sessions.remove(token);
                return None;
            }
            s.last_seen = Instant::now();
            (s.user.clone(), s.group, s.generation != generation)
        };
        if stale {
            // Running changed: the user may be gone or in another group.
            match backend.user_group(&user).await {
                Some(g) => {
                    group = g;
                    if let Some(s) = lock(&self.sessions).get_mut(token) {
                        s.group = g;
                        s.generation = generation;
                    }
                }
                None => {
                    lock(&self.sessions).remove(token);
                    return None;
                }
            }
        }
        Some(Principal {
            user,
            group,
            source,
        })
    }

    fn open_session(&self, user: &str, group: Group, generation: u64) -> Option<HeaderValue> {
        let token = self.new_session(user, group, generation);
        HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/restconf; Secure; HttpOnly; SameSite=Strict"
        ))
        .ok()
    }

    /// A password login of a form (the web administration): the password
    /// is checked by the backend (throttled like SSH logins) and a session
    /// token is returned for the caller's own cookie.
    pub async fn password_login<B: Backend>(
        &self,
        backend: &B,
        user: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<(Principal, String), Refusal> {
        let generation = backend.version().generation;
        let group = backend.check_password(user, password, source).await?;
        let token = self.new_session(user, group, generation);
        Ok((
            Principal {
                user: user.to_owned(),
                group,
                source,
            },
            token,
        ))
    }

    /// The principal of a session token, if the session is alive and its
    /// user still exists (the group is re-read after running changed).
    pub async fn session<B: Backend>(
        &self,
        backend: &B,
        token: &str,
        source: IpAddr,
    ) -> Option<Principal> {
        let generation = backend.version().generation;
        self.by_session(backend, token, source, generation).await
    }

    /// Ends a session (logout).
    pub fn close_session(&self, token: &str) {
        lock(&self.sessions).remove(token);
    }

    fn new_session(&self, user: &str, group: Group, generation: u64) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.last_seen.elapsed() < SESSION_IDLE);
        }
        if sessions.len() >= MAX_SESSIONS {
            // Full of live sessions: the least recently used one goes.
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            token.clone(),
            Session {
                user: user.to_owned(),
                group,
                last_seen: Instant::now(),
                generation,
            },
        );
        token
    }

    /// Sessions open now (tests of memory bounds read it through the log).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }
}
