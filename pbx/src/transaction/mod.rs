//! Transaction tables (RFC 3261 §17): server transactions keyed by the
//! received top Via (branch, sent-by, method), client transactions keyed by
//! our own branch and method. The proxy's per-request context (branches, best
//! response, CANCEL state) lives in the INVITE server transaction.

pub mod timers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::Transport;
use crate::sip::Message;

/// RFC 3261 §17.1.1.1 timer values.
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);
/// Timer B / F: 64*T1.
pub const TX_TIMEOUT: Duration = Duration::from_secs(32);
/// Timer C: a ringing branch is cancelled after this long.
pub const TIMER_C: Duration = Duration::from_secs(180);
/// How long a finished server transaction absorbs retransmissions (Timer J).
pub const LINGER: Duration = Duration::from_secs(32);
/// How long a response we generated ourselves answers retransmissions. Shorter
/// than Timer J: a UDP client retransmits at 0.5, 1, 2, 4, 4 … s, and nearly all
/// lost replies are caught by the first few; 8 s bounds memory at high rates.
pub const ANSWERED_LINGER: Duration = Duration::from_secs(8);

pub struct ServerTx {
    pub source: SocketAddr,
    pub transport: Transport,
    pub request: Message,
    pub last_response: Option<Vec<u8>>,
    pub final_code: Option<u16>,
    pub acked: bool,
    pub cancelled: bool,
    /// Client branches forked from this request (keys into the client table).
    pub branches: Vec<String>,
    pub pending: usize,
    pub best: Option<Message>,
    /// Removed by the sweeper after this instant.
    pub expires: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Calling (INVITE) or Trying (non-INVITE): retransmitting over UDP.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived.
    Completed,
}

pub struct ClientTx {
    pub server_key: Option<String>,
    pub request: Message,
    pub bytes: Vec<u8>,
    pub dest: SocketAddr,
    pub transport: Transport,
    pub state: ClientState,
    /// Upstream CANCEL arrived before any provisional response (RFC 3261 §9.1).
    pub cancel_pending: bool,
    pub cancel_sent: bool,
    pub created: Instant,
    pub expires: Option<Instant>,
    /// The trunk the box routed this request to (whose credentials may
    /// answer its challenge); None for everything else.
    pub trunk: Option<String>,
}

impl ClientTx {
    /// A request just sent (a branch of the server transaction `server_key`,
    /// or the box's own request with None): Trying, no CANCEL sent yet, no
    /// expiry until a provisional response.
    pub fn trying(
        server_key: Option<&str>,
        request: Message,
        bytes: Vec<u8>,
        dest: SocketAddr,
        transport: Transport,
        trunk: Option<String>,
    ) -> ClientTx {
        ClientTx {
            server_key: server_key.map(str::to_owned),
            request,
            bytes,
            dest,
            transport,
            state: ClientState::Trying,
            cancel_pending: false,
            cancel_sent: false,
            created: Instant::now(),
            expires: None,
            trunk,
        }
    }
}

/// A request we answered ourselves with a final response: only what is
/// needed to answer its retransmissions (Timer J), not the request itself.
pub struct Answered {
    pub source: SocketAddr,
    pub transport: Transport,
    pub response: Vec<u8>,
    pub expires: Instant,
}

#[derive(Default)]
pub struct Tables {
    pub server: HashMap<String, ServerTx>,
    pub client: HashMap<String, ClientTx>,
    pub answered: HashMap<String, Answered>,
    /// Live server transactions per source address: one source may hold only
    /// a share of the table, so a flood from one host cannot lock out others.
    per_source: HashMap<std::net::IpAddr, usize>,
}

impl Tables {
    /// Live transactions (the bounded part; answered entries have their own bound).
    pub fn len(&self) -> usize {
        self.server.len() + self.client.len()
    }

    /// Live server transactions of one source address.
    pub fn of_source(&self, ip: std::net::IpAddr) -> usize {
        self.per_source.get(&ip).copied().unwrap_or(0)
    }

    pub fn insert_server(&mut self, key: String, tx: ServerTx) {
        *self.per_source.entry(tx.source.ip()).or_default() += 1;
        if let Some(old) = self.server.insert(key, tx) {
            self.forget_source(old.source.ip());
        }
    }

    pub fn remove_server(&mut self, key: &str) -> Option<ServerTx> {
        let tx = self.server.remove(key)?;
        self.forget_source(tx.source.ip());
        Some(tx)
    }

    fn forget_source(&mut self, ip: std::net::IpAddr) {
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops finished transactions whose linger time is over.
    pub fn sweep(&mut self, now: Instant) {
        let mut gone = Vec::new();
        self.server.retain(|_, t| {
            let keep = t.expires.is_none_or(|e| e > now);
            if !keep {
                gone.push(t.source.ip());
            }
            keep
        });
        for ip in gone {
            self.forget_source(ip);
        }
        self.answered.retain(|_, a| a.expires > now);
        self.client.retain(|_, t| t.expires.is_none_or(|e| e > now));
        // A client transaction alive far beyond any timer lost its way: drop it.
        let hard_limit = TIMER_C + TX_TIMEOUT * 2;
        self.client
            .retain(|_, t| now.duration_since(t.created) < hard_limit);
    }
}

/// Server transaction key: ACK and CANCEL match their INVITE by branch (§17.2.3).
pub fn server_key(msg: &Message, method: &str) -> String {
    server_key_with(msg, msg.top_via().as_ref(), method)
}

/// `server_key` with the top Via already parsed.
pub fn server_key_with(msg: &Message, via: Option<&crate::sip::Via>, method: &str) -> String {
    use std::fmt::Write as _;
    let branch = via.and_then(|v| v.branch.as_deref()).unwrap_or_default();
    let mut key = String::with_capacity(branch.len() + method.len() + 40);
    if branch.starts_with("z9hG4bK") {
        key.push_str(branch);
    } else {
        // RFC 2543 peers: fall back to dialog identifiers.
        let from_tag = crate::sip::param(msg.header("From").unwrap_or(""), "tag").unwrap_or("");
        let cseq = msg.cseq().map(|c| c.0).unwrap_or(0);
        let _ = write!(key, "{}|{from_tag}|{cseq}", msg.call_id());
    }
    key.push('|');
    if let Some(v) = via {
        key.push_str(&v.host);
        key.push(':');
        let port = usize::from(v.port.unwrap_or(5060));
        key.push_str(crate::sip::text::decimal(port, &mut [0; 20]));
    }
    key.push('|');
    key.push_str(method);
    key
}

pub fn client_key(branch: &str, method: &str) -> String {
    format!("{branch}|{method}")
}

/// Rank of a final response for best-response selection (§16.7): lower wins.
pub fn response_rank(code: u16) -> u32 {
    match code {
        600..=699 => 0,
        200..=299 => 1,
        300..=399 => 2,
        // 408/503 say little about the callee; prefer any other 4xx.
        408 => 40,
        400..=499 => 3,
        503 => 50,
        500..=599 => 4,
        _ => 99,
    }
}
