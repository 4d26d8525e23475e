//! Per-source detection on sliding windows. The table of sources is an LRU of
//! bounded size, so a flood of spoofed sources evicts the least recently seen
//! ones instead of growing memory. Each window keeps at most `count` timestamps:
//! a rule fires when the oldest of the last `count` events lies within the window.
//!
//! Office exemption: responses `200` to REGISTER sent by the box to a source are
//! counted per distinct user (To user). A source from which at least
//! `office_exemption` different users registered successfully within the last hour
//! is many phones behind one NAT: rate rules do not ban it; the auth-failure and
//! scanner rules still do.
//!
//! Brute force: a failed authentication is a 401/407 answering a request that
//! carried credentials (a stale nonce excepted), or a 403. The plain challenge
//! every registration of every phone gets first is not a failure, so an office
//! re-registering fast is never taken for a password guesser.
//!
//! Sources in the guard (own addresses, whitelist, trunks, dispatcher
//! destinations, management sessions) are never counted, whatever a forged
//! packet claims.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::config::{Config, Scope};
use crate::packet::{SipInfo, Start};
use crate::protect::Guard;

const OFFICE_MEMORY_MS: u64 = 3_600_000;
const MAX_USERS_PER_SOURCE: usize = 256;
/// Password tries per source awaiting their answer (older ones are forgotten).
const MAX_PENDING_TRIES: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub address: IpAddr,
    pub rule: String,
    pub count: u32,
    pub window_s: u32,
    pub ban_time_s: u32,
    pub scope: Scope,
    pub sample_user_agent: Option<String>,
    pub reason: String,
}

#[derive(Default)]
struct Source {
    rule_windows: Vec<VecDeque<u64>>,
    auth_failures: VecDeque<u64>,
    /// Transactions of requests with credentials, not yet answered.
    pending_tries: VecDeque<u64>,
    ok_users: HashMap<String, u64>,
    sample_ua: Option<String>,
}

pub struct Detector {
    cfg: Config,
    sources: LruCache<IpAddr, Source>,
    guard: Guard,
}

/// Push `now` and report whether `count` events now lie within `window_ms`.
fn hit(q: &mut VecDeque<u64>, now: u64, count: u32, window_ms: u64) -> bool {
    q.push_back(now);
    while q.len() > count as usize {
        q.pop_front();
    }
    q.len() == count as usize
        && q.front()
            .is_some_and(|&t| now.saturating_sub(t) < window_ms)
}

impl Detector {
    pub fn new(cfg: Config, own: Vec<IpAddr>) -> Detector {
        let cap = NonZeroUsize::new(cfg.max_tracked).unwrap_or(NonZeroUsize::MIN);
        Detector {
            cfg,
            sources: LruCache::new(cap),
            guard: Guard::new(own),
        }
    }

    pub fn set_config(&mut self, cfg: Config) {
        if let Some(cap) = NonZeroUsize::new(cfg.max_tracked) {
            self.sources.resize(cap);
        }
        // Rule windows are re-built lazily: the rule list may have changed shape.
        for (_, s) in self.sources.iter_mut() {
            s.rule_windows.clear();
        }
        self.cfg = cfg;
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    pub fn forget(&mut self, addr: &IpAddr) {
        self.sources.pop(addr);
    }

    pub fn never_banned(&self, addr: &IpAddr) -> bool {
        self.guard.protects(*addr, &self.cfg.whitelist)
    }

    /// Whether `net` holds an address that is never banned.
    pub fn protects_any_in(&self, net: &ipnet::IpNet) -> bool {
        self.guard.protects_any_in(net, &self.cfg.whitelist)
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    /// Feed one SIP message seen on the wire (`now_ms`: a monotonic clock).
    pub fn observe(
        &mut self,
        now_ms: u64,
        src: IpAddr,
        dst: IpAddr,
        sip: &SipInfo<'_>,
    ) -> Option<Verdict> {
        match sip.start {
            Start::Request(method) => self.request(now_ms, src, method, sip),
            Start::Response(code, cseq) => self.response(now_ms, dst, code, cseq, sip),
        }
    }

    fn request(
        &mut self,
        now: u64,
        src: IpAddr,
        method: &str,
        sip: &SipInfo<'_>,
    ) -> Option<Verdict> {
        if self.never_banned(&src) {
            return None;
        }
        let cfg = &self.cfg;
        let s = self.sources.get_or_insert_mut(src, Source::default);
        if sip.credentials {
            if s.pending_tries.len() >= MAX_PENDING_TRIES {
                s.pending_tries.pop_front();
            }
            s.pending_tries.push_back(sip.transaction);
        }
        if let Some(ua) = sip.user_agent {
            if s.sample_ua.is_none() {
                s.sample_ua = Some(ua.chars().take(128).collect());
            }
            if cfg.scanner_enabled {
                let lower = ua.to_lowercase();
                if let Some(pat) = cfg
                    .scanner_agents
                    .iter()
                    .find(|p| lower.contains(p.as_str()))
                {
                    return Some(Verdict {
                        address: src,
                        rule: "scanner".into(),
                        count: 1,
                        window_s: 0,
                        ban_time_s: cfg.scanner_ban_time_s,
                        scope: cfg.scanner_scope,
                        sample_user_agent: Some(ua.chars().take(128).collect()),
                        reason: format!("scanner user agent (matches '{pat}')"),
                    });
                }
            }
        }
        s.ok_users
            .retain(|_, t| now.saturating_sub(*t) < OFFICE_MEMORY_MS);
        let office = cfg.office_exemption > 0 && s.ok_users.len() >= cfg.office_exemption as usize;
        s.rule_windows.resize_with(cfg.rules.len(), VecDeque::new);
        for (rule, q) in cfg.rules.iter().zip(s.rule_windows.iter_mut()) {
            if rule.method.as_deref().is_some_and(|m| m != method) {
                continue;
            }
            if hit(q, now, rule.count, u64::from(rule.window_s) * 1000) && !office {
                q.clear();
                return Some(Verdict {
                    address: src,
                    rule: rule.name.clone(),
                    count: rule.count,
                    window_s: rule.window_s,
                    ban_time_s: rule.ban_time_s,
                    scope: rule.scope,
                    sample_user_agent: s.sample_ua.clone(),
                    reason: format!(
                        "{} {} requests within {} s",
                        rule.count,
                        rule.method.as_deref().unwrap_or("SIP"),
                        rule.window_s
                    ),
                });
            }
        }
        None
    }

    fn response(
        &mut self,
        now: u64,
        to: IpAddr,
        code: u16,
        cseq: Option<&str>,
        sip: &SipInfo<'_>,
    ) -> Option<Verdict> {
        if self.never_banned(&to) {
            return None;
        }
        let cfg = &self.cfg;
        if (200..300).contains(&code) && cseq == Some("REGISTER") {
            if let (Some(user), Some(s)) = (sip.to_user, self.sources.get_mut(&to)) {
                if s.ok_users.len() < MAX_USERS_PER_SOURCE || s.ok_users.contains_key(user) {
                    s.ok_users.insert(user.to_owned(), now);
                }
            }
            return None;
        }
        if !cfg.auth_enabled || !matches!(code, 401 | 403 | 407) {
            return None;
        }
        let s = self.sources.get_or_insert_mut(to, Source::default);
        if code != 403 {
            // A challenge: a failure only if it answers a password try.
            let at = s.pending_tries.iter().position(|t| *t == sip.transaction)?;
            s.pending_tries.remove(at);
            if sip.stale {
                return None;
            }
        }
        if hit(
            &mut s.auth_failures,
            now,
            cfg.auth_count,
            u64::from(cfg.auth_window_s) * 1000,
        ) {
            s.auth_failures.clear();
            return Some(Verdict {
                address: to,
                rule: "auth-failure".into(),
                count: cfg.auth_count,
                window_s: cfg.auth_window_s,
                ban_time_s: cfg.auth_ban_time_s,
                scope: cfg.auth_scope,
                sample_user_agent: s.sample_ua.clone(),
                reason: format!(
                    "{} failed authentications (wrong credentials) within {} s",
                    cfg.auth_count, cfg.auth_window_s
                ),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateRule;
    use besip_core::uci::Package;

    fn cfg() -> Config {
        let pkg = Package::parse("besip_security", "package besip_security\n\nconfig security 'main'\n\tlist whitelist '10.9.0.0/16'\n\toption max_tracked_sources '1000'\n").unwrap();
        let mut c = Config::from_package(&pkg, "t").unwrap();
        c.rules.push(RateRule {
            name: "reg".into(),
            method: Some("REGISTER".into()),
            count: 50,
            window_s: 5,
            ban_time_s: 600,
            scope: Scope::Sip,
        });
        c.rules.push(RateRule {
            name: "pike".into(),
            method: None,
            count: 16,
            window_s: 2,
            ban_time_s: 300,
            scope: Scope::Sip,
        });
        c
    }
    fn req(m: &str) -> SipInfo<'_> {
        SipInfo {
            user_agent: Some("phone"),
            ..SipInfo::new(Start::Request(m))
        }
    }
    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const BOX: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 100));

    #[test]
    fn sliding_window_fires_only_on_rate() {
        let mut d = Detector::new(cfg(), vec![BOX]);
        // 15 per 2 s stays below pike: 1 every 200 ms forever.
        for i in 0..200u64 {
            assert!(d.observe(i * 200, A, BOX, &req("OPTIONS")).is_none());
        }
        let mut d = Detector::new(cfg(), vec![BOX]);
        let v = (0..16u64)
            .find_map(|i| d.observe(i * 10, A, BOX, &req("OPTIONS")))
            .unwrap();
        assert_eq!(v.rule, "pike");
        assert_eq!(v.sample_user_agent.as_deref(), Some("phone"));
    }

    #[test]
    fn scanner_whitelist_own_and_auth() {
        let mut d = Detector::new(cfg(), vec![BOX]);
        let scan = SipInfo {
            user_agent: Some("Friendly-Scanner 1.0"),
            ..SipInfo::new(Start::Request("OPTIONS"))
        };
        assert_eq!(d.observe(0, A, BOX, &scan).unwrap().rule, "scanner");
        let w: IpAddr = "10.9.1.1".parse().unwrap();
        assert!(d.observe(0, w, BOX, &scan).is_none());
        assert!(d.observe(0, BOX, BOX, &scan).is_none());
        // Challenges to requests without credentials are not failures: an
        // office re-registering 500 times gets 500 of them.
        let challenge = |n: u64| SipInfo {
            to_user: Some("100"),
            transaction: n,
            ..SipInfo::new(Start::Response(401, Some("REGISTER")))
        };
        for n in 0..500u64 {
            let register = SipInfo {
                transaction: n,
                ..req("REGISTER")
            };
            assert!(d.observe(n * 200, A, BOX, &register).is_none());
            assert!(d.observe(n * 200, BOX, A, &challenge(n)).is_none());
        }
        // A 401 to a password try is a failure; a stale nonce is not.
        let mut d = Detector::new(cfg(), vec![BOX]);
        let try_ = |n: u64| SipInfo {
            credentials: true,
            transaction: 1000 + n,
            ..req("REGISTER")
        };
        d.observe(0, A, BOX, &try_(0));
        let stale = SipInfo {
            stale: true,
            ..challenge(1000)
        };
        assert!(d.observe(0, BOX, A, &stale).is_none());
        let v = (1..=10u64)
            .find_map(|n| {
                d.observe(n * 300, A, BOX, &try_(n));
                d.observe(n * 300, BOX, A, &challenge(1000 + n))
            })
            .unwrap();
        assert_eq!((v.rule.as_str(), v.count), ("auth-failure", 10));
        // A forged try from the box itself counts nothing.
        let forged = SipInfo {
            credentials: true,
            ..req("REGISTER")
        };
        assert!(d.observe(0, BOX, BOX, &forged).is_none());
    }

    #[test]
    fn office_is_exempt_from_rate_rules_only() {
        let mut d = Detector::new(cfg(), vec![BOX]);
        d.observe(0, A, BOX, &req("REGISTER"));
        for u in ["100", "101", "102"] {
            let ok = SipInfo {
                to_user: Some(u),
                ..SipInfo::new(Start::Response(200, Some("REGISTER")))
            };
            d.observe(1, BOX, A, &ok);
        }
        assert!((0..500u64).all(|i| d.observe(10 + i, A, BOX, &req("REGISTER")).is_none()));
        let scan = SipInfo {
            user_agent: Some("sipvicious"),
            ..SipInfo::new(Start::Request("OPTIONS"))
        };
        assert!(d.observe(600, A, BOX, &scan).is_some());
    }

    #[test]
    fn spoofed_flood_is_bounded() {
        let mut d = Detector::new(cfg(), vec![BOX]);
        for i in 0..50_000u32 {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            d.observe(u64::from(i), src, BOX, &req("INVITE"));
        }
        assert_eq!(d.tracked(), 1000);
    }
}
