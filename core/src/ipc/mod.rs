//! IPC between besip-netconfd (core) and the daemons (DESIGN.md §5):
//! JSON-RPC 2.0, one JSON object per line, over a Unix socket with mode 0600.

use crate::paths::Layout;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use snafu::Snafu;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

mod client;
mod server;
pub use client::{protect_source, IpcClient, PROTECT_RPC};
pub use server::{IpcServer, Notifier};

pub const JSONRPC_VERSION: &str = "2.0";
/// A line longer than this is refused (protects both sides from a runaway peer).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Error code a daemon uses for "I refuse this" (e.g. a reload it cannot apply).
pub const CODE_REFUSED: i64 = -32000;
pub const CODE_METHOD_NOT_FOUND: i64 = -32601;
pub const CODE_INVALID_PARAMS: i64 = -32602;
pub const CODE_PARSE_ERROR: i64 = -32700;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub jsonrpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

/// A notification a daemon pushes (`ban-added`, `low-mos`, …).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    /// `module:notification-name`, e.g. `besip-security:ban-added`.
    pub name: String,
    /// RFC 3339 time the event happened.
    #[serde(rename = "event-time")]
    pub event_time: String,
    /// RFC 7951 JSON of the notification's children.
    pub data: Value,
}

/// The error a handler returns; its message reaches the NETCONF client.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerError {
    pub code: i64,
    pub message: String,
}

impl HandlerError {
    pub fn refused(message: impl Into<String>) -> Self {
        HandlerError {
            code: CODE_REFUSED,
            message: message.into(),
        }
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        HandlerError {
            code: CODE_INVALID_PARAMS,
            message: message.into(),
        }
    }
    pub fn nothing_prepared() -> Self {
        HandlerError::refused("no configuration is prepared")
    }
    pub fn unknown_rpc(name: &str) -> Self {
        HandlerError {
            code: CODE_METHOD_NOT_FOUND,
            message: format!("unknown RPC '{name}'"),
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// The packages a `prepare` takes from staged files (params
/// `{"packages": {"besip_pbx": "/abs/path", ...}}`); every other package is
/// read from its usual file. Empty: the live files (what `reload` reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StagedPackages {
    #[serde(default)]
    pub packages: BTreeMap<String, PathBuf>,
}

impl StagedPackages {
    /// Where to read `package` from: its staged file, else its live one.
    pub fn path(&self, layout: &Layout, package: &str) -> PathBuf {
        self.packages
            .get(package)
            .cloned()
            .unwrap_or_else(|| layout.uci_package(package))
    }

    fn from_params(params: &Value) -> Result<StagedPackages, HandlerError> {
        let staged: StagedPackages = serde_json::from_value(params.clone()).map_err(|e| {
            HandlerError::invalid_params(format!(
                "prepare needs params {{\"packages\": {{package: path}}}}: {e}"
            ))
        })?;
        if let Some((package, path)) = staged.packages.iter().find(|(_, p)| !p.is_absolute()) {
            return Err(HandlerError::invalid_params(format!(
                "staged file of {package} is not an absolute path: {}",
                path.display()
            )));
        }
        Ok(staged)
    }
}

/// What a daemon implements to answer core. Reload is two-phase (DESIGN.md
/// §5): `prepare` reads and checks the whole configuration without changing
/// what the daemon serves and keeps it pending, `apply` switches to it,
/// `abort` drops it. `reload` (start-up reconciliation) is both at once.
pub trait Handler: Send + Sync + 'static {
    /// Read the configuration (the `staged` packages from their staged
    /// files), check everything that can be checked, keep it pending
    /// (replacing an older pending one); refuse with a reason, keeping nothing.
    fn prepare(
        &self,
        staged: &StagedPackages,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = staged;
        async { Err(HandlerError::refused("this daemon has no two-phase reload")) }
    }
    /// Switch to the pending configuration; refused when none is pending.
    fn apply(&self) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async { Err(HandlerError::nothing_prepared()) }
    }
    /// Drop the pending configuration, if any.
    fn abort(&self) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async { Ok(()) }
    }
    /// Re-read the live files and apply them: prepare from them, then apply.
    fn reload(&self) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            self.prepare(&StagedPackages::default()).await?;
            self.apply().await
        }
    }
    /// RFC 7951 JSON of the module's `config false` nodes, rooted at its top container.
    fn state(&self) -> impl Future<Output = Result<Value, HandlerError>> + Send;
    /// The daemon's Prometheus families (`crate::metrics::families`) as a
    /// JSON string; none by default.
    fn metrics(&self) -> impl Future<Output = Result<Value, HandlerError>> + Send {
        async { Ok(Value::String(String::new())) }
    }
    /// A module RPC (`name` is `module:rpc`); returns the output children.
    fn rpc(
        &self,
        name: &str,
        input: Value,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send;
}

#[derive(Debug, Snafu)]
pub enum IpcError {
    #[snafu(display("cannot listen on IPC socket {}: {source}", path.display()))]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("cannot connect to IPC socket {}: {source} (is the daemon running?)", path.display()))]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("IPC connection lost: {source}"))]
    Io { source: std::io::Error },
    #[snafu(display("IPC peer closed the connection"))]
    Closed,
    #[snafu(display("IPC call '{method}' timed out after {timeout:?}"))]
    Timeout { method: String, timeout: Duration },
    #[snafu(display("daemon answered '{method}' with error {code}: {message}"))]
    Remote {
        method: String,
        code: i64,
        message: String,
    },
}

/// Read one `\n`-terminated line of at most MAX_MESSAGE_BYTES. Ok(false) at EOF.
pub(crate) async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        if let Some(pos) = available.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&available[..pos]);
            reader.consume(pos + 1);
            return Ok(true);
        }
        let n = available.len();
        line.extend_from_slice(available);
        reader.consume(n);
        if line.len() > MAX_MESSAGE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "IPC message too large",
            ));
        }
    }
}

/// Current UTC time as RFC 3339 with seconds, e.g. `2026-11-23T13:00:00Z`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

/// Format seconds since the epoch as RFC 3339 UTC (civil-from-days, no time zone database needed).
pub fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
