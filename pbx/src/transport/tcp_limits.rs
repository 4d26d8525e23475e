//! Limits of SIP over TCP (/pbx/tcp), so that connections cannot exhaust
//! the daemon: a global bound on open connections (Kamailio's
//! tcp_max_connections) and a per-source one (so one host cannot take them
//! all), an idle timeout (tcp_connection_lifetime) and a time limit for
//! reading one message (tcp_msg_read_timeout), so a peer trickling an
//! endless header cannot hold a connection for ever. The size of one
//! message is bounded by the framing (64 KiB, sip::message).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use crate::config::tcp::TcpLimits;

#[derive(Default)]
struct Open {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// The connections open now, by source, and the refusals so far.
#[derive(Default)]
pub struct Admission {
    open: Mutex<Open>,
    refused: AtomicU64,
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    admission: Arc<Admission>,
    source: IpAddr,
}

/// What one source is for the per-source limit: an IPv4 address, or the
/// /64 of an IPv6 one (one host or site usually holds a whole /64, so
/// counting addresses would let it open connections without bound).
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

impl Admission {
    /// A place for a connection from `source`, or None when the global or
    /// the per-source limit is reached. Connections we open ourselves
    /// (`enforce` false) are counted but never refused: the box decided to
    /// open them.
    pub fn admit(
        self: &Arc<Self>,
        source: IpAddr,
        limits: &TcpLimits,
        enforce: bool,
    ) -> Option<Slot> {
        let source = source_of(source);
        let mut open = self.open.lock();
        let from_source = open.per_source.get(&source).copied().unwrap_or(0);
        if enforce && (open.total >= limits.max_connections || from_source >= limits.max_per_source)
        {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        open.total += 1;
        open.per_source.insert(source, from_source + 1);
        Some(Slot {
            admission: self.clone(),
            source,
        })
    }

    /// Connections refused by a limit since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_and_global_limits_and_release() {
        let limits = TcpLimits {
            max_connections: 3,
            max_per_source: 2,
            ..TcpLimits::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let adm = Arc::new(Admission::default());
        let a1 = adm.admit(a, &limits, true).expect("first");
        let _a2 = adm.admit(a, &limits, true).expect("second");
        assert!(adm.admit(a, &limits, true).is_none(), "third from a");
        let _b1 = adm.admit(b, &limits, true).expect("b still admitted");
        assert!(adm.admit(c, &limits, true).is_none(), "global limit");
        // Our own connections are counted, never refused.
        let ours = adm.admit(c, &limits, false).expect("ours");
        assert_eq!(adm.open(), 4);
        drop(ours);
        drop(a1);
        assert!(adm.admit(a, &limits, true).is_some(), "a's place freed");
        assert_eq!(adm.refused(), 2);
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let limits = TcpLimits {
            max_per_source: 2,
            ..TcpLimits::default()
        };
        let adm = Arc::new(Admission::default());
        let _a = adm.admit("2001:db8::1".parse().unwrap(), &limits, true);
        let _b = adm.admit("2001:db8::ffff:2".parse().unwrap(), &limits, true);
        assert!(adm
            .admit("2001:db8::3".parse().unwrap(), &limits, true)
            .is_none());
        assert!(adm
            .admit("2001:db8:0:1::3".parse().unwrap(), &limits, true)
            .is_some());
        assert_eq!(
            source_of("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
