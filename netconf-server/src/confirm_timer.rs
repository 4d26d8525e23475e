//! The confirmed-commit timer (RFC 6241 §8.4): reverts a confirmed commit
//! that is not confirmed in time, and publishes the RFC 6470 timeout.

use crate::base_notifications::{self, Rollback, RunningBefore};
use crate::server::Server;
use std::sync::Arc;
use std::time::Instant;

/// Sleeps until the pending commit's deadline, or until running changes (a
/// new, extended, confirmed or cancelled commit), then looks again.
pub fn spawn(server: Arc<Server>) {
    tokio::spawn(async move {
        loop {
            let deadline = server.store.lock().await.confirm_deadline();
            let Some(deadline) = deadline else {
                server.confirm_deadline_changed.notified().await;
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
                _ = server.confirm_deadline_changed.notified() => continue,
            }
            revert_if_expired(&server).await;
        }
    });
}

async fn revert_if_expired(server: &Server) {
    let mut store = server.store.lock().await;
    if store
        .confirm_deadline()
        .is_none_or(|deadline| Instant::now() < deadline)
    {
        return;
    }
    let before = RunningBefore::take(&store);
    let Some(result) = store
        .revert_if_expired(Instant::now(), &server.reloader)
        .await
    else {
        return;
    };
    server.running_changed(&store);
    match result {
        Ok(_) => {
            tracing::warn!("confirmed commit not confirmed in time: reverted");
            let changes = before.changes_to(&store);
            drop(store);
            base_notifications::publish_rollback(server, Rollback::Timeout, &changes);
        }
        Err(e) => tracing::error!(error = %e, "reverting the confirmed commit failed"),
    }
}
