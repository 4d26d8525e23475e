//! The media relays of proxied calls, one per Call-ID: an RTP relay (even
//! ports of /pbx/rtp) and, unless the offer uses rtcp-mux, an RTCP relay on
//! the ports just above. Side A faces the caller, side B the callee. The
//! table is bounded by the port range: four ports per call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::Config;
use crate::features::rtp_relay::Relay;

use super::sdp::{self, Media};

/// One call's relays and what is known of its parties.
pub struct CallMedia {
    /// Shared with music on hold's player (which holds it weakly).
    pub rtp: std::sync::Arc<Relay>,
    pub rtcp: Option<Relay>,
    /// From tag of the caller (tells its requests from the callee's).
    pub caller_tag: String,
    /// Signalling addresses of the caller and (once it answers) the callee.
    pub caller: SocketAddr,
    pub callee: Option<SocketAddr>,
    pub nated: bool,
    pub rtcp_mux: bool,
    pub on_hold: bool,
    /// A 2xx answered the initial INVITE.
    pub answered: bool,
}

/// Why no relay could be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every port pair of the range is in use (or the table is full).
    NoRoom,
}

/// The most calls the range holds (RTP and RTCP pairs: four ports each).
pub fn max_relays(cfg: &Config) -> usize {
    let ports = usize::from(cfg.rtp_port_max.saturating_sub(cfg.rtp_port_min)) + 1;
    (ports / 4).max(1)
}

/// Relays by Call-ID.
#[derive(Default)]
pub struct Relays {
    pub map: HashMap<String, CallMedia>,
}

impl Relays {
    /// Opens the relays of a new call (RTCP beside RTP unless `rtcp_mux`).
    pub fn open(
        &mut self,
        cfg: &Config,
        call_id: &str,
        caller_tag: &str,
        caller: SocketAddr,
        nated: bool,
        rtcp_mux: bool,
    ) -> Result<(), Refused> {
        if self.map.contains_key(call_id) {
            return Ok(());
        }
        if self.map.len() >= max_relays(cfg) {
            return Err(Refused::NoRoom);
        }
        let bind: IpAddr = if caller.is_ipv6() {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        let (min, max) = (cfg.rtp_port_min, cfg.rtp_port_max);
        // The odd ports above a free even pair may be taken: a few tries.
        let mut pair = None;
        for _ in 0..8 {
            let Some(rtp) = Relay::open(bind, min, max) else {
                break;
            };
            if rtcp_mux {
                pair = Some((rtp, None));
                break;
            }
            if let Some(rtcp) = Relay::open_rtcp_beside(&rtp, bind, max) {
                pair = Some((rtp, Some(rtcp)));
                break;
            }
        }
        let Some((rtp, rtcp)) = pair else {
            return Err(Refused::NoRoom);
        };
        self.map.insert(
            call_id.to_owned(),
            CallMedia {
                rtp: std::sync::Arc::new(rtp),
                rtcp,
                caller_tag: caller_tag.to_owned(),
                caller,
                callee: None,
                nated,
                rtcp_mux,
                on_hold: false,
                answered: false,
            },
        );
        Ok(())
    }
}

impl CallMedia {
    /// SDP `body` from the caller (`from_caller`) or the callee, whose
    /// signalling comes from `sender`: its addresses become the relay's
    /// targets for that side, and the body returned names the relay at `ip`
    /// (the ports facing the other side).
    pub fn anchor(
        &mut self,
        from_caller: bool,
        sender: IpAddr,
        media: &Media,
        body: &str,
        ip: IpAddr,
    ) -> String {
        self.rtp.set_target(from_caller, media.rtp, sender);
        if let Some(rtcp) = &self.rtcp {
            rtcp.set_target(from_caller, media.rtcp, sender);
        }
        self.on_hold = media.hold;
        let (rtp_port, rtcp_port) = if from_caller {
            (self.rtp.b_port, self.rtcp.as_ref().map(|r| r.b_port))
        } else {
            (self.rtp.a_port, self.rtcp.as_ref().map(|r| r.a_port))
        };
        sdp::rewrite(body, ip, rtp_port, rtcp_port)
    }

    /// The signalling address of the party that receives what the caller
    /// (`from_caller`) or the callee sends; None while the callee is unknown.
    pub fn other_side(&self, from_caller: bool) -> Option<SocketAddr> {
        match from_caller {
            true => self.callee,
            false => Some(self.caller),
        }
    }

    /// Packets relayed, RTP and RTCP.
    pub fn relayed(&self) -> u64 {
        self.rtp.relayed() + self.rtcp.as_ref().map_or(0, Relay::relayed)
    }

    pub fn dropped(&self) -> u64 {
        self.rtp.dropped() + self.rtcp.as_ref().map_or(0, Relay::dropped)
    }

    /// Time since a packet last passed (RTP or RTCP).
    pub fn idle(&self) -> std::time::Duration {
        let rtp = self.rtp.idle();
        self.rtcp.as_ref().map_or(rtp, |r| rtp.min(r.idle()))
    }
}
