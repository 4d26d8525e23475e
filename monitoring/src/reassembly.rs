//! IPv4 reassembly of fragmented datagrams (large SIP messages over UDP),
//! bounded in entries, bytes and age so a flood of fragments cannot grow
//! it: at most MAX_PENDING_BYTES are held whatever arrives.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::decode::Ipv4Fragment;

/// Datagrams being rebuilt at once: only SIP over UDP is ever fragmented
/// here, and a few at a time; more are garbage or an attack.
const MAX_PENDING: usize = 256;
const MAX_DATAGRAM: usize = 65_535;
/// Parts of one datagram: 64 KiB over a 576-byte MTU is 120 fragments.
const MAX_PARTS: usize = 128;
/// Bytes held for one datagram: twice its largest size leaves room for
/// overlapping retransmissions, no more.
const MAX_DATAGRAM_BYTES: usize = 2 * MAX_DATAGRAM;
/// Bytes held for all datagrams together (a few dozen large SIP messages).
pub const MAX_PENDING_BYTES: usize = 4 << 20;
/// A datagram not complete after this long is given up (Linux's
/// ipfrag_time is also 30 s).
const TTL_S: f64 = 30.0;
/// How often (capture time) expired datagrams are looked for.
const SWEEP_EVERY_S: f64 = 1.0;

type Key = (Ipv4Addr, Ipv4Addr, u16, u8);

struct Pending {
    first_seen: f64,
    parts: Vec<(usize, Vec<u8>)>,
    /// Bytes in `parts`.
    bytes: usize,
    total: Option<usize>,
}

#[derive(Default)]
pub struct Reassembler {
    pending: HashMap<Key, Pending>,
    /// Bytes held by all of `pending`.
    bytes: usize,
    last_sweep: f64,
    /// Fragments dropped by a limit (table full, datagram too large or in
    /// too many parts) or with their datagram given up.
    pub dropped: u64,
}

impl Reassembler {
    /// Adds a fragment; returns the whole payload once every byte is there.
    pub fn add(&mut self, ts: f64, f: &Ipv4Fragment<'_>) -> Option<Vec<u8>> {
        if ts >= self.last_sweep + SWEEP_EVERY_S || self.pending.len() >= MAX_PENDING {
            self.expire(ts);
        }
        let key = (f.src, f.dst, f.id, f.protocol);
        let end = f.offset + f.data.len();
        let known = self.pending.get(&key);
        let is_new = known.is_none();
        let too_big = end > MAX_DATAGRAM
            || known.is_some_and(|p| {
                p.parts.len() >= MAX_PARTS || p.bytes + f.data.len() > MAX_DATAGRAM_BYTES
            });
        if too_big {
            self.give_up(&key);
            self.dropped += 1;
            return None;
        }
        let full = is_new && self.pending.len() >= MAX_PENDING;
        if full || self.bytes + f.data.len() > MAX_PENDING_BYTES {
            self.dropped += 1;
            return None;
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_seen: ts,
            parts: Vec::new(),
            bytes: 0,
            total: None,
        });
        if !f.more {
            p.total = Some(end);
        }
        p.parts.push((f.offset, f.data.to_vec()));
        p.bytes += f.data.len();
        self.bytes += f.data.len();
        let total = p.total?;
        p.parts.sort_by_key(|(o, _)| *o);
        let mut covered = 0;
        for (o, d) in &p.parts {
            if *o > covered {
                return None;
            }
            covered = covered.max(o + d.len());
        }
        if covered < total {
            return None;
        }
        let p = self.pending.remove(&key)?;
        self.bytes -= p.bytes;
        let mut buf = vec![0u8; total];
        for (o, d) in p.parts {
            let n = d.len().min(total.saturating_sub(o));
            buf[o..o + n].copy_from_slice(&d[..n]);
        }
        Some(buf)
    }

    /// Gives up the datagrams first seen more than TTL_S before `ts`.
    fn expire(&mut self, ts: f64) {
        self.last_sweep = ts;
        let before = self.pending.len();
        let mut freed = 0;
        self.pending.retain(|_, p| {
            let keep = p.first_seen >= ts - TTL_S;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.dropped += (before - self.pending.len()) as u64;
    }

    fn give_up(&mut self, key: &Key) {
        if let Some(p) = self.pending.remove(key) {
            self.bytes -= p.bytes;
        }
    }

    /// Datagrams pending and the bytes they hold.
    pub fn held(&self) -> (usize, usize) {
        (self.pending.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(id: u16, offset: usize, more: bool, data: &[u8]) -> Ipv4Fragment<'_> {
        Ipv4Fragment {
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
            id,
            protocol: 17,
            offset,
            more,
            data,
        }
    }

    #[test]
    fn overlapping_and_out_of_order_parts() {
        let mut r = Reassembler::default();
        assert!(r.add(0.0, &frag(1, 16, false, b"cccccccc")).is_none());
        assert!(r.add(0.0, &frag(1, 0, true, b"aaaaaaaa")).is_none());
        let whole = r.add(0.0, &frag(1, 8, true, b"bbbbbbbbXX")).unwrap();
        assert_eq!(whole, b"aaaaaaaabbbbbbbbcccccccc");
    }

    #[test]
    fn floods_stay_within_count_bytes_and_time() {
        let mut r = Reassembler::default();
        let big = vec![0u8; 1480];
        // Many datagrams that never complete, each as large as allowed.
        for id in 0..2_000u16 {
            for part in 0..60 {
                r.add(f64::from(id) * 0.001, &frag(id, part * 1480, true, &big));
                let (count, bytes) = r.held();
                assert!(count <= MAX_PENDING && bytes <= MAX_PENDING_BYTES);
            }
        }
        // One datagram's parts repeated for ever: bounded, then given up.
        for _ in 0..1_000 {
            r.add(3.0, &frag(7, 0, true, &big));
        }
        assert!(r
            .pending
            .get(&(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 7, 17))
            .is_none_or(|p| p.bytes <= MAX_DATAGRAM_BYTES));
        assert!(r.dropped > 0);
        // Everything expires after TTL_S; a real datagram then goes through.
        assert!(r.add(100.0, &frag(9, 0, true, b"aaaaaaaa")).is_none());
        assert_eq!(r.held(), (1, 8));
        assert_eq!(
            r.add(100.5, &frag(9, 8, false, b"bb")).unwrap(),
            b"aaaaaaaabb"
        );
        assert_eq!(r.held(), (0, 0));
    }

    #[test]
    fn bounded_against_garbage() {
        let mut r = Reassembler::default();
        assert!(r.add(0.0, &frag(2, 65_530, false, b"0123456789")).is_none());
        for id in 0..10_000u16 {
            r.add(0.0, &frag(id, 8, true, b"x"));
        }
        assert!(r.pending.len() <= MAX_PENDING);
        // Old entries expire and make room.
        assert!(r.add(100.0, &frag(60_000, 0, true, b"y")).is_none());
        assert!(r.pending.len() < MAX_PENDING);
    }
}
