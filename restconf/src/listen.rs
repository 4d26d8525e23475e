//! The HTTPS endpoint: bound where `/system/restconf` says (or where the
//! command line fixed it), rebound when a commit changes that.

use crate::backend::{Backend, Settings};
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const CERT_FILE: &str = "restconf-cert.pem";
pub const KEY_FILE: &str = "restconf-key.pem";

struct Endpoint<B> {
    backend: Arc<B>,
    /// Served on the same port beside RESTCONF (the web administration).
    extra: axum::Router,
    etc_dir: PathBuf,
    /// `--restconf-listen`: fixed addresses, configuration not followed.
    fixed: Vec<SocketAddr>,
    serving: Vec<SocketAddr>,
    handles: Vec<Handle>,
}

/// Where to listen for these settings (empty: not at all).
fn plan(settings: &Settings, fixed: &[SocketAddr]) -> Vec<SocketAddr> {
    if !fixed.is_empty() {
        return fixed.to_vec();
    }
    if !settings.enabled {
        return Vec::new();
    }
    if settings.addresses.is_empty() {
        return vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            settings.port,
        )];
    }
    settings
        .addresses
        .iter()
        .map(|a| SocketAddr::new(*a, settings.port))
        .collect()
}

fn tls_config(
    etc_dir: &std::path::Path,
    hostname: &str,
    addrs: &[SocketAddr],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut names = vec![
        hostname.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for a in addrs {
        if !a.ip().is_unspecified() && !a.ip().is_loopback() {
            names.push(a.ip().to_string());
        }
    }
    let spec = besip_core::tls::Generated {
        dir: etc_dir,
        cert_file: CERT_FILE,
        key_file: KEY_FILE,
        common_name: hostname,
        names,
        purpose: "RESTCONF",
    };
    let (cert, key) = besip_core::tls::load_or_generate(&spec)?;
    let origin = etc_dir.join(CERT_FILE).display().to_string();
    let mut config = besip_core::tls::server_config(&cert, &key, &origin)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl<B: Backend> Endpoint<B> {
    async fn apply(&mut self) -> Result<(), String> {
        let settings = self.backend.settings().await;
        let wanted = plan(&settings, &self.fixed);
        if wanted == self.serving {
            return Ok(());
        }
        for h in self.handles.drain(..) {
            h.graceful_shutdown(Some(Duration::from_secs(2)));
        }
        self.serving.clear();
        if wanted.is_empty() {
            tracing::info!("RESTCONF not served (besip-system restconf/enabled is false)");
            return Ok(());
        }
        let config = tls_config(&self.etc_dir, &settings.hostname, &wanted)?;
        for addr in &wanted {
            // The old listener may still be closing: a few tries.
            let mut tries = 0;
            let listener = loop {
                match std::net::TcpListener::bind(addr) {
                    Ok(l) => break l,
                    Err(e) if tries < 20 => {
                        tries += 1;
                        tracing::debug!(%addr, error = %e, "RESTCONF port busy, retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        return Err(format!(
                            "RESTCONF cannot listen on {addr}: {e}; choose another besip-system restconf/port or --restconf-listen"
                        ))
                    }
                }
            };
            listener
                .set_nonblocking(true)
                .map_err(|e| format!("RESTCONF listener {addr}: {e}"))?;
            let handle = Handle::new();
            // TCP_NODELAY: a reply is one small write the client waits for;
            // Nagle would hold it behind the client's delayed ACK.
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(config.clone()))
                .acceptor(NoDelayAcceptor::new());
            let server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle.clone());
            // The extra routes have no fallback: whatever they do not
            // name goes to RESTCONF's handler.
            let app = self
                .extra
                .clone()
                .merge(crate::handlers::router(self.backend.clone()));
            let at = *addr;
            tokio::spawn(async move {
                if let Err(e) = server
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                {
                    tracing::error!(address = %at, error = %e, "RESTCONF stopped");
                }
            });
            tracing::info!(address = %addr, "RESTCONF over HTTPS listening (root /restconf)");
            self.handles.push(handle);
            self.serving.push(*addr);
        }
        Ok(())
    }
}

/// Serve RESTCONF as configured now (an error if it cannot bind), then
/// follow running: each change of `/system/restconf` rebinds.
pub async fn spawn<B: Backend>(
    backend: Arc<B>,
    etc_dir: PathBuf,
    fixed: Vec<SocketAddr>,
) -> Result<(), String> {
    spawn_with(backend, etc_dir, fixed, axum::Router::new()).await
}

/// As [`spawn`], with `extra` routes (no fallback) served on the same
/// HTTPS port: the web administration of besip-web.
pub async fn spawn_with<B: Backend>(
    backend: Arc<B>,
    etc_dir: PathBuf,
    fixed: Vec<SocketAddr>,
    extra: axum::Router,
) -> Result<(), String> {
    let mut changes = backend.watch_running();
    let mut endpoint = Endpoint {
        backend,
        extra,
        etc_dir,
        fixed,
        serving: Vec::new(),
        handles: Vec::new(),
    };
    endpoint.apply().await?;
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            if let Err(e) = endpoint.apply().await {
                tracing::error!(error = %e, "RESTCONF endpoint not changed");
            }
        }
    });
    Ok(())
}
