//! The server side of the engine: messages from the transports, new
//! requests in their server transactions (RFC 3261 §17.2), our responses and
//! their retransmission (Timer G), ACK and CANCEL.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::cancel_branch;
use super::engine::{Engine, Hooks};
use super::location::unix_now;
use crate::config::Transport;
use crate::sip::{response_to, stamp_parsed_via, Message, ParseError, Via};
use crate::transaction::timers::Timer;
use crate::transaction::{
    server_key_with, Answered, ServerTx, ANSWERED_LINGER, LINGER, T1, T2, T4, TX_TIMEOUT,
};
use crate::transport::Sink;

/// Hands transport events to the engine.
pub struct EngineSink<H: Hooks>(pub Arc<Engine<H>>);

impl<H: Hooks> Sink for EngineSink<H> {
    fn on_message(&self, data: &[u8], source: SocketAddr, transport: Transport, local: SocketAddr) {
        self.0.on_message(data, source, transport, local);
    }
    fn on_oversized(
        &self,
        head: &[u8],
        source: SocketAddr,
        transport: Transport,
        _local: SocketAddr,
    ) {
        if let Some(reply) = error_reply(head, 513, "Message Too Large") {
            self.0.transports().send(transport, source, reply);
        }
    }
}

impl<H: Hooks> Engine<H> {
    pub fn on_message(
        self: &Arc<Self>,
        data: &[u8],
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keepalive
        }
        self.transports().tap(&crate::transport::tap::Copy {
            direction: crate::transport::tap::Direction::Received,
            transport,
            local,
            peer: source,
            bytes: data,
        });
        let (msg, top) = match Message::parse_with_top_via(data) {
            Ok(m) => m,
            Err(e) => {
                self.counters().malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%source, error = %e, "malformed SIP message");
                let code = if matches!(e, ParseError::TooLarge { .. }) {
                    513
                } else {
                    400
                };
                if let Some(reply) = error_reply(data, code, &e.to_string()) {
                    self.counters().reply(code);
                    self.send(transport, source, reply);
                }
                return;
            }
        };
        if msg.is_request() {
            self.on_request(msg, top, source, transport, local);
        } else {
            self.on_response(msg, source);
        }
    }

    fn on_request(
        self: &Arc<Self>,
        mut msg: Message,
        top: Via,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        self.counters().requests.fetch_add(1, Ordering::Relaxed);
        if transport.is_stream() {
            crate::transport::alias::from_via(self.transports(), &msg, &top, source);
        }
        // The top Via, parsed by the parser, serves both the stamp and the key.
        let stamped = msg
            .first_value("Via")
            .map(|value| stamp_parsed_via(value, &top, source));
        let top = Some(top);
        if let Some(stamped) = stamped {
            msg.replace_first_value("Via", stamped);
        }
        let method = msg.method().to_owned();
        match method.as_str() {
            "ACK" => {
                let key = server_key_with(&msg, top.as_ref(), "INVITE");
                return self.on_ack(key, msg, source, transport);
            }
            "CANCEL" => {
                let key = server_key_with(&msg, top.as_ref(), "INVITE");
                return self.on_cancel(key, msg, source, transport);
            }
            _ => {}
        }
        let key = server_key_with(&msg, top.as_ref(), &method);
        let max = self.config().max_transactions;
        {
            let mut tables = self.tables();
            if let Some(a) = tables.answered.get(&key) {
                let (dest, tr, last) = (a.source, a.transport, a.response.clone());
                drop(tables);
                self.send(tr, dest, last);
                return;
            }
            if let Some(tx) = tables.server.get(&key) {
                // Retransmission: answer with the last response, or absorb.
                if let Some(last) = tx.last_response.clone() {
                    let (dest, tr) = (tx.source, tx.transport);
                    drop(tables);
                    self.send(tr, dest, last);
                }
                return;
            }
            // A quarter of the table per source address at most.
            if tables.len() >= max || tables.of_source(source.ip()) >= (max / 4).max(1) {
                drop(tables);
                // One warning per second at most: a flood must not flood the log too.
                let now = unix_now();
                if self.first_full_warning_at(now) {
                    tracing::warn!(%source, max, "transaction table (or this source's quarter of it) full; answering 503");
                }
                let mut r = response_to(&msg, 503, "Service Unavailable", Some(&self.new_tag()));
                r.add_header("Retry-After", "5".into());
                self.counters().reply(503);
                self.send(transport, source, r.to_bytes());
                return;
            }
            tables.insert_server(
                key.clone(),
                ServerTx {
                    source,
                    transport,
                    request: msg.transaction_stub(),
                    last_response: None,
                    final_code: None,
                    acked: false,
                    cancelled: false,
                    branches: Vec::new(),
                    pending: 0,
                    best: None,
                    expires: None,
                },
            );
        }
        if method == "INVITE" {
            self.reply(&key, response_to(&msg, 100, "Trying", None));
        }
        H::on_request(self, &key, msg, source, transport, local);
    }

    /// Answers request `msg` of server transaction `key` with `code`, a
    /// To tag of ours and the `extra` headers (a challenge, Retry-After…).
    pub fn answer_with(
        self: &Arc<Self>,
        key: &str,
        msg: &Message,
        (code, reason): (u16, &str),
        extra: Vec<(&'static str, String)>,
    ) {
        let mut r = response_to(msg, code, reason, Some(&self.new_tag()));
        for (name, value) in extra {
            r.add_header(name, value);
        }
        self.reply(key, r);
    }

    /// Sends a response on a server transaction and remembers it for retransmissions.
    pub fn reply(self: &Arc<Self>, key: &str, resp: Message) {
        let code = resp.status().unwrap_or(500);
        self.counters().reply(code);
        let bytes = resp.to_bytes();
        let max = self.config().max_transactions;
        let mut tables = self.tables();
        let Some(tx) = tables.server.get_mut(key) else {
            return;
        };
        let is_invite = tx.request.method() == "INVITE";
        let (dest, transport) = (tx.source, tx.transport);
        if code >= 200 && !is_invite && tx.pending == 0 {
            // Answered here (REGISTER, OPTIONS, errors): keep only the response
            // for retransmissions, so a high request rate costs little memory.
            // Challenges are not kept: answering a retransmission with a fresh
            // challenge is harmless (it is what a stateless server does).
            tables.remove_server(key);
            if transport == Transport::Udp
                && code != 401
                && code != 407
                && tables.answered.len() < max
            {
                tables.answered.insert(
                    key.to_owned(),
                    Answered {
                        source: dest,
                        transport,
                        response: bytes.clone(),
                        expires: Instant::now() + ANSWERED_LINGER,
                    },
                );
            }
            drop(tables);
            self.send(transport, dest, bytes);
            return;
        }
        tx.last_response = Some(bytes.clone());
        if code >= 200 {
            tx.final_code = Some(code);
            let linger = if transport == Transport::Udp {
                LINGER
            } else {
                Duration::ZERO
            };
            let linger = if is_invite && code < 300 {
                linger.min(Duration::from_secs(5))
            } else {
                linger
            };
            tx.expires = Some(Instant::now() + linger);
        }
        drop(tables);
        self.send(transport, dest, bytes);
        if is_invite && code >= 300 && transport == Transport::Udp {
            self.spawn_timer_g(key.to_owned());
        }
    }

    /// Timer G: retransmit a final non-2xx INVITE response until the ACK comes.
    fn spawn_timer_g(self: &Arc<Self>, key: String) {
        self.timers().schedule(
            T1,
            Timer::G {
                key,
                start: Instant::now(),
                interval: T1,
            },
        );
    }

    /// One expiry of Timer G: resend and re-arm, or stop (ACKed, gone, Timer H).
    pub fn timer_g_fired(&self, key: String, start: Instant, interval: Duration) {
        let resend = {
            let tables = self.tables();
            match tables.server.get(&key) {
                Some(tx) if !tx.acked && start.elapsed() < TX_TIMEOUT => tx
                    .last_response
                    .clone()
                    .map(|b| (tx.transport, tx.source, b)),
                _ => None,
            }
        };
        if let Some((t, d, b)) = resend {
            self.send(t, d, b);
            let interval = (interval * 2).min(T2);
            self.timers().schedule(
                interval,
                Timer::G {
                    key,
                    start,
                    interval,
                },
            );
        }
    }

    fn on_ack(
        self: &Arc<Self>,
        key: String,
        msg: Message,
        source: SocketAddr,
        transport: Transport,
    ) {
        {
            let mut tables = self.tables();
            if tables.answered.contains_key(&key) {
                return; // ACK retransmission for a transaction already done
            }
            if let Some(tx) = tables.server.get_mut(&key) {
                if tx.final_code.is_some_and(|c| c >= 300) {
                    // ACK for our non-2xx final ends the transaction here (§17.2.1);
                    // keep only the response (Timer I) instead of the whole request.
                    if let Some(tx) = tables.remove_server(&key) {
                        if let Some(response) = tx.last_response {
                            tables.answered.insert(
                                key,
                                Answered {
                                    source: tx.source,
                                    transport: tx.transport,
                                    response,
                                    expires: Instant::now() + T4,
                                },
                            );
                        }
                    }
                    return;
                }
            }
        }
        // ACK for a 2xx is its own end-to-end request: route it like any in-dialog request.
        H::on_ack(self, msg, source, transport);
    }

    fn on_cancel(
        self: &Arc<Self>,
        key: String,
        msg: Message,
        source: SocketAddr,
        transport: Transport,
    ) {
        let tag = self.new_tag();
        let found = {
            let mut tables = self.tables();
            match tables.server.get_mut(&key) {
                Some(tx) => {
                    tx.cancelled = true;
                    Some((tx.branches.clone(), tx.final_code.is_some()))
                }
                None => None,
            }
        };
        let Some((branches, done)) = found else {
            self.counters().reply(481);
            let r = response_to(&msg, 481, "Call/Transaction Does Not Exist", Some(&tag));
            self.send(transport, source, r.to_bytes());
            return;
        };
        self.counters().reply(200);
        self.send(
            transport,
            source,
            response_to(&msg, 200, "OK", Some(&tag)).to_bytes(),
        );
        if done {
            return;
        }
        if branches.is_empty() {
            if let Some(req) = self.tables().server.get(&key).map(|t| t.request.clone()) {
                self.reply(
                    &key,
                    response_to(&req, 487, "Request Terminated", Some(&tag)),
                );
            }
            return;
        }
        for b in branches {
            cancel_branch(self, &b);
        }
    }
}

/// A stateless error reply built from whatever headers of a bad request can be read.
pub fn error_reply(data: &[u8], code: u16, reason: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    let method = first.split(' ').next()?;
    if first.starts_with("SIP/") || method == "ACK" || method.is_empty() {
        return None; // never answer responses or ACKs
    }
    let mut out = format!("SIP/2.0 {code} {}\r\n", reason.replace(['\r', '\n'], " "));
    let mut has_via = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let canonical = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => {
                if Via::parse(value).is_none() {
                    continue;
                }
                has_via = true;
                "Via"
            }
            "from" | "f" => "From",
            "to" | "t" => "To",
            "call-id" | "i" => "Call-ID",
            "cseq" => "CSeq",
            _ => continue,
        };
        out.push_str(&format!("{canonical}: {}\r\n", value.trim()));
    }
    if !has_via {
        return None;
    }
    out.push_str("Server: besip-pbxd\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}
