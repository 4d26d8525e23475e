//! The daemon's IPC handler: `reload`, `state`, the YANG RPC `unban`, and the
//! internal RPC `protect` (no YANG RPC, so NETCONF clients cannot call it;
//! netconfd and the web panel call it for the sources of their sessions).

use std::net::IpAddr;
use std::sync::Arc;

use besip_core::ipc::{Handler, HandlerError};
use serde_json::{json, Value};

use crate::daemon::Daemon;

pub struct IpcHandler(pub Arc<Daemon>);

fn address(input: &Value, rpc: &str) -> Result<IpAddr, HandlerError> {
    let text = input
        .get("address")
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::invalid_params(format!("{rpc} needs input 'address'")))?;
    text.parse()
        .map_err(|_| HandlerError::invalid_params(format!("'{text}' is not an IP address")))
}

impl Handler for IpcHandler {
    async fn reload(&self) -> Result<(), HandlerError> {
        let d = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || d.reload_config())
            .await
            .map_err(|e| HandlerError::refused(e.to_string()))?
            .map_err(HandlerError::refused)
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(self.0.state_json())
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        match name {
            "besip-security:unban" | "unban" => {
                let addr = address(&input, "unban")?;
                let d = Arc::clone(&self.0);
                tokio::task::spawn_blocking(move || d.unban(addr))
                    .await
                    .map_err(|e| HandlerError::refused(e.to_string()))??;
                Ok(json!({}))
            }
            besip_core::ipc::PROTECT_RPC => {
                let addr = address(&input, "protect")?;
                let ttl = input.get("ttl").and_then(Value::as_u64).ok_or_else(|| {
                    HandlerError::invalid_params("protect needs input 'ttl' (seconds)")
                })?;
                let d = Arc::clone(&self.0);
                tokio::task::spawn_blocking(move || d.protect(addr, ttl))
                    .await
                    .map_err(|e| HandlerError::refused(e.to_string()))?;
                Ok(json!({}))
            }
            other => Err(HandlerError::unknown_rpc(other)),
        }
    }
}
