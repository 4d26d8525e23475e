//! SIP over TLS (RFC 3261 §26.2, RFC 5630): the TLS layer only. Accepted
//! and opened connections are wrapped here and then run through the same
//! framing, limits and timeouts as TCP (transport::start_connection).
//! Server side: the certificate of /pbx/tls, or a self-signed one kept in
//! the etc directory. Client side (trunks): the provider's certificate is
//! verified against the trunk's tls-ca or the system CA store, and the
//! last failure is kept for the trunk's state.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{Config, Transport};

/// The generated certificate and its key, in the etc directory.
pub const CERT_FILE: &str = "sip-tls-cert.pem";
pub const KEY_FILE: &str = "sip-tls-key.pem";

pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// How a peer we connect to is verified: against which CA store and for
/// which name (RFC 5922 §4: the SIP domain of the configuration, not the
/// address or SRV target DNS gave for it).
#[derive(Clone)]
struct Identity {
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// The trunk it belongs to; its failures are kept for the trunk's state.
    trunk: Option<String>,
}

/// What a configuration asks of TLS, built before it is applied so that a
/// bad certificate refuses the configuration and changes nothing.
pub struct TlsPlan {
    /// None when no listen socket uses TLS.
    server: Option<Arc<ServerConfig>>,
    handshake_timeout: Duration,
    /// Every trunk's identity, by trunk name.
    trunks: HashMap<String, Identity>,
    /// The addresses of trunks whose host is an IP address.
    fixed: HashMap<SocketAddr, String>,
}

/// Builds the TLS side of `config`: the server configuration (the
/// configured certificate, or the one generated under `etc_dir`) and how
/// each trunk's certificate is verified.
pub fn plan(config: &Config, etc_dir: &Path) -> Result<TlsPlan, String> {
    let serves_tls = config.listens.iter().any(|l| l.transport == Transport::Tls);
    let server = if serves_tls {
        let (cert, key, origin) = match &config.tls.configured {
            Some((cert, key)) => (
                cert.clone(),
                key.0.clone(),
                "/pbx/tls certificate".to_owned(),
            ),
            None => {
                let (cert, key) = besip_core::tls::load_or_generate(&besip_core::tls::Generated {
                    dir: etc_dir,
                    cert_file: CERT_FILE,
                    key_file: KEY_FILE,
                    common_name: "besip",
                    names: certificate_names(config),
                    purpose: "SIP over TLS",
                })?;
                (cert, key, etc_dir.join(CERT_FILE).display().to_string())
            }
        };
        let server = besip_core::tls::server_config(&cert, &key, &origin)?;
        Some(Arc::new(server))
    } else {
        None
    };
    let mut trunks = HashMap::new();
    let mut fixed = HashMap::new();
    for t in config.trunks.values() {
        // A trunk named by DNS may be given TLS targets by NAPTR even when
        // its transport is not fixed: every trunk gets an identity.
        let origin = format!("trunk {} tls-ca", t.name);
        let client = match &t.tls_ca {
            Some(pem) => client_config(roots_from_pem(pem, &origin)?),
            None => default_client(),
        };
        let host = t.host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.trim_end_matches('.').to_owned()).map_err(|e| {
            format!(
                "trunk {}: host {host} is not a TLS server name: {e}",
                t.name
            )
        })?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            if t.transport == Transport::Tls {
                fixed.insert(SocketAddr::new(ip, t.port), t.name.clone());
            }
        }
        let identity = Identity {
            client,
            name,
            trunk: Some(t.name.clone()),
        };
        trunks.insert(t.name.clone(), identity);
    }
    Ok(TlsPlan {
        server,
        handshake_timeout: config.tls.handshake_timeout,
        trunks,
        fixed,
    })
}

/// localhost, the loopback addresses and every specific listen address.
fn certificate_names(config: &Config) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let specific = config
        .listens
        .iter()
        .map(|l| l.addr.ip())
        .chain(config.external_address)
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
        .map(|ip| ip.to_string());
    for n in specific {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

fn roots_from_pem(pem: &str, origin: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in besip_core::tls::certificates(pem, origin)? {
        roots
            .add(cert)
            .map_err(|e| format!("{origin}: not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(besip_core::tls::provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(c) => Arc::new(c),
        // The ring provider supports the default versions; never reached.
        Err(e) => {
            tracing::error!(error = %e, "TLS client configuration");
            Arc::new(
                ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    }
}

/// Verifies against the system CA store, read once.
fn default_client() -> Arc<ClientConfig> {
    static SYSTEM: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "reading the system CA store");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, "system CA certificates for TLS trunks");
            client_config(roots)
        })
        .clone()
}

/// Who was resolved to TLS addresses by DNS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resolved {
    /// A trunk (its name): verified with its tls-ca, for its host name.
    Trunk(String),
    /// Anything else named by DNS (a dispatcher destination, by a label of
    /// its own): the system CA store, for `host`.
    Other { label: String, host: String },
}

/// The TLS state of the transports: what accepts and what connects.
pub struct Tls {
    acceptor: RwLock<Option<TlsAcceptor>>,
    handshake_timeout: RwLock<Duration>,
    trunks: RwLock<HashMap<String, Identity>>,
    /// How the peer at an address is verified: trunks with an IP address
    /// and the TLS targets DNS gave for names (bounded by the
    /// configuration and the resolver's target limit).
    peers: RwLock<HashMap<SocketAddr, Identity>>,
    /// The addresses DNS gave, by whom they were resolved for.
    resolved: Mutex<HashMap<Resolved, Vec<SocketAddr>>>,
    /// Why the last connection to a trunk failed, by trunk name.
    errors: Mutex<HashMap<String, String>>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            acceptor: RwLock::new(None),
            handshake_timeout: RwLock::new(Duration::from_secs(10)),
            trunks: RwLock::new(HashMap::new()),
            peers: RwLock::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            errors: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug)]
pub enum HandshakeError {
    TimedOut,
    Failed(std::io::Error),
    /// No TLS listen socket is configured (a reload removed it).
    NotServing,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::TimedOut => f.write_str("TLS handshake not finished in time"),
            HandshakeError::Failed(e) => write!(f, "TLS handshake failed: {e}"),
            HandshakeError::NotServing => f.write_str("TLS is not configured"),
        }
    }
}

impl Tls {
    /// Uses `plan` from now on (open connections keep their session).
    pub fn apply(&self, plan: TlsPlan) {
        *self.acceptor.write() = plan.server.map(TlsAcceptor::from);
        *self.handshake_timeout.write() = plan.handshake_timeout;
        self.errors
            .lock()
            .retain(|trunk, _| plan.trunks.contains_key(trunk));
        let mut resolved = self.resolved.lock();
        resolved.retain(|who, _| match who {
            Resolved::Trunk(t) => plan.trunks.contains_key(t),
            Resolved::Other { .. } => true,
        });
        *self.trunks.write() = plan.trunks;
        let mut peers = HashMap::new();
        for (addr, trunk) in plan.fixed {
            if let Some(identity) = self.identity_of(&Resolved::Trunk(trunk)) {
                peers.insert(addr, identity);
            }
        }
        for (who, addrs) in resolved.iter() {
            if let Some(identity) = self.identity_of(who) {
                for a in addrs {
                    peers.entry(*a).or_insert_with(|| identity.clone());
                }
            }
        }
        *self.peers.write() = peers;
    }

    fn identity_of(&self, who: &Resolved) -> Option<Identity> {
        match who {
            Resolved::Trunk(t) => self.trunks.read().get(t).cloned(),
            Resolved::Other { host, .. } => Some(Identity {
                client: default_client(),
                name: ServerName::try_from(host.clone()).ok()?,
                trunk: None,
            }),
        }
    }

    /// The TLS addresses DNS now gives for `who` (none: forget it). A
    /// connection to one of them is verified for `who`'s name.
    pub fn resolved(&self, who: Resolved, addrs: Vec<SocketAddr>) {
        let mut resolved = self.resolved.lock();
        let mut peers = self.peers.write();
        if let Some(old) = resolved.remove(&who) {
            for a in old {
                peers.remove(&a);
            }
        }
        if addrs.is_empty() {
            return;
        }
        let Some(identity) = self.identity_of(&who) else {
            return;
        };
        for a in &addrs {
            peers.insert(*a, identity.clone());
        }
        resolved.insert(who, addrs);
    }

    /// The server side of the handshake on an accepted connection, within
    /// the handshake timeout.
    pub async fn accept(&self, stream: TcpStream) -> Result<ServerStream, HandshakeError> {
        let acceptor = self.acceptor.read().clone();
        let Some(acceptor) = acceptor else {
            return Err(HandshakeError::NotServing);
        };
        let limit = *self.handshake_timeout.read();
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Err(_) => Err(HandshakeError::TimedOut),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// The client side of the handshake towards `dest`: a trunk's or a
    /// resolved name's peer is verified for that name (the trunk's CA, else
    /// the system store); any other address for the address itself.
    pub async fn connect(
        &self,
        stream: TcpStream,
        dest: SocketAddr,
    ) -> Result<ClientStream, HandshakeError> {
        let identity = self.peers.read().get(&dest).cloned();
        let (client, name, trunk) = match identity {
            Some(i) => (i.client, i.name, i.trunk),
            None => (
                default_client(),
                ServerName::IpAddress(dest.ip().into()),
                None,
            ),
        };
        let connector = TlsConnector::from(client);
        let limit = *self.handshake_timeout.read();
        let result = match tokio::time::timeout(limit, connector.connect(name, stream)).await {
            Err(_) => Err(HandshakeError::TimedOut),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(s)) => Ok(s),
        };
        if let Some(trunk) = trunk {
            let mut errors = self.errors.lock();
            match &result {
                Ok(_) => {
                    errors.remove(&trunk);
                }
                Err(e) => {
                    errors.insert(trunk, format!("{dest}: {e}"));
                }
            }
        }
        result
    }

    /// Why the last TLS connection to `trunk` failed.
    pub fn last_error(&self, trunk: &str) -> Option<String> {
        self.errors.lock().get(trunk).cloned()
    }

    /// Records that a TLS connection to `dest` could not even be opened.
    pub fn connect_failed(&self, dest: SocketAddr, why: &str) {
        let trunk = self.peers.read().get(&dest).and_then(|i| i.trunk.clone());
        if let Some(trunk) = trunk {
            self.errors.lock().insert(trunk, format!("{dest}: {why}"));
        }
    }
}
