//! /pbx/outbound and /pbx/extension/outbound as the PBX uses them: call
//! classes by dialled prefix, trusted peers, per-extension permissions
//! (read from the generated `besip_core::model::pbx` types; the runtime side
//! is in `outbound` and `fraud`).

use std::net::IpAddr;

use besip_core::model::pbx::{Pbx, PbxExtensionOutbound, PbxOutbound};
use besip_core::uci::Package;

use super::parse_networks;

/// Parsed /pbx/outbound.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// /pbx/outbound/max-calls (0: no limit).
    pub max_calls: u32,
    pub default_classes: Vec<String>,
    /// (prefix, class), longest prefix first.
    pub prefixes: Vec<(String, String)>,
    pub peers: Vec<Peer>,
}

/// /pbx/outbound/trusted-peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub networks: Vec<(IpAddr, u8)>,
    pub classes: Vec<String>,
}

/// /pbx/extension/outbound of one extension.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub classes: Vec<String>,
    /// Simultaneous outbound calls (0: no limit of its own).
    pub max_calls: u16,
    /// Spend limit per hour in ten-thousandths.
    pub max_spend_per_hour: Option<i64>,
}

impl Policy {
    /// The policy of a whole package (tests and tools; the daemon reads `Pbx` once).
    pub fn from_package(pkg: &Package) -> Result<Policy, String> {
        let pbx = Pbx::from_package(pkg).map_err(|e| e.to_string())?;
        Policy::from_model(&pbx.outbound)
    }

    /// Call classes named by peers and defaults must exist (leafrefs, checked
    /// here because the generated reader does not resolve references).
    pub fn from_model(outbound: &PbxOutbound) -> Result<Policy, String> {
        let mut names = Vec::new();
        let mut prefixes = Vec::new();
        for class in &outbound.call_class {
            for p in &class.prefix {
                prefixes.push((p.clone(), class.name.clone()));
            }
            names.push(class.name.clone());
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let known = |owner: &str, classes: &[String]| -> Result<Vec<String>, String> {
            match classes.iter().find(|c| !names.contains(c)) {
                Some(c) => Err(format!("{owner}: unknown call class {c}")),
                None => Ok(classes.to_vec()),
            }
        };
        let default_classes = known("default call classes", &outbound.default_call_class)?;
        let mut peers = Vec::new();
        for peer in &outbound.trusted_peer {
            let networks = parse_networks(&peer.address)
                .map_err(|_| format!("trusted peer {}: address is not an IP prefix", peer.name))?;
            peers.push(Peer {
                name: peer.name.clone(),
                networks,
                classes: known(&format!("trusted peer {}", peer.name), &peer.call_class)?,
            });
        }
        Ok(Policy {
            max_calls: outbound.max_calls,
            default_classes,
            prefixes,
            peers,
        })
    }

    /// Permissions of one extension (`number` for messages).
    pub fn permissions_of(
        &self,
        number: &str,
        outbound: &PbxExtensionOutbound,
    ) -> Result<Permissions, String> {
        if let Some(c) = outbound
            .call_class
            .iter()
            .find(|c| !self.prefixes.iter().any(|p| &p.1 == *c))
        {
            return Err(format!("extension {number}: unknown call class {c}"));
        }
        Ok(Permissions {
            classes: outbound.call_class.clone(),
            max_calls: outbound.max_calls,
            max_spend_per_hour: outbound.max_spend_per_hour.map(|p| p.0),
        })
    }
}
