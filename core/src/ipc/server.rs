//! The daemon side: serves a `Handler` on the socket and pushes notifications.

use serde_json::{json, Value};
use snafu::ResultExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, Mutex};

use super::{
    now_rfc3339, read_bounded_line, BindSnafu, Handler, HandlerError, IpcError, Notification,
    Request, StagedPackages, CODE_INVALID_PARAMS, CODE_METHOD_NOT_FOUND, CODE_PARSE_ERROR,
    JSONRPC_VERSION,
};

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
        // Bound and restricted under a temporary name, then renamed: the
        // socket appears only once it listens with mode 0600, so a client
        // that sees it is neither refused (bound but not yet listening)
        // nor another user let in before the chmod.
        let mut staging = path.as_os_str().to_owned();
        staging.push(format!(".{}.new", std::process::id()));
        let staging = PathBuf::from(staging);
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging).context(BindSnafu { path })?;
        let ready = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&staging, path));
        if let Err(source) = ready {
            let _ = std::fs::remove_file(&staging);
            return Err(IpcError::Bind {
                path: path.to_owned(),
                source,
            });
        }
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
        "metrics" => handler.metrics().await,
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
