//! The daemon's view of UCI package `besip_pbx` (rendered from YANG besip-pbx).
//! Every default here repeats the YANG default of the leaf named beside it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use besip_core::uci::{Package, Section, UciError};
use snafu::{ResultExt, Snafu};

#[derive(Debug, Snafu)]
pub enum ConfigError {
    #[snafu(display("cannot read PBX configuration: {source}"))]
    Read { source: UciError },
    #[snafu(display("bad value in PBX configuration: {source}"))]
    Value { source: UciError },
    #[snafu(display("{file}: {message}"))]
    Rule { file: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Proxy,
    B2bua,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub name: String,
    pub transport: Transport,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub number: String,
    pub display_name: Option<String>,
    pub password: String,
    pub enabled: bool,
    pub groups: Vec<String>,
    pub forward_unconditional: Option<String>,
    /// /pbx/extension/outbound
    pub outbound: crate::outbound::Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: Option<String>,
    pub password: Option<String>,
    pub register: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub priority: u16,
    pub prefix: String,
    pub strip: usize,
    pub prepend: String,
    /// Empty when the route names a dispatcher set instead.
    pub trunk: String,
    /// /pbx/route/dispatcher-set (the other case of choice target).
    pub dispatcher_set: Option<String>,
    pub required_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Mode,
    pub domains: Vec<String>,
    pub allowed_methods: HashSet<String>,
    pub max_transactions: usize,
    pub listens: Vec<Listen>,
    /// /pbx/tcp
    pub tcp: crate::tcp_limits::TcpLimits,
    pub min_expires: u32,
    pub default_expires: u32,
    pub max_expires: u32,
    pub max_contacts: usize,
    pub realm: String,
    pub algorithms: Vec<Algorithm>,
    pub nonce_lifetime: u64,
    pub extensions: HashMap<String, Extension>,
    pub aliases: HashMap<String, String>,
    pub trunks: HashMap<String, Trunk>,
    pub routes: Vec<Route>,
    pub dispatcher_sets: HashMap<String, crate::dispatcher::SetConfig>,
    pub external_address: Option<IpAddr>,
    /// /pbx/nat/local-network
    pub local_networks: Vec<(IpAddr, u8)>,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub session_expires: u32,
    pub max_call_duration: u32,
    pub accounting: crate::accounting::Settings,
    /// /pbx/outbound
    pub outbound: crate::outbound::Policy,
}

fn get_or<T: std::str::FromStr>(
    s: Option<&Section>,
    name: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match s {
        Some(s) => Ok(s.get_parsed(name).context(ValueSnafu)?.unwrap_or(default)),
        None => Ok(default),
    }
}

fn transport_of(s: &Section) -> Result<Transport, ConfigError> {
    match s.get("transport").unwrap_or("udp") {
        "udp" => Ok(Transport::Udp),
        "tcp" => Ok(Transport::Tcp),
        other => Err(ConfigError::Rule {
            file: s.file.clone(),
            message: format!("section {}: transport '{other}' is not udp or tcp", s.name),
        }),
    }
}

impl Config {
    /// The digest password of a known, enabled extension (what
    /// `Auth::verify` checks answers against, for REGISTER and for calls).
    pub fn password_of(&self, user: &str) -> Option<String> {
        self.extensions
            .get(user)
            .filter(|e| e.enabled)
            .map(|e| e.password.clone())
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let pkg = Package::load(path).context(ReadSnafu)?;
        Config::from_package(&pkg, &path.display().to_string())
    }

    pub fn from_package(pkg: &Package, file: &str) -> Result<Config, ConfigError> {
        let rule = |message: String| ConfigError::Rule {
            file: file.to_owned(),
            message,
        };
        let main = pkg.section("main");
        // /pbx/mode, default proxy
        let mode = match main.and_then(|m| m.get("mode")).unwrap_or("proxy") {
            "proxy" => Mode::Proxy,
            "b2bua" => Mode::B2bua,
            other => return Err(rule(format!("mode '{other}' is not proxy or b2bua"))),
        };
        // /pbx/domain
        let domains: Vec<String> = main
            .map(|m| {
                m.list("domain")
                    .iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        // /pbx/allowed-method, default: all methods the YANG enumerates
        let mut allowed_methods: HashSet<String> = main
            .map(|m| m.list("allowed_method").iter().cloned().collect())
            .unwrap_or_default();
        if allowed_methods.is_empty() {
            allowed_methods = [
                "INVITE",
                "ACK",
                "BYE",
                "CANCEL",
                "OPTIONS",
                "REGISTER",
                "INFO",
                "UPDATE",
                "PRACK",
                "REFER",
                "MESSAGE",
                "NOTIFY",
                "SUBSCRIBE",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect();
        }
        // /pbx/max-transactions, default 200000
        let max_transactions: usize = get_or(main, "max_transactions", 200_000)?;
        // /pbx/registrar/*: 60 / 3600 / 7200 / 5
        let min_expires: u32 = get_or(main, "registrar_min_expires", 60)?;
        let default_expires: u32 = get_or(main, "registrar_default_expires", 3600)?;
        let max_expires: u32 = get_or(main, "registrar_max_expires", 7200)?;
        let max_contacts: usize = get_or(main, "registrar_max_contacts", 5)?;
        if !(min_expires <= default_expires && default_expires <= max_expires) {
            return Err(rule(
                "registrar expires must satisfy min <= default <= max".into(),
            ));
        }
        // /pbx/auth/realm, default: first domain
        let realm = main
            .and_then(|m| m.get("auth_realm"))
            .map(str::to_owned)
            .or_else(|| domains.first().cloned())
            .unwrap_or_else(|| "besip".to_owned());
        // /pbx/auth/algorithms, default md5-and-sha-256
        let algorithms = match main
            .and_then(|m| m.get("auth_algorithms"))
            .unwrap_or("md5-and-sha-256")
        {
            "md5" => vec![Algorithm::Md5],
            "sha-256" => vec![Algorithm::Sha256],
            "md5-and-sha-256" => vec![Algorithm::Md5, Algorithm::Sha256],
            other => return Err(rule(format!("auth algorithms '{other}' unknown"))),
        };
        // /pbx/auth/nonce-lifetime, default 300
        let nonce_lifetime: u64 = get_or(main, "auth_nonce_lifetime", 300)?;

        let tcp = crate::tcp_limits::TcpLimits::from_section(main)?;
        let mut listens = Vec::new();
        for s in pkg.sections_of("listen") {
            // /pbx/listen/{address 0.0.0.0, port 5060, transport udp}
            let ip: IpAddr = get_or(Some(s), "address", IpAddr::from([0, 0, 0, 0]))?;
            let port: u16 = get_or(Some(s), "port", 5060)?;
            listens.push(Listen {
                name: s.get("name").unwrap_or(&s.name).to_owned(),
                transport: transport_of(s)?,
                addr: SocketAddr::new(ip, port),
            });
        }
        if listens.is_empty() {
            listens.push(Listen {
                name: "default".into(),
                transport: Transport::Udp,
                addr: SocketAddr::from(([0, 0, 0, 0], 5060)),
            });
        }

        let outbound = crate::outbound::Policy::from_package(pkg).map_err(rule)?;
        let mut extensions = HashMap::new();
        for s in pkg.sections_of("extension") {
            let number = s
                .get("number")
                .ok_or_else(|| rule(format!("extension section {} has no number", s.name)))?;
            let password = s
                .get("password")
                .ok_or_else(|| rule(format!("extension {number} has no password")))?;
            extensions.insert(
                number.to_owned(),
                Extension {
                    number: number.to_owned(),
                    display_name: s.get("display_name").map(str::to_owned),
                    password: password.to_owned(),
                    // /pbx/extension/enabled, default true
                    enabled: s.get_bool("enabled").context(ValueSnafu)?.unwrap_or(true),
                    groups: s.list("group").to_vec(),
                    forward_unconditional: s
                        .get("forwarding_unconditional")
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned),
                    outbound: outbound.permissions_of(s).map_err(rule)?,
                },
            );
        }
        let mut aliases = HashMap::new();
        for s in pkg.sections_of("alias") {
            let (Some(alias), Some(ext)) = (s.get("alias"), s.get("extension")) else {
                return Err(rule(format!(
                    "alias section {} needs alias and extension",
                    s.name
                )));
            };
            if !extensions.contains_key(ext) {
                return Err(rule(format!(
                    "alias {alias} points to unknown extension {ext}"
                )));
            }
            aliases.insert(alias.to_owned(), ext.to_owned());
        }
        let mut trunks = HashMap::new();
        for s in pkg.sections_of("trunk") {
            let (Some(name), Some(host)) = (s.get("name"), s.get("host")) else {
                return Err(rule(format!(
                    "trunk section {} needs name and host",
                    s.name
                )));
            };
            trunks.insert(
                name.to_owned(),
                Trunk {
                    name: name.to_owned(),
                    host: host.to_owned(),
                    port: get_or(Some(s), "port", 5060)?,
                    transport: transport_of(s)?,
                    username: s.get("username").map(str::to_owned),
                    password: s.get("password").map(str::to_owned),
                    // /pbx/trunk/register, default false
                    register: s.get_bool("register").context(ValueSnafu)?.unwrap_or(false),
                },
            );
        }
        let dispatcher_sets = crate::dispatcher::SetConfig::from_package(pkg).map_err(rule)?;
        let mut routes = Vec::new();
        for s in pkg.sections_of("route") {
            let set = s.get("dispatcher_set");
            let (Some(name), Some(prefix)) = (s.get("name"), s.get("match")) else {
                return Err(rule(format!(
                    "route section {} needs name and match",
                    s.name
                )));
            };
            let trunk = match (s.get("trunk"), set) {
                (Some(t), None) if trunks.contains_key(t) => t,
                (Some(t), None) => {
                    return Err(rule(format!("route {name} uses unknown trunk {t}")))
                }
                (None, Some(d)) if dispatcher_sets.contains_key(d) => "",
                (None, Some(d)) => {
                    return Err(rule(format!(
                        "route {name} uses unknown dispatcher set {d}"
                    )))
                }
                _ => {
                    return Err(rule(format!(
                        "route {name} needs exactly one of trunk and dispatcher-set"
                    )))
                }
            };
            routes.push(Route {
                name: name.to_owned(),
                priority: get_or(Some(s), "priority", 100)?,
                prefix: prefix.to_owned(),
                strip: get_or(Some(s), "strip", 0)?,
                prepend: s.get("prepend").unwrap_or("").to_owned(),
                trunk: trunk.to_owned(),
                dispatcher_set: set.map(str::to_owned),
                required_group: s.get("required_group").map(str::to_owned),
            });
        }
        routes.sort_by_key(|r| r.priority);
        let external_address = match main.and_then(|m| m.get("nat_external_address")) {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| rule(format!("nat external-address '{v}' is not an IP")))?,
            ),
            None => None,
        };
        let local_networks =
            crate::nat::parse_networks(main.map(|m| m.list("nat_local_network")).unwrap_or(&[]))
                .map_err(rule)?;
        // /pbx/rtp/port-min 10000, port-max 20000, must min < max
        let rtp_port_min: u16 = get_or(main, "rtp_port_min", 10000)?;
        let rtp_port_max: u16 = get_or(main, "rtp_port_max", 20000)?;
        if rtp_port_min >= rtp_port_max {
            return Err(rule("rtp port-min must be lower than port-max".into()));
        }
        // /pbx/b2bua/session-expires 1800, max-call-duration 0 (no limit)
        let session_expires: u32 = get_or(main, "b2bua_session_expires", 1800)?;
        let max_call_duration: u32 = get_or(main, "b2bua_max_call_duration", 0)?;
        let accounting =
            crate::accounting::Settings::from_package(pkg, &extensions).map_err(rule)?;
        Ok(Config {
            outbound,
            accounting,
            session_expires,
            max_call_duration,
            mode,
            domains,
            allowed_methods,
            max_transactions,
            listens,
            tcp,
            min_expires,
            default_expires,
            max_expires,
            max_contacts,
            realm,
            algorithms,
            nonce_lifetime,
            extensions,
            aliases,
            trunks,
            routes,
            dispatcher_sets,
            external_address,
            local_networks,
            rtp_port_min,
            rtp_port_max,
        })
    }

    /// Extension number an incoming user part names (directly or by alias).
    pub fn resolve_user(&self, user: &str) -> Option<&Extension> {
        let number = self.aliases.get(user).map(String::as_str).unwrap_or(user);
        self.extensions.get(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rendered_package() {
        let text = "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'Example.COM'\n\toption registrar_min_expires '30'\n\toption rtp_port_min '10000'\n\toption rtp_port_max '10002'\n\nconfig listen 'listen_a'\n\toption name 'a'\n\toption transport 'tcp'\n\toption address '::1'\n\toption port '5070'\n\nconfig extension 'extension_100'\n\toption number '100'\n\toption password 'pw'\n\toption enabled '0'\n\tlist group 'sales'\n\nconfig alias 'alias_boss'\n\toption alias 'boss'\n\toption extension '100'\n";
        let pkg = Package::parse("besip_pbx", text).expect("uci");
        let c = Config::from_package(&pkg, "besip_pbx").expect("config");
        assert_eq!(c.domains, vec!["example.com"]);
        assert_eq!(c.min_expires, 30);
        assert_eq!(c.max_expires, 7200);
        assert_eq!(c.listens[0].transport, Transport::Tcp);
        assert_eq!(c.listens[0].addr, "[::1]:5070".parse().unwrap());
        assert!(!c.extensions["100"].enabled);
        assert_eq!(
            c.resolve_user("boss").map(|e| e.number.as_str()),
            Some("100")
        );
    }

    #[test]
    fn rejects_bad_rules() {
        for bad in [
            "config pbx 'main'\n\toption rtp_port_min '20000'\n\toption rtp_port_max '10000'\n",
            "config pbx 'main'\n\toption registrar_min_expires '5000'\n",
            "config pbx 'main'\n\toption mode 'hub'\n",
            "config alias 'a'\n\toption alias 'x'\n\toption extension '404'\n",
            "config pbx 'main'\n\toption registrar_max_contacts 'many'\n",
            "config route 'r'\n\toption name 'r'\n\toption match '0'\n\toption dispatcher_set 'nope'\n",
            "config route 'r'\n\toption name 'r'\n\toption match '0'\n",
        ] {
            let pkg = Package::parse("besip_pbx", bad).expect("uci");
            assert!(Config::from_package(&pkg, "f").is_err(), "accepted: {bad}");
        }
    }
}
