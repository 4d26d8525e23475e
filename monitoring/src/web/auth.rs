//! Logins: sessions (random id in an HttpOnly SameSite=Strict cookie, idle
//! timeout), per-session CSRF tokens, and a growing delay after repeated
//! failed logins per user and per source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::RngCore;

use super::settings::{Group, User};

pub const SESSION_COOKIE: &str = "besip_session";
/// Double-submit token of the login form (there is no session yet).
pub const LOGIN_COOKIE: &str = "besip_login";

/// Failures before the first delay, per user name and per source address.
pub const USER_FREE_FAILURES: u32 = 5;
pub const SOURCE_FREE_FAILURES: u32 = 10;
/// Longest delay; failures older than `FORGET` are forgotten.
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET: Duration = Duration::from_secs(900);
/// Bounds on memory whatever clients send.
const MAX_SESSIONS: usize = 1000;
const MAX_TRACKED: usize = 10_000;

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

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    last: Option<Instant>,
    locked_until: Option<Instant>,
}

/// Delay after the `count`-th failure: none up to `free`, then 1 s doubling.
pub fn delay_after(count: u32, free: u32) -> Duration {
    if count < free {
        return Duration::ZERO;
    }
    let exp = (count - free).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

pub struct Auth {
    users: Mutex<HashMap<String, User>>,
    timeout: Mutex<Duration>,
    sessions: Mutex<HashMap<String, SessionData>>,
    by_user: Mutex<HashMap<String, Failures>>,
    by_source: Mutex<HashMap<IpAddr, Failures>>,
}

pub enum LoginOutcome {
    /// The new session id.
    Ok(String),
    Wrong,
    /// Locked out for this long (no password was checked).
    Locked(Duration),
}

fn locked(map_entry: Option<&Failures>, now: Instant) -> Option<Duration> {
    map_entry
        .and_then(|f| f.locked_until)
        .and_then(|t| t.checked_duration_since(now))
        .filter(|d| !d.is_zero())
}

fn record_failure<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Failures>,
    key: &K,
    free: u32,
    now: Instant,
) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, f| f.last.is_some_and(|t| now.duration_since(t) < FORGET));
    }
    if map.len() >= MAX_TRACKED && !map.contains_key(key) {
        return;
    }
    let f = map.entry(key.clone()).or_default();
    if f.last.is_some_and(|t| now.duration_since(t) >= FORGET) {
        *f = Failures::default();
    }
    f.count += 1;
    f.last = Some(now);
    let d = delay_after(f.count, free);
    if !d.is_zero() {
        f.locked_until = Some(now + d);
    }
}

impl Auth {
    pub fn new() -> Auth {
        Auth {
            users: Mutex::new(HashMap::new()),
            timeout: Mutex::new(Duration::from_secs(3600)),
            sessions: Mutex::new(HashMap::new()),
            by_user: Mutex::new(HashMap::new()),
            by_source: Mutex::new(HashMap::new()),
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

    /// Checks lockout, then the password (argon2 is slow: call from a blocking thread).
    pub fn login(&self, name: &str, password: &str, source: IpAddr) -> LoginOutcome {
        let now = Instant::now();
        let wait = locked(self.by_user.lock().get(name), now)
            .into_iter()
            .chain(locked(self.by_source.lock().get(&source), now))
            .max();
        if let Some(wait) = wait {
            return LoginOutcome::Locked(wait);
        }
        let user = self.users.lock().get(name).cloned();
        let ok = match &user {
            Some(u) if !u.password_hash.is_empty() => {
                besip_core::password::verify(&u.password_hash, password)
            }
            _ => false,
        };
        let Some(user) = user.filter(|_| ok) else {
            record_failure(
                &mut self.by_user.lock(),
                &name.to_string(),
                USER_FREE_FAILURES,
                now,
            );
            record_failure(
                &mut self.by_source.lock(),
                &source,
                SOURCE_FREE_FAILURES,
                now,
            );
            return LoginOutcome::Wrong;
        };
        self.by_user.lock().remove(name);
        self.by_source.lock().remove(&source);
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
    fn delays_grow_and_cap() {
        assert_eq!(delay_after(4, 5), Duration::ZERO);
        assert_eq!(delay_after(5, 5), Duration::from_secs(1));
        assert_eq!(delay_after(7, 5), Duration::from_secs(4));
        assert_eq!(delay_after(40, 5), MAX_DELAY);
    }

    #[test]
    fn lockout_per_user_then_success_resets() {
        let a = auth_with("admin", "pw", Group::Admin);
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..USER_FREE_FAILURES {
            assert!(matches!(a.login("admin", "bad", src), LoginOutcome::Wrong));
        }
        // Locked: even the right password is not checked.
        assert!(matches!(
            a.login("admin", "pw", src),
            LoginOutcome::Locked(_)
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
        for i in 0..SOURCE_FREE_FAILURES {
            assert!(matches!(
                a.login(&format!("u{i}"), "x", src),
                LoginOutcome::Wrong
            ));
        }
        assert!(matches!(
            a.login("admin", "pw", src),
            LoginOutcome::Locked(_)
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
