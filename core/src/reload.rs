//! The commit flow's "reload" step over IPC: each UCI package belongs to one daemon.

use crate::datastore::Reloader;
use crate::ipc::{IpcClient, IpcError};
use crate::paths::Layout;
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

/// Sends `reload` to the owning daemon's socket. A daemon that is not running
/// is not an error: it reads the new file when it starts.
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
}

impl IpcReloader {
    /// Start-up reconciliation: after a crash a daemon may run a
    /// configuration newer than running.xml (killed between reload and
    /// persist in an older build) or older (killed before its reload), so
    /// every running daemon re-reads the packages just rendered from
    /// running.xml. Daemons that are not running read them when they start.
    /// Returns the daemons that refused, with their reasons.
    pub async fn reload_every_daemon(&self) -> Vec<(String, String)> {
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
            if let Err(reason) = self.reload(package).await {
                refused.push((daemon.to_owned(), reason));
            }
        }
        refused
    }
}

/// Every UCI package a daemon reads.
const PACKAGES: [&str; 4] = [
    "besip_pbx",
    "besip_security",
    "besip_monitoring",
    "besip_system",
];

impl Reloader for IpcReloader {
    async fn reload(&self, package: &str) -> Result<(), String> {
        let Some(daemon) = daemon_for_package(package) else {
            return Ok(());
        };
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
                    "daemon not running; it will read {package} when it starts"
                );
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        match client.call("reload", serde_json::json!({})).await {
            Ok(_) => Ok(()),
            Err(IpcError::Remote { message, .. }) => Err(message),
            Err(e) => Err(e.to_string()),
        }
    }
}
