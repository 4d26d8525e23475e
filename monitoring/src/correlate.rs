//! Which call an RTP stream belongs to: the SDP media endpoints each call
//! announced, and when each call began and ended in SIP.
//!
//! Calls between the same two phones reuse addresses, ports and often SSRCs
//! (a replayed recording, an echo), so the 5-tuple and SSRC alone do not tell
//! calls apart: a stream is bound to its call when it starts, and the
//! analyzer ends it when a later call takes its endpoint or its call is over.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::analyzer::StreamKey;
use crate::sip::SipInfo;

/// RTP still in flight when a BYE passes: the far end sends until it gets it.
pub const END_GRACE_S: f64 = 1.0;

/// SDP media endpoint: the call that announced it last and its rtpmap.
#[derive(Debug, Clone)]
pub struct SdpEndpoint {
    pub call_id: String,
    pub seen: f64,
    pub rtpmap: Vec<(u8, String, u32)>,
}

/// A call seen in SIP (its first INVITE).
#[derive(Debug, Clone)]
pub struct Call {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub start: f64,
}

#[derive(Debug, Default)]
pub struct Signalling {
    pub calls: Vec<Call>,
    index: HashMap<String, usize>,
    sdp: HashMap<(IpAddr, u16), SdpEndpoint>,
    /// Call-ID -> when its BYE (or CANCEL) passed.
    ended: HashMap<String, f64>,
}

impl Signalling {
    pub fn sip(&mut self, ts: f64, info: SipInfo) {
        if info.is_invite && !self.index.contains_key(&info.call_id) {
            self.index.insert(info.call_id.clone(), self.calls.len());
            self.calls.push(Call {
                call_id: info.call_id.clone(),
                from: info.from.clone(),
                to: info.to.clone(),
                start: ts,
            });
        }
        if info.is_end {
            // Retransmitted BYEs do not move the end.
            self.ended.entry(info.call_id.clone()).or_insert(ts);
        }
        for m in info.media {
            let Some(addr) = m.address.filter(|_| m.port != 0) else {
                continue;
            };
            let ep = SdpEndpoint {
                call_id: info.call_id.clone(),
                seen: ts,
                rtpmap: m.rtpmap,
            };
            self.sdp.insert((addr, m.port), ep.clone());
            // RTCP on the next port belongs to the same call.
            self.sdp.insert((addr, m.port.wrapping_add(1)), ep);
        }
    }

    pub fn call(&self, call_id: &str) -> Option<&Call> {
        self.index.get(call_id).and_then(|&i| self.calls.get(i))
    }

    /// When the call's BYE or CANCEL passed.
    pub fn ended(&self, call_id: &str) -> Option<f64> {
        self.ended.get(call_id).copied()
    }

    /// The endpoint a packet at `ts` belongs to. The receiver's announcement
    /// (where it asked to receive) comes first, the sender's (symmetric RTP)
    /// second; a call still up beats one that just ended, and calls over for
    /// longer than the grace own nothing.
    pub fn owner(&self, ts: f64, key: &StreamKey) -> Option<&SdpEndpoint> {
        let found = [(key.dst, key.dst_port), (key.src, key.src_port)].map(|ep| self.sdp.get(&ep));
        let up = found
            .iter()
            .flatten()
            .find(|e| self.ended(&e.call_id).is_none());
        up.or_else(|| {
            found.iter().flatten().find(|e| {
                self.ended(&e.call_id)
                    .is_some_and(|end| ts <= end + END_GRACE_S)
            })
        })
        .copied()
    }

    /// Whether a stream bound to call `bound` since `first_seen` ends before
    /// a packet at `ts` whose endpoint now belongs to `owner`.
    pub fn ends_stream(
        &self,
        bound: &str,
        first_seen: f64,
        ts: f64,
        owner: Option<&SdpEndpoint>,
    ) -> bool {
        let bound_end = self.ended(bound);
        match owner {
            // Another call took the endpoint: a new call if it was announced
            // after ours ended or set up after our stream began. A B2BUA's
            // other leg announces the same endpoint during the same set-up
            // (and again in re-INVITEs) without ending anything.
            Some(o) if o.call_id != bound => {
                bound_end.is_some_and(|end| o.seen >= end)
                    || self.call(&o.call_id).is_some_and(|c| c.start > first_seen)
            }
            // Nobody announced anything new: the stream ends when its call is over.
            _ => bound_end.is_some_and(|end| ts > end + END_GRACE_S),
        }
    }

    /// Forgets signalling older than `before` of calls not in `live`.
    pub fn forget(&mut self, before: f64, live: &HashSet<String>) {
        self.sdp
            .retain(|_, e| e.seen >= before || live.contains(&e.call_id));
        self.calls
            .retain(|c| c.start >= before || live.contains(&c.call_id));
        self.ended.retain(|id, t| *t >= before || live.contains(id));
        self.index = self
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.call_id.clone(), i))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Media;

    fn sip(call_id: &str, invite: bool, end: bool, media: &[(&str, u16)]) -> SipInfo {
        SipInfo {
            call_id: call_id.to_string(),
            is_invite: invite,
            is_end: end,
            media: media
                .iter()
                .map(|(a, p)| Media {
                    address: a.parse().ok(),
                    port: *p,
                    payload_types: vec![0],
                    rtpmap: Vec::new(),
                })
                .collect(),
            ..SipInfo::default()
        }
    }

    fn key() -> StreamKey {
        StreamKey {
            src: "10.0.0.1".parse().unwrap(),
            src_port: 4000,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: 6000,
            ssrc: 7,
        }
    }

    #[test]
    fn next_call_on_the_same_endpoints_ends_the_stream() {
        let mut s = Signalling::default();
        s.sip(0.0, sip("c1", true, false, &[("10.0.0.1", 4000)]));
        s.sip(0.1, sip("c1", false, false, &[("10.0.0.2", 6000)]));
        assert_eq!(s.owner(1.0, &key()).map(|e| e.call_id.as_str()), Some("c1"));
        s.sip(10.0, sip("c1", false, true, &[]));
        // In flight right after the BYE: still the call's.
        assert!(!s.ends_stream("c1", 0.5, 10.5, s.owner(10.5, &key())));
        // Later, with nothing announced: the call is over.
        assert!(s.owner(12.0, &key()).is_none());
        assert!(s.ends_stream("c1", 0.5, 12.0, None));
        // The next call announces the endpoints right after the BYE.
        s.sip(10.2, sip("c2", true, false, &[("10.0.0.1", 4000)]));
        let o = s.owner(10.3, &key());
        assert_eq!(o.map(|e| e.call_id.as_str()), Some("c2"));
        assert!(s.ends_stream("c1", 0.5, 10.3, o));
    }

    #[test]
    fn sibling_leg_announcing_the_same_endpoint_keeps_the_stream() {
        let mut s = Signalling::default();
        s.sip(0.0, sip("leg1", true, false, &[("10.0.0.2", 6000)]));
        s.sip(0.05, sip("leg2", true, false, &[("10.0.0.2", 6000)]));
        // The stream began after both legs were set up, bound to leg2.
        let o = s.owner(1.0, &key());
        assert_eq!(o.map(|e| e.call_id.as_str()), Some("leg2"));
        // A re-INVITE on leg1 re-announces the endpoint mid-call.
        s.sip(30.0, sip("leg1", true, false, &[("10.0.0.2", 6000)]));
        let o = s.owner(30.1, &key());
        assert_eq!(o.map(|e| e.call_id.as_str()), Some("leg1"));
        assert!(!s.ends_stream("leg2", 1.0, 30.1, o));
    }
}
