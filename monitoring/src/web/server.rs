//! The panel's listeners: HTTPS (rustls) on the web port and, on a second
//! port, plain HTTP that only redirects to it. Rebound when the settings
//! that shape them change; sessions live in `AppState` and survive.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

use super::settings::{ConfiguredCert, WebSettings};
use super::{router, tls, AppState};

/// What the listening sockets depend on: any change rebinds them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    addr: SocketAddr,
    redirect_addr: Option<SocketAddr>,
    certificate: Option<ConfiguredCert>,
    hostname: String,
}

impl Plan {
    fn of(s: &WebSettings) -> Plan {
        Plan {
            addr: s.addr,
            redirect_addr: s.redirect_addr,
            certificate: s.certificate.clone(),
            hostname: s.hostname.clone(),
        }
    }
}

struct Listener {
    addr: SocketAddr,
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

struct Running {
    plan: Plan,
    https: Listener,
    redirect: Option<Listener>,
}

/// The panel's server: (re)bound when the web settings change.
pub struct Web {
    state: Arc<AppState>,
    running: tokio::sync::Mutex<Option<Running>>,
    /// The plan last asked for (None: off), bound or not.
    wanted: tokio::sync::Mutex<Option<Plan>>,
}

impl Web {
    pub fn new(monitor: Arc<crate::daemon::Monitor>) -> Web {
        Web {
            state: Arc::new(AppState {
                monitor,
                auth: super::auth::Auth::new(),
            }),
            running: tokio::sync::Mutex::new(None),
            wanted: tokio::sync::Mutex::new(None),
        }
    }

    /// Where the panel serves HTTPS now.
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.running.lock().await.as_ref().map(|r| r.https.addr)
    }

    /// The prepare half of a reload: refuses settings that `apply` could not
    /// serve — a certificate and key that do not load or do not match, a new
    /// HTTPS address that cannot be bound (tried and released at once; the
    /// port could still be taken before `apply`, which then keeps the old
    /// listeners). Settings asked for before are not checked again, as
    /// `apply` does not refuse them either.
    pub async fn check(&self, settings: Option<&WebSettings>) -> Result<(), String> {
        let Some(plan) = settings.filter(|s| s.enabled).map(Plan::of) else {
            return Ok(());
        };
        if self.wanted.lock().await.as_ref() == Some(&plan) {
            return Ok(());
        }
        tls::server_config_for(
            plan.certificate.as_ref(),
            &self.state.monitor.layout().etc_dir(),
            &plan.hostname,
            plan.addr.ip(),
        )?;
        let serving = self.running.lock().await.as_ref().map(|r| r.plan.addr);
        if serving != Some(plan.addr) {
            drop(bind(plan.addr)?);
        }
        Ok(())
    }

    /// Applies settings (`None`: no besip_system file, panel off). A changed
    /// address, port or certificate rebinds at once; sessions survive a
    /// rebind. If a newly asked HTTPS address or certificate cannot be used
    /// the old listeners are restored and an error returned; an unchanged one
    /// that still fails is only logged (it must not block unrelated
    /// monitoring changes). The redirect port is a convenience: failing to
    /// bind it is logged, HTTPS is served anyway.
    pub async fn apply(&self, settings: Option<WebSettings>) -> Result<(), String> {
        let want = settings.as_ref().filter(|s| s.enabled).map(Plan::of);
        let asked_before = {
            let mut wanted = self.wanted.lock().await;
            std::mem::replace(&mut *wanted, want.clone()) == want
        };
        if let Some(s) = &settings {
            self.state
                .auth
                .configure(s.users.clone(), s.session_timeout);
        }
        let mut running = self.running.lock().await;
        let have = running.as_ref().map(|r| r.plan.clone());
        if want == have {
            return Ok(());
        }
        if let Some(old) = running.take() {
            stop(old).await;
        }
        let Some(plan) = want else {
            tracing::info!("web panel off");
            return Ok(());
        };
        match self.serve(&plan) {
            Ok(r) => {
                *running = Some(r);
                Ok(())
            }
            Err(e) => {
                if let Some(old) = have {
                    match self.serve(&old) {
                        Ok(r) => *running = Some(r),
                        Err(e2) => {
                            tracing::error!(error = %e2, "web panel: cannot rebind {}", old.addr)
                        }
                    }
                }
                if asked_before {
                    tracing::error!(error = %e, "web panel still not listening");
                    return Ok(());
                }
                Err(e)
            }
        }
    }

    fn serve(&self, plan: &Plan) -> Result<Running, String> {
        let config = tls::server_config_for(
            plan.certificate.as_ref(),
            &self.state.monitor.layout().etc_dir(),
            &plan.hostname,
            plan.addr.ip(),
        )?;
        let listener = bind(plan.addr)?;
        let addr = listener.local_addr().unwrap_or(plan.addr);
        let handle = Handle::new();
        let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(config))
            .handle(handle.clone());
        let app = router(self.state.clone());
        let task = tokio::spawn(async move {
            let served = server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "web panel stopped");
            }
        });
        tracing::info!(%addr, "web panel listening (HTTPS)");
        let https = Listener { addr, handle, task };
        let redirect = plan.redirect_addr.and_then(|at| {
            serve_redirect(at, addr.port())
                .inspect_err(|e| tracing::error!(error = %e, "web panel: no HTTP redirect"))
                .ok()
        });
        Ok(Running {
            plan: plan.clone(),
            https,
            redirect,
        })
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("web panel: cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("web panel: {addr}: {e}"))?;
    Ok(listener)
}

/// Plain HTTP on `at`: every request is answered with a permanent redirect
/// to the same host and path on `https_port`.
fn serve_redirect(at: SocketAddr, https_port: u16) -> Result<Listener, String> {
    let listener = bind(at)?;
    let addr = listener.local_addr().unwrap_or(at);
    let handle = Handle::new();
    let server = axum_server::from_tcp(listener).handle(handle.clone());
    let app = Router::new().fallback(to_https).with_state(RedirectTo {
        port: https_port,
        fallback_host: addr.ip(),
    });
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "web panel HTTP redirect stopped");
        }
    });
    tracing::info!(%addr, https_port, "web panel: plain HTTP redirects to HTTPS");
    Ok(Listener { addr, handle, task })
}

#[derive(Clone, Copy)]
struct RedirectTo {
    port: u16,
    /// For a request without a usable Host header (HTTP/1.0).
    fallback_host: IpAddr,
}

async fn to_https(State(to): State<RedirectTo>, headers: HeaderMap, uri: Uri) -> Response {
    match https_location(&headers, &uri, to) {
        Some(location) => Redirect::permanent(&location).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            "400 Bad Request: the Host header is not a host name or address\n",
        )
            .into_response(),
    }
}

/// `https://host:port/path?query` for a request that came over plain HTTP.
/// The host is the one the client asked for (so names and addresses keep
/// working), checked to be a plain authority so nothing else can be injected.
fn https_location(headers: &HeaderMap, uri: &Uri, to: RedirectTo) -> Option<String> {
    let host = match headers.get(header::HOST) {
        Some(value) => {
            let authority = Authority::from_str(value.to_str().ok()?).ok()?;
            if authority.as_str().contains('@') {
                return None;
            }
            authority.host().to_string()
        }
        None if to.fallback_host.is_unspecified() => return None,
        None => match to.fallback_host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let port = if to.port == 443 {
        String::new()
    } else {
        format!(":{}", to.port)
    };
    Some(format!("https://{host}{port}{path}"))
}

async fn stop_listener(l: Listener) {
    // Idle keep-alive connections may hold a graceful stop open: cut them
    // after 2 s.
    l.handle.graceful_shutdown(Some(Duration::from_secs(2)));
    let abort = l.task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(3), l.task)
        .await
        .is_err()
    {
        abort.abort();
    }
}

async fn stop(r: Running) {
    if let Some(redirect) = r.redirect {
        stop_listener(redirect).await;
    }
    let addr = r.https.addr;
    stop_listener(r.https).await;
    tracing::info!(%addr, "web panel closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, uri: &str, port: u16, fallback: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, h.parse().unwrap());
        }
        https_location(
            &headers,
            &uri.parse().unwrap(),
            RedirectTo {
                port,
                fallback_host: fallback.parse().unwrap(),
            },
        )
    }

    #[test]
    fn redirect_keeps_host_and_path() {
        assert_eq!(
            location(Some("box.lan:8080"), "/calls?page=2", 8443, "0.0.0.0").as_deref(),
            Some("https://box.lan:8443/calls?page=2")
        );
        assert_eq!(
            location(Some("[::1]:80"), "/", 443, "::").as_deref(),
            Some("https://[::1]/")
        );
        assert_eq!(
            location(None, "/x", 8443, "127.0.0.1").as_deref(),
            Some("https://127.0.0.1:8443/x")
        );
        assert_eq!(location(None, "/x", 8443, "0.0.0.0"), None);
        assert_eq!(location(Some("evil@box"), "/", 8443, "0.0.0.0"), None);
        assert_eq!(location(Some("a b"), "/", 8443, "0.0.0.0"), None);
    }
}
