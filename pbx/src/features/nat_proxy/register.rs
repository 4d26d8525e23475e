//! Registrations from behind a NAT (Kamailio's fix_nated_register): the
//! binding already keeps the source the REGISTER came from (requests for
//! the phone go there); here each NATed binding also keeps the local socket
//! the REGISTER arrived on, for keepalives, and marks its address NATed so
//! calls to it are anchored. Only bindings the registrar accepted (an
//! authenticated REGISTER answered 200) are noted, so a forged Via or
//! Contact changes nobody else's; the table never outgrows the bindings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::config::Transport;

/// One NATed binding.
#[derive(Debug, Clone)]
pub struct NatedBinding {
    /// Public address and port the phone's REGISTER came from.
    pub source: SocketAddr,
    /// Our socket it arrived on.
    pub local: SocketAddr,
    pub transport: Transport,
    /// The Contact URI (the OPTIONS keepalive's Request-URI).
    pub contact: String,
    /// When the next keepalive is due.
    pub next_keepalive: Instant,
}

/// NATed bindings by (AOR, contact).
#[derive(Default)]
pub struct NatedBindings {
    map: HashMap<(String, String), NatedBinding>,
}

impl NatedBindings {
    pub fn put(&mut self, aor: &str, b: NatedBinding) {
        self.map.insert((aor.to_owned(), b.contact.clone()), b);
    }

    pub fn remove(&mut self, aor: &str, contact: &str) {
        self.map.remove(&(aor.to_owned(), contact.to_owned()));
    }

    /// Keeps only the entries `live` says are still bound.
    pub fn retain(&mut self, mut live: impl FnMut(&str, &str) -> bool) {
        self.map.retain(|(aor, contact), _| live(aor, contact));
    }

    /// Whether requests to `dest` reach a phone behind a NAT.
    pub fn is_nated(&self, dest: SocketAddr) -> bool {
        self.map.values().any(|b| b.source == dest)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bindings whose keepalive is due at `now` (their next one set
    /// `interval` later).
    pub fn due(&mut self, now: Instant, interval: std::time::Duration) -> Vec<NatedBinding> {
        self.map
            .values_mut()
            .filter(|b| b.next_keepalive <= now)
            .map(|b| {
                b.next_keepalive = now + interval;
                b.clone()
            })
            .collect()
    }
}
