//! Accepting SSH connections: a connection not logged in holds a per-source
//! slot (besip-system netconf/max-unauthenticated-per-source, as OpenSSH's
//! PerSourceMaxStartups) and is closed when the login grace time runs out
//! (netconf/login-grace-time, as LoginGraceTime). Only logged-in connections
//! count against max-sessions, so idle connections cannot lock the admin out.

use crate::login_throttle::source_prefix;
use crate::server::{lock, Server};
use crate::ssh::Connection;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Connections not logged in, from all sources together: bounds memory and
/// file descriptors when many sources each stay under their own limit.
const MAX_UNAUTHENTICATED_TOTAL: usize = 1024;
/// How long a connection closed at the grace time may take to wind down.
const WIND_DOWN: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Unauthenticated {
    /// Open connections not logged in, per source prefix, and their total.
    counts: Mutex<(HashMap<IpAddr, usize>, usize)>,
}

/// One connection's place among those not logged in; freed when dropped.
pub struct PreAuthSlot {
    server: Arc<Server>,
    source: IpAddr,
}

impl Unauthenticated {
    /// A slot for a new connection from `ip`, unless its source (or everyone
    /// together) already holds as many connections not logged in as allowed.
    fn admit(server: &Arc<Server>, ip: IpAddr) -> Option<PreAuthSlot> {
        let source = source_prefix(ip);
        let per_source = server.settings.max_unauthenticated_per_source;
        let mut counts = lock(&server.unauthenticated.counts);
        let (by_source, total) = &mut *counts;
        let held = by_source.get(&source).copied().unwrap_or(0);
        if held >= per_source || *total >= MAX_UNAUTHENTICATED_TOTAL {
            return None;
        }
        by_source.insert(source, held + 1);
        *total += 1;
        Some(PreAuthSlot {
            server: server.clone(),
            source,
        })
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.server.unauthenticated.counts);
        let (by_source, total) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(held) = by_source.get_mut(&self.source) {
            *held -= 1;
            if *held == 0 {
                by_source.remove(&self.source);
            }
        }
    }
}

/// Accept connections on one listener until the process ends.
pub async fn serve(server: Arc<Server>, config: Arc<russh::server::Config>, listener: TcpListener) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "cannot accept an SSH connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(slot) = Unauthenticated::admit(&server, peer.ip()) else {
            server.dropped_sessions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "too many SSH connections not logged in from this source (besip-system netconf/max-unauthenticated-per-source); closed");
            continue;
        };
        tokio::spawn(connection(
            server.clone(),
            config.clone(),
            socket,
            peer,
            slot,
        ));
    }
}

/// Run one SSH connection; until it logs in it holds `slot` and is closed
/// at the login grace time.
async fn connection(
    server: Arc<Server>,
    config: Arc<russh::server::Config>,
    socket: TcpStream,
    peer: SocketAddr,
    slot: PreAuthSlot,
) {
    let _ = socket.set_nodelay(true);
    // A second handle on the socket: shutting it down ends the SSH session
    // wherever it waits (reading the client's version, kex, authentication).
    let (socket, closer) = match second_handle(socket) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot set up an SSH connection");
            return;
        }
    };
    let (logged_in_tx, mut logged_in) = watch::channel(false);
    let handler = Connection::new(server.clone(), peer, logged_in_tx);
    let grace = tokio::time::sleep(server.settings.login_grace_time);
    tokio::pin!(grace);
    let session = tokio::select! {
        started = russh::server::run_stream(config, socket, handler) => match started {
            Ok(session) => session,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "SSH connection ended before key exchange");
                return;
            }
        },
        _ = &mut grace => {
            tracing::info!(%peer, "no SSH login within the grace time (besip-system netconf/login-grace-time); closed");
            return;
        }
    };
    tokio::pin!(session);
    let mut slot = Some(slot);
    while slot.is_some() {
        tokio::select! {
            result = &mut session => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "SSH connection ended before login");
                }
                return;
            }
            changed = logged_in.changed() => {
                // Logged in, or the handler is gone (the session is ending).
                if changed.is_err() || *logged_in.borrow() {
                    slot = None;
                }
            }
            _ = &mut grace => {
                tracing::info!(%peer, "no SSH login within the grace time (besip-system netconf/login-grace-time); closed");
                let _ = closer.shutdown(Shutdown::Both);
                let _ = tokio::time::timeout(WIND_DOWN, &mut session).await;
                return;
            }
        }
    }
    drop(closer);
    if let Err(e) = session.await {
        tracing::debug!(%peer, error = %e, "SSH connection ended");
    }
}

fn second_handle(socket: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let socket = socket.into_std()?;
    let closer = socket.try_clone()?;
    Ok((TcpStream::from_std(socket)?, closer))
}
