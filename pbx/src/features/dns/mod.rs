//! Trunk hosts and dispatcher destination hosts that are domain names
//! (RFC 3263): one task per such trunk or destination resolves the name
//! (`resolve`), keeps the targets for the answer's TTL and resolves again
//! when it ends (or a few seconds after a failure). Calls read the kept
//! targets without waiting: the first gets the INVITE, the others are the
//! failover order (`dispatcher::Failover`); a trunk whose name has no
//! targets gets 503 at once. Calls never start a lookup: the store holds one
//! entry per configured name, each with at most `MAX_TARGETS` targets.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::call::Target as Branch;
use crate::config::dns::{Lookup, Settings};
use crate::config::{Config, Transport};
use crate::features::decision::Decision;
use crate::features::dispatcher::{Destination, Failover};
use crate::features::state::Engine;
use crate::sip::format_host;
use crate::transport::tls::Resolved;
use crate::transport::Transports;

mod resolve;
pub mod srv_order;
pub use resolve::{Answer, DnsError, Resolver, Target, MAX_TARGETS};

/// After a failed resolution, the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3);

/// What a name is resolved for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A trunk (its name).
    Trunk(String),
    /// A dispatcher destination: (set, uri).
    Destination(String, String),
}

impl Owner {
    /// Who the TLS layer verifies this owner's TLS targets as.
    fn tls_identity(&self, lookup: &Lookup) -> Resolved {
        match self {
            Owner::Trunk(name) => Resolved::Trunk(name.clone()),
            Owner::Destination(set, uri) => Resolved::Other {
                label: format!("{set} {uri}"),
                host: lookup.name.clone(),
            },
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Trunk(name) => write!(f, "trunk {name}"),
            Owner::Destination(set, uri) => write!(f, "dispatcher set {set} destination {uri}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Resolving,
    Resolved,
    Failed,
}

#[derive(Debug, Clone)]
struct Entry {
    lookup: Lookup,
    resolution: Resolution,
    targets: Vec<Target>,
    /// When the answer is asked again.
    expires: Option<Instant>,
    last_error: Option<String>,
}

struct Running {
    lookup: Lookup,
    task: JoinHandle<()>,
}

/// The resolved names, by what they are resolved for.
#[derive(Default)]
pub struct Names {
    entries: Arc<Mutex<HashMap<Owner, Entry>>>,
    running: Mutex<HashMap<Owner, Running>>,
    /// The /pbx/dns the tasks were started with.
    settings: Mutex<Option<Settings>>,
}

impl Drop for Names {
    fn drop(&mut self) {
        for r in self.running.get_mut().values() {
            r.task.abort();
        }
    }
}

/// The names the configuration asks to resolve.
fn wanted(cfg: &Config) -> HashMap<Owner, &Lookup> {
    let trunks = cfg
        .trunks
        .iter()
        .filter_map(|(n, t)| t.lookup.as_ref().map(|l| (Owner::Trunk(n.clone()), l)));
    let destinations = cfg.dispatcher_sets.values().flat_map(|set| {
        set.destinations.iter().filter_map(|d| {
            let owner = Owner::Destination(set.name.clone(), d.uri.clone());
            d.lookup.as_ref().map(|l| (owner, l))
        })
    });
    trunks.chain(destinations).collect()
}

/// Starts, restarts or stops the resolution tasks so that they match the
/// trunks and dispatcher destinations of the running configuration (at
/// start and after each reload).
pub fn reconcile(engine: &Engine) {
    let cfg = engine.config();
    let names = engine.dns();
    let wanted = wanted(&cfg);
    let mut running = names.running.lock();
    let mut settings = names.settings.lock();
    // New servers or timeouts: every name is asked again through them.
    if settings.as_ref() != Some(&cfg.dns) {
        for (_, r) in running.drain() {
            r.task.abort();
        }
        *settings = Some(cfg.dns.clone());
    }
    running.retain(|name, r| {
        let keep = wanted.get(name).is_some_and(|l| **l == r.lookup);
        if !keep {
            r.task.abort();
            names.entries.lock().remove(name);
            engine
                .transports()
                .tls_resolved(name.tls_identity(&r.lookup), vec![]);
        }
        keep
    });
    if wanted.keys().all(|n| running.contains_key(n)) {
        return;
    }
    let resolver = match Resolver::new(&cfg.dns) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(error = %e, "no DNS resolver: trunks and destinations with domain names get no calls");
            let mut entries = names.entries.lock();
            for (owner, lookup) in &wanted {
                entries.insert(owner.clone(), failed_entry(lookup, e.to_string()));
            }
            return;
        }
    };
    for (name, lookup) in wanted {
        if running.contains_key(&name) {
            continue;
        }
        names.entries.lock().insert(
            name.clone(),
            Entry {
                lookup: lookup.clone(),
                resolution: Resolution::Resolving,
                targets: vec![],
                expires: None,
                last_error: None,
            },
        );
        let task = tokio::spawn(keep_resolved(
            resolver.clone(),
            names.entries.clone(),
            engine.transports().clone(),
            name.clone(),
            lookup.clone(),
        ));
        running.insert(
            name.clone(),
            Running {
                lookup: lookup.clone(),
                task,
            },
        );
    }
}

fn failed_entry(lookup: &Lookup, error: String) -> Entry {
    Entry {
        lookup: lookup.clone(),
        resolution: Resolution::Failed,
        targets: vec![],
        expires: None,
        last_error: Some(error),
    }
}

/// Resolves `lookup` for `owner` again and again, each time the answer
/// expires.
async fn keep_resolved(
    resolver: Arc<Resolver>,
    entries: Arc<Mutex<HashMap<Owner, Entry>>>,
    transports: Arc<Transports>,
    owner: Owner,
    lookup: Lookup,
) {
    loop {
        let outcome = resolver.resolve(&lookup).await;
        let wait = match &outcome {
            Ok(a) => resolve::hold_for(a.valid_until),
            Err(_) => RETRY_AFTER_FAILURE,
        };
        // A failure keeps the TLS identities: connections still open to
        // the old targets are verified as before.
        if let Ok(answer) = &outcome {
            let tls = answer
                .targets
                .iter()
                .filter(|t| t.transport == Transport::Tls)
                .map(|t| t.addr)
                .collect();
            transports.tls_resolved(owner.tls_identity(&lookup), tls);
        }
        if !record(&entries, &owner, &lookup, outcome, wait) {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

/// Keeps the outcome of one resolution; false when its owner is gone.
fn record(
    entries: &Mutex<HashMap<Owner, Entry>>,
    owner: &Owner,
    lookup: &Lookup,
    outcome: Result<Answer, DnsError>,
    wait: Duration,
) -> bool {
    let mut entries = entries.lock();
    let Some(entry) = entries.get_mut(owner) else {
        return false;
    };
    match outcome {
        Ok(answer) => {
            if entry.targets != answer.targets {
                tracing::info!(owner = %owner, host = %lookup.name, targets = ?answer.targets, "host resolved");
            }
            entry.resolution = Resolution::Resolved;
            entry.targets = answer.targets;
            entry.expires = Some(Instant::now() + wait);
        }
        Err(e) => {
            if entry.resolution != Resolution::Failed {
                tracing::warn!(owner = %owner, host = %lookup.name, error = %e, "host does not resolve");
            }
            entry.resolution = Resolution::Failed;
            entry.targets.clear();
            entry.expires = Some(Instant::now() + wait);
            entry.last_error = Some(e.to_string());
        }
    }
    true
}

/// The kept targets of `trunk` (empty when its host did not resolve).
pub fn targets_of(engine: &Engine, trunk: &str) -> Vec<Target> {
    targets_for(engine, &Owner::Trunk(trunk.to_owned()))
}

/// The kept targets of `owner` (empty when its host did not resolve).
pub fn targets_for(engine: &Engine, owner: &Owner) -> Vec<Target> {
    engine
        .dns()
        .entries
        .lock()
        .get(owner)
        .map(|e| e.targets.clone())
        .unwrap_or_default()
}

/// Notes that a call to `target` of `owner` failed over (`why`: "503 …").
pub fn target_failed(engine: &Engine, owner: &Owner, target: &Destination, why: &str) {
    if let Some(e) = engine.dns().entries.lock().get_mut(owner) {
        e.last_error = Some(format!("{}: {why}", describe_addr(target)));
    }
}

/// "udp:192.0.2.1:5060" of a destination copy for one target.
fn describe_addr(d: &Destination) -> String {
    describe(&Target {
        transport: d.transport,
        addr: d.addr,
    })
}

/// The Request-URI of `number` at a host that is a name (§4: the name
/// stays in it; the targets are only where it is sent).
pub fn request_uri(number: &str, lookup: &Lookup) -> String {
    let port = lookup.port.map(|p| format!(":{p}")).unwrap_or_default();
    let tp = match lookup.transport {
        Some(Transport::Tcp) => ";transport=tcp",
        _ => "",
    };
    format!("sip:{number}@{}{port}{tp}", lookup.name)
}

/// The call to `number` through `trunk` (its host a domain name): the
/// first target, and the rest as failover; 503 when nothing resolved.
pub fn route_to_trunk(
    engine: &Engine,
    cfg: &Config,
    trunk: &str,
    number: &str,
) -> (Decision, Option<Failover>) {
    let Some(lookup) = cfg.trunks.get(trunk).and_then(|t| t.lookup.as_ref()) else {
        return (Decision::Reply(404, "Not Found", vec![]), None);
    };
    let ruri = request_uri(number, lookup);
    let mut dests: Vec<Destination> = targets_of(engine, trunk)
        .into_iter()
        .map(|target| Destination {
            uri: describe(&target),
            weight: 1,
            addr: target.addr,
            transport: target.transport,
            lookup: None,
        })
        .collect();
    if dests.is_empty() {
        let reason = "Service Unavailable: Trunk Host Does Not Resolve";
        return (Decision::Reply(503, reason, vec![]), None);
    }
    let first = dests.remove(0);
    let branch = Branch {
        ruri: ruri.clone(),
        dest: first.addr,
        transport: first.transport,
        routes: vec![],
        trunk: Some(trunk.to_owned()),
        contact: false,
    };
    let failover = Failover::for_trunk(trunk.to_owned(), ruri, first, dests, cfg.dns.no_answer);
    (Decision::Forward(vec![branch]), Some(failover))
}

/// "udp:192.0.2.1:5060", "tcp:[2001:db8::1]:5060".
fn describe(t: &Target) -> String {
    let tp = t.transport.as_param();
    format!("{tp}:{}:{}", format_host(&t.addr.ip()), t.addr.port())
}

/// RFC 7951 JSON of /pbx/dns-state (None when no host is a name).
pub fn state_json(engine: &Engine) -> Option<Value> {
    let entries = engine.dns().entries.lock();
    if entries.is_empty() {
        return None;
    }
    let now = Instant::now();
    let mut owners: Vec<&Owner> = entries.keys().collect();
    owners.sort();
    let (mut trunks, mut destinations) = (Vec::new(), Vec::new());
    for owner in owners {
        let Some(e) = entries.get(owner) else {
            continue;
        };
        let mut v = json!({
            "host": e.lookup.name,
            "state": match e.resolution {
                Resolution::Resolving => "resolving",
                Resolution::Resolved => "resolved",
                Resolution::Failed => "failed",
            },
        });
        if !e.targets.is_empty() {
            v["target"] = e.targets.iter().map(describe).collect();
        }
        if let Some(x) = e.expires {
            v["expires"] = json!(x.saturating_duration_since(now).as_secs());
        }
        if let Some(err) = &e.last_error {
            v["last-error"] = json!(err);
        }
        match owner {
            Owner::Trunk(name) => {
                v["name"] = json!(name);
                trunks.push(v);
            }
            Owner::Destination(set, uri) => {
                v["set"] = json!(set);
                v["uri"] = json!(uri);
                destinations.push(v);
            }
        }
    }
    let mut state = json!({});
    if !trunks.is_empty() {
        state["trunk"] = Value::Array(trunks);
    }
    if !destinations.is_empty() {
        state["destination"] = Value::Array(destinations);
    }
    Some(state)
}
