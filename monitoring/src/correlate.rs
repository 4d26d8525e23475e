//! Which call an RTP stream belongs to: the SDP media endpoints each call
//! announced, and when each call began and ended in SIP.
//!
//! Calls between the same two phones reuse addresses, ports and often SSRCs
//! (a replayed recording, an echo), so the 5-tuple and SSRC alone do not tell
//! calls apart: a stream is bound to its call when it starts, and the
//! analyzer ends it when a later call takes its endpoint or its call is over.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::rtp::StreamKey;
use crate::sip::SipInfo;

/// RTP still in flight when a BYE passes: the far end sends until it gets it.
pub const END_GRACE_S: f64 = 1.0;

// Bounds against a flood of SIP (distinct Call-IDs, SDP with many m= lines):
// far above what a small office's box sees within the signalling TTL, and
// small enough (a few tens of MiB at most) for the box. When a table is
// full its oldest tenth goes: recent calls matter for correlation.
/// Calls remembered (by their first INVITE).
pub const MAX_CALLS: usize = 10_000;
/// SDP media endpoints remembered (two per m= line: RTP and RTCP).
pub const MAX_ENDPOINTS: usize = 40_000;
/// Ended calls remembered.
pub const MAX_ENDED: usize = 10_000;
/// Longest Call-ID, From or To kept (longer ones are cut).
pub const MAX_TEXT: usize = 256;
/// Payload types kept per endpoint (a=rtpmap lines).
pub const MAX_RTPMAP: usize = 16;

/// `s` cut to at most MAX_TEXT bytes, on a character boundary.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The `ts` below which about the oldest tenth of `times` lies.
fn oldest_tenth(times: impl Iterator<Item = f64>) -> f64 {
    let mut t: Vec<f64> = times.collect();
    let nth = t.len() / 10;
    if t.is_empty() {
        return f64::NEG_INFINITY;
    }
    let (_, cut, _) = t.select_nth_unstable_by(nth, f64::total_cmp);
    *cut
}

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
        let call_id = bounded(&info.call_id);
        if info.is_invite && !self.index.contains_key(&call_id) {
            if self.calls.len() >= MAX_CALLS {
                // In order of arrival: the oldest tenth is at the front.
                self.calls.drain(..MAX_CALLS / 10);
                self.reindex();
            }
            self.index.insert(call_id.clone(), self.calls.len());
            self.calls.push(Call {
                call_id: call_id.clone(),
                from: bounded(&info.from),
                to: bounded(&info.to),
                start: ts,
            });
        }
        if info.is_end && !self.ended.contains_key(&call_id) {
            if self.ended.len() >= MAX_ENDED {
                let cut = oldest_tenth(self.ended.values().copied());
                self.ended.retain(|_, t| *t > cut);
            }
            // Retransmitted BYEs do not move the end.
            self.ended.insert(call_id.clone(), ts);
        }
        for mut m in info.media {
            let Some(addr) = m.address.filter(|_| m.port != 0) else {
                continue;
            };
            if self.sdp.len() + 2 > MAX_ENDPOINTS {
                let cut = oldest_tenth(self.sdp.values().map(|e| e.seen));
                self.sdp.retain(|_, e| e.seen > cut);
            }
            m.rtpmap.truncate(MAX_RTPMAP);
            for (_, name, _) in &mut m.rtpmap {
                *name = bounded(name);
            }
            let ep = SdpEndpoint {
                call_id: call_id.clone(),
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
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index = self
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.call_id.clone(), i))
            .collect();
    }

    /// Entries held: (calls, SDP endpoints, ended calls).
    pub fn held(&self) -> (usize, usize, usize) {
        (self.calls.len(), self.sdp.len(), self.ended.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Media;

    fn invite(n: u32, ts_media: u16) -> SipInfo {
        SipInfo {
            call_id: format!("{n}@flood{}", "x".repeat(1000)),
            from: "f".repeat(5000),
            to: "sip:t@x".into(),
            is_invite: true,
            is_end: true,
            media: (0..8)
                .map(|i| Media {
                    address: Some(IpAddr::from([10, 0, (n >> 8) as u8, n as u8])),
                    port: ts_media.wrapping_add(i * 2),
                    payload_types: vec![0],
                    rtpmap: (0..20).map(|pt| (pt, "N".repeat(300), 8000)).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_flood_of_calls_stays_bounded_and_old_calls_expire() {
        let mut s = Signalling::default();
        for n in 0..12_000u32 {
            s.sip(f64::from(n) * 0.01, invite(n, 4000));
            let (calls, endpoints, ended) = s.held();
            assert!(calls <= MAX_CALLS && endpoints <= MAX_ENDPOINTS && ended <= MAX_ENDED);
        }
        for c in &s.calls {
            assert!(c.call_id.len() <= MAX_TEXT && c.from.len() <= MAX_TEXT);
        }
        for e in s.sdp.values() {
            assert!(e.rtpmap.len() <= MAX_RTPMAP);
            assert!(e.rtpmap.iter().all(|(_, n, _)| n.len() <= MAX_TEXT));
        }
        // The newest call is still known; the first ones were let go.
        assert!(s.call(&bounded(&invite(11_999, 0).call_id)).is_some());
        assert!(s.call(&bounded(&invite(0, 0).call_id)).is_none());
        // Everything older than the signalling TTL goes once no stream uses it.
        s.forget(1_000.0, &HashSet::new());
        assert_eq!(s.held(), (0, 0, 0));
    }

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
