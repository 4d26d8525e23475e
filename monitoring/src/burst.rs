//! Loss bursts and gaps after RFC 3611 §4.7.2: a burst runs from a loss to
//! a loss with fewer than Gmin received packets in between and holds at least
//! two lost packets; everything else is gap.

pub const GMIN: u64 = 16;

#[derive(Debug, Clone, Default)]
pub struct BurstGap {
    since_loss: u64,
    open: bool,
    cand_pkts: u64,
    cand_lost: u64,
    burst_pkts: u64,
    burst_lost: u64,
    bursts: u64,
    total_pkts: u64,
    total_lost: u64,
}

/// Burst count and densities (percent of packets lost inside bursts / gaps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstSummary {
    pub bursts: u64,
    pub burst_density: f64,
    pub gap_density: f64,
}

impl BurstGap {
    /// A packet arrived in sequence after `lost_before` missing ones.
    pub fn received(&mut self, lost_before: u64) {
        if lost_before > 0 {
            if self.open && self.since_loss < GMIN {
                self.cand_pkts += self.since_loss + lost_before;
                self.cand_lost += lost_before;
            } else {
                self.close();
                self.open = true;
                self.cand_pkts = lost_before;
                self.cand_lost = lost_before;
            }
            self.since_loss = 0;
            self.total_pkts += lost_before;
            self.total_lost += lost_before;
        }
        self.since_loss += 1;
        self.total_pkts += 1;
    }

    fn close(&mut self) {
        if self.open && self.cand_lost >= 2 {
            self.burst_pkts += self.cand_pkts;
            self.burst_lost += self.cand_lost;
            self.bursts += 1;
        }
        self.open = false;
    }

    pub fn summary(&self) -> BurstSummary {
        let mut done = self.clone();
        done.close();
        let pct = |lost: u64, pkts: u64| {
            if pkts == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / pkts as f64
            }
        };
        BurstSummary {
            bursts: done.bursts,
            burst_density: pct(done.burst_lost, done.burst_pkts),
            gap_density: pct(
                done.total_lost - done.burst_lost,
                done.total_pkts - done.burst_pkts,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lost: &[u64], count: u64) -> BurstSummary {
        let mut b = BurstGap::default();
        let mut pending = 0;
        for i in 0..count {
            if lost.contains(&i) {
                pending += 1;
            } else {
                b.received(pending);
                pending = 0;
            }
        }
        b.summary()
    }

    #[test]
    fn bursts_and_gaps_with_gmin_16() {
        // 100..=104 with two received inside: one burst of 5 packets, 3 lost;
        // 500 alone: gap loss; 800, 801: a burst of 2.
        let s = run(&[100, 102, 104, 500, 800, 801], 1000);
        assert_eq!(s.bursts, 2);
        assert!((s.burst_density - 500.0 / 7.0).abs() < 1e-9, "{s:?}");
        assert!((s.gap_density - 100.0 / 993.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn spread_losses_are_all_gap() {
        let lost: Vec<u64> = (0..1000).filter(|i| i % 25 == 12).collect();
        let s = run(&lost, 1000);
        assert_eq!((s.bursts, s.burst_density), (0, 0.0));
        assert!((s.gap_density - 4.0).abs() < 1e-9);
        // 15 received between losses keeps them in one burst.
        let lost: Vec<u64> = (0..1000).filter(|i| i % 16 == 0 && *i > 0).collect();
        assert_eq!(run(&lost, 1000).bursts, 1);
    }
}
