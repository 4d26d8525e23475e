//! The box's Prometheus endpoint (/system/metrics): GET /metrics gathers
//! each running daemon's families over IPC (`metrics`) and adds
//! besip-netconfd's own (sessions, RPCs, commits and their latency). The
//! endpoint follows running: after each commit it is bound, moved or
//! closed as /system/metrics says.
//!
//! Attack surface: plain HTTP without login (as every Prometheus
//! exporter), so it answers nothing but GET /metrics; at most
//! `CONCURRENT_SCRAPES` scrapes run at once (more get 503 at once), so a
//! flood of scrapes cannot make the daemons render metrics without bound;
//! hyper bounds header sizes.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use besip_core::metrics::{
    counter, exposition, families, gauge, histogram, Histogram, MetricsRegistry,
};
use besip_core::model::system::System;
use besip_core::uci::Package;
use tokio::sync::Semaphore;

use crate::server::{lock, Server};

const CONCURRENT_SCRAPES: usize = 2;
/// How long one daemon may take to render its families.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(3);
/// Commit latency buckets (seconds): a commit renders, prepares and applies
/// every daemon's configuration.
const COMMIT_BUCKETS: [f64; 9] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Commits done by netconfd (NETCONF commit, hand edits) and how long they took.
pub struct CommitMetrics {
    ok: AtomicU64,
    failed: AtomicU64,
    duration: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            duration: histogram(&COMMIT_BUCKETS),
        }
    }
}

impl CommitMetrics {
    pub fn record(&self, ok: bool, took: Duration) {
        let n = if ok { &self.ok } else { &self.failed };
        n.fetch_add(1, Ordering::Relaxed);
        self.duration.observe(took.as_secs_f64());
    }
}

/// The bound endpoint, if /system/metrics enables one.
#[derive(Default)]
pub struct Endpoint {
    running: Mutex<Option<(SocketAddr, tokio::task::AbortHandle)>>,
}

impl Endpoint {
    /// Binds, moves or closes the endpoint as running's /system/metrics
    /// says (read from the rendered besip_system package).
    pub async fn follow(&self, server: &Arc<Server>) {
        let want = wanted(server);
        {
            let running = lock(&self.running);
            if running.as_ref().map(|(a, _)| *a) == want {
                return;
            }
        }
        if let Some((addr, task)) = lock(&self.running).take() {
            task.abort();
            tracing::info!(%addr, "metrics endpoint closed");
        }
        let Some(addr) = want else {
            return;
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot serve metrics");
                return;
            }
        };
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(Scraper {
                server: server.clone(),
                slots: Arc::new(Semaphore::new(CONCURRENT_SCRAPES)),
            });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
        tracing::info!(%addr, "serving metrics at /metrics");
        *lock(&self.running) = Some((addr, task.abort_handle()));
    }
}

/// Serves /system/metrics of running from now on, following each commit.
pub fn follow_running(server: Arc<Server>) {
    tokio::spawn(async move {
        let endpoint = Endpoint::default();
        loop {
            endpoint.follow(&server).await;
            server.metrics_settings_changed.notified().await;
        }
    });
}

/// The address /system/metrics asks for (None: disabled or unreadable).
fn wanted(server: &Server) -> Option<SocketAddr> {
    let path = server.layout.uci_package("besip_system");
    let package = Package::load(&path).ok()?;
    let metrics = System::from_package(&package).ok()?.metrics;
    let ip: IpAddr = metrics.listen_address;
    metrics.enabled.then(|| SocketAddr::new(ip, metrics.port))
}

#[derive(Clone)]
struct Scraper {
    server: Arc<Server>,
    slots: Arc<Semaphore>,
}

async fn scrape(State(s): State<Scraper>) -> Response {
    let Ok(_slot) = s.slots.try_acquire() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "a scrape is in progress\n").into_response();
    };
    let mut parts = vec![own_families(&s.server)];
    for daemon in ["pbx", "security", "monitoring"] {
        parts.push(daemon_families(&s.server, daemon).await);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        exposition(parts),
    )
        .into_response()
}

/// A daemon's families ("" when it is not running or does not answer).
async fn daemon_families(server: &Server, daemon: &str) -> String {
    let path = server.layout.socket(daemon);
    if !path.exists() {
        return String::new();
    }
    let Ok(client) = besip_core::ipc::IpcClient::connect(&path).await else {
        return String::new();
    };
    match client
        .with_timeout(DAEMON_TIMEOUT)
        .call("metrics", serde_json::json!({}))
        .await
    {
        Ok(serde_json::Value::String(text)) => text,
        Ok(_) => String::new(),
        Err(e) => {
            tracing::warn!(daemon, error = %e, "daemon metrics unavailable");
            String::new()
        }
    }
}

fn own_families(server: &Server) -> String {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut r = MetricsRegistry::with_prefix("besip_netconf");
    gauge(
        &mut r,
        "sessions",
        "NETCONF/SSH sessions logged in now.",
        i64::from(server.connections.load(Ordering::Relaxed)),
    );
    counter(
        &mut r,
        "sessions_started",
        "NETCONF sessions started.",
        load(&server.in_sessions),
    );
    counter(
        &mut r,
        "rpcs",
        "NETCONF RPCs received.",
        load(&server.totals.in_rpcs),
    );
    counter(
        &mut r,
        "bad_rpcs",
        "NETCONF RPCs that could not be parsed.",
        load(&server.totals.in_bad_rpcs),
    );
    counter(
        &mut r,
        "rpc_errors",
        "rpc-error replies sent.",
        load(&server.totals.out_rpc_errors),
    );
    counter(
        &mut r,
        "commits",
        "Commits of running that succeeded.",
        load(&server.commits.ok),
    );
    counter(
        &mut r,
        "commit_failures",
        "Commits of running that were refused or failed.",
        load(&server.commits.failed),
    );
    r.register_with_unit(
        "commit_duration",
        "How long commits took (validation, rendering, every daemon's two-phase reload).",
        prometheus_client::registry::Unit::Seconds,
        server.commits.duration.clone(),
    );
    families(&r)
}
