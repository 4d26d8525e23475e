//! IPv4 reassembly of fragmented datagrams (large SIP messages over UDP),
//! bounded in entries, size and age so garbage cannot grow it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::decode::Ipv4Fragment;

const MAX_PENDING: usize = 256;
const MAX_DATAGRAM: usize = 65_535;
const TTL_S: f64 = 30.0;

type Key = (Ipv4Addr, Ipv4Addr, u16, u8);

struct Pending {
    first_seen: f64,
    parts: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
}

#[derive(Default)]
pub struct Reassembler {
    pending: HashMap<Key, Pending>,
}

impl Reassembler {
    /// Adds a fragment; returns the whole payload once every byte is there.
    pub fn add(&mut self, ts: f64, f: &Ipv4Fragment<'_>) -> Option<Vec<u8>> {
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|_, p| p.first_seen >= ts - TTL_S);
        }
        let key = (f.src, f.dst, f.id, f.protocol);
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            return None;
        }
        let end = f.offset + f.data.len();
        if end > MAX_DATAGRAM {
            self.pending.remove(&key);
            return None;
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_seen: ts,
            parts: Vec::new(),
            total: None,
        });
        if !f.more {
            p.total = Some(end);
        }
        p.parts.push((f.offset, f.data.to_vec()));
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
        let mut buf = vec![0u8; total];
        for (o, d) in p.parts {
            let n = d.len().min(total.saturating_sub(o));
            buf[o..o + n].copy_from_slice(&d[..n]);
        }
        Some(buf)
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
