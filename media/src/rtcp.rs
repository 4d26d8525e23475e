//! RTCP sender and receiver reports (RFC 3550 §6.4) of the box's own
//! streams, and the reception statistics they carry (§A.3, §A.8).

/// What a receiver knows of one source.
#[derive(Debug, Clone, Default)]
pub struct Reception {
    pub ssrc: u32,
    base: Option<u32>,
    /// Extended highest sequence received.
    highest: u32,
    pub received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Interarrival jitter in timestamp units, ×16 (RFC 3550 A.8).
    jitter16: u32,
    last_transit: Option<i64>,
}

impl Reception {
    /// A packet of `ssrc` with `sequence` and RTP `timestamp` arrived at
    /// `arrival` (in timestamp units).
    pub fn packet(&mut self, ssrc: u32, sequence: u16, timestamp: u32, arrival: u32) {
        if self.base.is_none() || self.ssrc != ssrc {
            *self = Reception {
                ssrc,
                base: Some(u32::from(sequence)),
                highest: u32::from(sequence),
                ..Reception::default()
            };
        }
        self.received = self.received.wrapping_add(1);
        let delta = sequence.wrapping_sub(self.highest as u16) as i16;
        if delta > 0 {
            self.highest = self.highest.wrapping_add(delta as u32);
        }
        let transit = i64::from(arrival) - i64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs().min(u64::from(u32::MAX)) as u32;
            // J += (|D| - J) / 16, kept ×16.
            self.jitter16 = self
                .jitter16
                .wrapping_add(d)
                .wrapping_sub((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    pub fn expected(&self) -> u32 {
        self.base
            .map_or(0, |b| self.highest.wrapping_sub(b).wrapping_add(1))
    }

    /// Packets lost so far (never negative: duplicates do not count).
    pub fn lost(&self) -> u32 {
        self.expected().saturating_sub(self.received)
    }

    pub fn jitter(&self) -> u32 {
        self.jitter16 >> 4
    }

    /// One report block, and the interval's counters moved on.
    fn block(&mut self) -> [u8; 24] {
        let expected = self.expected();
        let interval_expected = expected.wrapping_sub(self.expected_prior);
        let interval_received = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let interval_lost = interval_expected.saturating_sub(interval_received);
        let fraction = if interval_expected == 0 {
            0
        } else {
            ((u64::from(interval_lost) << 8) / u64::from(interval_expected)).min(255) as u8
        };
        let lost = self.lost().min(0x7F_FFFF);
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        b[4] = fraction;
        b[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&self.highest.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter().to_be_bytes());
        // LSR/DLSR stay 0: we do not track the peer's sender reports.
        b
    }
}

/// A sender report of `ssrc` (with `packets`/`octets` sent, `ntp` the
/// wall clock as NTP 32.32 and `rtp_time` the matching RTP timestamp),
/// carrying a block for `reception` when something was received.
pub fn sender_report(
    ssrc: u32,
    ntp: u64,
    rtp_time: u32,
    packets: u32,
    octets: u32,
    reception: Option<&mut Reception>,
) -> Vec<u8> {
    let blocks = u8::from(reception.is_some());
    let words = 6 + 6 * u16::from(blocks);
    let mut p = vec![0x80 | blocks, 200];
    p.extend_from_slice(&words.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&rtp_time.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    if let Some(r) = reception {
        p.extend_from_slice(&r.block());
    }
    p
}

/// A receiver report of `ssrc` about `reception`.
pub fn receiver_report(ssrc: u32, reception: &mut Reception) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&reception.block());
    p
}

/// The wall clock as NTP 32.32 (seconds since 1900).
pub fn ntp_now() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() + 2_208_988_800;
    let frac = (u64::from(now.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// True for an RTCP packet (RFC 5761 §4: payload types 64–95 with the
/// marker bit are RTCP on a muxed port).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_and_fraction_are_counted() {
        let mut r = Reception::default();
        for s in (0u16..100).filter(|s| s % 10 != 3) {
            r.packet(7, s, u32::from(s) * 160, u32::from(s) * 160);
        }
        assert_eq!(r.expected(), 100);
        assert_eq!(r.lost(), 10);
        let rr = receiver_report(1, &mut r);
        assert_eq!(rr.len(), 32);
        assert_eq!(rr[1], 201);
        assert_eq!(&rr[8..12], &7u32.to_be_bytes());
        assert_eq!(rr[12], (10 * 256 / 100) as u8, "fraction lost");
        assert_eq!(&rr[13..16], &[0, 0, 10]);
        assert_eq!(r.jitter(), 0, "perfectly paced");
        assert!(is_rtcp(&rr));
    }

    #[test]
    fn jitter_grows_with_irregular_arrival() {
        let mut r = Reception::default();
        for s in 0u16..50 {
            let wobble = if s % 2 == 0 { 0 } else { 80 };
            r.packet(7, s, u32::from(s) * 160, u32::from(s) * 160 + wobble);
        }
        assert!(r.jitter() > 40, "{}", r.jitter());
    }

    #[test]
    fn sender_report_layout() {
        let mut r = Reception::default();
        r.packet(9, 1, 0, 0);
        let sr = sender_report(5, 1 << 32, 160, 3, 480, Some(&mut r));
        assert_eq!(sr.len(), 52);
        assert_eq!((sr[0], sr[1]), (0x81, 200));
        assert_eq!(u16::from_be_bytes([sr[2], sr[3]]), 12);
        let bare = sender_report(5, 0, 0, 0, 0, None);
        assert_eq!(bare.len(), 28);
    }
}
