//! Sequential targets of one INVITE: what forwarding on busy/no answer and
//! ring groups (hunt, memory-hunt, final destination) share. A watcher
//! holds the server transaction open (one extra pending branch, as the
//! dispatcher's failover does), sends new branches of the same
//! transaction (RFC 3261 §16.7 allows a proxy to recurse; in B2BUA mode
//! each is the next INVITE of the far leg), cancels branches, and at the
//! end lets the best answer go up.

use std::sync::Arc;

use crate::call::{BranchInfo, Target};
use crate::config::Mode;
use crate::features::state::Engine;
use crate::sip::{response_to, Message};
use crate::transaction::{client_key, ClientTx, Tables};

/// Holds server transaction `key` open; the INVITE as sent on its first
/// branch, less our Via (the base of later branches). None when there is
/// nothing to hold (answered already, or no branch went out).
pub(crate) fn hold(engine: &Engine, key: &str) -> Option<Message> {
    let mut tables = engine.tables();
    let tables = &mut *tables;
    let stx = tables.server.get_mut(key)?;
    if stx.pending == 0 || stx.final_code.is_some() {
        return None;
    }
    let tx = stx.branches.first().and_then(|k| tables.client.get(k))?;
    let mut base = tx.request.clone();
    base.remove_first_value("Via");
    stx.pending += 1;
    Some(base)
}

/// Gives up branches: those that sent nothing yet are abandoned (no
/// CANCEL before a provisional answer, RFC 3261 §9.1), the others cancelled.
pub(crate) fn cancel(engine: &Arc<Engine>, keys: Vec<String>) {
    for k in keys {
        if !crate::call::client::abandon_branch(engine, &k) {
            crate::call::client::cancel_branch(engine, &k);
        }
    }
}

/// The INVITE failed for good: the caller gets `resp`.
pub(crate) fn finish(engine: &Arc<Engine>, key: &str, resp: Message) {
    engine.fraud().dialog_ended(resp.call_id());
    engine.end_call(resp.call_id(), resp.status().unwrap_or(500));
    engine.reply(key, resp);
}

/// The answer for the caller once every branch has ended (the hold
/// released): the best one, or `otherwise` when there is none.
pub(crate) fn final_answer(
    engine: &Engine,
    tables: &mut Tables,
    key: &str,
    otherwise: (u16, &'static str),
) -> Option<Message> {
    let cfg = engine.config();
    let stx = tables.server.get_mut(key)?;
    stx.pending = 0;
    let info = stx
        .branches
        .last()
        .and_then(|k| tables.client.get(k))
        .map(|tx| BranchInfo {
            dest: tx.dest,
            transport: tx.transport,
            cseq: tx.request.cseq().map(|c| c.0).unwrap_or(1),
        });
    let stx = tables.server.get_mut(key)?;
    let resp = match (stx.best.take(), info, cfg.mode) {
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
        _ => response_to(
            &stx.request,
            otherwise.0,
            otherwise.1,
            Some(&engine.new_tag()),
        ),
    };
    Some(resp)
}

/// One new branch of `key` per target, from `base`; false when the
/// transaction is gone or answered.
pub(crate) fn send(
    engine: &Arc<Engine>,
    key: &str,
    base: &mut Message,
    hash: u32,
    targets: Vec<Target>,
) -> bool {
    let cfg = engine.config();
    if cfg.mode == Mode::B2bua {
        // Our own dialog: the next INVITE of the far leg takes the next CSeq.
        let cseq = base.cseq().map(|c| c.0).unwrap_or(1) + 1;
        base.set_header("CSeq", format!("{cseq} INVITE"));
        if let Some(call) = engine.b2b_calls().lock().get(base.call_id()) {
            let mut c = call.lock();
            c.b.cseq = c.b.cseq.max(cseq);
        }
    }
    let mut sends = Vec::with_capacity(targets.len());
    {
        let mut guard = engine.tables();
        let tables = &mut *guard;
        let Some(stx) = tables.server.get_mut(key) else {
            return false;
        };
        if stx.final_code.is_some() {
            return false;
        }
        let cancelled = stx.cancelled;
        stx.best = None;
        for t in targets {
            let mut req = base.clone();
            req.set_uri(t.ruri);
            req.remove_headers("Route");
            for r in t.routes.iter().rev() {
                req.insert_first("Route", r.clone());
            }
            let branch = engine.new_branch(hash);
            req.push_header_front(
                "Via",
                engine.via_for(t.transport, t.dest.is_ipv6(), &branch),
            );
            let bytes = req.to_bytes();
            let ckey = client_key(&branch, "INVITE");
            stx.pending += 1;
            stx.branches.push(ckey.clone());
            tables.client.insert(
                ckey.clone(),
                ClientTx {
                    // The caller gave up meanwhile: the branch is cancelled once it rings.
                    cancel_pending: cancelled,
                    ..ClientTx::trying(Some(key), req, bytes.clone(), t.dest, t.transport, t.trunk)
                },
            );
            sends.push((t.transport, t.dest, bytes, ckey));
        }
    }
    for (transport, dest, bytes, ckey) in sends {
        engine.send(transport, dest, bytes);
        crate::call::client::spawn_client_timer(engine, ckey);
    }
    true
}
