//! The daemon's IPC handler: the monitor's two-phase reload, state and
//! RPCs plus the web panel, whose users and listen settings come from
//! besip_system.

use std::sync::Arc;

use besip_core::daemon::Pending;
use besip_core::ipc::{Handler, HandlerError, StagedPackages};
use serde_json::Value;

use crate::config::MonitorConfig;
use crate::daemon::Monitor;
use crate::web::settings::WebSettings;
use crate::web::Web;

pub struct Service {
    monitor: Arc<Monitor>,
    web: Arc<Web>,
    pending: Pending<Prepared>,
}

/// Both packages read and checked by `prepare`.
struct Prepared {
    monitoring: MonitorConfig,
    web: Option<WebSettings>,
}

impl Service {
    pub fn new(monitor: Arc<Monitor>, web: Arc<Web>) -> Service {
        Service {
            monitor,
            web,
            pending: Pending::default(),
        }
    }

    pub fn web(&self) -> &Web {
        &self.web
    }

    pub fn web_settings(&self) -> Result<Option<WebSettings>, String> {
        WebSettings::load(&self.monitor.layout().uci_package("besip_system"))
    }
}

impl Handler for Service {
    /// Both packages are read before anything is applied, so a bad
    /// besip_system refuses the reload with the capture untouched.
    async fn prepare(&self, staged: &StagedPackages) -> Result<(), HandlerError> {
        self.pending.clear();
        let layout = self.monitor.layout();
        let monitoring = MonitorConfig::load(&staged.path(layout, "besip_monitoring"))
            .map_err(|e| HandlerError::refused(e.to_string()))?;
        let web = WebSettings::load(&staged.path(layout, "besip_system"))
            .map_err(HandlerError::refused)?;
        self.web
            .check(web.as_ref())
            .await
            .map_err(HandlerError::refused)?;
        self.pending.put(Prepared { monitoring, web });
        Ok(())
    }

    /// A new capture interface or filter is opened before the old capture
    /// is dropped, a new web address or port bound at once (no restart).
    async fn apply(&self) -> Result<(), HandlerError> {
        let Prepared { monitoring, web } = self.pending.take()?;
        self.monitor.apply_config(monitoring)?;
        self.web.apply(web).await.map_err(HandlerError::refused)
    }

    async fn abort(&self) -> Result<(), HandlerError> {
        self.pending.clear();
        Ok(())
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        self.monitor.state().await
    }

    async fn metrics(&self) -> Result<Value, HandlerError> {
        Ok(Value::String(self.monitor.metrics()))
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        self.monitor.rpc(name, input).await
    }
}
