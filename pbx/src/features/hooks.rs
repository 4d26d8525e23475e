//! Where the features are registered with the engine: the `Hooks` of the
//! call layer, each handed to the feature(s) that take part at that point,
//! in order. A new feature is a module of its own plus its lines here (and
//! its state in `state`, if it keeps any); the other features stay as they are.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::call::{BranchInfo, Hooks, Late2xx, Outgoing};
use crate::config::{Mode, Transport};
use crate::features::accounting::{self, Meta};
use crate::features::state::{Call, Engine, Features};
use crate::features::{b2bua, nat_proxy, presence, routing, trunk_auth, trunk_registration};
use crate::sip::{param, Message};
use crate::transaction::ClientTx;

impl Hooks for Features {
    type CallData = Box<Meta>;
    type Retry = (Message, String);

    fn on_request(
        engine: &Arc<Engine>,
        key: &str,
        msg: Message,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        routing::route(engine, key, msg, source, transport, local);
    }

    fn on_ack(engine: &Arc<Engine>, msg: Message, source: SocketAddr, transport: Transport) {
        routing::forward_stateless(engine, msg, source, transport);
    }

    fn on_unmatched_response(engine: &Arc<Engine>, msg: &Message) -> bool {
        if nat_proxy::absorbs(msg) {
            return true; // the answer to a keepalive
        }
        if (200..300).contains(&msg.status().unwrap_or(0)) {
            // A 2xx retransmitted after its transaction ended: B2BUA re-ACKs.
            if let Some((t, d, b)) = b2bua::ack_again(engine, msg.call_id()) {
                engine.send(t, d, b);
                return true;
            }
            if nat_proxy::relay_late_2xx(engine, msg) {
                return true;
            }
        }
        trunk_registration::on_response(engine, msg)
    }

    fn rebuild_response(
        engine: &Engine,
        near_req: &Message,
        resp: &Message,
        branch: BranchInfo,
    ) -> Option<(Message, Option<Outgoing>)> {
        if engine.config().mode != Mode::B2bua {
            return nat_proxy::on_response(engine, resp, branch.dest, branch.transport)
                .map(|up| (up, None));
        }
        b2bua::translate(engine, near_req, resp, branch)
    }

    fn on_late_2xx(
        engine: &Arc<Engine>,
        resp: &Message,
        initial: Option<(Message, SocketAddr, Transport)>,
    ) -> Late2xx {
        let tag = param(resp.header("To").unwrap_or(""), "tag");
        let b2bua = engine.config().mode == Mode::B2bua;
        match (b2bua::ack_again_of(engine, resp.call_id(), tag), initial) {
            (Some(ack), _) => Late2xx::Ack(ack),
            // A 2xx of a branch given up or timed out: no call uses it.
            (None, Some((req, dest, t))) if b2bua => {
                b2bua::refuse_stray_answer(engine, &req, resp, dest, t);
                Late2xx::Handled
            }
            // A retransmitted 2xx of an anchored call: its SDP names the relay too.
            (None, _) if nat_proxy::relay_late_2xx(engine, resp) => Late2xx::Handled,
            (None, _) => Late2xx::Relay,
        }
    }

    fn retry_challenged(engine: &Engine, tx: &ClientTx, resp: &Message) -> Option<Self::Retry> {
        trunk_auth::retry_request(engine, tx, resp)
    }

    fn send_retry(
        engine: &Arc<Engine>,
        old: &str,
        skey: &str,
        retry: Self::Retry,
        dest: SocketAddr,
        transport: Transport,
    ) {
        trunk_auth::send_retry(engine, old, skey, retry, dest, transport);
    }

    fn on_own_response(
        engine: &Arc<Engine>,
        req: &Message,
        resp: &Message,
        branch: BranchInfo,
        first: bool,
    ) {
        if engine.config().mode == Mode::B2bua {
            b2bua::transfer::on_response(engine, req, resp, branch, first);
            b2bua::parking::on_response(engine, req, resp, first);
        }
        presence::on_response(engine, req, resp);
    }

    fn on_call_ended(engine: &Engine, call_id: &str, call: Call, code: u16) {
        accounting::ended(engine, call_id, call, code);
    }

    fn on_dialog_failed(engine: &Engine, call_id: &str) {
        engine.fraud().dialog_ended(call_id);
    }

    fn every_second(engine: &Arc<Engine>, tick: u64) {
        if engine.config().mode == Mode::B2bua {
            b2bua::expire_calls(engine);
            b2bua::transfer::sweep(engine);
            b2bua::parking::tick(engine);
        }
        if tick.is_multiple_of(10) {
            engine.fraud().sweep();
        }
        nat_proxy::every_second(engine, tick);
        presence::tick(engine);
        // Hourly, and a second after start: a box that was off for days
        // applies the retention at once.
        if tick == 1 || tick.is_multiple_of(3600) {
            // Directory scans: off the runtime's threads.
            let engine = engine.clone();
            tokio::task::spawn_blocking(move || {
                let cfg = engine.config();
                engine.media().voicemail.expire(&cfg);
                engine.media().recordings.expire(&cfg);
            });
        }
    }
}
