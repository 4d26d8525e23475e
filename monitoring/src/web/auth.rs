//! Logins: sessions (random id in an HttpOnly Secure SameSite=Strict
//! cookie, idle timeout), per-session CSRF tokens, and the limits of
//! `throttle` on password checks (bounded at once, delays per source).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::RngCore;

use super::settings::{Group, User};
use super::throttle::{self, CheckPermit, Refusal, Throttle};

pub const SESSION_COOKIE: &str = "besip_session";
/// Double-submit token of the login form (there is no session yet).
pub const LOGIN_COOKIE: &str = "besip_login";

/// Bound on memory whatever clients send.
const MAX_SESSIONS: usize = 1000;

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Equal without leaking where they differ through timing.
pub fn token_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
pub struct SessionData {
    pub user: String,
    pub group: Group,
    pub csrf: String,
    last_seen: Instant,
}

pub struct Auth {
    users: Mutex<HashMap<String, User>>,
    timeout: Mutex<Duration>,
    sessions: Mutex<HashMap<String, SessionData>>,
    throttle: Throttle,
}

pub enum LoginOutcome {
    /// The new session id.
    Ok(String),
    Wrong,
    /// Not checked: delayed for this long after failures from this source,
    /// or `Busy` (too many checks running).
    Refused(Refusal),
}

/// A hash of a password nobody has: unknown users cost the same check as
/// known ones, so the answer's timing does not tell which names exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        besip_core::password::hash(&random_token()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot hash the dummy password");
            String::new()
        })
    })
}

impl Auth {
    pub fn new() -> Auth {
        Auth {
            users: Mutex::new(HashMap::new()),
            timeout: Mutex::new(Duration::from_secs(3600)),
            sessions: Mutex::new(HashMap::new()),
            throttle: Throttle::new(throttle::max_checks()),
        }
    }

    /// New users and timeout; sessions of removed users, of users whose
    /// group or password changed end at once.
    pub fn configure(&self, users: HashMap<String, User>, timeout: Duration) {
        let mut old = self.users.lock();
        self.sessions.lock().retain(|_, s| {
            old.get(&s.user)
                .is_some_and(|u| users.get(&s.user) == Some(u))
        });
        *old = users;
        *self.timeout.lock() = timeout;
    }

    /// Admits a password check (fast; the failure is counted now).
    pub fn admit(&self, name: &str, source: IpAddr) -> Result<CheckPermit, Refusal> {
        self.throttle.admit(name, source)
    }

    /// `admit` then `check`, for callers already on a blocking thread.
    pub fn login(&self, name: &str, password: &str, source: IpAddr) -> LoginOutcome {
        match self.admit(name, source) {
            Ok(permit) => self.check(name, password, source, permit),
            Err(refusal) => LoginOutcome::Refused(refusal),
        }
    }

    /// Checks the password of an admitted login (argon2 is slow: call from
    /// a blocking thread); the permit is held until the hash is done.
    pub fn check(
        &self,
        name: &str,
        password: &str,
        source: IpAddr,
        permit: CheckPermit,
    ) -> LoginOutcome {
        let user = self.users.lock().get(name).cloned();
        let ok = match &user {
            Some(u) if !u.password_hash.is_empty() => {
                besip_core::password::verify(&u.password_hash, password)
            }
            _ => {
                let _ = besip_core::password::verify(dummy_hash(), password);
                false
            }
        };
        drop(permit);
        let Some(user) = user.filter(|_| ok) else {
            return LoginOutcome::Wrong;
        };
        self.throttle.succeeded(name, source);
        let now = Instant::now();
        let id = random_token();
        let mut sessions = self.sessions.lock();
        self.expire(&mut sessions, now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            SessionData {
                user: name.to_string(),
                group: user.group,
                csrf: random_token(),
                last_seen: now,
            },
        );
        LoginOutcome::Ok(id)
    }

    fn expire(&self, sessions: &mut HashMap<String, SessionData>, now: Instant) {
        let timeout = *self.timeout.lock();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < timeout);
    }

    /// The live session of this id, its idle clock restarted.
    pub fn session(&self, id: &str) -> Option<SessionData> {
        let now = Instant::now();
        let timeout = *self.timeout.lock();
        let mut sessions = self.sessions.lock();
        let s = sessions.get_mut(id)?;
        if now.duration_since(s.last_seen) >= timeout {
            sessions.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn logout(&self, id: &str) {
        self.sessions.lock().remove(id);
    }

    /// Whether session `id` is still open (its idle clock untouched).
    pub fn is_live(&self, id: &str) -> bool {
        let timeout = *self.timeout.lock();
        self.sessions
            .lock()
            .get(id)
            .is_some_and(|s| s.last_seen.elapsed() < timeout)
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth::new()
    }
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with(name: &str, pw: &str, group: Group) -> Auth {
        let a = Auth::new();
        let mut users = HashMap::new();
        users.insert(
            name.to_string(),
            User {
                password_hash: besip_core::password::hash(pw).unwrap(),
                group,
            },
        );
        a.configure(users, Duration::from_secs(60));
        a
    }

    #[test]
    fn csrf_compare() {
        assert!(token_eq("abc", "abc"));
        assert!(!token_eq("abc", "abd"));
        assert!(!token_eq("abc", "abcd"));
        assert!(!token_eq("", ""));
    }

    #[test]
    fn lockout_per_source_and_user_then_success_resets() {
        let a = auth_with("admin", "pw", Group::Admin);
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..throttle::SOURCE_USER_FREE_FAILURES {
            assert!(matches!(a.login("admin", "bad", src), LoginOutcome::Wrong));
        }
        // Locked: even the right password is not checked.
        assert!(matches!(
            a.login("admin", "pw", src),
            LoginOutcome::Refused(Refusal::Locked(_))
        ));
        std::thread::sleep(Duration::from_millis(1100));
        let LoginOutcome::Ok(id) = a.login("admin", "pw", src) else {
            panic!("login after the delay")
        };
        let s = a.session(&id).unwrap();
        assert_eq!(s.group, Group::Admin);
        assert_eq!(s.csrf.len(), 64);
        a.logout(&id);
        assert!(a.session(&id).is_none());
    }

    #[test]
    fn sessions_end_when_the_user_changes() {
        let a = auth_with("op", "pw", Group::Operator);
        let LoginOutcome::Ok(id) = a.login("op", "pw", "::1".parse().unwrap()) else {
            panic!("login")
        };
        a.configure(HashMap::new(), Duration::from_secs(60));
        assert!(a.session(&id).is_none());
    }

    #[test]
    fn idle_sessions_expire_and_use_keeps_them() {
        let a = auth_with("op", "pw", Group::Operator);
        let users = a.users.lock().clone();
        a.configure(users, Duration::from_millis(400));
        let LoginOutcome::Ok(id) = a.login("op", "pw", "::1".parse().unwrap()) else {
            panic!("login")
        };
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(250));
            assert!(a.session(&id).is_some(), "used within the timeout");
        }
        std::thread::sleep(Duration::from_millis(450));
        assert!(a.session(&id).is_none(), "idle past the timeout");
    }

    #[test]
    fn unknown_users_count_against_the_source() {
        let a = auth_with("admin", "pw", Group::Admin);
        let src: IpAddr = "127.0.0.9".parse().unwrap();
        for i in 0..throttle::SOURCE_FREE_FAILURES {
            assert!(matches!(
                a.login(&format!("u{i}"), "x", src),
                LoginOutcome::Wrong
            ));
        }
        assert!(matches!(
            a.login("admin", "pw", src),
            LoginOutcome::Refused(Refusal::Locked(_))
        ));
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert!(matches!(a.login("admin", "pw", other), LoginOutcome::Ok(_)));
    }

    #[test]
    fn cookie_header() {
        assert_eq!(
            cookie("a=1; besip_session=xyz", SESSION_COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie("besip_session_x=1", SESSION_COOKIE), None);
    }
}
