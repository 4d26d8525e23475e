//! The engine: shared state of the daemon and the entry points the transports
//! call. Request routing is in `proxy`, response handling in `responses`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::auth::Authenticator;
use crate::config::{Config, Transport};
use crate::location::Location;
use crate::sip::{format_host, response_to, stamp_parsed_via, Message, ParseError, Via};
use crate::timers::{Timer, Timers};
use crate::transaction::{
    server_key_with, Answered, ServerTx, Tables, ANSWERED_LINGER, LINGER, T1, T2, T4, TX_TIMEOUT,
};
use crate::transport::{Sink, Transports};

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub replies: [AtomicU64; 6],
    pub auth_failures: AtomicU64,
    pub malformed: AtomicU64,
}

impl Counters {
    pub fn reply(&self, code: u16) {
        let class = usize::from(code / 100).clamp(1, 6) - 1;
        self.replies[class].fetch_add(1, Ordering::Relaxed);
    }
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub caller: String,
    pub callee: String,
    pub start: String,
    pub state: &'static str,
    /// When the call was answered (for its CDR).
    pub answered: Option<Instant>,
    /// Accounting data (trunk, rate, credit limit), when there is any.
    pub acct: Option<Box<crate::accounting::Meta>>,
}

/// One bound socket: what it is bound to and what we write in Via/Record-Route.
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket {
    pub transport: Transport,
    pub bound: SocketAddr,
    pub advertised: SocketAddr,
}

pub struct Engine {
    config: RwLock<Arc<Config>>,
    auth: RwLock<Arc<Authenticator>>,
    pub location: Arc<Location>,
    pub transports: Arc<Transports>,
    pub tables: Mutex<Tables>,
    pub calls: Mutex<HashMap<String, Call>>,
    /// Calls of the B2BUA mode, under both their Call-IDs.
    pub b2b: crate::b2bua::Calls,
    /// Transaction timers, served by `timers::run`.
    pub timers: Timers,
    pub counters: Counters,
    /// Outbound registrations to trunks.
    pub trunk_regs: crate::trunk_registration::Registrations,
    /// CDRs and prepaid balances.
    pub accounting: crate::accounting::Accounting,
    /// Toll-fraud protection: refusals, our dialogs, outbound calls, spend.
    pub fraud: crate::fraud::Guard,
    /// What we are bound to and name in Via / Record-Route; a reload may change it.
    sockets: RwLock<Vec<LocalSocket>>,
    instance: u32,
    seq: AtomicU64,
    last_full_warning: AtomicU64,
}

/// Hands transport events to the engine.
pub struct EngineSink(pub Arc<Engine>);

impl Sink for EngineSink {
    fn on_message(&self, data: &[u8], source: SocketAddr, transport: Transport, local: SocketAddr) {
        self.0.on_message(data, source, transport, local);
    }
    fn on_oversized(&self, head: &[u8], source: SocketAddr, _local: SocketAddr) {
        if let Some(reply) = error_reply(head, 513, "Message Too Large") {
            self.0.transports.send(Transport::Tcp, source, reply);
        }
    }
}

impl Engine {
    pub fn new(
        config: Config,
        location: Arc<Location>,
        transports: Arc<Transports>,
        sockets: Vec<LocalSocket>,
    ) -> Engine {
        transports.set_tcp_limits(config.tcp);
        let auth = Authenticator::new(
            config.realm.clone(),
            config.algorithms.clone(),
            config.nonce_lifetime,
        );
        Engine {
            config: RwLock::new(Arc::new(config)),
            auth: RwLock::new(Arc::new(auth)),
            location,
            transports,
            tables: Mutex::new(Tables::default()),
            calls: Mutex::new(HashMap::new()),
            b2b: Mutex::new(HashMap::new()),
            timers: Timers::default(),
            counters: Counters::default(),
            trunk_regs: Default::default(),
            accounting: Default::default(),
            fraud: Default::default(),
            sockets: RwLock::new(sockets),
            instance: rand::random(),
            seq: AtomicU64::new(0),
            last_full_warning: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    pub fn auth(&self) -> Arc<Authenticator> {
        self.auth.read().clone()
    }

    /// Applies a new configuration live; bindings, transactions and calls stay.
    /// Listen sockets are changed first by `reconfigure_listens`.
    pub fn apply(&self, config: Config) {
        let auth = self.auth().rebuild(
            config.realm.clone(),
            config.algorithms.clone(),
            config.nonce_lifetime,
        );
        *self.auth.write() = Arc::new(auth);
        self.transports.set_tcp_limits(config.tcp);
        *self.config.write() = Arc::new(config);
    }

    /// Brings the served sockets in line with `config` (new ones bound,
    /// removed ones closed, the rest untouched). On an error (a port taken)
    /// nothing changes and the reload must be refused.
    pub async fn reconfigure_listens(&self, config: &Config) -> Result<(), String> {
        let changed = self
            .transports
            .reconfigure(&config.listens)
            .await
            .map_err(|e| e.to_string())?;
        let sockets = local_sockets(&self.transports.listening(), config.external_address);
        if changed {
            for s in &sockets {
                tracing::info!(transport = ?s.transport, addr = %s.bound, "listening");
            }
        }
        *self.sockets.write() = sockets;
        Ok(())
    }

    /// The served socket bound to `local`.
    pub fn socket_bound_to(&self, local: SocketAddr) -> Option<LocalSocket> {
        self.sockets
            .read()
            .iter()
            .find(|s| s.bound == local)
            .copied()
    }

    /// The sockets served now.
    pub fn sockets(&self) -> Vec<LocalSocket> {
        self.sockets.read().clone()
    }

    pub fn new_tag(&self) -> String {
        // "{:08x}{:x}" of a random u32 and the sequence, without format!.
        let mut tag = String::with_capacity(24);
        crate::sip::message::push_hex(&mut tag, u64::from(rand::random::<u32>()), 8);
        crate::sip::message::push_hex(&mut tag, self.seq.fetch_add(1, Ordering::Relaxed), 1);
        tag
    }

    /// A branch with the magic cookie, our instance and the loop hash (§16.6 step 8).
    pub fn new_branch(&self, loop_hash: u32) -> String {
        format!(
            "z9hG4bKbsp{loop_hash:08x}x{:08x}{:x}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The socket we send from (and name in Via) for a transport and family.
    pub fn socket_for(&self, transport: Transport, v6: bool) -> LocalSocket {
        let same = |s: &&LocalSocket| s.transport == transport;
        let sockets = self.sockets.read();
        sockets
            .iter()
            .filter(same)
            .find(|s| s.advertised.is_ipv6() == v6)
            .or_else(|| sockets.iter().find(same))
            .or_else(|| sockets.first())
            .copied()
            .unwrap_or(LocalSocket {
                transport,
                bound: SocketAddr::from(([127, 0, 0, 1], 5060)),
                advertised: SocketAddr::from(([127, 0, 0, 1], 5060)),
            })
    }

    pub fn via_for(&self, transport: Transport, v6: bool, branch: &str) -> String {
        let s = self.socket_for(transport, v6);
        format!(
            "SIP/2.0/{} {}:{};branch={branch}",
            transport.as_via(),
            format_host(&s.advertised.ip()),
            s.advertised.port()
        )
    }

    /// True when host[:port] names this server (a domain of ours, or one of our sockets).
    pub fn is_local(&self, host: &str, port: Option<u16>) -> bool {
        if self.config().domains.iter().any(|d| d == host) {
            return true;
        }
        let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() else {
            return false;
        };
        let port = port.unwrap_or(5060);
        self.sockets
            .read()
            .iter()
            .any(|s| (s.advertised.ip() == ip || s.bound.ip() == ip) && s.advertised.port() == port)
    }

    /// True when `host` is a SIP domain we serve (configured, or our address).
    pub fn is_our_domain(&self, host: &str) -> bool {
        if self.config().domains.iter().any(|d| d == host) {
            return true;
        }
        let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() else {
            return false;
        };
        self.sockets
            .read()
            .iter()
            .any(|s| s.advertised.ip() == ip || s.bound.ip() == ip)
    }

    /// A digest-uri that names this server (host is our domain or address).
    pub fn uri_is_ours(&self, uri: &str) -> bool {
        crate::sip::Uri::parse(uri).is_some_and(|u| self.is_our_domain(&u.host))
    }

    pub fn send(&self, transport: Transport, dest: SocketAddr, bytes: Vec<u8>) {
        self.transports.send(transport, dest, bytes);
    }

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
        let (msg, top) = match Message::parse_with_top_via(data) {
            Ok(m) => m,
            Err(e) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%source, error = %e, "malformed SIP message");
                let code = if matches!(e, ParseError::TooLarge { .. }) {
                    513
                } else {
                    400
                };
                if let Some(reply) = error_reply(data, code, &e.to_string()) {
                    self.counters.reply(code);
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
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
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
            let mut tables = self.tables.lock();
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
                let now = crate::location::unix_now();
                if self.last_full_warning.swap(now, Ordering::Relaxed) != now {
                    tracing::warn!(%source, max, "transaction table (or this source's quarter of it) full; answering 503");
                }
                let mut r = response_to(&msg, 503, "Service Unavailable", Some(&self.new_tag()));
                r.add_header("Retry-After", "5".into());
                self.counters.reply(503);
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
        crate::proxy::route(self, &key, msg, source, transport, local);
    }

    /// Sends a response on a server transaction and remembers it for retransmissions.
    pub fn reply(self: &Arc<Self>, key: &str, resp: Message) {
        let code = resp.status().unwrap_or(500);
        self.counters.reply(code);
        let bytes = resp.to_bytes();
        let max = self.config().max_transactions;
        let mut tables = self.tables.lock();
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
        self.timers.schedule(
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
            let tables = self.tables.lock();
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
            self.timers.schedule(
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
            let mut tables = self.tables.lock();
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
        crate::proxy::forward_stateless(self, msg, source, transport);
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
            let mut tables = self.tables.lock();
            match tables.server.get_mut(&key) {
                Some(tx) => {
                    tx.cancelled = true;
                    Some((tx.branches.clone(), tx.final_code.is_some()))
                }
                None => None,
            }
        };
        let Some((branches, done)) = found else {
            self.counters.reply(481);
            let r = response_to(&msg, 481, "Call/Transaction Does Not Exist", Some(&tag));
            self.send(transport, source, r.to_bytes());
            return;
        };
        self.counters.reply(200);
        self.send(
            transport,
            source,
            response_to(&msg, 200, "OK", Some(&tag)).to_bytes(),
        );
        if done {
            return;
        }
        if branches.is_empty() {
            if let Some(req) = self
                .tables
                .lock()
                .server
                .get(&key)
                .map(|t| t.request.clone())
            {
                self.reply(
                    &key,
                    response_to(&req, 487, "Request Terminated", Some(&tag)),
                );
            }
            return;
        }
        for b in branches {
            crate::responses::cancel_branch(self, &b);
        }
    }

    /// Periodic housekeeping: finished transactions, expired bindings.
    pub async fn sweep_loop(self: Arc<Self>) {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.tables.lock().sweep(Instant::now());
            if self.config().mode == crate::config::Mode::B2bua {
                crate::b2bua::expire_calls(&self);
            }
            ticks += 1;
            if ticks % 10 == 0 {
                // Give memory freed after a burst back to the system (glibc keeps it otherwise).
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only releases free heap pages; no pointers are touched.
                unsafe {
                    libc::malloc_trim(0);
                }
                self.fraud.sweep();
                let n = self.location.sweep();
                if n > 0 {
                    tracing::info!(expired = n, "expired bindings removed");
                }
            }
        }
    }
}

/// Our sockets as named in Via / Record-Route: a wildcard address is
/// replaced by `external` (or loopback), duplicates dropped.
pub fn local_sockets(
    listening: &[(Transport, SocketAddr)],
    external: Option<IpAddr>,
) -> Vec<LocalSocket> {
    let mut sockets: Vec<LocalSocket> = Vec::new();
    for &(transport, addr) in listening {
        if sockets
            .iter()
            .any(|s| s.bound == addr && s.transport == transport)
        {
            continue;
        }
        let mut advertised = addr;
        if addr.ip().is_unspecified() {
            let ip = external.unwrap_or(if addr.is_ipv6() {
                std::net::Ipv6Addr::LOCALHOST.into()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            });
            tracing::warn!(%addr, %ip, "listening on a wildcard address; Via and Record-Route name {ip} (set nat external-address)");
            advertised.set_ip(ip);
        }
        sockets.push(LocalSocket {
            transport,
            bound: addr,
            advertised,
        });
    }
    sockets
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
