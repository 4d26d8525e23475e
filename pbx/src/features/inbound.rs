//! Calls from outside: the blocklist (YANG /pbx/blocklist) and inbound
//! routes by DID and caller ID for calls from trunks
//! (/pbx/inbound-route), with the counters of /pbx/inbound-state.
//!
//! A call is from a trunk only by its source address (the trunk's host,
//! an IP literal): a From or a Request-URI proves nothing, and an inbound
//! route may send a call outside (an external number), so a stranger must
//! never get one (toll fraud).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::inbound::{Destination, InboundRoute};
use crate::config::Config;

/// The counters of /pbx/inbound-state.
#[derive(Default)]
pub struct Stats {
    blocked: AtomicU64,
    routed: AtomicU64,
    pub(crate) groups: Mutex<HashMap<String, GroupStats>>,
}

#[derive(Default, Clone)]
pub(crate) struct GroupStats {
    pub calls: u64,
    pub answered: u64,
    pub last_call: Option<String>,
    pub last_answered_by: Option<String>,
}

impl Stats {
    pub fn blocked(&self) {
        self.blocked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn routed(&self) {
        self.routed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn group_called(&self, number: &str) {
        let mut groups = self.groups.lock();
        let g = groups.entry(number.to_owned()).or_default();
        g.calls += 1;
        g.last_call = Some(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }

    pub fn group_answered(&self, number: &str, by: &str) {
        let mut groups = self.groups.lock();
        let g = groups.entry(number.to_owned()).or_default();
        g.answered += 1;
        g.last_answered_by = Some(by.to_owned());
    }

    /// RFC 7951 JSON of /pbx/inbound-state.
    pub fn state_json(&self, cfg: &Config) -> Value {
        let groups = self.groups.lock();
        let mut numbers: Vec<&String> = cfg.inbound.ring_groups.keys().collect();
        numbers.sort();
        let list: Vec<Value> = numbers
            .into_iter()
            .map(|n| {
                let s = groups.get(n).cloned().unwrap_or_default();
                let mut v = json!({
                    "number": n,
                    "calls": s.calls.to_string(),
                    "answered-calls": s.answered.to_string(),
                });
                if let Some(t) = s.last_call {
                    v["last-call"] = json!(t);
                }
                if let Some(b) = s.last_answered_by {
                    v["last-answered-by"] = json!(b);
                }
                v
            })
            .collect();
        json!({
            "blocked-calls": self.blocked.load(Ordering::Relaxed).to_string(),
            "routed-calls": self.routed.load(Ordering::Relaxed).to_string(),
            "ring-group": list,
            "time-condition": crate::features::time_condition::state_json(cfg),
        })
    }
}

/// The caller's number is on the blocklist.
pub fn blocked(cfg: &Config, caller: &str) -> bool {
    cfg.inbound.blocklist.iter().any(|p| p.matches(caller))
}

/// The trunk a request from `ip` comes from.
pub fn trunk_of(cfg: &Config, ip: IpAddr) -> Option<&str> {
    if cfg.inbound.routes.is_empty() {
        return None; // no inbound routing: nothing to look for
    }
    let mut names: Vec<&String> = cfg.trunks.keys().collect();
    names.sort(); // one answer whatever the map's order
    names
        .into_iter()
        .filter_map(|n| cfg.trunks.get(n))
        .find(|t| t.host.parse::<IpAddr>() == Ok(ip))
        .map(|t| t.name.as_str())
}

/// The inbound route of a call from `trunk` to `did` by `caller`.
pub fn route<'a>(
    cfg: &'a Config,
    trunk: &str,
    did: &str,
    caller: &str,
) -> Option<&'a InboundRoute> {
    cfg.inbound.routes.iter().find(|r| {
        r.trunk.as_deref().is_none_or(|t| t == trunk)
            && r.did.matches(did)
            && r.caller_id.as_ref().is_none_or(|c| c.matches(caller))
    })
}

/// A call from a trunk routed by DID: what its CDR records.
#[derive(Debug, Clone)]
pub struct Note {
    pub trunk: String,
    pub did: String,
}

/// Follows time conditions to a destination that rings or refuses.
pub fn settle<'a>(cfg: &'a Config, mut d: &'a Destination) -> Option<&'a Destination> {
    // Config refuses loops; the bound is for safety only.
    for _ in 0..16 {
        match d {
            Destination::TimeCondition(t) => d = crate::features::time_condition::pick(cfg, t)?,
            other => return Some(other),
        }
    }
    None
}
