//! Who may place calls that leave the box (YANG /pbx/outbound and
//! /pbx/extension/outbound): call classes by dialled prefix, trusted peers
//! authenticated by address, and the per-extension permissions and limits.
//! The runtime side (counting, refusing, notifying) is in `fraud`.

use std::collections::HashMap;
use std::net::IpAddr;

pub use crate::config::outbound::{Peer, Permissions, Policy};

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
    /// A destination the administrator configured (an inbound route's or a
    /// ring group's external number): placed through the dialplan routes
    /// with no call class restriction, whoever called; named for logs.
    Configured(String),
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
            Origin::Peer(p) | Origin::Configured(p) => Some(p),
            _ => self.extension(),
        }
    }
}

impl Policy {
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
    use besip_core::uci::Package;

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
