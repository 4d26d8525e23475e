//! Growing delays after failed SSH password logins, as the web panel's: kept
//! per source address and user name (and per source alone), never per user
//! alone, so a guesser elsewhere cannot lock the admin out. While a key is
//! delayed its password attempts are refused without checking the password.
//! An attempt is counted before the (slow) hash is checked, so parallel
//! connections cannot each get a free guess; a success clears the count.

use crate::server::lock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures before the first delay, per source and user / per source.
pub const USER_FREE_FAILURES: u32 = 3;
pub const SOURCE_FREE_FAILURES: u32 = 10;
/// First delay, doubling with each further failure up to `MAX_DELAY`;
/// failures older than `FORGET` are forgotten.
const FIRST_DELAY: Duration = Duration::from_secs(5);
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET: Duration = Duration::from_secs(900);
/// Bound on memory whatever sources and user names clients send.
const MAX_TRACKED: usize = 10_000;

/// Delay after the `count`-th failure: none before `free`, then 5 s doubling.
pub fn delay_after(count: u32, free: u32) -> Duration {
    if count < free {
        return Duration::ZERO;
    }
    let exp = (count - free).min(16);
    (FIRST_DELAY * (1u32 << exp)).min(MAX_DELAY)
}

/// The address an attacker cannot vary cheaply: IPv4 as is, IPv6 per /64.
pub fn source_prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    last: Option<Instant>,
    delayed_until: Option<Instant>,
}

/// `(source prefix, Some(user))` or `(source prefix, None)` for the source alone.
type Key = (IpAddr, Option<String>);

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<Key, Failures>>,
}

/// A password attempt allowed to go on; `succeeded` clears its counts.
pub struct Attempt {
    source: IpAddr,
    user: String,
}

impl LoginThrottle {
    /// `Err(wait)`: this source (and user) must wait before trying again.
    /// `Ok`: go on; the attempt already counts as a failure.
    pub fn begin(&self, source: IpAddr, user: &str) -> Result<Attempt, Duration> {
        let source = source_prefix(source);
        let now = Instant::now();
        let keys: [(Key, u32); 2] = [
            ((source, Some(user.to_owned())), USER_FREE_FAILURES),
            ((source, None), SOURCE_FREE_FAILURES),
        ];
        let mut map = lock(&self.failures);
        let wait = keys
            .iter()
            .filter_map(|(key, _)| map.get(key)?.delayed_until?.checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (key, free) in keys {
            record_failure(&mut map, key, free, now);
        }
        Ok(Attempt {
            source,
            user: user.to_owned(),
        })
    }

    /// The password was right: forget this source's failures.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = lock(&self.failures);
        map.remove(&(attempt.source, Some(attempt.user)));
        map.remove(&(attempt.source, None));
    }
}

fn record_failure(map: &mut HashMap<Key, Failures>, key: Key, free: u32, now: Instant) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, f| f.last.is_some_and(|t| now.duration_since(t) < FORGET));
    }
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        return;
    }
    let f = map.entry(key).or_default();
    if f.last.is_some_and(|t| now.duration_since(t) >= FORGET) {
        *f = Failures::default();
    }
    f.count += 1;
    f.last = Some(now);
    // The attempt being checked is this count; the next one waits.
    let d = delay_after(f.count, free);
    if !d.is_zero() {
        f.delayed_until = Some(now + d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(delay_after(2, 3), Duration::ZERO);
        assert_eq!(delay_after(3, 3), Duration::from_secs(5));
        assert_eq!(delay_after(5, 3), Duration::from_secs(20));
        assert_eq!(delay_after(40, 3), MAX_DELAY);
    }

    #[test]
    fn delay_is_per_source_and_user_and_cleared_by_success() {
        let t = LoginThrottle::default();
        let attacker: IpAddr = "192.0.2.7".parse().unwrap();
        let admin: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..USER_FREE_FAILURES {
            assert!(t.begin(attacker, "admin").is_ok());
        }
        assert!(t.begin(attacker, "admin").is_err());
        // The admin elsewhere, and another user from the attacker's address, go on.
        let attempt = t.begin(admin, "admin").expect("admin from elsewhere");
        t.succeeded(attempt);
        assert!(t.begin(attacker, "operator").is_ok());
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(source_prefix(a), source_prefix(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            source_prefix(mapped),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
