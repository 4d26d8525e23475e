//! Call forwarding and do-not-disturb per extension (YANG
//! /pbx/extension/forwarding, do-not-disturb, /pbx/extension-state).
//!
//! What applies is the configuration, unless the phone changed a setting
//! with a feature code since: such a change is kept here (a JSON file in
//! the state directory, so it survives restarts) together with the
//! configured value it was made against, and it lapses as soon as a commit
//! changes that configured value (the last writer wins; the PBX never
//! writes the datastore).
//!
//! Unconditional forwarding, do-not-disturb and an extension without any
//! registration are decided by `routing` before anything rings. Busy, no
//! answer and failure are decided as the phones answer: the INVITE's server
//! transaction is held open (one extra pending branch, as the dispatcher's
//! failover does) and, when the extension's branches end with 486/600
//! (busy), 408/480/5xx (unavailable) or ring past no-answer-timeout
//! (cancelled, then no-answer), the INVITE goes on to the forward target as
//! a new branch of the same transaction (RFC 3261 §16.7 allows a proxy to
//! recurse; in B2BUA mode it is the next INVITE of the far leg).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use crate::call::Target;
use crate::config::forwarding::Setting;
use crate::config::{Config, Extension};
use crate::features::accounting::Forwarded;
use crate::features::decision::Decision;
use crate::features::outbound::Origin;
use crate::features::sequential;
use crate::features::state::Engine;
use crate::sip::{response_to, Message};

/// The store's (and state's) name of do-not-disturb.
pub const DND: &str = "do-not-disturb";
/// Forwards followed at most for one call (routing counts the same way).
const MAX_DEPTH: u8 = 3;

/// Why a call was forwarded (YANG forward-reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unconditional,
    Busy,
    NoAnswer,
    Unavailable,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unconditional => "unconditional",
            Reason::Busy => "busy",
            Reason::NoAnswer => "no-answer",
            Reason::Unavailable => "unavailable",
        }
    }
}

/// A phone's change of one setting: `value` applies while the configured
/// value is still `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Override {
    base: Option<String>,
    value: Option<String>,
}

/// The forwarding of one extension as it applies now.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub unconditional: Option<String>,
    pub busy: Option<String>,
    pub no_answer: Option<String>,
    pub no_answer_timeout: Duration,
    pub unavailable: Option<String>,
    pub do_not_disturb: bool,
}

impl Effective {
    /// A forward decided before anything rings: unconditional, busy for
    /// do-not-disturb, unavailable for an extension with no registration.
    pub fn immediate(&self, unregistered: bool) -> Option<(Reason, String)> {
        if let Some(t) = &self.unconditional {
            return Some((Reason::Unconditional, t.clone()));
        }
        if self.do_not_disturb {
            return self.busy.clone().map(|t| (Reason::Busy, t));
        }
        if unregistered {
            return self.unavailable.clone().map(|t| (Reason::Unavailable, t));
        }
        None
    }
}

/// The configured value of a setting, as the store compares it.
fn configured(f: &crate::config::forwarding::Forwarding, key: &str) -> Option<String> {
    match Setting::from_name(key) {
        Some(Setting::Unconditional) => f.unconditional.clone(),
        Some(Setting::Busy) => f.busy.clone(),
        Some(Setting::NoAnswer) => f.no_answer.clone(),
        Some(Setting::Unavailable) => f.unavailable.clone(),
        None => Some(f.do_not_disturb.to_string()),
    }
}

/// The phones' changes (persisted) and the forwarded-call counters.
#[derive(Default)]
pub struct Store {
    overrides: Mutex<HashMap<String, HashMap<String, Override>>>,
    path: Mutex<Option<PathBuf>>,
    forwarded_calls: Mutex<HashMap<String, u64>>,
}

impl Store {
    /// Loads the changes the phones made (none when the file is not there yet).
    pub fn open(&self, path: &Path) -> Result<(), String> {
        *self.path.lock() = Some(path.to_owned());
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
        let mut all = HashMap::new();
        for (ext, settings) in json.as_object().into_iter().flatten() {
            let mut own = HashMap::new();
            for (key, o) in settings.as_object().into_iter().flatten() {
                let text = |name: &str| o.get(name).and_then(Value::as_str).map(str::to_owned);
                own.insert(
                    key.clone(),
                    Override {
                        base: text("base"),
                        value: text("value"),
                    },
                );
            }
            all.insert(ext.clone(), own);
        }
        *self.overrides.lock() = all;
        Ok(())
    }

    /// The value of `key` for `ext` and whether the phone set it.
    fn value(
        overrides: &HashMap<String, HashMap<String, Override>>,
        ext: &Extension,
        key: &str,
    ) -> (Option<String>, bool) {
        let conf = configured(&ext.forwarding, key);
        match overrides.get(&ext.number).and_then(|m| m.get(key)) {
            Some(o) if o.base == conf => (o.value.clone(), true),
            _ => (conf, false),
        }
    }

    pub fn effective(&self, ext: &Extension) -> Effective {
        let overrides = self.overrides.lock();
        let get = |s: Setting| Self::value(&overrides, ext, s.name()).0;
        Effective {
            unconditional: get(Setting::Unconditional),
            busy: get(Setting::Busy),
            no_answer: get(Setting::NoAnswer),
            no_answer_timeout: ext.forwarding.no_answer_timeout,
            unavailable: get(Setting::Unavailable),
            do_not_disturb: Self::value(&overrides, ext, DND).0.as_deref() == Some("true"),
        }
    }

    /// A phone's change of `key` (a `Setting` name or `DND`), stored at once.
    pub fn set(&self, ext: &Extension, key: &str, value: Option<String>) -> Result<(), String> {
        let snapshot = {
            let mut overrides = self.overrides.lock();
            let own = overrides.entry(ext.number.clone()).or_default();
            // Changes a commit has overruled since are dropped on the way.
            own.retain(|k, o| o.base == configured(&ext.forwarding, k));
            own.insert(
                key.to_owned(),
                Override {
                    base: configured(&ext.forwarding, key),
                    value,
                },
            );
            to_json(&overrides)
        };
        self.save(&snapshot)
    }

    /// Drops what the phone of `ext` set (RPC reset-forwarding); how many settings.
    pub fn reset(&self, ext: &str) -> Result<usize, String> {
        let (cleared, snapshot) = {
            let mut overrides = self.overrides.lock();
            let cleared = overrides.remove(ext).map(|m| m.len()).unwrap_or(0);
            (cleared, to_json(&overrides))
        };
        if cleared > 0 {
            self.save(&snapshot)?;
        }
        Ok(cleared)
    }

    /// Written whole to a temporary file renamed over the old one: a crash
    /// leaves the old or the new file, never half of one.
    fn save(&self, json: &Value) -> Result<(), String> {
        let Some(path) = self.path.lock().clone() else {
            return Ok(()); // not opened (unit tests): memory only
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(json).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn count(&self, ext: &str) {
        *self
            .forwarded_calls
            .lock()
            .entry(ext.to_owned())
            .or_default() += 1;
    }

    /// RFC 7951 JSON of /pbx/extension-state.
    pub fn state_json(&self, cfg: &Config) -> Value {
        let overrides = self.overrides.lock();
        let counts = self.forwarded_calls.lock();
        let mut numbers: Vec<&String> = cfg.extensions.keys().collect();
        numbers.sort();
        let list: Vec<Value> = numbers
            .into_iter()
            .filter_map(|n| cfg.extensions.get(n))
            .map(|ext| {
                let setting = |key: &str| {
                    let (value, phone) = Self::value(&overrides, ext, key);
                    let source = if phone { "phone" } else { "configuration" };
                    let mut v = json!({ "source": source });
                    match (key, value) {
                        (DND, v2) => v["value"] = json!(v2.as_deref() == Some("true")),
                        (_, Some(v2)) => v["value"] = json!(v2),
                        (_, None) => {}
                    }
                    v
                };
                let mut e = json!({
                    "number": ext.number,
                    "forwarded-calls": counts.get(&ext.number).copied().unwrap_or(0).to_string(),
                });
                e[DND] = setting(DND);
                for s in Setting::ALL {
                    e[s.name()] = setting(s.name());
                }
                e
            })
            .collect();
        json!({ "extension": list })
    }
}

fn to_json(overrides: &HashMap<String, HashMap<String, Override>>) -> Value {
    let mut all = Map::new();
    for (ext, own) in overrides {
        let mut m = Map::new();
        for (k, o) in own {
            m.insert(k.clone(), json!({ "base": o.base, "value": o.value }));
        }
        if !m.is_empty() {
            all.insert(ext.clone(), Value::Object(m));
        }
    }
    Value::Object(all)
}

/// What routing learnt of forwarding for one request.
#[derive(Debug, Default)]
pub struct Forwarding {
    /// An INVITE: do-not-disturb and the forwards that depend on how the
    /// phones answer are for calls; other requests (MESSAGE, SUBSCRIBE)
    /// follow only unconditional forwarding, as they always did.
    call: bool,
    /// Forwards already followed (for the CDR).
    note: Option<Forwarded>,
    /// Forwards that depend on how the extension's phones answer.
    pub(crate) plan: Option<Plan>,
    /// A ring group rung: its members after the first step.
    pub(crate) group: Option<crate::features::ring_group::Hunt>,
    /// A call from a trunk routed by DID.
    pub(crate) inbound: Option<crate::features::inbound::Note>,
    /// Recording asked by the dialplan or inbound route the call took.
    pub(crate) record: crate::config::media::RecordCalls,
}

/// The busy, no-answer and unavailable forwarding of the extension rung.
#[derive(Debug, Clone)]
pub struct Plan {
    extension: String,
    busy: Option<String>,
    no_answer: Option<String>,
    no_answer_timeout: Duration,
    unavailable: Option<String>,
    depth: u8,
}

impl Forwarding {
    pub fn for_request(method: &str) -> Forwarding {
        Forwarding {
            call: method == "INVITE",
            ..Forwarding::default()
        }
    }

    /// The request is an INVITE.
    pub(crate) fn is_call(&self) -> bool {
        self.call
    }

    /// The part of an extension's forwarding that applies to this request.
    pub fn applicable(&self, s: Effective) -> Effective {
        match self.call {
            true => s,
            false => Effective {
                unconditional: s.unconditional,
                ..Effective::default()
            },
        }
    }

    /// Routing followed a forward of `ext` to `to`.
    pub fn forwarded(&mut self, ext: &str, to: &str, reason: Reason) {
        match &mut self.note {
            Some(n) => n.to = to.to_owned(),
            None => {
                self.note = Some(Forwarded {
                    by: ext.to_owned(),
                    to: to.to_owned(),
                    reason: reason.name(),
                })
            }
        }
        self.plan = None;
    }

    /// Routing rings `ext`, whose forwarding is `s`.
    pub fn plan(&mut self, ext: &str, s: &Effective, depth: u8) {
        let any = s.busy.is_some() || s.no_answer.is_some() || s.unavailable.is_some();
        self.plan = (any && depth < MAX_DEPTH).then(|| Plan {
            extension: ext.to_owned(),
            busy: s.busy.clone(),
            no_answer: s.no_answer.clone(),
            no_answer_timeout: s.no_answer_timeout,
            unavailable: s.unavailable.clone(),
            depth,
        });
    }
}

/// A new INVITE went out: its CDR notes the forwards followed, and the
/// forwards on busy, no answer and failure are watched for.
pub fn started(
    engine: &Arc<Engine>,
    key: &str,
    call_id: &str,
    forwarding: Forwarding,
    origin: &Origin,
    hash: u32,
) {
    if let Some(note) = forwarding.note {
        engine.forwarding().count(&note.by);
        note_cdr(engine, call_id, note, None);
    }
    if let Some(note) = forwarding.inbound {
        let mut calls = engine.calls();
        if let Some(call) = calls.get_mut(call_id) {
            let meta = call.data.get_or_insert_with(Default::default);
            meta.did = Some(note.did);
            meta.trunk = Some(note.trunk);
        }
    }
    if let Some(plan) = forwarding.plan {
        watch(engine, key, plan, origin.clone(), hash);
    } else if let Some(group) = forwarding.group {
        crate::features::ring_group::watch(engine, key, group, origin.clone(), hash);
    }
}

/// A forward that leaves the box, as accounting keeps it.
struct Outside<'a> {
    /// The forwarding extension: it pays, as for a forward decided at once.
    extension: &'a str,
    trunk: Option<String>,
    number: &'a str,
    /// Its place among the simultaneous outbound calls.
    slot: crate::features::fraud::Slot,
}

/// Records a forward in the call's accounting data (the first forward's
/// extension and reason, the last one's target, and where it left the box).
fn note_cdr(engine: &Engine, call_id: &str, note: Forwarded, out: Option<Outside>) {
    let cfg = engine.config();
    let mut calls = engine.calls();
    let Some(call) = calls.get_mut(call_id) else {
        drop(calls);
        if let Some(o) = out {
            engine.fraud().release(&o.slot); // the call is over already
        }
        return;
    };
    let meta = call.data.get_or_insert_with(Default::default);
    match &mut meta.forwarded {
        Some(first) => first.to = note.to,
        None => meta.forwarded = Some(note),
    }
    if let Some(o) = out {
        // Credit the caller holds is settled against the caller's account.
        if meta.reserved == 0 {
            meta.caller_ext = Some(o.extension.to_owned());
        }
        meta.trunk = o.trunk.or(meta.trunk.take());
        meta.rate = cfg.accounting.rate_for(o.number);
        match &meta.slot {
            // Released when the call ends (`accounting::ended`).
            None => meta.slot = Some(o.slot),
            Some(_) => engine.fraud().release(&o.slot),
        }
    }
}

/// Holds server transaction `key` open (one extra pending branch) until
/// its branches have ended, then forwards or lets the best answer go up.
fn watch(engine: &Arc<Engine>, key: &str, plan: Plan, origin: Origin, hash: u32) {
    let Some(base) = sequential::hold(engine, key) else {
        return;
    };
    take_over(engine, key, base, plan, origin, hash);
}

/// Watches `key`, whose hold (and `base`, the INVITE as last sent) another
/// watcher hands over: a ring group's final destination that forwards.
pub(crate) fn take_over(
    engine: &Arc<Engine>,
    key: &str,
    base: Message,
    plan: Plan,
    origin: Origin,
    hash: u32,
) {
    let engine = engine.clone();
    let watcher = Watcher {
        key: key.to_owned(),
        base,
        plan,
        origin,
        hash,
        ringing_since: Instant::now(),
        cancelled_for_no_answer: false,
    };
    tokio::spawn(async move { watcher.hold(engine).await });
}

struct Watcher {
    key: String,
    /// The INVITE as sent to the extension, less our Via.
    base: Message,
    /// The forwarding of the extension ringing now.
    plan: Plan,
    origin: Origin,
    hash: u32,
    ringing_since: Instant,
    cancelled_for_no_answer: bool,
}

/// What became of a forward.
enum Outcome {
    /// The caller gets this answer (the target could not be reached).
    Final(Message),
    /// The target rings; `forwards_again` when it is an extension with
    /// busy, no-answer or unavailable forwarding of its own.
    Ringing { forwards_again: bool },
    /// The target is a ring group: its watcher goes on with the call.
    Group(crate::features::ring_group::Hunt),
    /// The box answers the call itself (the extension's mailbox).
    Answered,
}

enum Step {
    Wait,
    Done,
    /// Ringing too long: cancel these branches, then forward on no answer.
    CancelAll(Vec<String>),
    Forward(Reason, String),
    Final(Message),
}

impl Watcher {
    async fn hold(mut self, engine: Arc<Engine>) {
        // Bounded: Timer C plus the transaction timeout for each extension rung.
        let per_hop = Duration::from_secs(250) + self.plan.no_answer_timeout;
        let deadline = Instant::now() + per_hop * u32::from(MAX_DEPTH + 1);
        let mut forwarding = true;
        loop {
            // 50 ms: as the dispatcher's failover, a forward is that much late at worst.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let late = Instant::now() > deadline;
            match self.next_step(&engine, forwarding, late) {
                Step::Wait => {}
                Step::Done => return,
                Step::CancelAll(keys) => {
                    self.cancelled_for_no_answer = true;
                    sequential::cancel(&engine, keys);
                }
                Step::Forward(reason, target) => match self.forward(&engine, reason, &target) {
                    Outcome::Final(resp) => {
                        self.finish(&engine, resp);
                        return;
                    }
                    Outcome::Ringing { forwards_again } => forwarding = forwards_again,
                    Outcome::Answered => return,
                    Outcome::Group(group) => {
                        // Our hold goes with the call to the group's watcher.
                        crate::features::ring_group::take_over(
                            &engine,
                            &self.key,
                            self.base.clone(),
                            group,
                            self.origin.clone(),
                            self.hash,
                        );
                        return;
                    }
                },
                Step::Final(resp) => {
                    self.finish(&engine, resp);
                    return;
                }
            }
        }
    }

    /// The INVITE failed for good: the caller gets `resp`.
    fn finish(&self, engine: &Arc<Engine>, resp: Message) {
        sequential::finish(engine, &self.key, resp);
    }

    fn next_step(&mut self, engine: &Engine, forwarding: bool, late: bool) -> Step {
        let mut guard = engine.tables();
        let tables = &mut *guard;
        let Some(stx) = tables.server.get_mut(&self.key) else {
            return Step::Done;
        };
        if stx.final_code.is_some() {
            // Answered (or a CANCEL ended it): ours to let go.
            stx.pending = stx.pending.saturating_sub(1);
            return Step::Done;
        }
        if stx.pending > 1 && !late {
            let no_answer = forwarding
                && !self.cancelled_for_no_answer
                && !stx.cancelled
                && self.plan.no_answer.is_some()
                && self.ringing_since.elapsed() >= self.plan.no_answer_timeout;
            return match no_answer {
                true => Step::CancelAll(stx.branches.clone()),
                false => Step::Wait,
            };
        }
        let code = stx.best.as_ref().and_then(Message::status).unwrap_or(408);
        if forwarding && !late && !stx.cancelled {
            let p = &self.plan;
            let next = match code {
                _ if self.cancelled_for_no_answer => {
                    p.no_answer.clone().map(|t| (Reason::NoAnswer, t))
                }
                486 | 600 => p.busy.clone().map(|t| (Reason::Busy, t)),
                // Timer C gave up the ringing (the caller's CANCEL is excluded above).
                487 => p.no_answer.clone().map(|t| (Reason::NoAnswer, t)),
                408 | 480 | 500..=599 => p
                    .unavailable
                    .clone()
                    .map(|t| (Reason::Unavailable, t))
                    // A phone that rang out (Timer C): no answer, as Asterisk counts it.
                    .or_else(|| match code {
                        408 | 480 => p.no_answer.clone().map(|t| (Reason::NoAnswer, t)),
                        _ => None,
                    }),
                _ => None,
            };
            if let Some((reason, target)) = next {
                return Step::Forward(reason, target);
            }
        }
        match sequential::final_answer(engine, tables, &self.key, (408, "Request Timeout")) {
            Some(resp) => Step::Final(resp),
            None => Step::Done,
        }
    }

    /// Sends the INVITE on to `target`.
    fn forward(&mut self, engine: &Arc<Engine>, reason: Reason, target: &str) -> Outcome {
        let cfg = engine.config();
        let gone = Outcome::Ringing {
            forwards_again: false,
        };
        let Some((request, source)) = ({
            let tables = engine.tables();
            let stx = tables.server.get(&self.key);
            stx.map(|stx| (stx.request.clone(), stx.source))
        }) else {
            return gone;
        };
        let mut origin = self.origin.clone();
        let mut next = Forwarding::for_request("INVITE");
        let decision = crate::features::routing::follow_forward(
            engine,
            &cfg,
            &self.plan.extension,
            target,
            &mut origin,
            self.plan.depth,
            &mut next,
        );
        let tag = engine.new_tag();
        let refuse = |code, reason| Outcome::Final(response_to(&request, code, reason, Some(&tag)));
        let targets = match decision {
            Decision::Forward(targets) if !targets.is_empty() => targets,
            Decision::Local(service) => {
                tracing::info!(call_id = %request.call_id(), extension = %self.plan.extension, reason = reason.name(), "call sent to voicemail");
                let transport = {
                    let mut tables = engine.tables();
                    let Some(stx) = tables.server.get_mut(&self.key) else {
                        return gone;
                    };
                    // The branches are over; the answer is ours now.
                    stx.pending = 0;
                    stx.transport
                };
                let mut request = request;
                // The transaction keeps no body: the caller's offer is the
                // B2BUA call's (whose legs end here), or the INVITE's as sent on.
                let b2b = engine.b2b_calls().lock().get(request.call_id()).cloned();
                match b2b {
                    Some(call) => {
                        let (offer, ids) = {
                            let c = call.lock();
                            (c.offer.clone(), [c.a.call_id.clone(), c.b.call_id.clone()])
                        };
                        if let Some((_, body)) = offer {
                            request.body = body;
                        }
                        let mut calls = engine.b2b_calls().lock();
                        for id in &ids {
                            calls.remove(id);
                        }
                    }
                    None if request.body.is_empty() => request.body = self.base.body.clone(),
                    None => {}
                }
                // The call is the mailbox's now: its CDR ends here.
                engine.end_call(request.call_id(), 200);
                crate::features::media_service::answer(
                    engine, &self.key, &request, source, transport, service,
                );
                return Outcome::Answered;
            }
            Decision::Reply(code, reason, _) => return refuse(code, reason),
            Decision::Refuse(refusal) => {
                let (code, reason) = engine.fraud().refuse(refusal, &request, source, &origin);
                return refuse(code, reason);
            }
            _ => return refuse(404, "Not Found"),
        };
        let outbound = targets.iter().any(|t| !t.contact);
        if let Err(refusal) =
            crate::features::admission::permitted(&cfg, &origin, outbound, true, request.uri())
        {
            let (code, reason) = engine.fraud().refuse(refusal, &request, source, &origin);
            return refuse(code, reason);
        }
        let out = match (&origin, outbound) {
            (Origin::Forwarded { extension, number }, true) => {
                // Within the forwarding extension's simultaneous-call limits too.
                let slot = match engine.fraud().take_slot(&cfg, &origin) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        let (code, reason) =
                            engine.fraud().refuse(refusal, &request, source, &origin);
                        return refuse(code, reason);
                    }
                };
                Some(Outside {
                    extension: extension.as_str(),
                    trunk: targets.iter().find_map(|t| t.trunk.clone()),
                    number: number.as_str(),
                    slot,
                })
            }
            _ => None,
        };
        tracing::info!(call_id = %request.call_id(), extension = %self.plan.extension, reason = reason.name(), %target, "call forwarded");
        engine.forwarding().count(&self.plan.extension);
        let mut note = Forwarded {
            by: self.plan.extension.clone(),
            to: target.to_owned(),
            reason: reason.name(),
        };
        if let Some(then) = &next.note {
            // The target forwarded unconditionally in turn: the CDR names the last one.
            engine.forwarding().count(&then.by);
            note.to = then.to.clone();
        }
        note_cdr(engine, request.call_id(), note, out);
        let sent = match (&origin, outbound) {
            (Origin::Forwarded { .. }, true) => self.send_forwarded_out(engine, &origin, targets),
            _ => self.send(engine, targets),
        };
        if !sent {
            return gone; // the transaction is gone: nothing left to answer
        }
        self.ringing_since = Instant::now();
        self.cancelled_for_no_answer = false;
        if let Some(group) = next.group.take() {
            return Outcome::Group(group);
        }
        let forwards_again = next.plan.is_some();
        if let Some(plan) = next.plan {
            self.plan = plan;
        }
        Outcome::Ringing { forwards_again }
    }

    /// One new branch per target; false when the transaction is gone.
    fn send(&mut self, engine: &Arc<Engine>, targets: Vec<Target>) -> bool {
        sequential::send(engine, &self.key, &mut self.base, self.hash, targets)
    }

    /// As `send`, for a call the extension forwards out: these branches
    /// show its caller ID (`caller_id::outgoing`), later steps the
    /// caller's own again.
    fn send_forwarded_out(
        &mut self,
        engine: &Arc<Engine>,
        origin: &Origin,
        targets: Vec<Target>,
    ) -> bool {
        let cfg = engine.config();
        let mut base = self.base.clone();
        match cfg.mode {
            crate::config::Mode::B2bua => {
                if let Some(id) =
                    crate::features::caller_id::outgoing(&cfg, &base, origin, &targets)
                {
                    let from = base.header("From").unwrap_or("").to_owned();
                    let tag = crate::sip::param(&from, "tag").unwrap_or("").to_owned();
                    let host = crate::sip::Uri::parse(crate::sip::addr_uri(&from))
                        .map(|u| u.host)
                        .unwrap_or_default();
                    id.apply(&mut base, &host, &tag);
                    // Our leg's From, for its later requests (BYE).
                    if let Some(call) = engine.b2b_calls().lock().get(base.call_id()) {
                        call.lock().b.local_uri = id.uri(&host);
                    }
                }
            }
            _ => crate::features::caller_id::rewrite(&cfg, &mut base, origin, &targets),
        }
        let sent = sequential::send(engine, &self.key, &mut base, self.hash, targets);
        // The B2BUA's next INVITE on the leg takes the next CSeq.
        if let Some(cseq) = base.header("CSeq").map(str::to_owned) {
            self.base.set_header("CSeq", cseq);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::uci::Package;

    fn config(busy: Option<&str>) -> Config {
        let option = busy
            .map(|b| format!("\toption forwarding_busy '{b}'\n"))
            .unwrap_or_default();
        let text = format!(
            "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\n\
config extension 'extension_100'\n\toption number '100'\n\toption password 'pw'\n{option}"
        );
        let pkg = Package::parse("besip_pbx", &text).expect("uci");
        Config::from_package(&pkg, "besip_pbx").expect("config")
    }

    #[test]
    fn phone_settings_persist_and_lapse_when_the_configuration_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("forwarding.json");
        let before = config(Some("101"));
        let ext = &before.extensions["100"];
        let store = Store::default();
        store.open(&path).expect("open");
        assert_eq!(store.effective(ext).busy.as_deref(), Some("101"));
        store.set(ext, "busy", Some("102".into())).expect("set");
        store.set(ext, DND, Some("true".into())).expect("set");

        // A new daemon reads what the phone set.
        let again = Store::default();
        again.open(&path).expect("reopen");
        let e = again.effective(ext);
        assert_eq!(e.busy.as_deref(), Some("102"));
        assert!(e.do_not_disturb);
        assert_eq!(e.immediate(false), Some((Reason::Busy, "102".into())));

        // A commit that changes busy overrules the phone; DND stays the phone's.
        let after = config(Some("103"));
        let e = again.effective(&after.extensions["100"]);
        assert_eq!(e.busy.as_deref(), Some("103"));
        assert!(e.do_not_disturb);

        assert_eq!(again.reset("100"), Ok(2));
        assert!(!again.effective(&after.extensions["100"]).do_not_disturb);
    }

    #[test]
    fn forwards_decided_before_ringing_go_in_asterisks_order() {
        let e = Effective {
            unconditional: Some("1".into()),
            busy: Some("2".into()),
            unavailable: Some("3".into()),
            do_not_disturb: true,
            ..Effective::default()
        };
        assert_eq!(e.immediate(true), Some((Reason::Unconditional, "1".into())));
        let e = Effective {
            unconditional: None,
            ..e
        };
        assert_eq!(e.immediate(true), Some((Reason::Busy, "2".into())));
        let e = Effective {
            do_not_disturb: false,
            ..e
        };
        assert_eq!(e.immediate(true), Some((Reason::Unavailable, "3".into())));
        assert_eq!(e.immediate(false), None);
    }
}
