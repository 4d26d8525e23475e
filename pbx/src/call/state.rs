//! What the engine keeps besides transactions: the call list entry, the
//! counters, our sockets, and what a response hook learns of its branch.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::Transport;

/// A datagram or stream write: transport, destination, bytes.
pub type Outgoing = (Transport, SocketAddr, Vec<u8>);

/// Upper bounds (seconds) of the talk-time histogram: a short call, a
/// minute, a meeting, an hour.
const TALK_TIME_BUCKETS: [f64; 9] = [5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

pub struct Counters {
    pub requests: AtomicU64,
    pub replies: [AtomicU64; 6],
    pub auth_failures: AtomicU64,
    pub malformed: AtomicU64,
    /// Calls ended, and of them those that were answered.
    pub calls_ended: AtomicU64,
    pub calls_answered: AtomicU64,
    /// Talk time of answered calls, observed when they end.
    pub talk_time: besip_core::metrics::Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            replies: Default::default(),
            auth_failures: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            calls_ended: AtomicU64::new(0),
            calls_answered: AtomicU64::new(0),
            talk_time: besip_core::metrics::histogram(&TALK_TIME_BUCKETS),
        }
    }
}

impl Counters {
    pub fn reply(&self, code: u16) {
        let class = usize::from(code / 100).clamp(1, 6) - 1;
        self.replies[class].fetch_add(1, Ordering::Relaxed);
    }
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A call ended; `answered`: when it was answered, if it was.
    pub fn call_ended(&self, answered: Option<Instant>) {
        self.calls_ended.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = answered {
            self.calls_answered.fetch_add(1, Ordering::Relaxed);
            self.talk_time.observe(at.elapsed().as_secs_f64());
        }
    }
}

/// A call in the call list; `D` is what the features keep with it
/// (`Hooks::CallData`).
#[derive(Debug, Clone)]
pub struct Call<D> {
    pub caller: String,
    pub callee: String,
    pub start: String,
    pub state: &'static str,
    /// When the call was answered (for its CDR).
    pub answered: Option<Instant>,
    /// The Request-URI of the branch that answered (who answered, for its CDR).
    pub answered_uri: Option<String>,
    /// The features' data of the call (accounting: trunk, rate, credit limit).
    pub data: Option<D>,
}

/// One bound socket: what it is bound to and what we write in Via/Record-Route.
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket {
    pub transport: Transport,
    pub bound: SocketAddr,
    pub advertised: SocketAddr,
}

/// What a response hook needs of the branch a response came on.
#[derive(Clone, Copy)]
pub struct BranchInfo {
    pub dest: SocketAddr,
    pub transport: Transport,
    pub cseq: u32,
}

/// Where one branch goes.
pub struct Target {
    pub ruri: String,
    pub dest: SocketAddr,
    pub transport: Transport,
    /// Route headers to put on the branch (Path of the binding).
    pub routes: Vec<String>,
    /// The trunk the dialplan routed this branch to: only then do the
    /// trunk's credentials answer a challenge of the branch.
    pub trunk: Option<String>,
    /// A registered contact of ours (the call does not leave the box).
    pub contact: bool,
}

impl Target {
    /// A branch to somewhere outside (not a registered contact of ours).
    pub fn outside(ruri: String, dest: SocketAddr, transport: Transport) -> Target {
        Target {
            ruri,
            dest,
            transport,
            routes: vec![],
            trunk: None,
            contact: false,
        }
    }
}

/// What becomes of a 2xx retransmitted on a finished INVITE branch.
pub enum Late2xx {
    /// A feature's ACK for it (the B2BUA's far leg).
    Ack(Outgoing),
    /// A feature took care of it.
    Handled,
    /// Nobody's: relay it statelessly upstream.
    Relay,
}
