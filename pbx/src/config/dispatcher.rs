//! /pbx/dispatcher-set as the PBX uses it (read from the generated
//! `besip_core::model::pbx` types; the runtime side is in `dispatcher`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use besip_core::model::pbx::{Pbx, PbxDispatcherSet};
use besip_core::uci::Package;

use super::Transport;
use crate::sip::Uri;

/// /pbx/dispatcher-set/algorithm (the generated enumeration).
pub use besip_core::model::pbx::DispatcherSetAlgorithm as Algorithm;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub uri: String,
    pub weight: u32,
    pub addr: SocketAddr,
    pub transport: Transport,
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

    /// Destinations must be SIP URIs with an IP address host (not a YANG rule:
    /// the dispatcher sends to addresses, it resolves no names).
    pub fn from_model(sets: &[PbxDispatcherSet]) -> Result<HashMap<String, SetConfig>, String> {
        let mut out = HashMap::new();
        for set in sets {
            let mut destinations = Vec::new();
            for d in &set.destination {
                let parsed = Uri::parse(&d.uri).ok_or_else(|| {
                    format!("dispatcher destination '{}' is not a SIP URI", d.uri)
                })?;
                let addr = parsed.socket_addr().ok_or_else(|| {
                    format!(
                        "dispatcher destination '{}': host must be an IP address",
                        d.uri
                    )
                })?;
                let transport = match parsed.transport() {
                    Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
                    _ => Transport::Udp,
                };
                destinations.push(Destination {
                    uri: d.uri.clone(),
                    weight: u32::from(d.weight),
                    addr,
                    transport,
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
