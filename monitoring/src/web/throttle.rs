//! Limits on the web panel's password checks, so a guesser can neither
//! burn the CPU nor lock anyone else out:
//!
//! - at most `max_checks()` hash verifications (argon2 or `$6$`) run at once
//!   over all sources and one per source; a login beyond that is refused at
//!   once (503) instead of queueing without bound;
//! - a login is counted as a failure *before* its hash is computed (and the
//!   count undone when it succeeds), so parallel guesses cannot slip past
//!   the limit while earlier ones are still being checked;
//! - delays grow per (source, user) and per source, never per user alone.
//!   A per-user lock-out would let anyone on the internet lock the admin out
//!   by failing on purpose; keyed by source, failures only slow down the
//!   address that made them (OpenSSH's PerSourcePenalties and fail2ban
//!   work the same way). A guesser spread over many addresses is met by each
//!   address's own delay and by besip-secd's bans, not by locking the account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failures before the first delay, per (source, user) and per source.
pub const SOURCE_USER_FREE_FAILURES: u32 = 5;
pub const SOURCE_FREE_FAILURES: u32 = 10;
/// Password checks from one source at once.
pub const CHECKS_PER_SOURCE: u32 = 1;
/// Longest delay; failures older than `FORGET` are forgotten.
const MAX_DELAY: Duration = Duration::from_secs(300);
const FORGET: Duration = Duration::from_secs(900);
/// Bound on memory whatever clients send.
const MAX_TRACKED: usize = 10_000;

/// Password checks at once over all sources: one per core (at least two so
/// one busy source never takes all), at most four.
pub fn max_checks() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

/// Delay after the `count`-th failure: none below `free`, then 1 s doubling.
pub fn delay_after(count: u32, free: u32) -> Duration {
    if count < free {
        return Duration::ZERO;
    }
    let exp = (count - free).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    last: Option<Instant>,
    locked_until: Option<Instant>,
}

impl Failures {
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }
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

#[derive(Default)]
struct Tracks {
    by_source_user: HashMap<(IpAddr, String), Failures>,
    by_source: HashMap<IpAddr, Failures>,
    /// Checks running per source (entries only while checks run: bounded
    /// by the semaphore).
    running: HashMap<IpAddr, u32>,
}

/// Why a login was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Delayed for this long after failures from this source.
    Locked(Duration),
    /// Too many checks running (all, or this source's).
    Busy,
}

pub struct Throttle {
    checks: Arc<Semaphore>,
    tracks: Arc<Mutex<Tracks>>,
}

/// The right to run one password check; its failure is already counted.
pub struct CheckPermit {
    _slot: OwnedSemaphorePermit,
    tracks: Arc<Mutex<Tracks>>,
    source: IpAddr,
}

impl Drop for CheckPermit {
    fn drop(&mut self) {
        let mut t = self.tracks.lock();
        if let Some(n) = t.running.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                t.running.remove(&self.source);
            }
        }
    }
}

impl Throttle {
    pub fn new(max_checks: usize) -> Throttle {
        Throttle {
            checks: Arc::new(Semaphore::new(max_checks)),
            tracks: Arc::new(Mutex::new(Tracks::default())),
        }
    }

    /// Admits one password check of `user` from `source`, counting it as a
    /// failure now; `succeeded` undoes that. Fast: no hash is computed here.
    pub fn admit(&self, user: &str, source: IpAddr) -> Result<CheckPermit, Refusal> {
        let now = Instant::now();
        let mut t = self.tracks.lock();
        let pair = (source, user.to_string());
        let wait = t
            .by_source_user
            .get(&pair)
            .and_then(|f| f.wait(now))
            .into_iter()
            .chain(t.by_source.get(&source).and_then(|f| f.wait(now)))
            .max();
        if let Some(wait) = wait {
            return Err(Refusal::Locked(wait));
        }
        if t.running.get(&source).copied().unwrap_or(0) >= CHECKS_PER_SOURCE {
            return Err(Refusal::Busy);
        }
        let slot = self
            .checks
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        *t.running.entry(source).or_default() += 1;
        record_failure(&mut t.by_source_user, &pair, SOURCE_USER_FREE_FAILURES, now);
        record_failure(&mut t.by_source, &source, SOURCE_FREE_FAILURES, now);
        Ok(CheckPermit {
            _slot: slot,
            tracks: self.tracks.clone(),
            source,
        })
    }

    /// A right password: this source's failures are forgotten (also those
    /// counted in advance for this login).
    pub fn succeeded(&self, user: &str, source: IpAddr) {
        let mut t = self.tracks.lock();
        t.by_source_user.remove(&(source, user.to_string()));
        t.by_source.remove(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(delay_after(4, 5), Duration::ZERO);
        assert_eq!(delay_after(5, 5), Duration::from_secs(1));
        assert_eq!(delay_after(7, 5), Duration::from_secs(4));
        assert_eq!(delay_after(40, 5), MAX_DELAY);
    }

    #[test]
    fn failures_are_counted_when_admitted() {
        let t = Throttle::new(4);
        let a = ip("192.0.2.1");
        for _ in 0..SOURCE_USER_FREE_FAILURES {
            // Admitted and dropped unchecked: still a failure.
            drop(t.admit("admin", a).unwrap());
        }
        assert!(matches!(t.admit("admin", a), Err(Refusal::Locked(_))));
    }

    #[test]
    fn an_attacker_elsewhere_does_not_lock_the_admin_out() {
        let t = Throttle::new(4);
        let (attacker, admin) = (ip("192.0.2.1"), ip("198.51.100.7"));
        for _ in 0..50 {
            drop(t.admit("admin", attacker));
        }
        assert!(matches!(
            t.admit("admin", attacker),
            Err(Refusal::Locked(_))
        ));
        let permit = t
            .admit("admin", admin)
            .expect("the admin's own address is not delayed");
        t.succeeded("admin", admin);
        drop(permit);
        assert!(matches!(
            t.admit("admin", attacker),
            Err(Refusal::Locked(_))
        ));
    }

    #[test]
    fn many_names_from_one_source_lock_the_source() {
        let t = Throttle::new(4);
        let a = ip("192.0.2.1");
        for i in 0..SOURCE_FREE_FAILURES {
            drop(t.admit(&format!("u{i}"), a).unwrap());
        }
        assert!(matches!(t.admit("other", a), Err(Refusal::Locked(_))));
        assert!(t.admit("other", ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn checks_at_once_are_bounded_overall_and_per_source() {
        let t = Throttle::new(2);
        let first = t.admit("admin", ip("192.0.2.1")).unwrap();
        assert_eq!(
            t.admit("x", ip("192.0.2.1")).err(),
            Some(Refusal::Busy),
            "one check per source"
        );
        let second = t.admit("admin", ip("192.0.2.2")).unwrap();
        assert_eq!(t.admit("admin", ip("192.0.2.3")).err(), Some(Refusal::Busy));
        drop(first);
        let third = t.admit("admin", ip("192.0.2.3")).unwrap();
        drop((second, third));
        assert!(t.tracks.lock().running.is_empty());
    }
}
