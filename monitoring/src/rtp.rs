//! RTP header parsing and per-stream statistics after RFC 3550 appendix A.

use std::net::IpAddr;

/// One RTP stream as seen on the wire: its addresses, ports and SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ssrc: u32,
}

/// Fixed RTP header fields we use.
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Parses an RTP header; `None` for anything that is not RTP version 2 with a
/// consistent CSRC count, extension and padding, or whose type is RTCP's.
pub fn parse_header(p: &[u8]) -> Option<RtpHeader> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let pt = p[1] & 0x7f;
    // 72..=76 with the marker bit are RTCP SR/RR/SDES/BYE/APP (RFC 5761).
    if (72..=76).contains(&pt) {
        return None;
    }
    let cc = usize::from(p[0] & 0x0f);
    let mut len = 12 + 4 * cc;
    if p[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*p.get(len + 2)?, *p.get(len + 3)?]);
        len += 4 + 4 * usize::from(words);
    }
    if len > p.len() {
        return None;
    }
    if p[0] & 0x20 != 0 {
        let pad = usize::from(*p.last()?);
        if pad == 0 || len + pad > p.len() {
            return None;
        }
    }
    Some(RtpHeader {
        marker: p[1] & 0x80 != 0,
        payload_type: pt,
        seq: u16::from_be_bytes([p[2], p[3]]),
        timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    })
}

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u32 = 3000;
const MAX_MISORDER: u32 = 100;
const MIN_SEQUENTIAL: u32 = 2;
/// Window of extended sequence numbers remembered for duplicate detection.
const DUP_WINDOW: u64 = 1024;

/// Sequence bookkeeping of RFC 3550 A.1, plus duplicates, reordering and the
/// loss/receive transitions that give the burst ratio.
#[derive(Debug, Clone)]
pub struct SeqStats {
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Sequence errors (jumps beyond MAX_DROPOUT not confirmed by a second packet).
    pub seq_errors: u64,
    seen: Vec<u64>,
    // Two-state loss model counts (in sequence order of in-order arrivals).
    found_to_lost: u64,
    lost_to_found: u64,
    found_total: u64,
    lost_total: u64,
    last_was_lost: bool,
    /// RFC 3611 burst/gap classification of in-order arrivals.
    pub burst_gap: crate::burst::BurstGap,
}

impl SeqStats {
    pub fn new(seq: u16) -> Self {
        let mut s = SeqStats {
            max_seq: seq,
            cycles: 0,
            base_seq: u32::from(seq),
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            seq_errors: 0,
            seen: vec![0; (DUP_WINDOW / 64) as usize],
            found_to_lost: 0,
            lost_to_found: 0,
            found_total: 0,
            lost_total: 0,
            last_was_lost: false,
            burst_gap: crate::burst::BurstGap::default(),
        };
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.seen.iter_mut().for_each(|w| *w = 0);
        self.mark_seen(u64::from(seq));
    }

    pub fn extended_max(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max_seq)
    }

    pub fn expected(&self) -> u64 {
        if self.probation > 0 {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    pub fn validated(&self) -> bool {
        self.probation == 0
    }

    /// Burst ratio of the two-state model: 1/(p+q); 1 when there is no loss.
    pub fn burst_ratio(&self) -> f64 {
        if self.lost_total == 0 || self.found_total == 0 {
            return 1.0;
        }
        let p = self.found_to_lost as f64 / self.found_total as f64;
        let q = self.lost_to_found as f64 / self.lost_total as f64;
        if p + q <= 0.0 {
            1.0
        } else {
            (1.0 / (p + q)).max(1.0)
        }
    }

    fn mark_seen(&mut self, ext: u64) -> bool {
        let bit = ext % DUP_WINDOW;
        let (w, b) = ((bit / 64) as usize, bit % 64);
        let was = self.seen[w] & (1 << b) != 0;
        self.seen[w] |= 1 << b;
        was
    }

    fn clear_seen(&mut self, ext: u64) {
        let bit = ext % DUP_WINDOW;
        self.seen[(bit / 64) as usize] &= !(1 << (bit % 64));
    }

    fn record_run(&mut self, lost: u64) {
        if lost > 0 {
            if !self.last_was_lost {
                self.found_to_lost += 1;
            }
            self.lost_total += lost;
            self.lost_to_found += 1;
        }
        self.found_total += 1;
        self.last_was_lost = false;
        self.burst_gap.received(lost);
    }

    /// RFC 3550 A.1 update_seq. Returns true when the packet counts as received.
    ///
    /// Deviations on purpose, so counts agree with tshark (which counts every
    /// packet of a stream): the probation packets are counted and the base is
    /// the first of them (RFC 3550 drops them), and the second packet may be
    /// up to MAX_MISORDER ahead (a loss right at the start does not restart
    /// the probation).
    pub fn update(&mut self, seq: u16) -> bool {
        let udelta = u32::from(seq.wrapping_sub(self.max_seq));
        if self.probation > 0 {
            if self.probation == MIN_SEQUENTIAL {
                // First packet of the source.
                self.probation -= 1;
                self.base_seq = u32::from(seq);
                self.max_seq = seq;
                self.received = 1;
                return true;
            }
            if (1..=MAX_MISORDER).contains(&udelta) {
                // Second packet close ahead of the first: the source is valid.
                let first = self.base_seq as u16;
                let received = self.received + 1;
                self.init_seq(first);
                self.max_seq = seq;
                if seq < first {
                    self.cycles = RTP_SEQ_MOD;
                }
                self.mark_seen(self.extended_max());
                self.probation = 0;
                self.received = received;
                self.found_total = received - 1;
                self.burst_gap.received(0);
                self.record_run(u64::from(udelta) - 1);
                return true;
            }
            // Not in sequence: start the probation again from this packet.
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
            self.received = 1;
            return true;
        }
        if udelta == 0 {
            // The highest packet again.
            self.duplicates += 1;
        } else if udelta < MAX_DROPOUT {
            let old_ext = self.extended_max();
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD;
            }
            self.max_seq = seq;
            let ext = self.extended_max();
            for gap in old_ext + 1..ext {
                self.clear_seen(gap);
            }
            if ext.saturating_sub(old_ext) > DUP_WINDOW {
                self.seen.iter_mut().for_each(|w| *w = 0);
            }
            self.mark_seen(ext);
            self.record_run(ext - old_ext - 1);
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                self.seq_errors += 1;
                return false;
            }
        } else {
            // Duplicate or reordered packet (behind the highest sequence).
            let back = u64::from(RTP_SEQ_MOD - udelta);
            let ext = self.extended_max().saturating_sub(back);
            if back < DUP_WINDOW && self.mark_seen(ext) {
                self.duplicates += 1;
            } else {
                self.out_of_order += 1;
            }
        }
        self.received += 1;
        true
    }
}

/// Interarrival jitter (RFC 3550 A.8) in timestamp units, and the mean and
/// maximum of its values in ms, as tshark reports them.
#[derive(Debug, Clone, Default)]
pub struct Jitter {
    last_transit: Option<f64>,
    pub jitter: f64,
    pub max_ms: f64,
    sum_ms: f64,
    samples: u64,
    last_arrival: Option<f64>,
    pub max_delta_ms: f64,
    /// The running RFC 3550 estimate in ms after the last packet.
    pub last_ms: f64,
}

impl Jitter {
    /// `arrival` in seconds, `clock` in Hz.
    pub fn update(&mut self, arrival: f64, timestamp: u32, clock: f64) {
        if let Some(prev) = self.last_arrival {
            let delta = (arrival - prev) * 1000.0;
            if delta > self.max_delta_ms {
                self.max_delta_ms = delta;
            }
        }
        self.last_arrival = Some(arrival);
        // Transit in timestamp units; the RTP timestamp wraps, so compare
        // differences modulo 2^32 as signed values.
        let transit = arrival * clock - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let mut d = transit - last;
            let wrap = 4_294_967_296.0;
            d = d.rem_euclid(wrap);
            if d > wrap / 2.0 {
                d -= wrap;
            }
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        let ms = self.jitter * 1000.0 / clock;
        self.last_ms = ms;
        if ms > self.max_ms {
            self.max_ms = ms;
        }
        self.sum_ms += ms;
        self.samples += 1;
    }

    /// Forget the transit reference (after a telephone-event or CN run whose
    /// timestamps do not follow the voice clock).
    pub fn resync(&mut self) {
        self.last_transit = None;
    }

    pub fn mean_ms(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.sum_ms / self.samples as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u16]) -> SeqStats {
        let mut s = SeqStats::new(seqs[0]);
        for &q in seqs {
            s.update(q);
        }
        s
    }

    #[test]
    fn clean_stream() {
        let s = feed(&(100..200).collect::<Vec<_>>());
        assert_eq!((s.received, s.expected()), (100, 100));
    }

    #[test]
    fn wraparound_loss_dup_reorder() {
        let mut seqs: Vec<u16> = (65500..=65535).chain(0..50).collect();
        seqs.retain(|&q| q != 10 && q != 11);
        seqs.insert(40, 65530); // duplicate
        seqs.swap(45, 46); // reordering
        let s = feed(&seqs);
        assert_eq!(s.expected(), 86);
        assert_eq!(s.received, 85);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.out_of_order, 1);
    }

    #[test]
    fn loss_right_after_the_first_packet() {
        let s = feed(&[10, 12, 13, 14]);
        assert_eq!((s.received, s.expected()), (4, 5));
        let s = feed(&[10, 30000, 30001, 30002]);
        assert_eq!(
            (s.received, s.expected()),
            (3, 3),
            "a stray first packet is dropped by the probation"
        );
    }

    #[test]
    fn duplicate_of_highest() {
        let s = feed(&[5, 6, 7, 7, 8]);
        assert_eq!((s.received, s.duplicates, s.expected()), (5, 1, 4));
    }

    #[test]
    fn big_jump_is_resync_after_two() {
        let mut seqs: Vec<u16> = (0..10).collect();
        seqs.extend(40000..40010);
        let s = feed(&seqs);
        assert_eq!(s.seq_errors, 1);
        assert!(s.received >= 18);
    }

    #[test]
    fn burst_ratio_random_vs_bursty() {
        // Single losses spread out: BurstR ≈ 1.
        let random: Vec<u16> = (0..1000).filter(|q| q % 20 != 7).collect();
        assert!((feed(&random).burst_ratio() - 1.0).abs() < 0.1);
        // Same loss rate in bursts of 5.
        let bursty: Vec<u16> = (0..1000).filter(|q| q % 100 >= 5).collect();
        assert!(feed(&bursty).burst_ratio() > 3.0);
    }

    #[test]
    fn absurd_headers_rejected() {
        assert!(parse_header(&[0x80; 11]).is_none());
        assert!(parse_header(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none()); // 15 CSRCs, no room
        assert!(parse_header(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]).is_none());
        assert!(parse_header(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]).is_none());
        assert!(parse_header(&[0x80, 0xc8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none()); // RTCP SR
        assert!(parse_header(&[0x80, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xd5]).is_some());
    }

    #[test]
    fn jitter_of_steady_stream_is_zero() {
        let mut j = Jitter::default();
        for i in 0..100u32 {
            j.update(f64::from(i) * 0.02, i * 160, 8000.0);
        }
        assert!(j.mean_ms() < 1e-6 && (j.max_delta_ms - 20.0).abs() < 1e-6);
    }
}
