//! Transaction timers (RFC 3261 §17: A/B/E/F/C on client transactions, G on
//! INVITE server transactions) in one deadline heap served by a single task.
//! Arming a timer is a push under a short lock: no task per transaction, and
//! no wake-up of a runtime worker from the UDP threads for every request.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often the heap is looked at; timers fire at most this late.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission and timeout of a client transaction (key into the client table).
    Client { key: String, interval: Duration },
    /// Retransmission of a final non-2xx INVITE response until the ACK (Timer G/H).
    G {
        key: String,
        start: Instant,
        interval: Duration,
    },
}

#[derive(PartialEq, Eq)]
struct Entry {
    at: Instant,
    seq: u64,
    timer: Timer,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
pub struct Timers {
    heap: Mutex<(u64, BinaryHeap<Reverse<Entry>>)>,
}

impl Timers {
    pub fn schedule(&self, after: Duration, timer: Timer) {
        let at = Instant::now() + after;
        let mut heap = self.heap.lock();
        heap.0 += 1;
        let seq = heap.0;
        heap.1.push(Reverse(Entry { at, seq, timer }));
    }

    /// Takes every timer due at `now`, earliest first.
    pub fn due(&self, now: Instant) -> Vec<Timer> {
        let mut heap = self.heap.lock();
        let mut out = Vec::new();
        while heap.1.peek().is_some_and(|e| e.0.at <= now) {
            if let Some(Reverse(e)) = heap.1.pop() {
                out.push(e.timer);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.heap.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_in_deadline_order_and_only_when_due() {
        let t = Timers::default();
        let key = |k: &str| Timer::Client {
            key: k.into(),
            interval: Duration::ZERO,
        };
        t.schedule(Duration::from_millis(30), key("late"));
        t.schedule(Duration::ZERO, key("a"));
        t.schedule(Duration::ZERO, key("b"));
        assert_eq!(t.due(Instant::now()), vec![key("a"), key("b")]);
        assert_eq!(t.len(), 1);
        assert!(t.due(Instant::now()).is_empty());
        assert_eq!(
            t.due(Instant::now() + Duration::from_millis(40)),
            vec![key("late")]
        );
        assert!(t.is_empty());
    }
}
