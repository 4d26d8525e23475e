//! Who may place calls that leave the box (YANG /pbx/outbound and
//! /pbx/extension/outbound): call classes by dialled prefix, trusted peers
//! authenticated by address, and the per-extension permissions and limits.
//! The runtime side (counting, refusing, notifying) is in `fraud`.

use std::collections::HashMap;
use std::net::IpAddr;

use besip_core::uci::{Package, Section};

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

/// Whom a request is placed for, as far as the policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nobody we vouch for: a caller from elsewhere (a trunk, the internet).
    Stranger,
    /// An extension that proved its password.
    Extension(String),
    /// A trusted peer, by name.
    Peer(String),
    /// Configured forwarding of an extension to `number` outside.
    Forwarded { extension: String, number: String },
}

impl Origin {
    /// The extension whose permissions and limits apply.
    pub fn extension(&self) -> Option<&str> {
        match self {
            Origin::Extension(e) | Origin::Forwarded { extension: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Name for logs and the notification (extension number or peer name).
    pub fn name(&self) -> Option<&str> {
        match self {
            Origin::Peer(p) => Some(p),
            _ => self.extension(),
        }
    }
}

impl Policy {
    pub fn from_package(pkg: &Package) -> Result<Policy, String> {
        let main = pkg.section("main");
        // /pbx/outbound/max-calls, default 0
        let max_calls = match main.and_then(|m| m.get("outbound_max_calls")) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("outbound max-calls '{v}' is not a number"))?,
            None => 0,
        };
        let mut names = Vec::new();
        let mut prefixes = Vec::new();
        for s in pkg.sections_of("outbound_call_class") {
            let name = s.get("name").unwrap_or(&s.name).to_owned();
            for p in s.list("prefix") {
                prefixes.push((p.clone(), name.clone()));
            }
            names.push(name);
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let known = |s: &Section, list: &str| -> Result<Vec<String>, String> {
            let v = s.list(list).to_vec();
            match v.iter().find(|c| !names.contains(c)) {
                Some(c) => Err(format!("section {}: unknown call class {c}", s.name)),
                None => Ok(v),
            }
        };
        let default_classes = match main {
            Some(m) => known(m, "outbound_default_call_class")?,
            None => Vec::new(),
        };
        let mut peers = Vec::new();
        for s in pkg.sections_of("outbound_trusted_peer") {
            let networks = crate::features::networks::parse_networks(s.list("address"))
                .map_err(|_| format!("trusted peer {}: address is not an IP prefix", s.name))?;
            peers.push(Peer {
                name: s.get("name").unwrap_or(&s.name).to_owned(),
                networks,
                classes: known(s, "call_class")?,
            });
        }
        Ok(Policy {
            max_calls,
            default_classes,
            prefixes,
            peers,
        })
    }

    /// Extension settings of one `extension` section.
    pub fn permissions_of(&self, s: &Section) -> Result<Permissions, String> {
        let classes = s.list("outbound_call_class").to_vec();
        if let Some(c) = classes
            .iter()
            .find(|c| !self.prefixes.iter().any(|p| &p.1 == *c))
        {
            return Err(format!("extension {}: unknown call class {c}", s.name));
        }
        let max_calls = match s.get("outbound_max_calls") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("extension {}: outbound max-calls '{v}'", s.name))?,
            None => 0,
        };
        let max_spend_per_hour = match s.get("outbound_max_spend_per_hour") {
            Some(v) => Some(
                crate::features::rating::parse_price(v)
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| format!("extension {}: spend limit '{v}'", s.name))?,
            ),
            None => None,
        };
        Ok(Permissions {
            classes,
            max_calls,
            max_spend_per_hour,
        })
    }

    /// The trusted peer a source address belongs to.
    pub fn peer_of(&self, ip: IpAddr) -> Option<&Peer> {
        self.peers.iter().find(|p| {
            p.networks
                .iter()
                .any(|n| crate::features::networks::contains(n, ip))
        })
    }

    /// The class of a dialled number (longest prefix), None when no class has it.
    pub fn class_of(&self, number: &str) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(p, _)| number.starts_with(p.as_str()))
            .map(|(_, c)| c.as_str())
    }

    /// Err(class) when a caller allowed `own` classes may not dial `number`.
    pub fn check_class<'a>(&'a self, own: &'a [String], number: &str) -> Result<(), &'a str> {
        let Some(class) = self.class_of(number) else {
            return Ok(());
        };
        let allowed = if own.is_empty() {
            &self.default_classes
        } else {
            own
        };
        if allowed.iter().any(|c| c == class) {
            Ok(())
        } else {
            Err(class)
        }
    }
}

/// Extension number → its permissions, for the extensions that have any set.
pub type ExtensionPermissions = HashMap<String, Permissions>;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Result<Policy, String> {
        let pkg = Package::parse("besip_pbx", text).map_err(|e| e.to_string())?;
        Policy::from_package(&pkg)
    }

    #[test]
    fn classes_by_longest_prefix_and_defaults() {
        let p = policy(
            "config pbx 'main'\n\toption outbound_max_calls '3'\n\tlist outbound_default_call_class 'national'\n\n\
config outbound_call_class 'national'\n\toption name 'national'\n\tlist prefix '0'\n\n\
config outbound_call_class 'international'\n\toption name 'international'\n\tlist prefix '00'\n\n\
config outbound_call_class 'premium'\n\toption name 'premium'\n\tlist prefix '0900'\n\tlist prefix '0976'\n\n\
config outbound_trusted_peer 'gw'\n\toption name 'gw'\n\tlist address '10.1.0.0/16'\n",
        )
        .expect("policy");
        assert_eq!(p.max_calls, 3);
        assert_eq!(p.class_of("0900123"), Some("premium"));
        assert_eq!(p.class_of("0049"), Some("international"));
        assert_eq!(p.class_of("0555"), Some("national"));
        assert_eq!(p.class_of("100"), None);
        assert_eq!(p.check_class(&[], "0555"), Ok(()));
        assert_eq!(p.check_class(&[], "0900"), Err("premium"));
        assert_eq!(p.check_class(&["premium".into()], "0555"), Err("national"));
        assert_eq!(p.check_class(&[], "100"), Ok(()));
        assert_eq!(
            p.peer_of("10.1.2.3".parse().expect("ip"))
                .map(|p| p.name.as_str()),
            Some("gw")
        );
        assert!(p.peer_of("10.2.0.1".parse().expect("ip")).is_none());
    }

    #[test]
    fn unknown_classes_are_refused() {
        assert!(policy("config pbx 'main'\n\tlist outbound_default_call_class 'nope'\n").is_err());
        assert!(policy("config outbound_trusted_peer 'p'\n\tlist address 'x'\n").is_err());
    }
}
