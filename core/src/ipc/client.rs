//! The core side: calls a daemon's methods and receives its notifications.

use serde_json::{json, Value};
use snafu::ResultExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot, Mutex};

use super::{
    read_bounded_line, ConnectSnafu, IpcError, Notification, Request, Response, JSONRPC_VERSION,
};

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
