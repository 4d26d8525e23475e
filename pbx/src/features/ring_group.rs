//! Ring groups (YANG /pbx/ring-group): ring-all, hunt and memory-hunt over
//! the members' registered phones and numbers outside, with member and
//! group timeouts and a final destination. Routing sends the first step
//! (every member for ring-all); the watcher here, on the shared
//! `sequential` machinery, adds or replaces members as the timeouts pass
//! or members fail, and after the group timeout cancels what still rings
//! and sends the call to the final destination.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::call::Target;
use crate::config::inbound::{Destination, Strategy};
use crate::features::decision::Decision;
use crate::features::forwarding::Forwarding;
use crate::features::outbound::Origin;
use crate::features::sequential;
use crate::features::state::Engine;
use crate::sip::{response_to, Message};

/// One member's branches: its label (extension or number) and targets.
pub type MemberTargets = (String, Vec<Target>);

/// What is left of a ring group call once its first step went out.
pub struct Hunt {
    pub group: String,
    pub strategy: Strategy,
    pub member_timeout: Duration,
    pub group_timeout: Duration,
    /// Members not rung yet, in order.
    pub rest: VecDeque<MemberTargets>,
    /// Request-URI of each branch → member (who answered).
    pub labels: Vec<(String, String)>,
    pub final_destination: Option<Destination>,
}

impl std::fmt::Debug for Hunt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hunt")
            .field("group", &self.group)
            .field("strategy", &self.strategy)
            .field("rest", &self.rest.len())
            .finish()
    }
}

impl Hunt {
    /// The first step to send; the rest stays here.
    pub fn new(
        group: &crate::config::inbound::RingGroup,
        members: Vec<MemberTargets>,
    ) -> (Vec<Target>, Hunt) {
        let labels = members
            .iter()
            .flat_map(|(m, ts)| ts.iter().map(move |t| (t.ruri.clone(), m.clone())))
            .collect();
        let mut rest: VecDeque<MemberTargets> = members.into();
        let first = match group.strategy {
            Strategy::RingAll => rest.drain(..).flat_map(|(_, ts)| ts).collect(),
            Strategy::Hunt | Strategy::MemoryHunt => {
                rest.pop_front().map(|(_, ts)| ts).unwrap_or_default()
            }
        };
        let hunt = Hunt {
            group: group.number.clone(),
            strategy: group.strategy,
            member_timeout: group.member_timeout,
            group_timeout: group.group_timeout,
            rest,
            labels,
            final_destination: group.final_destination.clone(),
        };
        (first, hunt)
    }

    fn member_of(&self, ruri: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(u, _)| u == ruri)
            .map(|(_, m)| m.as_str())
    }
}

/// Watches the ring group call of server transaction `key`.
pub fn watch(engine: &Arc<Engine>, key: &str, hunt: Hunt, origin: Origin, hash: u32) {
    let Some(base) = sequential::hold(engine, key) else {
        return;
    };
    take_over(engine, key, base, hunt, origin, hash);
}

/// Watches `key`, whose hold (and `base`, the INVITE as last sent) another
/// watcher hands over: an extension's forward to a group.
pub(crate) fn take_over(
    engine: &Arc<Engine>,
    key: &str,
    base: Message,
    hunt: Hunt,
    origin: Origin,
    hash: u32,
) {
    let now = Instant::now();
    let watcher = Watcher {
        key: key.to_owned(),
        base,
        hash,
        hunt,
        origin,
        started: now,
        step_started: now,
        step_cancelled: false,
        timed_out: false,
        final_sent: false,
    };
    let engine = engine.clone();
    tokio::spawn(async move { watcher.hold(engine).await });
}

struct Watcher {
    key: String,
    base: Message,
    hash: u32,
    hunt: Hunt,
    origin: Origin,
    started: Instant,
    step_started: Instant,
    /// Hunt: the ringing member was cancelled for its timeout.
    step_cancelled: bool,
    /// The group timeout passed: only the final destination is left.
    timed_out: bool,
    final_sent: bool,
}

/// What follows the final destination.
enum Then {
    /// It rings: watch on.
    Watch,
    /// It ends the call with this answer (hangup, nothing reachable).
    Finish(Message),
    /// Forwarding's watcher took the call over (or the transaction is gone).
    HandedOver,
}

enum Step {
    Wait,
    Done,
    Cancel(Vec<String>),
    /// Ring the next member.
    Next,
    /// Send the call to the final destination.
    Final,
    Answer(Message),
}

impl Watcher {
    async fn hold(mut self, engine: Arc<Engine>) {
        // Bounded: the group timeout, then Timer C and the transaction timeout.
        let deadline = Instant::now() + self.hunt.group_timeout + Duration::from_secs(500);
        loop {
            // 50 ms: a step is that much late at worst (as forwarding).
            tokio::time::sleep(Duration::from_millis(50)).await;
            match self.next_step(&engine, Instant::now() > deadline) {
                Step::Wait => {}
                Step::Done => return,
                Step::Cancel(keys) => sequential::cancel(&engine, keys),
                Step::Next => {
                    let Some((member, targets)) = self.hunt.rest.pop_front() else {
                        continue;
                    };
                    tracing::debug!(group = %self.hunt.group, %member, "ring group rings member");
                    self.step_started = Instant::now();
                    self.step_cancelled = false;
                    if !sequential::send(&engine, &self.key, &mut self.base, self.hash, targets) {
                        return;
                    }
                }
                Step::Final => {
                    self.final_sent = true;
                    match self.go_to_final_destination(&engine) {
                        Then::Watch => {}
                        Then::Finish(resp) => {
                            sequential::finish(&engine, &self.key, resp);
                            return;
                        }
                        Then::HandedOver => return,
                    }
                }
                Step::Answer(resp) => {
                    sequential::finish(&engine, &self.key, resp);
                    return;
                }
            }
        }
    }

    fn next_step(&mut self, engine: &Engine, late: bool) -> Step {
        let mut guard = engine.tables();
        let tables = &mut *guard;
        let Some(stx) = tables.server.get_mut(&self.key) else {
            return Step::Done;
        };
        if let Some(code) = stx.final_code {
            stx.pending = stx.pending.saturating_sub(1);
            let call_id = stx.request.call_id().to_owned();
            drop(guard);
            if code < 300 {
                let uri = engine
                    .calls()
                    .get(&call_id)
                    .and_then(|c| c.answered_uri.clone());
                let member = uri.as_deref().and_then(|u| self.hunt.member_of(u));
                let by = member.or(uri.as_deref()).unwrap_or("");
                engine.inbound().group_answered(&self.hunt.group, by);
            }
            return Step::Done;
        }
        let live = stx.pending > 1;
        if stx.cancelled || late {
            if live && !late {
                return Step::Wait;
            }
            return self.answer(engine, tables, (487, "Request Terminated"));
        }
        let rings = !self.timed_out && !self.final_sent;
        if rings && self.started.elapsed() >= self.hunt.group_timeout {
            self.timed_out = true;
            if live {
                return Step::Cancel(stx.branches.clone());
            }
        }
        if live {
            let step_over = rings
                && !self.hunt.rest.is_empty()
                && self.step_started.elapsed() >= self.hunt.member_timeout;
            return match (step_over, self.hunt.strategy) {
                (true, Strategy::MemoryHunt) => Step::Next,
                (true, Strategy::Hunt) if !self.step_cancelled => {
                    self.step_cancelled = true;
                    Step::Cancel(stx.branches.clone())
                }
                _ => Step::Wait,
            };
        }
        // Every branch ended: the next member, else the final destination.
        if rings && !self.hunt.rest.is_empty() {
            return Step::Next;
        }
        if !self.final_sent && self.hunt.final_destination.is_some() {
            return Step::Final;
        }
        self.answer(engine, tables, (480, "Temporarily Unavailable"))
    }

    /// The caller's answer; after the group timeout nobody answered (not
    /// the 487 of the members we cancelled).
    fn answer(
        &self,
        engine: &Engine,
        tables: &mut crate::transaction::Tables,
        otherwise: (u16, &'static str),
    ) -> Step {
        if self.timed_out && !self.final_sent {
            if let Some(stx) = tables.server.get_mut(&self.key) {
                stx.best = None;
            }
        }
        match sequential::final_answer(engine, tables, &self.key, otherwise) {
            Some(resp) => Step::Answer(resp),
            None => Step::Done,
        }
    }

    /// Sends the call on to the final destination.
    fn go_to_final_destination(&mut self, engine: &Arc<Engine>) -> Then {
        let cfg = engine.config();
        let request = {
            let tables = engine.tables();
            tables.server.get(&self.key).map(|stx| stx.request.clone())
        };
        let (Some(request), Some(dest)) = (request, self.hunt.final_destination.clone()) else {
            return Then::HandedOver;
        };
        let mut origin = self.origin.clone();
        let mut next = Forwarding::for_request("INVITE");
        let decision =
            crate::features::routing::to_destination(engine, &cfg, &dest, &mut origin, &mut next);
        let tag = engine.new_tag();
        let targets = match decision {
            Decision::Forward(t) if !t.is_empty() => t,
            Decision::Reply(code, reason, _) => {
                return Then::Finish(response_to(&request, code, reason, Some(&tag)))
            }
            _ => {
                return Then::Finish(response_to(
                    &request,
                    480,
                    "Temporarily Unavailable",
                    Some(&tag),
                ))
            }
        };
        tracing::info!(call_id = %request.call_id(), group = %self.hunt.group, destination = ?dest, "ring group: final destination");
        if !sequential::send(engine, &self.key, &mut self.base, self.hash, targets) {
            return Then::HandedOver;
        }
        // An extension that forwards on busy or no answer: forwarding's
        // watcher goes on with the call (and our hold).
        if let Some(plan) = next.plan.take() {
            crate::features::forwarding::take_over(
                engine,
                &self.key,
                self.base.clone(),
                plan,
                self.origin.clone(),
                self.hash,
            );
            return Then::HandedOver;
        }
        // A ring group as final destination goes on as that group.
        if let Some(group) = next.group.take() {
            self.hunt = group;
            let now = Instant::now();
            (self.started, self.step_started) = (now, now);
            (self.timed_out, self.final_sent, self.step_cancelled) = (false, false, false);
        }
        Then::Watch
    }
}
