//! Dispatcher sets (/pbx/dispatcher-set, like Kamailio's/OpenSIPS' dispatcher):
//! a route naming a set sends the call to a destination picked by the set's
//! algorithm among those not down; OPTIONS probes mark destinations down and
//! up; an INVITE answered 408/5xx, or not answered at all within the set's
//! no-answer-timeout, marks its destination down and goes on to the next
//! one (proxy and B2BUA; see `failover`).
//! Nothing here runs unless a route names a set (the REGISTER and trunk paths
//! never look at it).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::call::Target;
use crate::config::{Config, Transport};
use crate::sip::format_host;

mod failover;
pub mod names;
mod probe;
pub use failover::{watch, Failover};
pub use probe::prober;

pub use crate::config::dispatcher::{Algorithm, Destination, SetConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    Down,
    Probing,
}

#[derive(Debug, Clone)]
struct DestState {
    health: Health,
    last_probe: Option<String>,
    calls: u64,
    /// Without probing, when a destination a call marked down is up again.
    down_until: Option<Instant>,
    /// Why the last failed call to it failed ("503 Service Unavailable").
    last_failure: Option<String>,
}

/// Down, and (without probing) not yet past its down time.
fn is_down(s: &DestState, now: Instant) -> bool {
    s.health == Health::Down && s.down_until.is_none_or(|t| t > now)
}

/// A call to `d` failed (408/5xx or no answer): it gets no calls until a
/// probe is answered, or without probing for probe-interval seconds.
fn mark_down(set: &SetConfig, d: &Destination, why: String) {
    let mut rt = RUNTIME.lock();
    let s = rt
        .dests
        .entry((set.name.clone(), d.uri.clone()))
        .or_insert_with(|| initial(set));
    if s.health != Health::Down {
        tracing::info!(set = %set.name, uri = %d.uri, result = %why, "dispatcher destination marked down by a call");
    }
    s.health = Health::Down;
    s.down_until = match set.probing {
        true => None,
        false => Some(Instant::now() + Duration::from_secs(set.probe_interval)),
    };
    s.last_failure = Some(why);
}

/// Runtime state per (set, uri); one PBX engine per process.
struct Runtime {
    dests: HashMap<(String, String), DestState>,
    rr: HashMap<String, usize>,
    last_probe: HashMap<String, Instant>,
}

static RUNTIME: LazyLock<Mutex<Runtime>> = LazyLock::new(|| {
    Mutex::new(Runtime {
        dests: HashMap::new(),
        rr: HashMap::new(),
        last_probe: HashMap::new(),
    })
});

fn initial(set: &SetConfig) -> DestState {
    DestState {
        health: if set.probing {
            Health::Probing
        } else {
            Health::Up
        },
        last_probe: None,
        calls: 0,
        down_until: None,
        last_failure: None,
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Destinations of `set` not down, the algorithm's pick first, then the
/// others in configuration order after it (the failover order).
pub fn candidates(set: &SetConfig, call_id: &str) -> Vec<Destination> {
    let n = set.destinations.len();
    if n == 0 {
        return Vec::new();
    }
    let mut rt = RUNTIME.lock();
    let now = Instant::now();
    let down = |rt: &Runtime, d: &Destination| {
        rt.dests
            .get(&(set.name.clone(), d.uri.clone()))
            .is_some_and(|s| is_down(s, now))
    };
    let live: Vec<usize> = (0..n)
        .filter(|&i| !down(&rt, &set.destinations[i]))
        .collect();
    if live.is_empty() {
        return Vec::new();
    }
    let start = match set.algorithm {
        Algorithm::HashCallId => (fnv1a(call_id) % n as u64) as usize,
        Algorithm::RoundRobin => {
            let c = rt.rr.entry(set.name.clone()).or_insert(0);
            // The turn moves over live destinations only, so a down one
            // does not double its neighbour's share.
            let pick = live[*c % live.len()];
            *c = c.wrapping_add(1);
            pick
        }
        Algorithm::Weighted => {
            let total: u32 = live.iter().map(|&i| set.destinations[i].weight).sum();
            let mut r = rand::random::<u32>() % total.max(1);
            let mut pick = live[0];
            for &i in &live {
                let w = set.destinations[i].weight;
                if r < w {
                    pick = i;
                    break;
                }
                r -= w;
            }
            pick
        }
    };
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|i| live.contains(i))
        .map(|i| set.destinations[i].clone())
        .collect()
}

/// The branch target for `number` at destination `d` (for a host that is
/// a name, the Request-URI keeps the name: RFC 3263 §4).
pub fn target(number: &str, d: &Destination) -> Target {
    let tp = if d.transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    let ruri = match &d.lookup {
        Some(lookup) => crate::features::dns::request_uri(number, lookup),
        None => format!(
            "sip:{number}@{}:{}{tp}",
            format_host(&d.addr.ip()),
            d.addr.port()
        ),
    };
    Target {
        ruri,
        dest: d.addr,
        transport: d.transport,
        routes: vec![],
        trunk: None,
        contact: false,
    }
}

/// Counts an INVITE sent to destination `d` of `set`.
pub fn count_call(cfg: &Config, set: &str, d: &Destination) {
    let Some(sc) = cfg.dispatcher_sets.get(set) else {
        return;
    };
    let mut rt = RUNTIME.lock();
    rt.dests
        .entry((set.to_owned(), d.uri.clone()))
        .or_insert_with(|| initial(sc))
        .calls += 1;
}

/// RFC 7951 list /pbx/dispatcher-set with the state leaves of each destination.
pub fn state_json(cfg: &Config) -> Option<Value> {
    if cfg.dispatcher_sets.is_empty() {
        return None;
    }
    let rt = RUNTIME.lock();
    let mut names: Vec<&String> = cfg.dispatcher_sets.keys().collect();
    names.sort();
    let sets: Vec<Value> = names
        .into_iter()
        .filter_map(|n| cfg.dispatcher_sets.get(n))
        .map(|set| {
            let dests: Vec<Value> = set
                .destinations
                .iter()
                .map(|d| {
                    let s = rt
                        .dests
                        .get(&(set.name.clone(), d.uri.clone()))
                        .cloned()
                        .unwrap_or_else(|| initial(set));
                    let state = match s.health {
                        Health::Up => "up",
                        Health::Down => "down",
                        Health::Probing => "probing",
                    };
                    let mut v =
                        json!({"uri": d.uri, "state": state, "calls-sent": s.calls.to_string()});
                    if let Some(p) = s.last_probe {
                        v["last-probe-result"] = json!(p);
                    }
                    if let Some(f) = s.last_failure {
                        v["last-call-failure"] = json!(f);
                    }
                    v
                })
                .collect();
            match dests.is_empty() {
                true => json!({"name": set.name}),
                false => json!({"name": set.name, "destination": dests}),
            }
        })
        .collect();
    Some(Value::Array(sets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::uci::Package;

    fn sets(text: &str) -> Result<HashMap<String, SetConfig>, String> {
        let pkg = Package::parse("besip_pbx", text).expect("uci");
        SetConfig::from_package(&pkg)
    }

    fn set(name: &str, algorithm: &str, weights: &[u32]) -> SetConfig {
        let mut t = format!("config dispatcher_set 's'\n\toption name '{name}'\n\toption algorithm '{algorithm}'\n\toption probing '0'\n");
        for (i, w) in weights.iter().enumerate() {
            t.push_str(&format!("config dispatcher_set_destination 'd{i}'\n\toption dispatcher_set '{name}'\n\toption uri 'sip:10.0.0.{i}:5060'\n\toption weight '{w}'\n"));
        }
        sets(&t).expect("set").remove(name).expect("named set")
    }

    #[test]
    fn rejects_bad_sets() {
        for bad in [
            "config dispatcher_set 's'\n\toption name 'a'\n\toption algorithm 'random'\n",
            "config dispatcher_set 's'\n\toption name 'a'\n\toption probe_interval 'often'\n",
            "config dispatcher_set 's'\n\toption name 'a'\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 'a'\n\toption uri 'sip:gw$example.com'\n",
            "config dispatcher_set_destination 'd'\n\toption dispatcher_set 'none'\n\toption uri 'sip:10.0.0.1'\n",
            "config dispatcher_set 's'\n\toption name 'a'\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 'a'\n\toption uri 'tel:123'\n",
        ] {
            assert!(sets(bad).is_err(), "accepted: {bad}");
        }
        let s = set("defaults", "round-robin", &[1]);
        assert_eq!(s.destinations[0].addr, "10.0.0.0:5060".parse().unwrap());
        assert_eq!(s.destinations[0].lookup, None);
    }

    #[test]
    fn a_destination_by_name_is_looked_up_and_keeps_the_name_in_the_request_uri() {
        let text = "config dispatcher_set 's'\n\toption name 'n'\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 'n'\n\toption uri 'sip:GW.Example.test'\nconfig dispatcher_set_destination 'e'\n\toption dispatcher_set 'n'\n\toption uri 'sip:gw2.example.test:5080;transport=tcp'\n";
        let s = sets(text)
            .expect("names are accepted")
            .remove("n")
            .expect("set");
        let a = s.destinations[0].lookup.clone().expect("a name");
        assert_eq!(
            (a.name.as_str(), a.port, a.transport),
            ("gw.example.test", None, None)
        );
        let b = s.destinations[1].lookup.clone().expect("a name");
        assert_eq!((b.port, b.transport), (Some(5080), Some(Transport::Tcp)));
        // A copy for one DNS target: sent there, the name kept in the R-URI.
        let hop = Destination {
            addr: "192.0.2.7:5062".parse().unwrap(),
            ..s.destinations[0].clone()
        };
        let t = target("0555", &hop);
        assert_eq!(t.ruri, "sip:0555@gw.example.test");
        assert_eq!(t.dest, hop.addr);
        let t = target("0555", &s.destinations[1]);
        assert_eq!(t.ruri, "sip:0555@gw2.example.test:5080;transport=tcp");
    }

    #[test]
    fn hash_call_id_is_stable_and_failover_order_covers_the_rest() {
        let s = set("hash", "hash-call-id", &[1, 1, 1]);
        let first = candidates(&s, "abc@host");
        assert_eq!(first.len(), 3);
        for _ in 0..5 {
            assert_eq!(candidates(&s, "abc@host"), first);
        }
        let spread: std::collections::HashSet<String> = (0..50)
            .map(|i| candidates(&s, &format!("call{i}"))[0].uri.clone())
            .collect();
        assert_eq!(spread.len(), 3, "Call-IDs spread over every destination");
    }

    #[test]
    fn round_robin_skips_down_destinations() {
        let s = set("rr", "round-robin", &[1, 1, 1]);
        let picks: Vec<String> = (0..3).map(|_| candidates(&s, "x")[0].uri.clone()).collect();
        assert_eq!(
            picks,
            [
                "sip:10.0.0.0:5060",
                "sip:10.0.0.1:5060",
                "sip:10.0.0.2:5060"
            ]
        );
        probe::record(&s, &s.destinations[1], Err("timeout".into()));
        for _ in 0..6 {
            let c = candidates(&s, "x");
            assert_eq!(c.len(), 2);
            assert!(c.iter().all(|d| d.uri != "sip:10.0.0.1:5060"));
        }
        probe::record(&s, &s.destinations[0], Ok((503, "503 Busy".into())));
        probe::record(&s, &s.destinations[2], Err("unreachable".into()));
        assert!(candidates(&s, "x").is_empty(), "all down");
        probe::record(&s, &s.destinations[1], Ok((200, "200 OK".into())));
        assert_eq!(candidates(&s, "x")[0].uri, "sip:10.0.0.1:5060");
    }

    #[test]
    fn no_answer_timeout_is_read_and_range_checked() {
        assert_eq!(
            set("na", "round-robin", &[1]).no_answer,
            Duration::from_millis(3000)
        );
        let base = "config dispatcher_set 's'\n\toption name 'a'\n";
        for bad in ["0", "499", "32001", "soon", "-5"] {
            let text = format!("{base}\toption no_answer_timeout '{bad}'\n");
            assert!(sets(&text).is_err(), "accepted {bad}");
        }
        let text = format!("{base}\toption no_answer_timeout '800'\n");
        let s = sets(&text).expect("800 ms");
        assert_eq!(s["a"].no_answer, Duration::from_millis(800));
    }

    #[test]
    fn a_failed_call_marks_down_until_a_probe_or_the_down_time_ends() {
        let mut s = set("mark", "round-robin", &[1, 1]);
        s.probing = true;
        mark_down(&s, &s.destinations[0], "503 Service Unavailable".into());
        for _ in 0..4 {
            let c = candidates(&s, "x");
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].uri, "sip:10.0.0.1:5060");
        }
        probe::record(&s, &s.destinations[0], Ok((200, "200 OK".into())));
        assert_eq!(candidates(&s, "x").len(), 2, "a probe brings it back");
        // Without probing: down for probe-interval, then up again.
        s.probing = false;
        mark_down(&s, &s.destinations[1], "no answer in 3000 ms".into());
        assert_eq!(candidates(&s, "x").len(), 1);
        if let Some(d) = RUNTIME
            .lock()
            .dests
            .get_mut(&("mark".to_owned(), "sip:10.0.0.1:5060".to_owned()))
        {
            d.down_until = Some(Instant::now());
        }
        assert_eq!(candidates(&s, "x").len(), 2, "the down time is over");
        let state = last_failure_of(&s);
        assert!(state.contains("no answer in 3000 ms"), "{state}");
    }

    fn last_failure_of(s: &SetConfig) -> String {
        let rt = RUNTIME.lock();
        let d = rt
            .dests
            .get(&(s.name.clone(), s.destinations[1].uri.clone()));
        format!("{:?}", d.and_then(|d| d.last_failure.clone()))
    }

    #[test]
    fn weighted_follows_the_weights() {
        let s = set("w", "weighted", &[1, 9]);
        let heavy = (0..2000)
            .filter(|_| candidates(&s, "x")[0].uri == "sip:10.0.0.1:5060")
            .count();
        // Expected 1800; bounds far outside random variation.
        assert!((1650..=1950).contains(&heavy), "{heavy} of 2000");
    }
}
