//! The engine: the daemon's shared state behind accessors, and the `Hooks`
//! through which the features plug into the call flow. The server side of
//! transactions is in `server`, the client side in `client`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use super::location::Location;
use super::state::{BranchInfo, Call, Counters, Late2xx, LocalSocket, Outgoing};
use crate::auth::Authenticator;
use crate::config::{Config, Transport};
use crate::sip::{format_host, Message, Uri};
use crate::transaction::timers::Timers;
use crate::transaction::{ClientTx, Tables};
use crate::transport::Transports;

/// How the features plug into the call flow. The engine owns the transaction
/// layer and calls these at the points where a feature decides; the one
/// implementation (`features::Features`) is chosen at compile time, so a hook
/// costs a direct call, no allocation and no lock. Every hook but the two
/// request ones has a default (what a plain proxy does), so a new hook is
/// added without touching the implementations that do not need it.
pub trait Hooks: Default + Send + Sync + Sized + 'static {
    /// What the features keep with a listed call.
    type CallData: Send + Clone + std::fmt::Debug + 'static;
    /// A challenged branch's retry, prepared under the table lock.
    type Retry: Send;

    /// A new request in its server transaction (100 Trying already sent
    /// for INVITE): route it, answer it, or hand it to a feature.
    fn on_request(
        engine: &Arc<Engine<Self>>,
        key: &str,
        msg: Message,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    );
    /// An ACK for a 2xx: its own end-to-end request, outside any transaction.
    fn on_ack(engine: &Arc<Engine<Self>>, msg: Message, source: SocketAddr, transport: Transport);
    /// A response that matches no client transaction; true when a feature took it.
    fn on_unmatched_response(engine: &Arc<Engine<Self>>, msg: &Message) -> bool {
        let _ = (engine, msg);
        false
    }
    /// The upstream response for a branch's `resp`, when a feature rebuilds
    /// it instead of relaying it, with an ACK to send on the branch.
    fn rebuild_response(
        engine: &Engine<Self>,
        near_req: &Message,
        resp: &Message,
        branch: BranchInfo,
    ) -> Option<(Message, Option<Outgoing>)> {
        let _ = (engine, near_req, resp, branch);
        None
    }
    /// A 2xx retransmitted on a finished branch; `initial` is the branch's
    /// initial INVITE (request, destination, transport), if it was one.
    fn on_late_2xx(
        engine: &Arc<Engine<Self>>,
        resp: &Message,
        initial: Option<(Message, SocketAddr, Transport)>,
    ) -> Late2xx {
        let _ = (engine, resp, initial);
        Late2xx::Relay
    }
    /// The retry of a branch challenged with 401/407, if a feature answers
    /// the challenge (called under the table lock).
    fn retry_challenged(
        engine: &Engine<Self>,
        tx: &ClientTx,
        resp: &Message,
    ) -> Option<Self::Retry> {
        let _ = (engine, tx, resp);
        None
    }
    /// Sends `retry` in place of the challenged branch `old` of server
    /// transaction `skey`.
    fn send_retry(
        engine: &Arc<Engine<Self>>,
        old: &str,
        skey: &str,
        retry: Self::Retry,
        dest: SocketAddr,
        transport: Transport,
    ) {
        let _ = (engine, old, skey, retry, dest, transport);
    }
    /// A response to a request the box sent itself (no server transaction),
    /// e.g. a transfer's INVITE; `first`: not a retransmitted final.
    fn on_own_response(
        engine: &Arc<Engine<Self>>,
        req: &Message,
        resp: &Message,
        branch: BranchInfo,
        first: bool,
    ) {
        let _ = (engine, req, resp, branch, first);
    }
    /// A call left the call list; `code` is its final answer (200 once answered).
    fn on_call_ended(engine: &Engine<Self>, call_id: &str, call: Call<Self::CallData>, code: u16) {
        let _ = (engine, call_id, call, code);
    }
    /// An initial INVITE failed: the dialog it would have made never came to be.
    fn on_dialog_failed(engine: &Engine<Self>, call_id: &str) {
        let _ = (engine, call_id);
    }
    /// Once a second (`tick` counts the seconds), for the features' housekeeping.
    fn every_second(engine: &Arc<Engine<Self>>, tick: u64) {
        let _ = (engine, tick);
    }
}

pub struct Engine<H: Hooks> {
    config: RwLock<Arc<Config>>,
    auth: RwLock<Arc<Authenticator>>,
    location: Arc<Location>,
    transports: Arc<Transports>,
    tables: Mutex<Tables>,
    calls: Mutex<HashMap<String, Call<H::CallData>>>,
    /// Transaction timers, served by `run_timers`.
    timers: Timers,
    counters: Counters,
    /// The features' own state.
    features: H,
    /// What we are bound to and name in Via / Record-Route; a reload may change it.
    sockets: RwLock<Vec<LocalSocket>>,
    instance: u32,
    seq: AtomicU64,
    last_full_warning: AtomicU64,
}

impl<H: Hooks> Engine<H> {
    pub fn new(
        config: Config,
        location: Arc<Location>,
        transports: Arc<Transports>,
        sockets: Vec<LocalSocket>,
    ) -> Engine<H> {
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
            timers: Timers::default(),
            counters: Counters::default(),
            features: H::default(),
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

    pub fn location(&self) -> &Arc<Location> {
        &self.location
    }

    pub fn transports(&self) -> &Arc<Transports> {
        &self.transports
    }

    /// The transaction tables, locked: keep the guard short.
    pub fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock()
    }

    /// The call list, locked: keep the guard short.
    pub fn calls(&self) -> MutexGuard<'_, HashMap<String, Call<H::CallData>>> {
        self.calls.lock()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(super) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The features' state (`Hooks` implementation).
    pub fn features(&self) -> &H {
        &self.features
    }

    /// One warning a second at most about a full transaction table: true
    /// when this second has had none yet.
    pub(super) fn first_full_warning_at(&self, now: u64) -> bool {
        self.last_full_warning.swap(now, Ordering::Relaxed) != now
    }

    /// Takes a call off the list and tells the features (its CDR);
    /// `code` is its final answer (200 once answered).
    pub fn end_call(&self, call_id: &str, code: u16) {
        let call = self.calls.lock().remove(call_id);
        if let Some(call) = call {
            self.counters.call_ended(call.answered);
            H::on_call_ended(self, call_id, call, code);
        }
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
        crate::sip::text::push_hex(&mut tag, u64::from(rand::random::<u32>()), 8);
        crate::sip::text::push_hex(&mut tag, self.seq.fetch_add(1, Ordering::Relaxed), 1);
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

    /// The user part of request `msg`'s Request-URI when that URI names
    /// one of our domains (a feature code, a parking slot, an extension).
    pub fn user_dialled_here(&self, msg: &Message) -> Option<String> {
        let ruri = Uri::parse(msg.uri())?;
        if !self.is_our_domain(&ruri.host) {
            return None;
        }
        ruri.user
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
