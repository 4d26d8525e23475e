//! The daemon's view of UCI package `besip_pbx`, built from the types
//! generated from YANG besip-pbx (`besip_core::model::pbx`): the generated
//! reader applies YANG's types, ranges, defaults and mandatory leaves; this
//! file turns them into the shapes the PBX works with and checks the rules
//! YANG does not state (or the reader does not resolve: references between lists).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use besip_core::model::pbx::{self as model, Pbx};
use besip_core::model::ModelError;
use besip_core::uci::{Package, UciError};
use snafu::{ResultExt, Snafu};

pub mod accounting;
pub mod caller_id;
pub mod dispatcher;
pub mod dns;
pub mod forwarding;
pub mod inbound;
pub mod media;
pub mod nat;
pub mod outbound;
pub mod tcp;
pub mod tls;

#[derive(Debug, Snafu)]
pub enum ConfigError {
    #[snafu(display("cannot read PBX configuration: {source}"))]
    Read { source: UciError },
    #[snafu(display("bad value in PBX configuration: {source}"))]
    Value { source: ModelError },
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
    Tls,
}

impl Transport {
    pub fn as_via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The name in a URI's transport parameter and in state ("udp", "tcp", "tls").
    pub fn as_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The transport a Via or a transport parameter names (any case); None
    /// for one we do not serve (SCTP, WS).
    pub fn from_name(name: &str) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.as_param().eq_ignore_ascii_case(name))
    }

    /// The port a URI or a DNS name without one means (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }

    /// A URI parameter naming the transport (none for UDP, the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// Over a connection: stream framing, no retransmissions, the
    /// connection reused to reach the peer.
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
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
    /// /pbx/extension/pickup-group
    pub pickup_groups: Vec<String>,
    /// /pbx/extension/forwarding and do-not-disturb as configured.
    pub forwarding: forwarding::Forwarding,
    /// /pbx/extension/outbound
    pub outbound: outbound::Permissions,
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
    /// /pbx/trunk/media-encryption is sdes: SRTP towards the provider.
    pub srtp: bool,
    /// /pbx/trunk/tls-ca: CA certificates (PEM) for a TLS trunk.
    pub tls_ca: Option<String>,
    /// The host is a domain name: what DNS is asked (`features::dns`).
    pub lookup: Option<dns::Lookup>,
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
    pub record: media::RecordCalls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Mode,
    pub domains: Vec<String>,
    pub allowed_methods: HashSet<String>,
    pub max_transactions: usize,
    pub listens: Vec<Listen>,
    /// /pbx/tcp
    pub tcp: tcp::TcpLimits,
    /// /pbx/tls
    pub tls: tls::TlsSettings,
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
    pub dispatcher_sets: HashMap<String, dispatcher::SetConfig>,
    pub external_address: Option<IpAddr>,
    /// /pbx/nat/local-network
    pub local_networks: Vec<(IpAddr, u8)>,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// /pbx/rtp/kernel-forwarding
    pub rtp_kernel_forwarding: bool,
    pub session_expires: u32,
    pub max_call_duration: u32,
    pub accounting: accounting::Settings,
    /// /pbx/outbound
    pub outbound: outbound::Policy,
    /// /pbx/stun, when enabled.
    pub stun: Option<StunSettings>,
    /// /pbx/dns
    pub dns: dns::Settings,
    /// /pbx/nat: keepalives and media relay of the proxy.
    pub nat: nat::ProxySettings,
    pub feature_codes: forwarding::FeatureCodes,
    /// Caller ID, phonebook and speed dials (`features::caller_id`).
    pub caller_id: caller_id::CallerId,
    /// /pbx/inbound-route, ring-group, time-condition, blocklist
    pub inbound: inbound::Inbound,
    /// /pbx/hep, when a collector is configured.
    pub hep: Option<HepSettings>,
    /// /pbx/cluster, when a database is configured.
    pub cluster: Option<ClusterSettings>,
    /// /pbx/presence: limits of the dialog-event subscriptions.
    pub presence: PresenceLimits,
    /// /pbx/feature-codes/pickup, when feature codes are enabled.
    pub pickup_code: Option<String>,
    /// /pbx/parking, when enabled.
    pub parking: Option<Parking>,
    /// /pbx/conference by number.
    pub rooms: HashMap<String, media::Room>,
    /// /pbx/voicemail and the mailboxes.
    pub voicemail: media::Voicemail,
    /// /pbx/prompt-recording
    pub prompt_recording: media::PromptRecording,
    /// /pbx/ivr by name.
    pub ivrs: HashMap<String, inbound::Ivr>,
    /// /pbx/recording and the recorded extensions.
    pub recording: media::Recording,
    /// /pbx/music-on-hold, when enabled: the prompt played.
    pub music_on_hold: Option<String>,
    /// /pbx/media-max-calls
    pub media_max_calls: usize,
    /// /pbx/media-codec, in the box's preference.
    pub media_codecs: Vec<besip_media::codec::Codec>,
}

/// The shared location (/pbx/cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub database: String,
    /// /pbx/cluster/database-ca (PEM).
    pub database_ca: Option<String>,
    pub box_name: String,
    /// Where the other boxes send calls for this box's phones (UDP).
    pub sip: SocketAddr,
}

/// Where copies of the SIP messages go (HEP v3 over UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HepSettings {
    pub collector: SocketAddr,
    pub capture_id: u32,
}

/// /pbx/parking of enabled parking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parking {
    pub first: u32,
    pub slots: u32,
    pub timeout: std::time::Duration,
}

impl Parking {
    /// The slot `user` names, if it is one.
    pub fn slot(&self, user: &str) -> Option<u32> {
        if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) || user.starts_with('0') {
            return None;
        }
        let n: u32 = user.parse().ok()?;
        (n >= self.first && n - self.first < self.slots).then_some(n)
    }
}

/// /pbx/presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLimits {
    pub per_extension: usize,
    pub total: usize,
    pub max_expires: u32,
}

/// /pbx/stun of an enabled STUN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunSettings {
    pub addr: SocketAddr,
    pub max_requests_per_source: u32,
}

/// Parses /pbx/nat/local-network and trusted-peer prefixes ("192.168.0.0/16", "fd00::/8").
pub fn parse_networks(values: &[String]) -> Result<Vec<(IpAddr, u8)>, String> {
    values
        .iter()
        .map(|v| {
            let bad = || format!("nat local-network '{v}' is not an IP prefix");
            let (ip, len) = v.split_once('/').ok_or_else(bad)?;
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(bad());
            }
            Ok((ip, len))
        })
        .collect()
}

impl From<model::Transport> for Transport {
    fn from(t: model::Transport) -> Self {
        match t {
            model::Transport::Udp => Transport::Udp,
            model::Transport::Tcp => Transport::Tcp,
            model::Transport::Tls => Transport::Tls,
        }
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
        let pbx = Pbx::from_package(pkg).context(ValueSnafu)?;
        Config::from_model(pbx, file)
    }

    pub fn from_model(pbx: Pbx, file: &str) -> Result<Config, ConfigError> {
        let caller_id = caller_id::CallerId::from_model(&pbx);
        let rule = |message: String| ConfigError::Rule {
            file: file.to_owned(),
            message,
        };
        let mode = match pbx.mode {
            model::Mode::Proxy => Mode::Proxy,
            model::Mode::B2bua => Mode::B2bua,
        };
        let domains: Vec<String> = pbx.domain.iter().map(|d| d.to_ascii_lowercase()).collect();
        let allowed_methods: HashSet<String> = pbx
            .allowed_method
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        let registrar = &pbx.registrar;
        if !(registrar.min_expires <= registrar.default_expires
            && registrar.default_expires <= registrar.max_expires)
        {
            return Err(rule(
                "registrar expires must satisfy min <= default <= max".into(),
            ));
        }
        // No realm configured: the first domain names it.
        let realm = pbx
            .auth
            .realm
            .clone()
            .or_else(|| domains.first().cloned())
            .unwrap_or_else(|| "besip".to_owned());
        let algorithms = match pbx.auth.algorithms {
            model::AuthAlgorithms::Md5 => vec![Algorithm::Md5],
            model::AuthAlgorithms::Sha256 => vec![Algorithm::Sha256],
            model::AuthAlgorithms::Md5AndSha256 => vec![Algorithm::Md5, Algorithm::Sha256],
        };
        let mut listens: Vec<Listen> = pbx
            .listen
            .iter()
            .map(|l| {
                let transport = Transport::from(l.transport);
                Listen {
                    name: l.name.clone(),
                    transport,
                    // No port: the transport's registered one (5061 for TLS).
                    addr: SocketAddr::new(l.address, l.port.unwrap_or(transport.default_port())),
                }
            })
            .collect();
        // No listen entry at all: the PBX still answers on the SIP port.
        if listens.is_empty() {
            listens.push(Listen {
                name: "default".into(),
                transport: Transport::Udp,
                addr: SocketAddr::from(([0, 0, 0, 0], 5060)),
            });
        }

        let cluster = match &pbx.cluster.database {
            None => None,
            Some(database) => {
                let udp = listens
                    .iter()
                    .find(|l| l.transport == Transport::Udp)
                    .ok_or_else(|| {
                        rule("cluster needs a UDP listen for calls between boxes".into())
                    })?;
                let ip = pbx.cluster.sip_address.unwrap_or(udp.addr.ip());
                if ip.is_unspecified() {
                    return Err(rule(
                        "cluster sip-address is needed when the UDP listen is a wildcard address"
                            .into(),
                    ));
                }
                Some(ClusterSettings {
                    database: database.clone(),
                    database_ca: pbx.cluster.database_ca.clone(),
                    box_name: pbx.cluster.box_name.clone(),
                    sip: SocketAddr::new(ip, udp.addr.port()),
                })
            }
        };
        let outbound = outbound::Policy::from_model(&pbx.outbound).map_err(rule)?;
        let mut extensions = HashMap::new();
        for e in &pbx.extension {
            extensions.insert(
                e.number.clone(),
                Extension {
                    number: e.number.clone(),
                    display_name: e.display_name.clone(),
                    password: e.password.clone(),
                    enabled: e.enabled,
                    groups: e.group.clone(),
                    pickup_groups: e.pickup_group.clone(),
                    forwarding: forwarding::Forwarding::from_model(e),
                    outbound: outbound
                        .permissions_of(&e.number, &e.outbound)
                        .map_err(rule)?,
                },
            );
        }
        let mut aliases = HashMap::new();
        for a in &pbx.alias {
            if !extensions.contains_key(&a.extension) {
                return Err(rule(format!(
                    "alias {} points to unknown extension {}",
                    a.alias, a.extension
                )));
            }
            aliases.insert(a.alias.clone(), a.extension.clone());
        }
        if let Some(code) = caller_id
            .speed_dials
            .keys()
            .find(|c| extensions.contains_key(*c) || aliases.contains_key(*c))
        {
            return Err(rule(format!(
                "speed dial {code} is also an extension or alias number"
            )));
        }
        let trunks: HashMap<String, Trunk> = pbx
            .trunk
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    Trunk {
                        name: t.name.clone(),
                        host: t.host.clone(),
                        // RFC 3263: absent, they are found by DNS for a name.
                        port: t.port.unwrap_or_else(|| {
                            t.transport
                                .map(Transport::from)
                                .unwrap_or(Transport::Udp)
                                .default_port()
                        }),
                        transport: t.transport.map(Into::into).unwrap_or(Transport::Udp),
                        username: t.username.clone(),
                        password: t.password.clone(),
                        register: t.register,
                        srtp: t.media_encryption == model::TrunkMediaEncryption::Sdes,
                        tls_ca: t.tls_ca.clone(),
                        lookup: dns::Lookup::of_host(&t.host, t.port, t.transport.map(Into::into)),
                    },
                )
            })
            .collect();
        let dispatcher_sets =
            dispatcher::SetConfig::from_model(&pbx.dispatcher_set).map_err(rule)?;
        let mut routes = Vec::new();
        for r in &pbx.route {
            let name = &r.name;
            // choice target (mandatory): exactly one case, naming something that exists.
            let trunk = match (&r.trunk, &r.dispatcher_set) {
                (Some(t), None) if trunks.contains_key(t) => t.as_str(),
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
                name: name.clone(),
                priority: r.priority,
                prefix: r.r#match.clone(),
                strip: usize::from(r.strip),
                prepend: r.prepend.clone().unwrap_or_default(),
                trunk: trunk.to_owned(),
                dispatcher_set: r.dispatcher_set.clone(),
                required_group: r.required_group.clone(),
                record: r.record_calls.into(),
            });
        }
        routes.sort_by_key(|r| r.priority);
        let local_networks = parse_networks(&pbx.nat.local_network).map_err(rule)?;
        if pbx.rtp.port_min >= pbx.rtp.port_max {
            return Err(rule("rtp port-min must be lower than port-max".into()));
        }
        let accounting =
            accounting::Settings::from_model(&pbx.accounting, &extensions).map_err(rule)?;
        let dialable: HashSet<&str> = extensions
            .keys()
            .chain(aliases.keys())
            .map(String::as_str)
            .collect();
        let trunk_names: HashSet<&str> = trunks.keys().map(String::as_str).collect();
        let inbound = inbound::Inbound::from_model(&pbx, &dialable, &trunk_names).map_err(rule)?;
        let parks = inbound
            .destinations()
            .any(|d| *d == inbound::Destination::Parking);
        if parks && !(mode == Mode::B2bua && pbx.parking.enabled) {
            return Err(rule(
                "a destination is the parking lot, which needs b2bua mode and parking enabled"
                    .into(),
            ));
        }
        let rooms = media::rooms(&pbx).map_err(rule)?;
        let voicemail = media::voicemail(&pbx);
        if voicemail.any_mailbox_code == voicemail.mailbox_code {
            return Err(rule(
                "voicemail mailbox-code and any-mailbox-code must differ".into(),
            ));
        }
        let prompt_recording = media::prompt_recording(&pbx);
        let ivrs = inbound::ivrs(&pbx).map_err(rule)?;
        let recording = media::recording(&pbx);
        let music_on_hold = media::music_on_hold(&pbx);
        Ok(Config {
            outbound,
            accounting,
            session_expires: pbx.b2bua.session_expires,
            max_call_duration: pbx.b2bua.max_call_duration,
            mode,
            domains,
            allowed_methods,
            max_transactions: pbx.max_transactions as usize,
            listens,
            tcp: tcp::TcpLimits::from_model(&pbx.tcp),
            tls: tls::TlsSettings::from_model(&pbx.tls),
            min_expires: registrar.min_expires,
            default_expires: registrar.default_expires,
            max_expires: registrar.max_expires,
            max_contacts: usize::from(registrar.max_contacts),
            realm,
            algorithms,
            nonce_lifetime: u64::from(pbx.auth.nonce_lifetime),
            extensions,
            aliases,
            trunks,
            routes,
            dispatcher_sets,
            external_address: pbx.nat.external_address,
            local_networks,
            stun: pbx.stun.enabled.then(|| StunSettings {
                addr: SocketAddr::new(pbx.stun.address, pbx.stun.port),
                max_requests_per_source: pbx.stun.max_requests_per_source,
            }),
            rtp_port_min: pbx.rtp.port_min,
            rtp_port_max: pbx.rtp.port_max,
            rtp_kernel_forwarding: pbx.rtp.kernel_forwarding,
            dns: dns::Settings::from_model(&pbx.dns),
            nat: nat::ProxySettings::from_model(&pbx.nat),
            feature_codes: forwarding::FeatureCodes::from_model(&pbx.feature_codes),
            caller_id,
            inbound,
            cluster,
            hep: pbx.hep.collector_address.map(|ip| HepSettings {
                collector: SocketAddr::new(ip, pbx.hep.collector_port),
                capture_id: pbx.hep.capture_id,
            }),
            presence: PresenceLimits {
                per_extension: usize::from(pbx.presence.max_subscriptions_per_extension),
                total: pbx.presence.max_subscriptions as usize,
                max_expires: pbx.presence.max_expires,
            },
            parking: pbx.parking.enabled.then(|| Parking {
                first: pbx.parking.first_slot,
                slots: u32::from(pbx.parking.slots),
                timeout: std::time::Duration::from_secs(u64::from(pbx.parking.timeout)),
            }),
            pickup_code: pbx
                .feature_codes
                .enabled
                .then(|| pbx.feature_codes.pickup.clone()),
            rooms,
            voicemail,
            prompt_recording,
            ivrs,
            recording,
            music_on_hold,
            media_max_calls: pbx.media_max_calls as usize,
            media_codecs: pbx
                .media_codec
                .iter()
                .map(|c| match c {
                    model::MediaCodec::PCMU => besip_media::codec::Codec::Pcmu,
                    model::MediaCodec::PCMA => besip_media::codec::Codec::Pcma,
                    model::MediaCodec::G722 => besip_media::codec::Codec::G722,
                })
                .collect(),
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
    fn cluster_sip_address_is_the_listen_or_the_configured_one() {
        let main = |extra: &str| {
            format!("package besip_pbx\n\nconfig pbx 'main'\n\toption cluster_database 'postgresql://db/besip'\n{extra}\nconfig listen 'listen_u'\n\toption name 'u'\n\toption address '0.0.0.0'\n\toption port '5070'\n")
        };
        let load = |text: &str| {
            let pkg = Package::parse("besip_pbx", text).expect("uci");
            Config::from_package(&pkg, "besip_pbx")
        };
        // A wildcard listen tells other boxes nothing: sip-address is needed.
        let refused = load(&main("")).expect_err("wildcard without sip-address");
        assert!(refused.to_string().contains("sip-address"), "{refused}");
        let c = load(&main("\toption cluster_sip_address '192.0.2.7'\n")).expect("config");
        let cluster = c.cluster.expect("cluster");
        assert_eq!(cluster.sip, "192.0.2.7:5070".parse().unwrap());
        assert_eq!(cluster.box_name, "box");
    }

    #[test]
    fn listen_without_port_binds_the_transports_port() {
        let text = "config listen 'u'\n\toption name 'u'\n\nconfig listen 't'\n\toption name 't'\n\toption transport 'tcp'\n\nconfig listen 's'\n\toption name 's'\n\toption transport 'tls'\n\nconfig listen 'p'\n\toption name 'p'\n\toption transport 'tls'\n\toption port '5071'\n";
        let pkg = Package::parse("besip_pbx", text).expect("uci");
        let c = Config::from_package(&pkg, "besip_pbx").expect("config");
        let port = |name: &str| {
            c.listens
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.addr.port())
        };
        assert_eq!(port("u"), Some(5060));
        assert_eq!(port("t"), Some(5060));
        assert_eq!(port("s"), Some(5061), "TLS without a port binds 5061");
        assert_eq!(port("p"), Some(5071), "a given port wins");
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

    #[test]
    fn the_parking_lot_is_a_destination_in_b2bua_mode_with_parking_on() {
        let route = "config trunk 't'\n\toption name 'p'\n\toption host '192.0.2.1'\n\nconfig inbound_route 'ir'\n\toption name 'lot'\n\toption did '70'\n\toption destination_parking '1'\n";
        let load = |main: &str, rest: &str| {
            let text = format!("config pbx 'main'\n{main}\n{rest}");
            let pkg = Package::parse("besip_pbx", &text).expect("uci");
            Config::from_package(&pkg, "f")
        };
        load("\toption mode 'b2bua'\n", route).expect("b2bua with parking");
        for main in [
            "\toption mode 'proxy'\n",
            "\toption mode 'b2bua'\n\toption parking_enabled '0'\n",
        ] {
            let refused = load(main, route).expect_err(main);
            assert!(refused.to_string().contains("parking lot"), "{refused}");
        }
        let menu = "config ivr 'm'\n\toption name 'm'\n\toption prompt 'p'\n\toption timeout_destination_parking '1'\n";
        let refused = load("\toption mode 'b2bua'\n", menu).expect_err("menu to the lot");
        assert!(refused.to_string().contains("parking lot"), "{refused}");
    }
}
