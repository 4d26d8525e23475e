//! Failover of a dispatched INVITE (like Kamailio's failure_route with
//! `t_set_fr()` and `ds_mark_dst()`): a branch that sends nothing at all
//! within the set's no-answer-timeout is given up (no CANCEL: it never
//! answered, RFC 3261 §9.1), and a branch ending 408/5xx or given up marks
//! its destination down and sends the INVITE on to the next one not down.
//! The same failover walks the DNS targets of a trunk whose host is a
//! domain name (RFC 3263 §4.3, `Failover::for_trunk`) and of a destination
//! whose host is one (one copy per target, `names::expand`: the
//! destination is marked down only when its last target fails): there the
//! Request-URI keeps the name and a failure is noted in the DNS state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{count_call, is_down, mark_down, target, Destination, RUNTIME};
use crate::config::{Mode, Transport};
use crate::features::dns::Owner;
use crate::features::state::Engine;
use crate::sip::{response_to, Message, StartLine};
use crate::transaction::{client_key, ClientState, ClientTx};

/// What the proxy needs to send an INVITE on to the next destination.
pub struct Failover {
    pub set: String,
    pub number: String,
    pub hash: u32,
    /// The destination of the branch in progress.
    current: Destination,
    /// The others, in failover order.
    rest: Vec<Destination>,
    no_answer: Duration,
    /// The current branch was given up for sending nothing.
    abandoned: bool,
    /// The targets are a trunk's DNS answer: (trunk, Request-URI kept).
    trunk: Option<(String, String)>,
}

impl Failover {
    pub fn new(
        set: String,
        number: String,
        current: Destination,
        rest: Vec<Destination>,
        no_answer: Duration,
    ) -> Failover {
        Failover {
            set,
            number,
            hash: 0,
            current,
            rest,
            no_answer,
            abandoned: false,
            trunk: None,
        }
    }

    /// Failover over the DNS targets of `trunk` (`rest` in the order to
    /// try), every branch with Request-URI `ruri`.
    pub fn for_trunk(
        trunk: String,
        ruri: String,
        current: Destination,
        rest: Vec<Destination>,
        no_answer: Duration,
    ) -> Failover {
        Failover {
            trunk: Some((trunk.clone(), ruri)),
            ..Failover::new(trunk, String::new(), current, rest, no_answer)
        }
    }
}

/// Holds the server transaction `key` open (one extra pending
/// branch) and, when the current branch ends with 408 or 5xx or sends
/// nothing in time, sends the INVITE to the next destination; otherwise
/// lets the best answer go up.
pub fn watch(engine: &Arc<Engine>, key: &str, failover: Failover) {
    let base = {
        let mut tables = engine.tables();
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
    /// Give up this client branch: it sent nothing within no-answer-timeout.
    Abandon(String),
    Send(Transport, std::net::SocketAddr, Vec<u8>, String),
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
            Step::Abandon(ckey) => {
                if crate::call::client::abandon_branch(&engine, &ckey) {
                    f.abandoned = true;
                }
            }
            Step::Send(t, dest, bytes, ckey) => {
                engine.send(t, dest, bytes);
                crate::call::client::spawn_client_timer(&engine, ckey);
            }
            Step::Final(resp) => {
                // The initial INVITE failed everywhere: no dialog came to be.
                engine.fraud().dialog_ended(resp.call_id());
                engine.end_call(resp.call_id(), resp.status().unwrap_or(500));
                engine.reply(&key, resp);
                return;
            }
        }
    }
}

fn next_step(engine: &Engine, key: &str, base: &mut Message, f: &mut Failover, late: bool) -> Step {
    let cfg = engine.config();
    let mut guard = engine.tables();
    let tables = &mut *guard;
    let Some(stx) = tables.server.get_mut(key) else {
        return Step::Done;
    };
    if stx.final_code.is_some() {
        stx.pending = stx.pending.saturating_sub(1);
        return Step::Done;
    }
    if stx.pending > 1 && !late {
        // The current branch has not ended; once anything came back from
        // it (state Proceeding), the normal timers apply.
        let silent = stx
            .branches
            .last()
            .and_then(|k| tables.client.get(k).map(|tx| (k, tx)))
            .filter(|(_, tx)| tx.state == ClientState::Trying)
            .filter(|(_, tx)| tx.created.elapsed() >= f.no_answer);
        return match silent {
            Some((k, _)) if !f.abandoned => Step::Abandon(k.clone()),
            _ => Step::Wait,
        };
    }
    let code = stx.best.as_ref().and_then(Message::status).unwrap_or(408);
    let failed = !late && !stx.cancelled && (code == 408 || (500..600).contains(&code));
    if failed {
        let why = match (&stx.best, f.abandoned) {
            (_, true) => format!("no answer in {} ms", f.no_answer.as_millis()),
            (
                Some(Message {
                    start: StartLine::Response { code, reason },
                    ..
                }),
                _,
            ) => {
                format!("{code} {reason}")
            }
            _ => format!("{code}"),
        };
        match &f.trunk {
            Some((trunk, _)) => {
                let owner = Owner::Trunk(trunk.clone());
                crate::features::dns::target_failed(engine, &owner, &f.current, &why)
            }
            None => {
                if f.current.lookup.is_some() {
                    let owner = super::names::owner(&f.set, &f.current);
                    crate::features::dns::target_failed(engine, &owner, &f.current, &why);
                }
                // A destination by name is down once its last target failed.
                let more_targets = f.rest.last().is_some_and(|n| n.uri == f.current.uri);
                if let (Some(set), false) = (cfg.dispatcher_sets.get(&f.set), more_targets) {
                    mark_down(set, &f.current, why);
                }
            }
        }
    }
    let next = match failed {
        true => loop {
            let Some(d) = f.rest.pop() else { break None };
            let down = f.trunk.is_none()
                && RUNTIME
                    .lock()
                    .dests
                    .get(&(f.set.clone(), d.uri.clone()))
                    .is_some_and(|s| is_down(s, Instant::now()));
            if !down {
                break Some(d);
            }
        },
        false => None,
    };
    let Some(d) = next else {
        stx.pending = 0;
        let last = stx.branches.last().and_then(|k| tables.client.get(k));
        let info = last.map(|tx| crate::call::BranchInfo {
            dest: tx.dest,
            transport: tx.transport,
            cseq: tx.request.cseq().map(|c| c.0).unwrap_or(1),
        });
        // The caller cancelled and the branch never answered: it ends as a
        // CANCEL does (487, §9.2), not with the local timeout.
        let terminated = match (stx.cancelled && f.abandoned, last) {
            (true, Some(tx)) => {
                let tag = engine.new_tag();
                Some(response_to(
                    &tx.request,
                    487,
                    "Request Terminated",
                    Some(&tag),
                ))
            }
            _ => None,
        };
        let Some(stx) = tables.server.get_mut(key) else {
            return Step::Done;
        };
        let best = terminated.or_else(|| stx.best.take());
        let resp = match (best, info, cfg.mode) {
            // B2BUA: the caller's answer is rebuilt on its own leg (and the call forgotten).
            (Some(b), Some(info), Mode::B2bua) => {
                match crate::features::b2bua::translate(engine, &stx.request, &b, info) {
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
        if let Some(call) = engine.b2b_calls().lock().get(base.call_id()) {
            let mut c = call.lock();
            c.b.cseq = c.b.cseq.max(cseq);
        }
    }
    tracing::info!(set = %f.set, code, next = %d.uri, addr = %d.addr, call_id = %base.call_id(), "dispatcher failover");
    let mut t = target(&f.number, &d);
    if let Some((trunk, ruri)) = &f.trunk {
        t.ruri = ruri.clone();
        t.trunk = Some(trunk.clone());
    }
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
            cancel_pending: cancelled,
            ..ClientTx::trying(Some(key), req, bytes.clone(), t.dest, t.transport, t.trunk)
        },
    );
    drop(guard);
    if f.trunk.is_none() {
        count_call(&cfg, &f.set, &d);
    }
    f.current = d;
    f.abandoned = false;
    Step::Send(t.transport, t.dest, bytes, ckey)
}
