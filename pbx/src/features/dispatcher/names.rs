//! Dispatcher destinations whose host is a domain name: a call gets one
//! copy of such a destination per DNS target (`features::dns` keeps them
//! resolved), in the order RFC 3263 gives, in place of the destination; a
//! name without targets gets no calls. Probes go to every target: the
//! destination is up while one of them answers.

use std::net::SocketAddr;

use super::{Destination, SetConfig};
use crate::features::dns::{self, Owner};
use crate::features::state::Engine;

/// Who the DNS answer of destination `d` of `set` belongs to.
pub fn owner(set: &str, d: &Destination) -> Owner {
    Owner::Destination(set.to_owned(), d.uri.clone())
}

/// `dests` (the algorithm's order) with each destination by name replaced
/// by its targets: same uri, the target's address and transport.
pub fn expand(engine: &Engine, set: &SetConfig, dests: Vec<Destination>) -> Vec<Destination> {
    let mut out = Vec::with_capacity(dests.len());
    for d in dests {
        if d.lookup.is_none() {
            out.push(d);
            continue;
        }
        for t in dns::targets_for(engine, &owner(&set.name, &d)) {
            out.push(Destination {
                addr: t.addr,
                transport: t.transport,
                ..d.clone()
            });
        }
    }
    out
}

/// Where the probes of `d` go: its address, or the current targets of its
/// name (none while it does not resolve).
pub fn probe_addresses(engine: &Engine, set: &SetConfig, d: &Destination) -> Vec<SocketAddr> {
    match d.lookup {
        None => vec![d.addr],
        Some(_) => dns::targets_for(engine, &owner(&set.name, d))
            .into_iter()
            .map(|t| t.addr)
            .collect(),
    }
}
