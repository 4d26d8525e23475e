//! The B2BUA's calls: two legs each, listed under both their Call-IDs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::media_crypto::MediaCrypto;
use crate::config::Transport;
use crate::features::rtp_relay::Relay;
use crate::sip::{addr_uri, param, Message};

#[derive(Clone)]
pub struct Leg {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our identity on this leg (From of our requests).
    pub local_uri: String,
    /// The peer's identity on this leg.
    pub remote_uri: String,
    /// Contact of the peer: Request-URI of our requests on this leg.
    pub remote_target: String,
    pub dest: SocketAddr,
    pub transport: Transport,
    pub cseq: u32,
}

pub struct B2bCall {
    pub a: Leg,
    pub b: Leg,
    pub established: Option<Instant>,
    pub last_activity: Instant,
    /// Session interval the caller asked for (RFC 4028), if any.
    pub session_expires: Option<Duration>,
    /// Our ACK for B's 2xx, re-sent when B retransmits the 2xx.
    pub b_ack: Option<Vec<u8>>,
    /// Media relay of a call across the NAT boundary or between an SRTP
    /// and a plain leg.
    pub relay: Option<Arc<Relay>>,
    /// The relay's side A faces leg b: a transfer left the transferee,
    /// once the callee, as leg a.
    pub relay_swapped: bool,
    /// SRTP ending at the relay for one leg.
    pub media_crypto: Option<MediaCrypto>,
    /// The caller's extension, when it authenticated (it may transfer).
    pub a_ext: Option<String>,
    /// A transfer in progress: the Call-ID of the transferor's leg.
    pub transfer: Option<String>,
    /// Parked on this slot: leg a waits, leg b is gone.
    pub parked: Option<u32>,
    /// The caller's offer (Content-Type, SDP) until the call is answered:
    /// the transaction keeps no body, a pickup answers with it.
    pub offer: Option<(String, Vec<u8>)>,
}

impl Leg {
    /// Our leg towards the sender of the new request `req`, which came from
    /// `source` over `transport`; `local_tag` is our new tag.
    pub fn answering(
        req: &Message,
        local_tag: String,
        source: SocketAddr,
        transport: Transport,
    ) -> Leg {
        let from = req.header("From").unwrap_or("");
        Leg {
            call_id: req.call_id().to_owned(),
            local_tag,
            remote_tag: param(from, "tag").map(str::to_owned),
            local_uri: addr_uri(req.header("To").unwrap_or("")).to_owned(),
            remote_uri: addr_uri(from).to_owned(),
            remote_target: req
                .header("Contact")
                .map(addr_uri)
                .unwrap_or(addr_uri(from))
                .to_owned(),
            dest: source,
            transport,
            cseq: 0,
        }
    }
}

impl B2bCall {
    /// The relay side (true: A) that leg a (`leg_a`) or leg b faces.
    pub fn relay_side(&self, leg_a: bool) -> bool {
        leg_a != self.relay_swapped
    }
}

pub type Calls = Mutex<HashMap<String, Arc<Mutex<B2bCall>>>>;
