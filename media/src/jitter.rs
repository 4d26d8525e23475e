//! An adaptive jitter buffer where audio is consumed (mixing, recording,
//! DTMF by ear): frames wait, ordered by RTP sequence, until the consumer's
//! 20 ms tick takes them. The depth grows by a frame each time a packet
//! arrives too late or the buffer runs dry, and shrinks by one when it has
//! stayed deeper than needed for a while. Its size is bounded whatever the
//! sender does.

use std::collections::BTreeMap;

use crate::Frame;

/// The most frames held; beyond it the oldest goes.
pub const CAPACITY: usize = 50;
/// The deepest the target grows (200 ms).
const MAX_TARGET: usize = 10;
/// Ticks the buffer must stay deeper than its target before it shrinks.
const SHRINK_AFTER: u32 = 250;

#[derive(Debug)]
pub struct JitterBuffer {
    frames: BTreeMap<u64, Frame>,
    /// Extended sequence of the next frame to play; None until playing.
    next: Option<u64>,
    /// Extended sequence of the last packet seen (for unwrapping).
    highest: Option<u64>,
    target: usize,
    deep_ticks: u32,
    pub late: u64,
    pub lost: u64,
    pub underruns: u64,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer::new(2)
    }
}

/// What a tick gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Played {
    Frame(Frame),
    /// A packet that should be here is missing (conceal it).
    Lost,
    /// Nothing buffered: the sender is silent, or the buffer refills.
    Empty,
}

impl JitterBuffer {
    pub fn new(target: usize) -> JitterBuffer {
        JitterBuffer {
            frames: BTreeMap::new(),
            next: None,
            highest: None,
            target: target.clamp(1, MAX_TARGET),
            deep_ticks: 0,
            late: 0,
            lost: 0,
            underruns: 0,
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The 16-bit `sequence` placed on a 64-bit line near the last one.
    fn extend(&mut self, sequence: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(sequence) + (1 << 32),
            Some(h) => {
                let delta = i64::from(sequence.wrapping_sub(h as u16) as i16);
                (h as i64 + delta) as u64
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// A frame that arrived with RTP `sequence`.
    pub fn push(&mut self, sequence: u16, frame: Frame) {
        let ext = self.extend(sequence);
        if self.next.is_some_and(|n| ext < n) {
            self.late += 1;
            self.grow();
            return;
        }
        self.frames.insert(ext, frame);
        while self.frames.len() > CAPACITY {
            self.frames.pop_first();
        }
    }

    fn grow(&mut self) {
        self.target = (self.target + 1).min(MAX_TARGET);
        self.deep_ticks = 0;
    }

    /// The consumer's 20 ms tick.
    pub fn pop(&mut self) -> Played {
        let Some(next) = self.next else {
            // Not playing: start once the target depth is reached.
            if self.frames.len() < self.target {
                return Played::Empty;
            }
            let Some((first, frame)) = self.frames.pop_first() else {
                return Played::Empty;
            };
            self.next = Some(first + 1);
            return Played::Frame(frame);
        };
        if self.frames.is_empty() {
            // Ran dry: refill to a deeper target before playing again.
            self.underruns += 1;
            self.next = None;
            self.grow();
            return Played::Empty;
        }
        if self.frames.len() > self.target + 2 {
            self.deep_ticks += 1;
            if self.deep_ticks >= SHRINK_AFTER && self.target > 1 {
                self.target -= 1;
                self.deep_ticks = 0;
                // Catch up by one frame.
                self.frames.pop_first();
            }
        } else {
            self.deep_ticks = 0;
        }
        // Frames older than `next` can be there after a catch-up.
        while self
            .frames
            .first_key_value()
            .is_some_and(|(k, _)| *k < next)
        {
            self.frames.pop_first();
        }
        match self.frames.first_key_value() {
            Some((k, _)) if *k == next => {
                self.next = Some(next + 1);
                self.frames
                    .pop_first()
                    .map_or(Played::Empty, |(_, f)| Played::Frame(f))
            }
            Some(_) => {
                self.lost += 1;
                self.next = Some(next + 1);
                Played::Lost
            }
            None => Played::Empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Frame {
        [v; crate::FRAME]
    }

    fn value(p: Played) -> Option<i16> {
        match p {
            Played::Frame(f) => Some(f[0]),
            _ => None,
        }
    }

    #[test]
    fn reordered_packets_play_in_order() {
        let mut j = JitterBuffer::new(3);
        for s in [10u16, 12, 11, 13, 15, 14] {
            j.push(s, frame(s as i16));
        }
        let played: Vec<_> = (0..6).filter_map(|_| value(j.pop())).collect();
        assert_eq!(played, vec![10, 11, 12, 13, 14, 15]);
        assert_eq!(j.lost, 0);
    }

    #[test]
    fn a_missing_packet_is_reported_lost_and_skipped() {
        let mut j = JitterBuffer::new(1);
        j.push(1, frame(1));
        j.push(3, frame(3));
        assert_eq!(value(j.pop()), Some(1));
        assert_eq!(j.pop(), Played::Lost);
        assert_eq!(value(j.pop()), Some(3));
        assert_eq!(j.lost, 1);
    }

    #[test]
    fn sequence_wraps_around() {
        let mut j = JitterBuffer::new(1);
        for s in [65534u16, 65535, 0, 1] {
            j.push(s, frame(s as i16));
        }
        let played: Vec<_> = (0..4).filter_map(|_| value(j.pop())).collect();
        assert_eq!(played, vec![-2, -1, 0, 1]);
    }

    #[test]
    fn late_packets_are_dropped_and_deepen_the_buffer() {
        let mut j = JitterBuffer::new(1);
        j.push(5, frame(5));
        j.push(6, frame(6));
        assert_eq!(value(j.pop()), Some(5));
        j.push(4, frame(4));
        assert_eq!(j.late, 1);
        assert_eq!(j.target(), 2);
        assert_eq!(value(j.pop()), Some(6));
    }

    #[test]
    fn a_flood_stays_bounded() {
        let mut j = JitterBuffer::new(2);
        for s in 0..10_000u32 {
            j.push(s as u16, frame(0));
        }
        assert!(j.len() <= CAPACITY);
        // Random sequences too.
        let mut x = 12345u32;
        for _ in 0..10_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            j.push((x >> 16) as u16, frame(0));
            if x % 3 == 0 {
                let _ = j.pop();
            }
        }
        assert!(j.len() <= CAPACITY);
    }

    #[test]
    fn running_dry_refills_before_playing() {
        let mut j = JitterBuffer::new(2);
        j.push(1, frame(1));
        assert_eq!(j.pop(), Played::Empty, "below the target");
        j.push(2, frame(2));
        assert_eq!(value(j.pop()), Some(1));
        assert_eq!(value(j.pop()), Some(2));
        assert_eq!(j.pop(), Played::Empty);
        assert_eq!(j.underruns, 1);
        assert_eq!(j.target(), 3);
    }
}
