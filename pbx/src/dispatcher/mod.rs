//! Dispatcher sets (/pbx/dispatcher-set, like Kamailio's/OpenSIPS' dispatcher):
//! a route naming a set sends the call to a destination picked by the set's
//! algorithm among those not down; OPTIONS probes mark destinations down and
//! up; an INVITE answered 408/5xx goes on to the next one (proxy and B2BUA).
//! Nothing here runs unless a route names a set (the REGISTER and trunk paths
//! never look at it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use besip_core::uci::Package;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::{Config, Mode, Transport};
use crate::engine::Engine;
use crate::proxy::Target;
use crate::sip::{format_host, response_to, Message, Uri};
use crate::transaction::{client_key, ClientState, ClientTx};

mod probe;
pub use probe::prober;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HashCallId,
    RoundRobin,
    Weighted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub uri: String,
    pub weight: u32,
    pub addr: SocketAddr,
    pub transport: Transport,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetConfig {
    pub name: String,
    pub algorithm: Algorithm,
    pub probing: bool,
    pub probe_interval: u64,
    pub destinations: Vec<Destination>,
}

impl SetConfig {
    /// Sets of UCI sections `dispatcher_set` / `dispatcher_set_destination`.
    pub fn from_package(pkg: &Package) -> Result<HashMap<String, SetConfig>, String> {
        let mut sets = HashMap::new();
        for s in pkg.sections_of("dispatcher_set") {
            let name = s
                .get("name")
                .ok_or_else(|| format!("dispatcher_set section {} has no name", s.name))?;
            // YANG defaults: round-robin, probing true, probe-interval 30.
            let algorithm = match s.get("algorithm").unwrap_or("round-robin") {
                "hash-call-id" => Algorithm::HashCallId,
                "round-robin" => Algorithm::RoundRobin,
                "weighted" => Algorithm::Weighted,
                other => {
                    return Err(format!(
                        "dispatcher set {name}: algorithm '{other}' unknown"
                    ))
                }
            };
            let probing = s.get_bool("probing").map_err(|e| e.to_string())?;
            let interval: Option<u64> =
                s.get_parsed("probe_interval").map_err(|e| e.to_string())?;
            let set = SetConfig {
                name: name.to_owned(),
                algorithm,
                probing: probing.unwrap_or(true),
                probe_interval: interval.unwrap_or(30).clamp(1, 3600),
                destinations: Vec::new(),
            };
            sets.insert(name.to_owned(), set);
        }
        for s in pkg.sections_of("dispatcher_set_destination") {
            let (Some(set), Some(uri)) = (s.get("dispatcher_set"), s.get("uri")) else {
                return Err(format!(
                    "dispatcher destination {} needs set and uri",
                    s.name
                ));
            };
            let weight: Option<u32> = s.get_parsed("weight").map_err(|e| e.to_string())?;
            let parsed = Uri::parse(uri)
                .ok_or_else(|| format!("dispatcher destination '{uri}' is not a SIP URI"))?;
            let addr = parsed.socket_addr().ok_or_else(|| {
                format!("dispatcher destination '{uri}': host must be an IP address")
            })?;
            let transport = match parsed.transport() {
                Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
                _ => Transport::Udp,
            };
            let Some(entry) = sets.get_mut(set) else {
                return Err(format!(
                    "dispatcher destination '{uri}' of unknown set {set}"
                ));
            };
            entry.destinations.push(Destination {
                uri: uri.to_owned(),
                weight: weight.unwrap_or(1).max(1),
                addr,
                transport,
            });
        }
        Ok(sets)
    }
}

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
    let down = |rt: &Runtime, d: &Destination| {
        rt.dests
            .get(&(set.name.clone(), d.uri.clone()))
            .is_some_and(|s| s.health == Health::Down)
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

/// The branch target for `number` at destination `d`.
pub fn target(number: &str, d: &Destination) -> Target {
    let tp = if d.transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    Target {
        ruri: format!(
            "sip:{number}@{}:{}{tp}",
            format_host(&d.addr.ip()),
            d.addr.port()
        ),
        dest: d.addr,
        transport: d.transport,
        routes: vec![],
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

/// What the proxy needs to send an INVITE on to the next destination.
pub struct Failover {
    pub set: String,
    pub number: String,
    pub rest: Vec<Destination>,
    pub hash: u32,
}

/// Holds the server transaction `key` open (one extra pending
/// branch) and, when the current branch ends with 408 or 5xx, sends the
/// INVITE to the next destination; otherwise lets the best answer go up.
pub fn watch(engine: &Arc<Engine>, key: &str, failover: Failover) {
    let base = {
        let mut tables = engine.tables.lock();
        let tables = &mut *tables;
        let Some(stx) = tables.server.get_mut(key) else {
            return;
        };
        // The final answer is already there (a loopback race): nothing to hold.
        if stx.pending == 0 || stx.final_code.is_some() {
            return;
        }
        let Some(first) = stx.branches.first() else {
            return;
        };
        let Some(tx) = tables.client.get(first) else {
            return;
        };
        let mut base = tx.request.clone();
        base.remove_first_value("Via");
        stx.pending += 1;
        base
    };
    let engine = engine.clone();
    let key = key.to_owned();
    tokio::spawn(async move { hold(engine, key, base, failover).await });
}

enum Step {
    Wait,
    Done,
    Send(Transport, SocketAddr, Vec<u8>, String),
    Final(Message),
}

async fn hold(engine: Arc<Engine>, key: String, mut base: Message, mut f: Failover) {
    f.rest.reverse(); // popped from the end
                      // Bounded: Timer C plus the transaction timeout, for each destination.
    let deadline = Instant::now() + Duration::from_secs(250 * (f.rest.len() as u64 + 1));
    loop {
        // 50 ms: a failover is that much later at worst, and ringing calls
        // take the shared transaction lock only 20 times a second.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let step = next_step(&engine, &key, &mut base, &mut f, Instant::now() > deadline);
        match step {
            Step::Wait => {}
            Step::Done => return,
            Step::Send(t, dest, bytes, ckey) => {
                engine.send(t, dest, bytes);
                crate::responses::spawn_client_timer(&engine, ckey);
            }
            Step::Final(resp) => {
                let call = engine.calls.lock().remove(resp.call_id());
                if let Some(call) = call {
                    let code = resp.status().unwrap_or(500);
                    crate::accounting::ended(&engine, resp.call_id(), call, code);
                }
                engine.reply(&key, resp);
                return;
            }
        }
    }
}

fn next_step(engine: &Engine, key: &str, base: &mut Message, f: &mut Failover, late: bool) -> Step {
    let cfg = engine.config();
    let mut guard = engine.tables.lock();
    let tables = &mut *guard;
    let Some(stx) = tables.server.get_mut(key) else {
        return Step::Done;
    };
    if stx.final_code.is_some() {
        stx.pending = stx.pending.saturating_sub(1);
        return Step::Done;
    }
    if stx.pending > 1 && !late {
        return Step::Wait; // the current branch has not ended
    }
    let code = stx.best.as_ref().and_then(Message::status).unwrap_or(408);
    let retry = !late && !stx.cancelled && (code == 408 || code >= 500) && code < 600;
    let next = match retry {
        true => loop {
            let Some(d) = f.rest.pop() else { break None };
            let down = RUNTIME
                .lock()
                .dests
                .get(&(f.set.clone(), d.uri.clone()))
                .is_some_and(|s| s.health == Health::Down);
            if !down {
                break Some(d);
            }
        },
        false => None,
    };
    let Some(d) = next else {
        stx.pending = 0;
        let last = stx.branches.last().and_then(|k| tables.client.get(k));
        let info = last.map(|tx| crate::responses::BranchInfo {
            dest: tx.dest,
            transport: tx.transport,
            cseq: tx.request.cseq().map(|c| c.0).unwrap_or(1),
        });
        let Some(stx) = tables.server.get_mut(key) else {
            return Step::Done;
        };
        let resp = match (stx.best.take(), info, cfg.mode) {
            // B2BUA: the caller's answer is rebuilt on its own leg (and the call forgotten).
            (Some(b), Some(info), Mode::B2bua) => {
                match crate::b2bua::translate(engine, &stx.request, &b, info) {
                    Some((up, _)) => up,
                    None => response_to(&stx.request, 503, "Service Unavailable", None),
                }
            }
            (Some(mut b), _, Mode::Proxy) => {
                b.remove_first_value("Via");
                b
            }
            _ => response_to(&stx.request, 503, "Service Unavailable", None),
        };
        return Step::Final(resp);
    };
    if cfg.mode == Mode::B2bua {
        // Our own dialog: the retry is a new transaction with the next CSeq,
        // which later requests on the far leg (ACK, BYE) follow.
        let cseq = base.cseq().map(|c| c.0).unwrap_or(1) + 1;
        base.set_header("CSeq", format!("{cseq} INVITE"));
        if let Some(call) = engine.b2b.lock().get(base.call_id()) {
            let mut c = call.lock();
            c.b.cseq = c.b.cseq.max(cseq);
        }
    }
    tracing::info!(set = %f.set, code, next = %d.uri, call_id = %base.call_id(), "dispatcher failover");
    let t = target(&f.number, &d);
    let mut req = base.clone();
    req.set_uri(t.ruri);
    let branch = engine.new_branch(f.hash);
    req.push_header_front(
        "Via",
        engine.via_for(t.transport, t.dest.is_ipv6(), &branch),
    );
    let bytes = req.to_bytes();
    let ckey = client_key(&branch, "INVITE");
    stx.best = None;
    stx.pending += 1;
    stx.branches.push(ckey.clone());
    let cancelled = stx.cancelled;
    tables.client.insert(
        ckey.clone(),
        ClientTx {
            server_key: Some(key.to_owned()),
            request: req,
            bytes: bytes.clone(),
            dest: t.dest,
            transport: t.transport,
            state: ClientState::Trying,
            cancel_pending: cancelled,
            cancel_sent: false,
            created: Instant::now(),
            expires: None,
        },
    );
    drop(guard);
    count_call(&cfg, &f.set, &d);
    Step::Send(t.transport, t.dest, bytes, ckey)
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
            "config dispatcher_set 's'\n\toption name 'a'\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 'a'\n\toption uri 'sip:gw.example.com'\n",
            "config dispatcher_set_destination 'd'\n\toption dispatcher_set 'none'\n\toption uri 'sip:10.0.0.1'\n",
            "config dispatcher_set 's'\n\toption name 'a'\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 'a'\n\toption uri 'tel:123'\n",
        ] {
            assert!(sets(bad).is_err(), "accepted: {bad}");
        }
        let s = set("defaults", "round-robin", &[1]);
        assert_eq!(s.destinations[0].addr, "10.0.0.0:5060".parse().unwrap());
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
    fn weighted_follows_the_weights() {
        let s = set("w", "weighted", &[1, 9]);
        let heavy = (0..2000)
            .filter(|_| candidates(&s, "x")[0].uri == "sip:10.0.0.1:5060")
            .count();
        // Expected 1800; bounds far outside random variation.
        assert!((1650..=1950).contains(&heavy), "{heavy} of 2000");
    }
}
