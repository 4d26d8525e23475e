//! The daemon's view of /etc/config/besip_security, built from the types
//! generated from YANG besip-security (`besip_core::model::security`): the
//! generated reader applies YANG's types, ranges and defaults, so a
//! hand-written file with options missing behaves like a rendered one. This
//! file keeps the checks YANG states as patterns (set name, whitelist
//! prefixes), which the generated reader does not check.

use std::path::Path;

use besip_core::model::security::{self as model, Security};
use besip_core::model::ModelError;
use besip_core::uci::{Package, UciError};
use ipnet::IpNet;
use snafu::{ResultExt, Snafu};

#[derive(Debug, Snafu)]
pub enum ConfigError {
    #[snafu(display("{source}"))]
    Uci { source: UciError },
    #[snafu(display("{source}"))]
    Value { source: ModelError },
    #[snafu(display("{file}: {what}: fix the value and reload"))]
    Invalid { file: String, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    IptablesIpset,
    Nftables,
    LogOnly,
}

/// Which traffic of a banned source the kernel drops (typedef ban-scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The SIP ports and the RTP range only: management stays reachable.
    Sip,
    /// Every port.
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Sip => "sip",
            Scope::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "sip" => Some(Scope::Sip),
            "all" => Some(Scope::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    pub name: String,
    /// None = any method.
    pub method: Option<String>,
    pub count: u32,
    pub window_s: u32,
    pub ban_time_s: u32,
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub enabled: bool,
    pub backend: Backend,
    pub set_name: String,
    pub interfaces: Vec<String>,
    pub sip_ports: Vec<u16>,
    pub rules: Vec<RateRule>,
    pub auth_enabled: bool,
    pub auth_count: u32,
    pub auth_window_s: u32,
    pub auth_ban_time_s: u32,
    pub auth_scope: Scope,
    pub scanner_enabled: bool,
    /// Lower-cased substrings.
    pub scanner_agents: Vec<String>,
    pub scanner_ban_time_s: u32,
    pub scanner_scope: Scope,
    pub escalation_factor: u32,
    pub max_ban_time_s: u32,
    pub office_exemption: u32,
    pub whitelist: Vec<IpNet>,
    pub max_tracked: usize,
    /// Single-address bans at most; beyond, offenders are banned by prefix.
    pub max_bans: usize,
}

impl From<model::BanScope> for Scope {
    fn from(scope: model::BanScope) -> Self {
        match scope {
            model::BanScope::Sip => Scope::Sip,
            model::BanScope::All => Scope::All,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let pkg = Package::load(path).context(UciSnafu)?;
        Config::from_package(&pkg, &path.display().to_string())
    }

    pub fn from_package(pkg: &Package, file: &str) -> Result<Config, ConfigError> {
        let security = Security::from_package(pkg).context(ValueSnafu)?;
        Config::from_model(security, file)
    }

    pub fn from_model(security: Security, file: &str) -> Result<Config, ConfigError> {
        let invalid = |what: String| ConfigError::Invalid {
            file: file.to_owned(),
            what,
        };
        let backend = match security.firewall.backend {
            model::FirewallBackend::IptablesIpset => Backend::IptablesIpset,
            model::FirewallBackend::Nftables => Backend::Nftables,
            model::FirewallBackend::LogOnly => Backend::LogOnly,
        };
        // The pattern of firewall/set-name (an ipset/nft set name).
        let set_name = security.firewall.set_name;
        let name_ok = set_name.len() <= 24
            && set_name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && set_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(invalid(format!(
                "firewall set-name '{set_name}' must be a letter then letters, digits or _ (at most 24)"
            )));
        }
        // Port 0 is a valid port-number in YANG but no port to capture on.
        if security.capture.sip_port.contains(&0) {
            return Err(invalid("capture sip-port 0 is not a port".into()));
        }
        let rules = security
            .rule
            .into_iter()
            .map(|rule| RateRule {
                method: match rule.method {
                    model::SipMethodOrAny::Any => None,
                    method => Some(method.as_str().to_owned()),
                },
                count: rule.count,
                window_s: rule.window,
                ban_time_s: rule.ban_time,
                scope: rule.scope.into(),
                name: rule.name,
            })
            .collect();
        let mut whitelist = Vec::new();
        for w in &security.whitelist {
            let net = w
                .parse::<IpNet>()
                .or_else(|_| w.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(format!("whitelist '{w}' is not an IP prefix")))?;
            whitelist.push(net);
        }
        let auth = &security.auth_failure;
        let scanner = &security.scanner;
        Ok(Config {
            enabled: security.enabled,
            backend,
            set_name,
            interfaces: security.capture.interface,
            sip_ports: security.capture.sip_port,
            rules,
            auth_enabled: auth.enabled,
            auth_count: auth.count,
            auth_window_s: auth.window,
            auth_ban_time_s: auth.ban_time,
            auth_scope: auth.scope.into(),
            scanner_enabled: scanner.enabled,
            scanner_agents: scanner
                .user_agent
                .iter()
                .map(|a| a.to_lowercase())
                .collect(),
            scanner_ban_time_s: scanner.ban_time,
            scanner_scope: scanner.scope.into(),
            escalation_factor: u32::from(security.escalation.factor),
            max_ban_time_s: security.escalation.max_ban_time,
            office_exemption: security.office_exemption,
            whitelist,
            max_tracked: security.max_tracked_sources as usize,
            max_bans: security.max_bans as usize,
        })
    }

    /// The BPF filter for the configured SIP ports (UDP and TCP, both directions).
    pub fn bpf_filter(&self) -> String {
        let ports: Vec<String> = self.sip_ports.iter().map(|p| format!("port {p}")).collect();
        format!("(udp or tcp) and ({})", ports.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_package_and_defaults() {
        let text = "package besip_security\n\nconfig security 'main'\n\toption firewall_backend 'nftables'\n\tlist whitelist '10.0.0.0/8'\n\tlist whitelist '2001:db8::/32'\n\nconfig rule 'rule_reg'\n\toption name 'reg'\n\toption method 'REGISTER'\n\toption count '50'\n\toption window '5'\n";
        let pkg = Package::parse("besip_security", text).unwrap();
        let c = Config::from_package(&pkg, "f").unwrap();
        assert_eq!(c.backend, Backend::Nftables);
        assert_eq!(c.rules[0].method.as_deref(), Some("REGISTER"));
        assert_eq!(c.rules[0].ban_time_s, 600);
        assert_eq!(c.whitelist.len(), 2);
        assert_eq!(c.sip_ports, vec![5060]);
        assert_eq!(c.auth_count, 10);
        assert!(c.scanner_agents.contains(&"friendly-scanner".to_string()));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "\toption firewall_backend 'pf'\n",
            "\tlist whitelist 'nope'\n",
            "\toption firewall_set_name '1x'\n",
            "\toption auth_failure_count 'many'\n",
        ] {
            let text = format!("package besip_security\n\nconfig security 'main'\n{bad}");
            let pkg = Package::parse("besip_security", &text).unwrap();
            assert!(Config::from_package(&pkg, "f").is_err(), "{bad}");
        }
    }
}
