//! /pbx/dispatcher-set as the PBX uses it (read from the generated
//! `besip_core::model::pbx` types; the runtime side is in `dispatcher`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use besip_core::model::pbx::{Pbx, PbxDispatcherSet};
use besip_core::uci::Package;

use super::dns::Lookup;
use super::Transport;
use crate::sip::Uri;

/// /pbx/dispatcher-set/algorithm (the generated enumeration).
pub use besip_core::model::pbx::DispatcherSetAlgorithm as Algorithm;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub uri: String,
    pub weight: u32,
    /// Where requests go. For a host that is a domain name: unspecified
    /// (0.0.0.0) in the configuration; each call gets one copy per DNS
    /// target with the target's address (`features::dns::expand`).
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The host is a domain name: what DNS is asked (RFC 3263, as for a
    /// trunk); the Request-URI keeps the name.
    pub lookup: Option<Lookup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetConfig {
    pub name: String,
    pub algorithm: Algorithm,
    pub probing: bool,
    pub probe_interval: u64,
    /// A branch that sends nothing at all for this long is given up.
    pub no_answer: Duration,
    pub destinations: Vec<Destination>,
}

impl SetConfig {
    /// The sets of a whole package (tests and tools; the daemon reads `Pbx` once).
    pub fn from_package(pkg: &Package) -> Result<HashMap<String, SetConfig>, String> {
        let pbx = Pbx::from_package(pkg).map_err(|e| e.to_string())?;
        SetConfig::from_model(&pbx.dispatcher_set)
    }

    /// Destinations must be SIP URIs (not a YANG rule); a host that is a
    /// domain name is resolved like a trunk's (`features::dns`).
    pub fn from_model(sets: &[PbxDispatcherSet]) -> Result<HashMap<String, SetConfig>, String> {
        let mut out = HashMap::new();
        for set in sets {
            let mut destinations = Vec::new();
            for d in &set.destination {
                let parsed = Uri::parse(&d.uri).ok_or_else(|| {
                    format!("dispatcher destination '{}' is not a SIP URI", d.uri)
                })?;
                let named = parsed.transport().and_then(Transport::from_name);
                let transport = match named {
                    Some(Transport::Tcp) => Transport::Tcp,
                    _ => Transport::Udp,
                };
                let lookup = Lookup::of_host(&parsed.host, parsed.port, named);
                let addr = match (&lookup, parsed.socket_addr()) {
                    (None, Some(addr)) => addr,
                    (Some(_), _) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
                    (None, None) => {
                        return Err(format!(
                            "dispatcher destination '{}': the host is neither an IP address nor a domain name",
                            d.uri
                        ))
                    }
                };
                destinations.push(Destination {
                    uri: d.uri.clone(),
                    weight: u32::from(d.weight),
                    addr,
                    transport,
                    lookup,
                });
            }
            out.insert(
                set.name.clone(),
                SetConfig {
                    name: set.name.clone(),
                    algorithm: set.algorithm,
                    probing: set.probing,
                    probe_interval: u64::from(set.probe_interval),
                    no_answer: Duration::from_millis(u64::from(set.no_answer_timeout)),
                    destinations,
                },
            );
        }
        Ok(out)
    }
}
