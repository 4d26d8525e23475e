//! The daemons' side of a commit, over IPC: each UCI package belongs to one
//! daemon, which checks a staged configuration (`prepare`), then switches to
//! it (`apply`) or drops it (`abort`) — the two-phase reload of DESIGN.md.
//! `reload` (re-read the installed files) stays for start-up reconciliation.

use crate::ipc::{IpcClient, IpcError, CODE_METHOD_NOT_FOUND};
use crate::paths::Layout;
use snafu::Snafu;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// Which daemon re-reads a package (`None`: netconfd itself applies it).
/// besip_system goes to monitord: it serves the web panel, whose logins are
/// the system users and whose listen settings live there too.
pub fn daemon_for_package(package: &str) -> Option<&'static str> {
    match package {
        "besip_system" => Some("monitoring"),
        "besip_pbx" => Some("pbx"),
        "besip_security" => Some("security"),
        "besip_monitoring" => Some("monitoring"),
        _ => None,
    }
}

/// Every UCI package a daemon reads.
const PACKAGES: [&str; 4] = [
    "besip_pbx",
    "besip_security",
    "besip_monitoring",
    "besip_system",
];

/// Why a daemon did not take a configuration.
#[derive(Debug, Snafu)]
pub enum ReloadError {
    /// The daemon checked the configuration and said no (IPC error -32000).
    #[snafu(display("{reason}"))]
    Refused { daemon: String, reason: String },
    /// The daemon runs but could not be asked, or answered nonsense.
    #[snafu(display("cannot ask daemon {daemon}: {source}"))]
    Unreachable { daemon: String, source: IpcError },
}

impl ReloadError {
    pub fn daemon(&self) -> &str {
        match self {
            ReloadError::Refused { daemon, .. } | ReloadError::Unreachable { daemon, .. } => daemon,
        }
    }
}

/// A daemon's answer to `prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Checked and kept pending: `apply` or `abort` follows.
    Pending,
    /// Not running: it reads the installed files when it starts.
    NotRunning,
}

/// A package rendered for a commit, in its staged file beside the real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPackage {
    pub package: String,
    pub path: PathBuf,
}

/// Tells the daemons about a new configuration. Implemented over IPC by
/// `IpcReloader`; offline tools use `NoReload`, tests their own.
pub trait Reloader: Send + Sync {
    /// Phase one: `daemon` checks its configuration with `staged` in place of
    /// its installed packages, without changing what it serves.
    fn prepare(
        &self,
        daemon: &str,
        staged: &[StagedPackage],
    ) -> impl Future<Output = Result<Prepared, ReloadError>> + Send;
    /// Phase two: switch to the configuration prepared last.
    fn apply(&self, daemon: &str) -> impl Future<Output = Result<(), ReloadError>> + Send;
    /// Drop the prepared configuration (fine when there is none).
    fn abort(&self, daemon: &str) -> impl Future<Output = Result<(), ReloadError>> + Send;
    /// One phase: re-read the installed packages (start-up reconciliation).
    fn reload(&self, daemon: &str) -> impl Future<Output = Result<(), ReloadError>> + Send;
}

/// Reloads nothing (no daemons), e.g. for offline tools.
pub struct NoReload;

impl Reloader for NoReload {
    async fn prepare(&self, _: &str, _: &[StagedPackage]) -> Result<Prepared, ReloadError> {
        Ok(Prepared::NotRunning)
    }
    async fn apply(&self, _: &str) -> Result<(), ReloadError> {
        Ok(())
    }
    async fn abort(&self, _: &str) -> Result<(), ReloadError> {
        Ok(())
    }
    async fn reload(&self, _: &str) -> Result<(), ReloadError> {
        Ok(())
    }
}

/// Talks to each daemon's socket. A daemon that is not running is not an
/// error: it reads the new files when it starts.
pub struct IpcReloader {
    layout: Layout,
    timeout: Duration,
}

impl IpcReloader {
    pub fn new(layout: Layout) -> Self {
        IpcReloader {
            layout,
            timeout: Duration::from_secs(10),
        }
    }

    /// Start-up reconciliation: after a crash a daemon may run a
    /// configuration newer than running.xml (killed after its apply, before
    /// the commit finished) or older (killed before its apply), so every
    /// running daemon re-reads the packages just rendered from running.xml.
    /// Daemons that are not running read them when they start.
    /// Returns the daemons that refused, with their reasons.
    pub async fn reload_every_daemon(&self) -> Vec<(String, ReloadError)> {
        let mut done: Vec<&str> = Vec::new();
        let mut refused = Vec::new();
        for package in PACKAGES {
            let Some(daemon) = daemon_for_package(package) else {
                continue;
            };
            if done.contains(&daemon) {
                continue;
            }
            done.push(daemon);
            if let Err(error) = self.reload(daemon).await {
                refused.push((daemon.to_owned(), error));
            }
        }
        refused
    }

    /// Call `method` on `daemon`; `Ok(None)` when the daemon is not running.
    async fn call(
        &self,
        daemon: &str,
        method: &str,
        params: serde_json::Value,
    ) -> Result<Option<serde_json::Value>, ReloadError> {
        let socket = self.layout.socket(daemon);
        let client = match IpcClient::connect(&socket).await {
            Ok(c) => c.with_timeout(self.timeout),
            Err(IpcError::Connect { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                tracing::debug!(
                    daemon,
                    method,
                    "daemon not running; it reads its packages when it starts"
                );
                return Ok(None);
            }
            Err(source) => {
                return Err(ReloadError::Unreachable {
                    daemon: daemon.to_owned(),
                    source,
                })
            }
        };
        match client.call(method, params).await {
            Ok(answer) => Ok(Some(answer)),
            Err(IpcError::Remote { message, code, .. }) if code != CODE_METHOD_NOT_FOUND => {
                Err(ReloadError::Refused {
                    daemon: daemon.to_owned(),
                    reason: message,
                })
            }
            Err(source) => Err(ReloadError::Unreachable {
                daemon: daemon.to_owned(),
                source,
            }),
        }
    }
}

impl Reloader for IpcReloader {
    async fn prepare(
        &self,
        daemon: &str,
        staged: &[StagedPackage],
    ) -> Result<Prepared, ReloadError> {
        let packages: serde_json::Map<String, serde_json::Value> = staged
            .iter()
            .map(|s| (s.package.clone(), s.path.display().to_string().into()))
            .collect();
        match self
            .call(
                daemon,
                "prepare",
                serde_json::json!({ "packages": packages }),
            )
            .await
        {
            Ok(Some(_)) => Ok(Prepared::Pending),
            Ok(None) => Ok(Prepared::NotRunning),
            Err(e) => Err(e),
        }
    }

    async fn apply(&self, daemon: &str) -> Result<(), ReloadError> {
        self.call(daemon, "apply", serde_json::json!({}))
            .await
            .map(drop)
    }

    async fn abort(&self, daemon: &str) -> Result<(), ReloadError> {
        self.call(daemon, "abort", serde_json::json!({}))
            .await
            .map(drop)
    }

    async fn reload(&self, daemon: &str) -> Result<(), ReloadError> {
        self.call(daemon, "reload", serde_json::json!({}))
            .await
            .map(drop)
    }
}
