//! The daemon's table of active bans, keyed by prefix: a single address is a
//! /32 or /128, and when max-bans single bans are held a new offender is
//! banned by its /24 (IPv4) or /64 (IPv6) instead, which absorbs the single
//! bans inside it. A packet's source is looked up under both keys.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::Scope;

/// Now in milliseconds since the Unix epoch: the clock of ban times.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Clone)]
pub struct Ban {
    pub rule: String,
    pub reason: String,
    pub scope: Scope,
    pub since_ms: u64,
    pub expires_ms: u64,
    pub packets: u64,
    pub offences: u32,
}

impl Ban {
    /// Whole seconds until the ban ends at `now_ms`, at least 1: the timeout
    /// its firewall element is (re)made with.
    pub fn seconds_left(&self, now_ms: u64) -> u32 {
        (self.expires_ms.saturating_sub(now_ms) / 1000).max(1) as u32
    }
}

const V4_PREFIX: u8 = 24;
const V6_PREFIX: u8 = 64;

/// The prefix a full table bans instead of `addr`.
pub fn prefix_of(addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(a) => {
            IpNet::V4(Ipv4Net::new(a, V4_PREFIX).map_or_else(|_| a.into(), |n| n.trunc()))
        }
        IpAddr::V6(a) => {
            IpNet::V6(Ipv6Net::new(a, V6_PREFIX).map_or_else(|_| a.into(), |n| n.trunc()))
        }
    }
}

pub fn is_single(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

#[derive(Default)]
pub struct BanTable {
    bans: HashMap<IpNet, Ban>,
    singles: usize,
}

impl BanTable {
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    pub fn singles(&self) -> usize {
        self.singles
    }

    pub fn prefixes(&self) -> usize {
        self.bans.len() - self.singles
    }

    /// The ban that covers `addr`, if any (its own, else its prefix's).
    pub fn covering(&self, addr: IpAddr) -> Option<IpNet> {
        let single = IpNet::from(addr);
        if self.bans.contains_key(&single) {
            return Some(single);
        }
        let prefix = prefix_of(addr);
        self.bans.contains_key(&prefix).then_some(prefix)
    }

    pub fn get(&self, net: &IpNet) -> Option<&Ban> {
        self.bans.get(net)
    }

    pub fn covering_mut(&mut self, addr: IpAddr) -> Option<&mut Ban> {
        let key = self.covering(addr)?;
        self.bans.get_mut(&key)
    }

    pub fn insert(&mut self, net: IpNet, ban: Ban) {
        if self.bans.insert(net, ban).is_none() && is_single(&net) {
            self.singles += 1;
        }
    }

    pub fn remove(&mut self, net: &IpNet) -> Option<Ban> {
        let gone = self.bans.remove(net);
        if gone.is_some() && is_single(net) {
            self.singles -= 1;
        }
        gone
    }

    /// Remove and return the single bans inside `prefix`.
    pub fn take_inside(&mut self, prefix: &IpNet) -> Vec<(IpNet, Ban)> {
        let inside: Vec<IpNet> = self
            .bans
            .keys()
            .filter(|n| is_single(n) && prefix.contains(*n))
            .copied()
            .collect();
        inside
            .into_iter()
            .filter_map(|n| self.remove(&n).map(|b| (n, b)))
            .collect()
    }

    /// Keys of the bans that cover `addr` (its own and its prefix's).
    pub fn all_covering(&self, addr: IpAddr) -> Vec<IpNet> {
        [IpNet::from(addr), prefix_of(addr)]
            .into_iter()
            .filter(|n| self.bans.contains_key(n))
            .collect()
    }

    /// Keys of the bans for which `hit` is true.
    pub fn keys_where(&self, hit: impl Fn(&IpNet, &Ban) -> bool) -> Vec<IpNet> {
        self.bans
            .iter()
            .filter(|(n, b)| hit(n, b))
            .map(|(n, _)| *n)
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &Ban)> {
        self.bans.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban() -> Ban {
        Ban {
            rule: "r".into(),
            reason: "x".into(),
            scope: Scope::Sip,
            since_ms: 0,
            expires_ms: 10,
            packets: 0,
            offences: 1,
        }
    }

    #[test]
    fn prefixes_cover_and_absorb_singles() {
        let mut t = BanTable::default();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        t.insert(IpNet::from(a), ban());
        t.insert("198.51.101.1/32".parse().unwrap(), ban());
        assert_eq!((t.singles(), t.prefixes()), (2, 0));
        let p = prefix_of(a);
        assert_eq!(p.to_string(), "198.51.100.0/24");
        assert_eq!(t.take_inside(&p).len(), 1);
        t.insert(p, ban());
        assert_eq!((t.singles(), t.prefixes()), (1, 1));
        assert_eq!(t.covering("198.51.100.200".parse().unwrap()), Some(p));
        assert_eq!(t.covering("198.51.102.1".parse().unwrap()), None);
        let v6 = prefix_of("2001:db8:1:2:3::4".parse().unwrap());
        assert_eq!(v6.to_string(), "2001:db8:1:2::/64");
    }
}
