//! IPC between besip-netconfd (core) and the daemons (DESIGN.md §5):
//! JSON-RPC 2.0, one JSON object per line, over a Unix socket with mode 0600.

use crate::paths::Layout;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use snafu::{ResultExt, Snafu};
use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, Mutex};

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

/// Cheap handle a daemon keeps to push notifications to every connected client.
#[derive(Clone)]
pub struct Notifier {
    sender: broadcast::Sender<Notification>,
}

impl Notifier {
    pub fn notify(&self, name: &str, data: Value) {
        let notification = Notification {
            name: name.to_owned(),
            event_time: now_rfc3339(),
            data,
        };
        // No subscriber connected is not an error: the event is still logged by the daemon.
        let _ = self.sender.send(notification);
    }
}

/// A listening IPC server; dropping it stops accepting and removes the socket.
pub struct IpcServer {
    path: PathBuf,
    notifier: Notifier,
    accept_task: tokio::task::JoinHandle<()>,
}

impl IpcServer {
    /// Bind `path` (a stale socket file is replaced) with mode 0600 and serve `handler`.
    pub async fn bind<H: Handler>(path: &Path, handler: Arc<H>) -> Result<IpcServer, IpcError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(BindSnafu { path })?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IpcError::Bind {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let listener = UnixListener::bind(path).context(BindSnafu { path })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .context(BindSnafu { path })?;
        let (sender, _) = broadcast::channel(1024);
        let notifier = Notifier { sender };
        let accept_notifier = notifier.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let handler = handler.clone();
                        let notifications = accept_notifier.sender.subscribe();
                        tokio::spawn(serve_connection(stream, handler, notifications));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "IPC accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(IpcServer {
            path: path.to_owned(),
            notifier,
            accept_task,
        })
    }

    pub fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for IpcServer {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_connection<H: Handler>(
    stream: UnixStream,
    handler: Arc<H>,
    mut notifications: broadcast::Receiver<Notification>,
) {
    let (read_half, write_half) = stream.into_split();
    let writer = Arc::new(Mutex::new(write_half));
    let notify_writer = writer.clone();
    let forward = tokio::spawn(async move {
        loop {
            match notifications.recv().await {
                Ok(n) => {
                    let message =
                        json!({"jsonrpc": JSONRPC_VERSION, "method": "notification", "params": n});
                    if write_line(&notify_writer, &message).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "IPC client too slow: notifications dropped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::debug!(error = %e, "IPC connection closed");
                break;
            }
        }
        let response = answer(&*handler, &line).await;
        if let Some(response) = response {
            if write_line(&writer, &response).await.is_err() {
                break;
            }
        }
    }
    forward.abort();
}

/// Read one `\n`-terminated line of at most MAX_MESSAGE_BYTES. Ok(false) at EOF.
async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
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

async fn write_line(
    writer: &Mutex<tokio::net::unix::OwnedWriteHalf>,
    message: &Value,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut guard = writer.lock().await;
    guard.write_all(&bytes).await?;
    guard.flush().await
}

fn error_response(id: Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": JSONRPC_VERSION, "id": id, "error": {"code": code, "message": message}})
}

async fn answer<H: Handler>(handler: &H, line: &[u8]) -> Option<Value> {
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return Some(error_response(
                Value::Null,
                CODE_PARSE_ERROR,
                format!("not a JSON-RPC request: {e}"),
            ))
        }
    };
    let id = request.id.clone()?;
    let outcome = match request.method.as_str() {
        "ping" => Ok(json!("pong")),
        "reload" => handler.reload().await.map(|()| json!({})),
        "prepare" => match StagedPackages::from_params(&request.params) {
            Ok(staged) => handler.prepare(&staged).await.map(|()| json!({})),
            Err(e) => Err(e),
        },
        "apply" => handler.apply().await.map(|()| json!({})),
        "abort" => handler.abort().await.map(|()| json!({})),
        "state" => handler.state().await,
        "rpc" => {
            let Some(name) = request.params.get("name").and_then(Value::as_str) else {
                return Some(error_response(
                    id,
                    CODE_INVALID_PARAMS,
                    "rpc needs params.name".into(),
                ));
            };
            let input = request
                .params
                .get("input")
                .cloned()
                .unwrap_or_else(|| json!({}));
            handler.rpc(name, input).await
        }
        other => Err(HandlerError {
            code: CODE_METHOD_NOT_FOUND,
            message: format!("unknown method '{other}'"),
        }),
    };
    Some(match outcome {
        Ok(result) => json!({"jsonrpc": JSONRPC_VERSION, "id": id, "result": result}),
        Err(e) => error_response(id, e.code, e.message),
    })
}

type Pending = Arc<Mutex<std::collections::HashMap<u64, oneshot::Sender<Response>>>>;

/// A connection to one daemon's IPC socket. Calls may be made concurrently.
pub struct IpcClient {
    outgoing: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    notifications: broadcast::Sender<Notification>,
    timeout: Duration,
}

impl IpcClient {
    pub async fn connect(path: &Path) -> Result<IpcClient, IpcError> {
        let stream = UnixStream::connect(path)
            .await
            .context(ConnectSnafu { path })?;
        let (read_half, mut write_half) = stream.into_split();
        let (outgoing, mut outgoing_rx) = mpsc::channel::<Vec<u8>>(64);
        tokio::spawn(async move {
            while let Some(bytes) = outgoing_rx.recv().await {
                if write_half.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let (notifications, _) = broadcast::channel(1024);
        let reader_pending = pending.clone();
        let reader_notifications = notifications.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(read_half);
            let mut line = Vec::new();
            loop {
                line.clear();
                match read_bounded_line(&mut reader, &mut line).await {
                    Ok(true) => {}
                    _ => break,
                }
                let Ok(value) = serde_json::from_slice::<Value>(&line) else {
                    tracing::warn!("IPC: unparsable message from daemon");
                    continue;
                };
                if value.get("method").and_then(Value::as_str) == Some("notification") {
                    if let Some(Ok(n)) = value
                        .get("params")
                        .cloned()
                        .map(serde_json::from_value::<Notification>)
                    {
                        let _ = reader_notifications.send(n);
                    }
                    continue;
                }
                if let Ok(response) = serde_json::from_value::<Response>(value) {
                    if let Some(id) = response.id.as_u64() {
                        if let Some(waiter) = reader_pending.lock().await.remove(&id) {
                            let _ = waiter.send(response);
                        }
                    }
                }
            }
            // Dropping the waiters tells every pending caller the connection is gone.
            reader_pending.lock().await.clear();
        });
        Ok(IpcClient {
            outgoing,
            pending,
            next_id: AtomicU64::new(1),
            notifications,
            timeout: Duration::from_secs(10),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Call a method; a JSON-RPC error comes back as `IpcError::Remote`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, IpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        let request = Request {
            jsonrpc: JSONRPC_VERSION.into(),
            id: Some(json!(id)),
            method: method.into(),
            params,
        };
        let mut bytes = serde_json::to_vec(&request).map_err(|e| IpcError::Io {
            source: std::io::Error::other(e),
        })?;
        bytes.push(b'\n');
        if self.outgoing.send(bytes).await.is_err() {
            self.pending.lock().await.remove(&id);
            return Err(IpcError::Closed);
        }
        let response = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => return Err(IpcError::Closed),
            Err(_) => {
                self.pending.lock().await.remove(&id);
                return Err(IpcError::Timeout {
                    method: method.into(),
                    timeout: self.timeout,
                });
            }
        };
        match (response.result, response.error) {
            (_, Some(e)) => Err(IpcError::Remote {
                method: method.into(),
                code: e.code,
                message: e.message,
            }),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(Value::Null),
        }
    }

    /// Notifications pushed by the daemon from now on.
    pub fn notifications(&self) -> broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }
}

/// The security daemon's internal RPC that keeps a management session's
/// source address from being banned (see docs/CONTRACTS.md).
pub const PROTECT_RPC: &str = "protect";

/// Ask besip-secd (socket `security_socket`) never to ban `source` for the next
/// `ttl`; callers repeat it while their session lives. Bans covering `source`
/// are lifted. Errors (no security daemon running) are the caller's to log.
pub async fn protect_source(
    security_socket: &Path,
    source: std::net::IpAddr,
    ttl: Duration,
) -> Result<(), IpcError> {
    let client = IpcClient::connect(security_socket)
        .await?
        .with_timeout(Duration::from_secs(5));
    client
        .call(
            "rpc",
            json!({"name": PROTECT_RPC, "input": {"address": source.to_string(), "ttl": ttl.as_secs().max(1)}}),
        )
        .await?;
    Ok(())
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
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Echo {
        reloads: AtomicUsize,
    }

    impl Handler for Echo {
        async fn reload(&self) -> Result<(), HandlerError> {
            if self.reloads.fetch_add(1, Ordering::SeqCst) == 1 {
                return Err(HandlerError::refused("second reload refused"));
            }
            Ok(())
        }
        async fn state(&self) -> Result<Value, HandlerError> {
            Ok(json!({"besip-test:test": {"counter": 1}}))
        }
        async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
            match name {
                "besip-test:echo" => Ok(input),
                other => Err(HandlerError::unknown_rpc(other)),
            }
        }
    }

    #[tokio::test]
    async fn round_trip_methods_errors_and_notifications() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.sock");
        let server = IpcServer::bind(
            &path,
            Arc::new(Echo {
                reloads: AtomicUsize::new(0),
            }),
        )
        .await
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let client = IpcClient::connect(&path).await.unwrap();
        assert_eq!(client.call("ping", json!({})).await.unwrap(), json!("pong"));
        assert_eq!(client.call("reload", json!({})).await.unwrap(), json!({}));
        let refused = client.call("reload", json!({})).await.unwrap_err();
        assert!(
            matches!(
                refused,
                IpcError::Remote {
                    code: CODE_REFUSED,
                    ..
                }
            ),
            "{refused}"
        );
        assert_eq!(
            client.call("state", json!({})).await.unwrap()["besip-test:test"]["counter"],
            1
        );
        let echoed = client
            .call("rpc", json!({"name": "besip-test:echo", "input": {"a": 1}}))
            .await
            .unwrap();
        assert_eq!(echoed, json!({"a": 1}));
        let unknown = client.call("frobnicate", json!({})).await.unwrap_err();
        assert!(matches!(
            unknown,
            IpcError::Remote {
                code: CODE_METHOD_NOT_FOUND,
                ..
            }
        ));

        let mut notes = client.notifications();
        // The server side subscribes per connection; give the forwarder a moment to exist.
        tokio::time::sleep(Duration::from_millis(20)).await;
        server
            .notifier()
            .notify("besip-test:event", json!({"x": 2}));
        let n = tokio::time::timeout(Duration::from_secs(2), notes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n.name, "besip-test:event");
        assert_eq!(n.data, json!({"x": 2}));
    }

    #[tokio::test]
    async fn garbage_line_gets_parse_error_and_connection_survives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sock");
        let _server = IpcServer::bind(
            &path,
            Arc::new(Echo {
                reloads: AtomicUsize::new(0),
            }),
        )
        .await
        .unwrap();
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"{not json\n{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).await.unwrap();
        assert!(first.contains("-32700"), "{first}");
        let mut second = String::new();
        reader.read_line(&mut second).await.unwrap();
        assert!(second.contains("pong"), "{second}");
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_795_440_000), "2026-11-23T13:20:00Z");
    }
}
