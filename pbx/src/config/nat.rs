//! /pbx/nat as the proxy's NAT traversal uses it (keepalives, media relay
//! policy, media timeout), read from the generated `besip_core::model::pbx`
//! types; the runtime side is in `features::nat_proxy`.

use std::time::Duration;

use besip_core::model::pbx::{NatKeepaliveMethod, NatMediaRelay, PbxNat};

/// /pbx/nat/keepalive/method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveMethod {
    Options,
    Crlf,
    None,
}

/// /pbx/nat/media-relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaRelay {
    Always,
    WhenNated,
    Never,
}

/// The proxy's NAT settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub keepalive: KeepaliveMethod,
    pub keepalive_interval: Duration,
    pub media_relay: MediaRelay,
    /// None: relays are never closed for silence.
    pub media_timeout: Option<Duration>,
}

impl Default for ProxySettings {
    /// What an empty /pbx/nat reads as (the YANG defaults).
    fn default() -> Self {
        ProxySettings::from_model(&PbxNat::default())
    }
}

impl ProxySettings {
    pub fn from_model(nat: &PbxNat) -> ProxySettings {
        ProxySettings {
            keepalive: match nat.keepalive.method {
                NatKeepaliveMethod::Options => KeepaliveMethod::Options,
                NatKeepaliveMethod::Crlf => KeepaliveMethod::Crlf,
                NatKeepaliveMethod::None => KeepaliveMethod::None,
            },
            keepalive_interval: Duration::from_secs(u64::from(nat.keepalive.interval)),
            media_relay: match nat.media_relay {
                NatMediaRelay::Always => MediaRelay::Always,
                NatMediaRelay::WhenNated => MediaRelay::WhenNated,
                NatMediaRelay::Never => MediaRelay::Never,
            },
            media_timeout: (nat.media_timeout > 0)
                .then(|| Duration::from_secs(u64::from(nat.media_timeout))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values_are_read() {
        let d = ProxySettings::default();
        assert_eq!(d.keepalive, KeepaliveMethod::Options);
        assert_eq!(d.keepalive_interval, Duration::from_secs(25));
        assert_eq!(d.media_relay, MediaRelay::WhenNated);
        assert_eq!(d.media_timeout, Some(Duration::from_secs(60)));
        let text = "package besip_pbx\n\nconfig pbx 'main'\n\toption nat_keepalive_method 'crlf'\n\toption nat_keepalive_interval '5'\n\toption nat_media_relay 'never'\n\toption nat_media_timeout '0'\n";
        let pkg = besip_core::uci::Package::parse("besip_pbx", text).expect("uci");
        let c = crate::config::Config::from_package(&pkg, "besip_pbx").expect("config");
        assert_eq!(c.nat.keepalive, KeepaliveMethod::Crlf);
        assert_eq!(c.nat.keepalive_interval, Duration::from_secs(5));
        assert_eq!(c.nat.media_relay, MediaRelay::Never);
        assert_eq!(c.nat.media_timeout, None);
        for bad in ["nat_keepalive_interval '4'", "nat_media_relay 'sometimes'"] {
            let text = format!("package besip_pbx\n\nconfig pbx 'main'\n\toption {bad}\n");
            let pkg = besip_core::uci::Package::parse("besip_pbx", &text).expect("uci");
            assert!(
                crate::config::Config::from_package(&pkg, "f").is_err(),
                "{bad}"
            );
        }
    }
}
