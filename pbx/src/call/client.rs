//! Responses coming back on our branches (RFC 3261 §16.7): provisional
//! forwarding, best-response selection, 2xx forwarding with CANCEL of the
//! other branches, hop-by-hop ACK for non-2xx, and the client timers
//! (A/B/E/F retransmission and timeout, Timer C).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{Engine, Hooks};
use super::state::{BranchInfo, Late2xx, Outgoing};
use crate::config::Transport;
use crate::sip::{param, response_to, Message, StartLine, Via};
use crate::transaction::timers::Timer;
use crate::transaction::{
    client_key, response_rank, ClientState, ClientTx, LINGER, T1, T2, T4, TIMER_C, TX_TIMEOUT,
};

impl<H: Hooks> Engine<H> {
    pub fn on_response(self: &Arc<Self>, msg: Message, _source: SocketAddr) {
        let Some(via) = msg.top_via() else { return };
        let method = msg.cseq().map(|c| c.1.to_owned()).unwrap_or_default();
        let key = client_key(via.branch.as_deref().unwrap_or(""), &method);
        let known = self.tables().client.contains_key(&key);
        if !known && H::on_unmatched_response(self, &msg) {
            return;
        }
        if !known {
            forward_response_stateless(self, msg);
            return;
        }
        on_branch_response(self, &key, msg, false);
    }
}

/// Pops our Via and sends the response to the next one (no transaction left,
/// e.g. a 2xx retransmitted by the callee after the INVITE transaction ended).
fn forward_response_stateless<H: Hooks>(engine: &Engine<H>, mut msg: Message) {
    let Some(top) = msg.top_via() else { return };
    if !engine.is_local(&top.host, top.port) {
        return;
    }
    msg.remove_first_value("Via");
    let Some(next) = msg.first_value("Via").and_then(Via::parse) else {
        return;
    };
    let Some(dest) = next.response_target() else {
        return;
    };
    let transport = Transport::from_name(&next.transport).unwrap_or(Transport::Udp);
    if let Some(code) = msg.status() {
        engine.counters().reply(code);
    }
    engine.send(transport, dest, msg.to_bytes());
}

/// Upstream copy of a branch response: our Via removed.
fn upstream(msg: &Message) -> Message {
    let mut up = msg.clone();
    up.remove_first_value("Via");
    up
}

/// The response for the upstream side: relayed (proxy) or rebuilt by a
/// feature (B2BUA, which may also add its ACK for the far leg to `out`).
fn up_msg<H: Hooks>(
    engine: &Engine<H>,
    near_req: &Message,
    resp: &Message,
    info: BranchInfo,
    out: &mut Vec<Outgoing>,
) -> Message {
    if let Some((up, ack)) = H::rebuild_response(engine, near_req, resp, info) {
        out.extend(ack);
        return up;
    }
    upstream(resp)
}

fn ack_for(tx: &ClientTx, resp: &Message) -> Vec<u8> {
    let req = &tx.request;
    let mut ack = Message {
        start: StartLine::Request {
            method: "ACK".into(),
            uri: req.uri().to_owned(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Some(v) = req.first_value("Via") {
        ack.add_header("Via", v.to_string());
    }
    for r in req.header_values("Route") {
        ack.add_header("Route", r.to_owned());
    }
    ack.add_header("Max-Forwards", "70".into());
    ack.add_header("From", req.header("From").unwrap_or("").to_owned());
    ack.add_header("To", resp.header("To").unwrap_or("").to_owned());
    ack.add_header("Call-ID", req.call_id().to_owned());
    ack.add_header(
        "CSeq",
        format!("{} ACK", req.cseq().map(|c| c.0).unwrap_or(1)),
    );
    ack.to_bytes()
}

fn cancel_for(tx: &ClientTx) -> Message {
    let req = &tx.request;
    let mut c = Message {
        start: StartLine::Request {
            method: "CANCEL".into(),
            uri: req.uri().to_owned(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Some(v) = req.first_value("Via") {
        c.add_header("Via", v.to_string());
    }
    for r in req.header_values("Route") {
        c.add_header("Route", r.to_owned());
    }
    c.add_header("Max-Forwards", "70".into());
    for name in ["From", "To", "Call-ID"] {
        c.add_header(name, req.header(name).unwrap_or("").to_owned());
    }
    c.add_header(
        "CSeq",
        format!("{} CANCEL", req.cseq().map(|c| c.0).unwrap_or(1)),
    );
    c
}

/// Sends CANCEL on a branch now if it is ringing, or as soon as it answers (§9.1).
pub fn cancel_branch<H: Hooks>(engine: &Arc<Engine<H>>, key: &str) {
    let cancel = {
        let mut tables = engine.tables();
        let Some(tx) = tables.client.get_mut(key) else {
            return;
        };
        match tx.state {
            ClientState::Completed => return,
            ClientState::Trying => {
                tx.cancel_pending = true;
                return;
            }
            ClientState::Proceeding if tx.cancel_sent => return,
            ClientState::Proceeding => {
                tx.cancel_sent = true;
                (cancel_for(tx), tx.dest, tx.transport)
            }
        }
    };
    send_request_tx(engine, cancel.0, cancel.1, cancel.2);
}

/// A client transaction with no server side (our own CANCEL).
pub fn send_request_tx<H: Hooks>(
    engine: &Arc<Engine<H>>,
    req: Message,
    dest: SocketAddr,
    transport: Transport,
) {
    let branch = req.top_via().and_then(|v| v.branch).unwrap_or_default();
    let key = client_key(&branch, req.method());
    let bytes = req.to_bytes();
    engine.tables().client.insert(
        key.clone(),
        ClientTx::trying(None, req, bytes.clone(), dest, transport, None),
    );
    engine.send(transport, dest, bytes);
    spawn_client_timer(engine, key);
}

fn on_branch_response<H: Hooks>(engine: &Arc<Engine<H>>, key: &str, msg: Message, synthetic: bool) {
    let Some(code) = msg.status() else { return };
    let mut out: Vec<Outgoing> = Vec::new();
    let mut cancel_now = Vec::new();
    let mut final_up: Option<(String, Message, bool)> = None;
    let mut retry = None;
    {
        let mut tables = engine.tables();
        let Some(tx) = tables.client.get_mut(key) else {
            return;
        };
        let is_invite = tx.request.method() == "INVITE";
        let info = BranchInfo {
            dest: tx.dest,
            transport: tx.transport,
            cseq: tx.request.cseq().map(|c| c.0).unwrap_or(1),
        };
        // Timer D (32 s) keeps a failed INVITE branch to re-ACK retransmitted
        // finals; Timer K (T4) for non-INVITE; a 2xx ends an INVITE client
        // transaction at once (§17.1.1.2): later 2xx are relayed statelessly.
        let linger = match (tx.transport, is_invite) {
            (Transport::Tcp | Transport::Tls, _) => Duration::ZERO,
            (Transport::Udp, true) if (200..300).contains(&code) => Duration::ZERO,
            (Transport::Udp, true) => LINGER,
            (Transport::Udp, false) => T4,
        };
        let Some(skey) = tx.server_key.clone() else {
            // Our own CANCEL: a final answer ends it.
            if code >= 200 {
                tx.state = ClientState::Completed;
                tx.expires = Some(Instant::now() + linger);
            }
            return;
        };
        if code < 200 {
            // Completed: a branch given up for no answer (or a stray
            // provisional after its final): nothing of it goes upstream.
            let done = tx.state == ClientState::Completed;
            if tx.state == ClientState::Trying {
                tx.state = ClientState::Proceeding;
            }
            if tx.cancel_pending && !tx.cancel_sent {
                tx.cancel_sent = true;
                cancel_now.push((cancel_for(tx), tx.dest, tx.transport));
            }
            if code > 100 && !done {
                if let Some(stx) = tables.server.get_mut(&skey) {
                    if stx.final_code.is_none() {
                        let bytes = up_msg(engine, &stx.request, &msg, info, &mut out).to_bytes();
                        stx.last_response = Some(bytes.clone());
                        out.push((stx.transport, stx.source, bytes));
                        engine.counters().reply(code);
                    }
                    if let Some(c) = engine.calls().get_mut(stx.request.call_id()) {
                        c.state = "ringing";
                    }
                }
            }
        } else {
            let retransmission = tx.state == ClientState::Completed;
            tx.state = ClientState::Completed;
            tx.expires = Some(Instant::now() + linger);
            if is_invite && code >= 300 && !synthetic {
                out.push((tx.transport, tx.dest, ack_for(tx, &msg)));
            }
            if retransmission {
                // An initial INVITE's (no To tag): never a re-INVITE's.
                let initial = param(tx.request.header("To").unwrap_or(""), "tag").is_none();
                let branch = (code < 300 && is_invite && initial)
                    .then(|| (tx.request.clone(), tx.dest, tx.transport));
                drop(tables);
                if code < 300 {
                    match H::on_late_2xx(engine, &msg, branch) {
                        Late2xx::Ack(ack) => out.push(ack),
                        Late2xx::Handled => {}
                        Late2xx::Relay => forward_response_stateless(engine, msg),
                    }
                }
                for (t, d, b) in out {
                    engine.send(t, d, b);
                }
                return;
            }
            if (code == 401 || code == 407) && !synthetic {
                retry = H::retry_challenged(engine, tx, &msg)
                    .map(|r| (skey.clone(), r, tx.dest, tx.transport));
            }
            let branch_uri = (code < 300 && is_invite).then(|| tx.request.uri().to_owned());
            let stx = match retry {
                None => tables.server.get_mut(&skey),
                Some(_) => None, // the branch lives on as its retry
            };
            if let Some(stx) = stx {
                stx.pending = stx.pending.saturating_sub(1);
                if code < 300 {
                    // Every 2xx goes upstream (§16.7 step 5); the other branches are cancelled.
                    let up = up_msg(engine, &stx.request, &msg, info, &mut out);
                    engine.counters().reply(code);
                    if stx.final_code.is_none() {
                        stx.final_code = Some(code);
                        stx.last_response = Some(up.to_bytes());
                        let l = if stx.transport == Transport::Udp {
                            Duration::from_secs(5)
                        } else {
                            Duration::ZERO
                        };
                        stx.expires = Some(Instant::now() + l);
                    }
                    out.push((stx.transport, stx.source, up.to_bytes()));
                    if is_invite {
                        cancel_now.extend(
                            stx.branches
                                .iter()
                                .filter(|b| *b != key)
                                .map(|b| (cancel_marker(b), stx.source, stx.transport)),
                        );
                        if let Some(c) = engine.calls().get_mut(stx.request.call_id()) {
                            c.state = "established";
                            c.answered.get_or_insert_with(Instant::now);
                            if c.answered_uri.is_none() {
                                c.answered_uri = branch_uri;
                            }
                        }
                    }
                } else if stx.final_code.is_none() {
                    let better = stx
                        .best
                        .as_ref()
                        .and_then(Message::status)
                        .is_none_or(|b| response_rank(code) < response_rank(b));
                    if better {
                        stx.best = Some(msg.clone());
                    }
                    if stx.pending == 0 {
                        if let Some(best) = stx.best.take() {
                            let up = up_msg(engine, &stx.request, &best, info, &mut out);
                            let initial =
                                param(stx.request.header("To").unwrap_or(""), "tag").is_none();
                            final_up = Some((skey.clone(), up, initial));
                        }
                    }
                }
            }
        }
    }
    for (t, d, b) in out {
        engine.send(t, d, b);
    }
    if let Some((skey, req, dest, transport)) = retry {
        H::send_retry(engine, key, &skey, req, dest, transport);
    }
    for (c, dest, transport) in cancel_now {
        match c.method() {
            "CANCEL" => send_request_tx(engine, c, dest, transport),
            _ => cancel_branch(engine, c.uri()),
        }
    }
    if let Some((skey, resp, initial)) = final_up {
        if initial {
            // A dialog that never came to be.
            H::on_dialog_failed(engine, resp.call_id());
        }
        if resp.method() == "INVITE" {
            engine.end_call(resp.call_id(), resp.status().unwrap_or(500));
        }
        engine.reply(&skey, resp);
    }
}

/// A placeholder message carrying a branch key, so CANCELs of sibling
/// branches are sent after the table lock is released.
fn cancel_marker(key: &str) -> Message {
    Message {
        start: StartLine::Request {
            method: "X-CANCEL-BRANCH".into(),
            uri: key.to_owned(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Gives up an INVITE branch that has sent nothing at all (still Trying):
/// no more retransmissions, no CANCEL (§9.1 forbids one before a
/// provisional), a local 408 for the branch. Should the destination still
/// answer, a provisional gets a CANCEL and a final the ACK of a finished
/// branch. False when the branch has answered meanwhile or is gone.
pub fn abandon_branch<H: Hooks>(engine: &Arc<Engine<H>>, key: &str) -> bool {
    let timeout = {
        let mut tables = engine.tables();
        let Some(tx) = tables.client.get_mut(key) else {
            return false;
        };
        if tx.state != ClientState::Trying {
            return false;
        }
        tx.cancel_pending = true;
        response_to(&tx.request, 408, "Request Timeout", None)
    };
    on_branch_response(engine, key, timeout, true);
    // Kept (also over TCP) so late answers are caught here, not relayed.
    if let Some(tx) = engine.tables().client.get_mut(key) {
        tx.expires = Some(Instant::now() + LINGER);
    }
    true
}

/// Timers A/B (INVITE) and E/F (non-INVITE), and Timer C for ringing INVITEs.
pub fn spawn_client_timer<H: Hooks>(engine: &Engine<H>, key: String) {
    arm_client_timer(engine, key, T1);
}

/// Arms the next check of a client transaction, if it is still there.
fn arm_client_timer<H: Hooks>(engine: &Engine<H>, key: String, interval: Duration) {
    let tcp = engine
        .tables()
        .client
        .get(&key)
        .map(|t| t.transport.is_stream());
    let Some(tcp) = tcp else { return };
    let after = if tcp {
        Duration::from_secs(1)
    } else {
        interval
    };
    engine
        .timers()
        .schedule(after, Timer::Client { key, interval });
}

/// One expiry of a client transaction's timer: retransmit, cancel, time out
/// or re-arm.
pub fn client_timer_fired<H: Hooks>(engine: &Arc<Engine<H>>, key: String, mut interval: Duration) {
    enum Act {
        Stop,
        Wait,
        Resend(Transport, SocketAddr, Vec<u8>),
        Cancel,
        Timeout(Message),
    }
    let act = {
        let tables = engine.tables();
        match tables.client.get(&key) {
            None => Act::Stop,
            Some(tx) => {
                let age = tx.created.elapsed();
                let invite = tx.request.method() == "INVITE";
                let udp = tx.transport == Transport::Udp;
                match tx.state {
                    ClientState::Completed => Act::Stop,
                    ClientState::Trying if age >= TX_TIMEOUT => {
                        Act::Timeout(response_to(&tx.request, 408, "Request Timeout", None))
                    }
                    ClientState::Proceeding if invite && age >= TIMER_C + TX_TIMEOUT => {
                        Act::Timeout(response_to(&tx.request, 408, "Request Timeout", None))
                    }
                    ClientState::Proceeding if invite && age >= TIMER_C && !tx.cancel_sent => {
                        Act::Cancel
                    }
                    ClientState::Proceeding if !invite && age >= TX_TIMEOUT => {
                        Act::Timeout(response_to(&tx.request, 408, "Request Timeout", None))
                    }
                    ClientState::Proceeding if invite => Act::Wait,
                    _ if udp => Act::Resend(tx.transport, tx.dest, tx.bytes.clone()),
                    _ => Act::Wait,
                }
            }
        }
    };
    match act {
        Act::Stop => return,
        Act::Wait => interval = Duration::from_secs(1),
        Act::Resend(t, d, b) => {
            engine.send(t, d, b);
            let invite = key.ends_with("|INVITE");
            interval = if invite {
                interval * 2
            } else {
                (interval * 2).min(T2)
            };
        }
        Act::Cancel => cancel_branch(engine, &key),
        Act::Timeout(resp) => {
            on_branch_response(engine, &key, resp, true);
            return;
        }
    }
    arm_client_timer(engine, key, interval);
}
