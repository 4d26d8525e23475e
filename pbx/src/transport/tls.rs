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

/// What a configuration asks of TLS, built before it is applied so that a
/// bad certificate refuses the configuration and changes nothing.
pub struct TlsPlan {
    /// None when no listen socket uses TLS.
    server: Option<Arc<ServerConfig>>,
    handshake_timeout: Duration,
    /// Client configurations of the TLS trunks, by their address.
    trunks: HashMap<SocketAddr, Arc<ClientConfig>>,
}

/// Builds the TLS side of `config`: the server configuration (the
/// configured certificate, or the one generated under `etc_dir`) and a
/// client configuration per TLS trunk.
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
    for t in config.trunks.values() {
        if t.transport != Transport::Tls {
            continue;
        }
        // Trunk hosts are IP addresses (trunk_registration says so otherwise).
        let Ok(ip) = t.host.parse::<IpAddr>() else {
            continue;
        };
        let origin = format!("trunk {} tls-ca", t.name);
        let client = match &t.tls_ca {
            Some(pem) => client_config(roots_from_pem(pem, &origin)?),
            None => default_client(),
        };
        trunks.insert(SocketAddr::new(ip, t.port), client);
    }
    Ok(TlsPlan {
        server,
        handshake_timeout: config.tls.handshake_timeout,
        trunks,
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

/// The TLS state of the transports: what accepts and what connects.
pub struct Tls {
    acceptor: RwLock<Option<TlsAcceptor>>,
    handshake_timeout: RwLock<Duration>,
    trunks: RwLock<HashMap<SocketAddr, Arc<ClientConfig>>>,
    /// Why the last connection to a TLS trunk failed (trunk addresses
    /// only: bounded by the configuration).
    errors: Mutex<HashMap<SocketAddr, String>>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            acceptor: RwLock::new(None),
            handshake_timeout: RwLock::new(Duration::from_secs(10)),
            trunks: RwLock::new(HashMap::new()),
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
        let mut errors = self.errors.lock();
        errors.retain(|addr, _| plan.trunks.contains_key(addr));
        *self.trunks.write() = plan.trunks;
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

    /// The client side of the handshake towards `dest`, verifying its
    /// certificate for its address (the trunk's CA, else the system store).
    pub async fn connect(
        &self,
        stream: TcpStream,
        dest: SocketAddr,
    ) -> Result<ClientStream, HandshakeError> {
        let trunk = self.trunks.read().get(&dest).cloned();
        let is_trunk = trunk.is_some();
        let connector = TlsConnector::from(trunk.unwrap_or_else(default_client));
        let limit = *self.handshake_timeout.read();
        let name = ServerName::IpAddress(dest.ip().into());
        let result = match tokio::time::timeout(limit, connector.connect(name, stream)).await {
            Err(_) => Err(HandshakeError::TimedOut),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(s)) => Ok(s),
        };
        if is_trunk {
            let mut errors = self.errors.lock();
            match &result {
                Ok(_) => {
                    errors.remove(&dest);
                }
                Err(e) => {
                    errors.insert(dest, e.to_string());
                }
            }
        }
        result
    }

    /// Why the last TLS connection to trunk address `dest` failed.
    pub fn last_error(&self, dest: SocketAddr) -> Option<String> {
        self.errors.lock().get(&dest).cloned()
    }

    /// Records that a TLS connection to `dest` could not even be opened.
    pub fn connect_failed(&self, dest: SocketAddr, why: &str) {
        if self.trunks.read().contains_key(&dest) {
            self.errors.lock().insert(dest, why.to_owned());
        }
    }
}
