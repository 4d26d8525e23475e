//! Keeps the source of a logged-in web panel session from being banned by
//! besip-secd (issue 13, no lock-out): a forged SIP packet claiming the
//! admin's address must not cut the admin off. The protection has a time to
//! live and is refreshed while the session lives.

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::AppState;

/// How long one announcement protects the source.
const TTL: Duration = Duration::from_secs(300);
/// How often it is refreshed while the session lives.
const REFRESH: Duration = Duration::from_secs(60);

/// Called once a web login succeeded with session `session_id`.
pub fn protect_login_source(state: &Arc<AppState>, source: IpAddr, session_id: &str) {
    let state: Weak<AppState> = Arc::downgrade(state);
    let session_id = session_id.to_owned();
    tokio::spawn(async move {
        loop {
            let Some(socket) = state
                .upgrade()
                .map(|s| s.monitor.layout().socket("security"))
            else {
                return;
            };
            if let Err(e) = besip_core::ipc::protect_source(&socket, source, TTL).await {
                // No security daemon (not installed or stopped): nothing to protect from.
                tracing::debug!(%source, error = %e, "session source not announced to besip-secd");
            }
            tokio::time::sleep(REFRESH).await;
            match state.upgrade() {
                Some(s) if s.auth.is_live(&session_id) => {}
                _ => return,
            }
        }
    });
}
