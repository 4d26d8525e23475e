//! The daemon's view of /etc/config/besip_security. Every default here repeats the
//! YANG default of the leaf named in the comment (yang/besip-security.yang), so a
//! hand-written file with options missing behaves like a rendered one.

use std::path::Path;

use besip_core::uci::{Package, Section, UciError};
use ipnet::IpNet;
use snafu::{ResultExt, Snafu};

#[derive(Debug, Snafu)]
pub enum ConfigError {
    #[snafu(display("{source}"))]
    Uci { source: UciError },
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

const DEFAULT_SCANNERS: [&str; 8] = [
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "VaxSIPUserAgent",
    "sundayddr",
    "iWar",
    "sip-scan",
    "SIPVicious",
];

const METHODS: [&str; 8] = [
    "REGISTER",
    "INVITE",
    "OPTIONS",
    "SUBSCRIBE",
    "MESSAGE",
    "NOTIFY",
    "BYE",
    "CANCEL",
];

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let pkg = Package::load(path).context(UciSnafu)?;
        Config::from_package(&pkg, &path.display().to_string())
    }

    pub fn from_package(pkg: &Package, file: &str) -> Result<Config, ConfigError> {
        let empty = Section::new("security", "main");
        let main = pkg.section("main").unwrap_or(&empty);
        let invalid = |what: String| ConfigError::Invalid {
            file: file.to_owned(),
            what,
        };
        let u32_opt = |name: &str, default: u32, min: u32| -> Result<u32, ConfigError> {
            let v = main
                .get_parsed::<u32>(name)
                .context(UciSnafu)?
                .unwrap_or(default);
            if v < min {
                return Err(invalid(format!("option {name} must be at least {min}")));
            }
            Ok(v)
        };
        // leaf firewall/backend
        let backend = match main.get("firewall_backend").unwrap_or("iptables-ipset") {
            "iptables-ipset" => Backend::IptablesIpset,
            "nftables" => Backend::Nftables,
            "log-only" => Backend::LogOnly,
            other => {
                return Err(invalid(format!(
                "firewall_backend '{other}' is unknown (use iptables-ipset, nftables or log-only)"
            )))
            }
        };
        // leaf firewall/set-name
        let set_name = main
            .get("firewall_set_name")
            .unwrap_or("besip_ban")
            .to_owned();
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
                "firewall_set_name '{set_name}' must be a letter then letters, digits or _ (at most 24)"
            )));
        }
        // leaf-list capture/sip-port (default 5060)
        let mut sip_ports = Vec::new();
        for p in main.list("capture_sip_port") {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => sip_ports.push(n),
                _ => return Err(invalid(format!("capture_sip_port '{p}' is not a port"))),
            }
        }
        if sip_ports.is_empty() {
            sip_ports.push(5060);
        }
        let scope_of = |sec: &Section, opt: &str, what: &str| -> Result<Scope, ConfigError> {
            let text = sec.get(opt).unwrap_or("sip"); // typedef ban-scope, default sip
            Scope::parse(text).ok_or_else(|| {
                invalid(format!(
                    "{what}: scope '{text}' is unknown (use sip or all)"
                ))
            })
        };
        let mut rules = Vec::new();
        for s in pkg.sections_of("rule") {
            let name = s.get("name").unwrap_or(&s.name).to_owned();
            let method = match s.get("method").unwrap_or("any") {
                "any" => None,
                m if METHODS.contains(&m) => Some(m.to_owned()),
                m => return Err(invalid(format!("rule {name}: method '{m}' is unknown"))),
            };
            let num = |opt: &str, default: Option<u32>| -> Result<u32, ConfigError> {
                match s.get_parsed::<u32>(opt).context(UciSnafu)?.or(default) {
                    Some(v) if v >= 1 => Ok(v),
                    Some(_) => Err(invalid(format!("rule {name}: {opt} must be at least 1"))),
                    None => Err(invalid(format!("rule {name}: {opt} is mandatory"))),
                }
            };
            rules.push(RateRule {
                method,
                count: num("count", None)?,
                window_s: num("window", None)?,
                ban_time_s: num("ban_time", Some(600))?, // leaf rule/ban-time
                scope: scope_of(s, "scope", &format!("rule {name}"))?,
                name,
            });
        }
        let mut whitelist = Vec::new();
        for w in main.list("whitelist") {
            let net = w
                .parse::<IpNet>()
                .or_else(|_| w.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(format!("whitelist '{w}' is not an IP prefix")))?;
            whitelist.push(net);
        }
        let agents = main.list("scanner_user_agent");
        let scanner_agents = if agents.is_empty() {
            DEFAULT_SCANNERS.iter().map(|s| s.to_lowercase()).collect()
        } else {
            agents.iter().map(|s| s.to_lowercase()).collect()
        };
        let flag = |name: &str| -> Result<bool, ConfigError> {
            Ok(main.get_bool(name).context(UciSnafu)?.unwrap_or(true))
        };
        Ok(Config {
            enabled: flag("enabled")?, // leaf enabled
            backend,
            set_name,
            interfaces: main.list("capture_interface").to_vec(), // leaf-list capture/interface
            sip_ports,
            rules,
            auth_enabled: flag("auth_failure_enabled")?, // leaf auth-failure/enabled
            auth_count: u32_opt("auth_failure_count", 10, 1)?,
            auth_window_s: u32_opt("auth_failure_window", 60, 1)?,
            auth_ban_time_s: u32_opt("auth_failure_ban_time", 3600, 1)?,
            auth_scope: scope_of(main, "auth_failure_scope", "auth-failure")?,
            scanner_enabled: flag("scanner_enabled")?, // leaf scanner/enabled
            scanner_agents,
            scanner_ban_time_s: u32_opt("scanner_ban_time", 86400, 1)?,
            scanner_scope: scope_of(main, "scanner_scope", "scanner")?,
            escalation_factor: u32_opt("escalation_factor", 2, 1)?, // leaf escalation/factor
            max_ban_time_s: u32_opt("escalation_max_ban_time", 604_800, 1)?,
            office_exemption: u32_opt("office_exemption", 3, 0)?, // leaf office-exemption
            whitelist,
            max_tracked: u32_opt("max_tracked_sources", 100_000, 1000)? as usize,
            max_bans: u32_opt("max_bans", 10_000, 10)?.min(1_000_000) as usize, // leaf max-bans
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
