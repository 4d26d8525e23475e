//! The IPC round trip over a real socket.

use super::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

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
