//! The daemon's IPC handler: the monitor's reload/state/RPCs plus the web
//! panel, whose users and listen settings come from besip_system.

use std::sync::Arc;

use besip_core::ipc::{Handler, HandlerError};
use serde_json::Value;

use crate::daemon::Monitor;
use crate::web::settings::WebSettings;
use crate::web::Web;

pub struct Service {
    pub monitor: Arc<Monitor>,
    pub web: Arc<Web>,
}

impl Service {
    pub fn web_settings(&self) -> Result<Option<WebSettings>, String> {
        WebSettings::load(&self.monitor.layout().uci_package("besip_system"))
    }
}

impl Handler for Service {
    /// Both packages are read before anything is applied, so a bad
    /// besip_system refuses the reload with the capture untouched. A new
    /// web address or port is bound at once (no restart needed).
    async fn reload(&self) -> Result<(), HandlerError> {
        let web = self.web_settings().map_err(HandlerError::refused)?;
        self.monitor.reload().await?;
        self.web.apply(web).await.map_err(HandlerError::refused)
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        self.monitor.state().await
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        self.monitor.rpc(name, input).await
    }
}
