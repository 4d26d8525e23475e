//! The STUN socket of /pbx/stun, switched two-phase like the SIP listens:
//! `plan` binds a new socket (a taken port refuses the configuration before
//! anything changes), `switch` serves it and closes the old one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use snafu::{ResultExt, Snafu};

use crate::config::StunSettings;

#[derive(Debug, Snafu)]
pub enum StunError {
    #[snafu(display("cannot open the STUN socket on udp {addr}: {source} (is the port taken or the address not local?)"))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Default)]
pub struct Counters {
    pub answered: AtomicU64,
    pub dropped: AtomicU64,
}

/// The STUN server of the daemon: at most one socket at a time.
pub struct Service {
    running: Mutex<Option<Running>>,
    counters: Arc<Counters>,
    /// /pbx/stun/max-requests-per-source, changed without a new socket.
    per_source: Arc<AtomicU32>,
}

struct Running {
    configured: SocketAddr,
    local: SocketAddr,
    task: tokio::task::AbortHandle,
}

/// What `switch` will do.
pub enum Plan {
    Keep,
    Stop,
    Start {
        configured: SocketAddr,
        socket: std::net::UdpSocket,
    },
}

impl Default for Service {
    fn default() -> Self {
        Service {
            running: Mutex::new(None),
            counters: Arc::default(),
            per_source: Arc::new(AtomicU32::new(1)),
        }
    }
}

impl Service {
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The address the STUN socket is bound to, if one is served.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running.lock().as_ref().map(|r| r.local)
    }

    /// Binds what `want` needs that is not served yet.
    pub fn plan(&self, want: Option<&StunSettings>) -> Result<Plan, StunError> {
        let running = self.running.lock();
        match (want, running.as_ref()) {
            (None, None) => Ok(Plan::Keep),
            (None, Some(_)) => Ok(Plan::Stop),
            (Some(w), Some(r)) if r.configured == w.addr => Ok(Plan::Keep),
            (Some(w), _) => {
                let socket =
                    std::net::UdpSocket::bind(w.addr).context(BindSnafu { addr: w.addr })?;
                Ok(Plan::Start {
                    configured: w.addr,
                    socket,
                })
            }
        }
    }

    /// Carries out `plan` (inside the runtime) and takes `want`'s limits.
    pub fn switch(&self, plan: Plan, want: Option<&StunSettings>) -> Result<(), StunError> {
        if let Some(w) = want {
            self.per_source
                .store(w.max_requests_per_source, Ordering::Relaxed);
        }
        let mut running = self.running.lock();
        match plan {
            Plan::Keep => {}
            Plan::Stop => {
                if let Some(old) = running.take() {
                    old.task.abort();
                    tracing::info!(addr = %old.local, "STUN stopped");
                }
            }
            Plan::Start { configured, socket } => {
                let local = socket
                    .local_addr()
                    .context(BindSnafu { addr: configured })?;
                socket
                    .set_nonblocking(true)
                    .context(BindSnafu { addr: configured })?;
                let socket = tokio::net::UdpSocket::from_std(socket)
                    .context(BindSnafu { addr: configured })?;
                let task = tokio::spawn(serve(
                    socket,
                    self.counters.clone(),
                    self.per_source.clone(),
                ))
                .abort_handle();
                if let Some(old) = running.replace(Running {
                    configured,
                    local,
                    task,
                }) {
                    old.task.abort();
                }
                tracing::info!(addr = %local, "STUN listening");
            }
        }
        Ok(())
    }
}

async fn serve(socket: tokio::net::UdpSocket, counters: Arc<Counters>, per_source: Arc<AtomicU32>) {
    let mut budget = Budget::default();
    // Larger datagrams are truncated to this and then fail the length check.
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors of earlier sends surface here on some systems.
            Err(_) => continue,
        };
        let answer = if budget.allow(source.ip(), per_source.load(Ordering::Relaxed)) {
            super::message::answer(&buf[..n], source)
        } else {
            None
        };
        match answer {
            Some(reply) => {
                counters.answered.fetch_add(1, Ordering::Relaxed);
                let _ = socket.send_to(&reply, source).await;
            }
            None => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Requests per source in the current second.
struct Budget {
    window: Instant,
    counts: HashMap<IpAddr, u32>,
}

/// Sources tracked per second: a flood from forged sources is bounded in
/// memory and its excess dropped until the next second.
const MAX_SOURCES: usize = 10_000;

impl Default for Budget {
    fn default() -> Self {
        Budget {
            window: Instant::now(),
            counts: HashMap::new(),
        }
    }
}

impl Budget {
    fn allow(&mut self, ip: IpAddr, limit: u32) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.counts.clear();
        }
        if !self.counts.contains_key(&ip) && self.counts.len() >= MAX_SOURCES {
            return false;
        }
        let count = self.counts.entry(ip).or_insert(0);
        *count += 1;
        *count <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_limits_each_source_and_the_number_of_sources() {
        let mut b = Budget::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| b.allow(a, 3)));
        assert!(!b.allow(a, 3));
        for i in 0..MAX_SOURCES as u32 {
            b.allow(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), 3);
        }
        assert!(b.counts.len() <= MAX_SOURCES);
        assert!(!b.allow("198.51.100.1".parse().unwrap(), 3));
    }
}
