//! Branches of a server transaction: one client transaction per target
//! (RFC 3261 §16.6), and the call list entry of a new INVITE.

use std::sync::Arc;

use super::client::spawn_client_timer;
use super::engine::{Engine, Hooks};
use super::state::{Call, Target};
use crate::sip::{addr_uri, Message};
use crate::transaction::{client_key, ClientTx};

/// Lists a new call in the state (bounded like the transaction table).
pub fn track_call<H: Hooks>(engine: &Engine<H>, call_id: &str, from: &str, callee: &str) {
    let mut calls = engine.calls();
    if calls.len() < engine.config().max_transactions {
        calls.insert(
            call_id.to_owned(),
            Call {
                caller: addr_uri(from).to_owned(),
                callee: callee.to_owned(),
                start: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                state: "trying",
                answered: None,
                answered_uri: None,
                data: None,
            },
        );
    }
}

/// Sends `base` to every target, each branch a client transaction of server transaction `key`.
pub fn send_branches<H: Hooks>(
    engine: &Arc<Engine<H>>,
    key: &str,
    base: &Message,
    targets: Vec<Target>,
    hash: u32,
) {
    let method = base.method().to_owned();
    let mut sends = Vec::with_capacity(targets.len());
    let mut keys = Vec::with_capacity(targets.len());
    {
        let mut tables = engine.tables();
        for t in targets {
            let mut req = base.clone();
            req.set_uri(t.ruri);
            for r in t.routes.iter().rev() {
                req.insert_first("Route", r.clone());
            }
            let branch = engine.new_branch(hash);
            req.push_header_front(
                "Via",
                engine.via_for(t.transport, t.dest.is_ipv6(), &branch),
            );
            let bytes = req.to_bytes();
            let ckey = client_key(&branch, &method);
            tables.client.insert(
                ckey.clone(),
                ClientTx::trying(Some(key), req, bytes.clone(), t.dest, t.transport, t.trunk),
            );
            sends.push((t.transport, t.dest, bytes));
            keys.push(ckey);
        }
        if let Some(tx) = tables.server.get_mut(key) {
            tx.pending = keys.len();
            tx.branches = keys.clone();
        }
    }
    for (t, d, b) in sends {
        engine.send(t, d, b);
    }
    for k in keys {
        spawn_client_timer(engine, k);
    }
}
