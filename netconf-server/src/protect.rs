//! Keeps the source of a logged-in SSH/NETCONF session from being banned by
//! besip-secd (issue 13, no lock-out): a forged SIP packet claiming the
//! admin's address must not cut the admin off. The protection has a time to
//! live and is refreshed while a NETCONF session from that address lives.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::server::{lock, Server};

/// How long one announcement protects the source.
const TTL: Duration = Duration::from_secs(300);
/// How often it is refreshed while a session from the source lives.
const REFRESH: Duration = Duration::from_secs(60);

/// Called once an SSH login succeeded: protect `peer` now and while a
/// NETCONF session from it lives (the protection then runs out after TTL).
pub fn protect_login_source(server: &Arc<Server>, peer: Option<SocketAddr>) {
    let Some(peer) = peer else {
        return;
    };
    let server: Weak<Server> = Arc::downgrade(server);
    tokio::spawn(async move {
        let ip = peer.ip();
        loop {
            let Some(socket) = server.upgrade().map(|s| s.layout.socket("security")) else {
                return;
            };
            if let Err(e) = besip_core::ipc::protect_source(&socket, ip, TTL).await {
                // No security daemon (not installed or stopped): nothing to protect from.
                tracing::debug!(source = %ip, error = %e, "session source not announced to besip-secd");
            }
            tokio::time::sleep(REFRESH).await;
            let Some(server) = server.upgrade() else {
                return;
            };
            let text = ip.to_string();
            let live = lock(&server.sessions)
                .values()
                .any(|s| s.source_host == text);
            if !live {
                return;
            }
        }
    });
}
