//! The daemon's IPC handler: two-phase reload (`prepare` reads and checks
//! the rules, `apply` switches firewall, captures and detector), `state`,
//! the YANG RPC `unban`, and the
//! internal RPC `protect` (no YANG RPC, so NETCONF clients cannot call it;
//! netconfd and the web panel call it for the sources of their sessions).

use std::net::IpAddr;
use std::sync::Arc;

use besip_core::daemon::Pending;
use besip_core::ipc::{Handler, HandlerError, StagedPackages};
use serde_json::{json, Value};

use crate::daemon::{Daemon, PreparedConfig};

pub struct IpcHandler {
    daemon: Arc<Daemon>,
    pending: Pending<PreparedConfig>,
}

impl IpcHandler {
    pub fn new(daemon: Arc<Daemon>) -> IpcHandler {
        IpcHandler {
            daemon,
            pending: Pending::default(),
        }
    }
}

fn address(input: &Value, rpc: &str) -> Result<IpAddr, HandlerError> {
    let text = input
        .get("address")
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::invalid_params(format!("{rpc} needs input 'address'")))?;
    text.parse()
        .map_err(|_| HandlerError::invalid_params(format!("'{text}' is not an IP address")))
}

impl Handler for IpcHandler {
    async fn prepare(&self, staged: &StagedPackages) -> Result<(), HandlerError> {
        self.pending.clear();
        let d = Arc::clone(&self.daemon);
        let staged = staged.clone();
        let prepared = tokio::task::spawn_blocking(move || d.prepare_config(&staged))
            .await
            .map_err(|e| HandlerError::refused(e.to_string()))?
            .map_err(HandlerError::refused)?;
        self.pending.put(prepared);
        Ok(())
    }

    async fn apply(&self) -> Result<(), HandlerError> {
        let prepared = self.pending.take()?;
        let d = Arc::clone(&self.daemon);
        tokio::task::spawn_blocking(move || d.apply_config(prepared))
            .await
            .map_err(|e| HandlerError::refused(e.to_string()))?
            .map_err(HandlerError::refused)
    }

    async fn abort(&self) -> Result<(), HandlerError> {
        self.pending.clear();
        Ok(())
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(self.daemon.state_json())
    }

    async fn metrics(&self) -> Result<Value, HandlerError> {
        Ok(Value::String(self.daemon.metrics()))
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        match name {
            "besip-security:unban" | "unban" => {
                let addr = address(&input, "unban")?;
                let d = Arc::clone(&self.daemon);
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
                let d = Arc::clone(&self.daemon);
                tokio::task::spawn_blocking(move || d.protect(addr, ttl))
                    .await
                    .map_err(|e| HandlerError::refused(e.to_string()))?;
                Ok(json!({}))
            }
            other => Err(HandlerError::unknown_rpc(other)),
        }
    }
}
