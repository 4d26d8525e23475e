//! UDP and TCP transports (RFC 3261 §18). UDP: a few OS threads per socket
//! block in recvfrom and handle each datagram to the end on the spot (the
//! model of Kamailio's UDP children: no readiness polling, no task hand-off
//! per packet). TCP on tokio: connections kept and reused in both directions,
//! stream framing by Content-Length with the 64 KiB message limit, and the
//! connection limits and timeouts of /pbx/tcp (tcp_limits). TLS (tls) is
//! the same connection handling once its handshake is done.

pub mod alias;
pub mod kernel_forward;
pub mod media;
pub mod srtp;
pub mod tap;
pub mod tcp_limits;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use snafu::{ResultExt, Snafu};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::config::{Listen, Transport};
use crate::sip::message::{frame_length, header_end, ParseError, MAX_MESSAGE_SIZE};
use tcp_limits::{Admission, Slot, TcpLimits};

#[derive(Debug, Snafu)]
pub enum TransportError {
    #[snafu(display("cannot listen on {transport:?} {addr}: {source} (is the port taken or the address not local?)"))]
    Listen {
        transport: Transport,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Receives every message the transports read.
pub trait Sink: Send + Sync + 'static {
    fn on_message(&self, data: &[u8], source: SocketAddr, transport: Transport, local: SocketAddr);
    /// A stream message over the size limit: the sink may answer 513 from the head.
    fn on_oversized(
        &self,
        head: &[u8],
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    );
}

/// An open TCP connection: its send queue and what keeps it from the idle
/// timeout.
#[derive(Clone)]
struct TcpConn {
    /// TCP or TLS.
    transport: Transport,
    tx: mpsc::Sender<Vec<u8>>,
    use_times: Arc<UseTimes>,
    /// Listed under an RFC 5923 alias, not under its peer's address.
    alias: bool,
    /// Our end of the connection.
    local: SocketAddr,
}

/// When a connection was last used, in milliseconds after it opened
/// (atomics: its writer task and `hold_tcp` move them on).
struct UseTimes {
    opened: Instant,
    /// Of the last write: what we send keeps a connection in use as much
    /// as what we read.
    last_write: AtomicU64,
    /// Until when a registration over it holds it open (`hold_tcp`).
    held_until: AtomicU64,
}

impl UseTimes {
    fn at(&self, ms: &AtomicU64) -> Instant {
        self.opened + Duration::from_millis(ms.load(Ordering::Relaxed))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Per-connection queue depth; a peer that does not read is dropped, not buffered forever.
const TCP_QUEUE: usize = 1024;

pub struct Transports {
    /// The listen sockets being served; a reload adds and removes entries.
    served: RwLock<Vec<Served>>,
    tcp: Mutex<HashMap<SocketAddr, TcpConn>>,
    /// Where messages read on connections we opened (and on sockets a
    /// reload adds) go.
    outbound_sink: Mutex<Option<Arc<dyn Sink>>>,
    readers: usize,
    tcp_limits: RwLock<TcpLimits>,
    /// TCP connections open, by source.
    tcp_admission: Arc<Admission>,
    tls: tls::Tls,
    /// Gets a copy of each message sent and received (HEP), when set.
    tap: RwLock<Option<Arc<dyn tap::Tap>>>,
}

type UdpSocket = std::net::UdpSocket;

/// A served listen socket, under the configured address it came from.
struct Served {
    listen: (Transport, SocketAddr),
    local: SocketAddr,
    kind: ServedKind,
}

enum ServedKind {
    Udp {
        socket: Arc<UdpSocket>,
        stop: Arc<AtomicBool>,
    },
    Tcp {
        accept: tokio::task::AbortHandle,
    },
}

/// A socket bound but not yet served.
pub struct Bound {
    listen: (Transport, SocketAddr),
    local: SocketAddr,
    kind: BoundKind,
}

enum BoundKind {
    Udp(Arc<UdpSocket>),
    Tcp(TcpListener),
}

impl Bound {
    /// Transport and the address actually bound (the port of a ':0' filled in).
    pub fn local(&self) -> (Transport, SocketAddr) {
        (self.listen.0, self.local)
    }
}

/// A blocking socket: the reader threads sleep in recvfrom; sends pass
/// MSG_DONTWAIT so no caller ever blocks on it.
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl Transports {
    /// `readers`: receive threads per UDP socket (default: one per core).
    pub fn new(readers: Option<usize>) -> Arc<Transports> {
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        Arc::new(Transports {
            served: RwLock::new(Vec::new()),
            tcp: Mutex::new(HashMap::new()),
            outbound_sink: Mutex::new(None),
            readers: readers.unwrap_or(cores).clamp(1, 64),
            tcp_limits: RwLock::new(TcpLimits::default()),
            tcp_admission: Arc::default(),
            tls: tls::Tls::default(),
            tap: RwLock::new(None),
        })
    }

    /// Who gets a copy of each message from now on (None: nobody).
    pub fn set_tap(&self, tap: Option<Arc<dyn tap::Tap>>) {
        *self.tap.write() = tap;
    }

    /// Hands a copy of a message to the tap, if any.
    pub fn tap(&self, message: &tap::Copy<'_>) {
        if let Some(t) = self.tap.read().as_ref() {
            t.copy(message);
        }
    }

    /// Our socket a message to `dest` over `transport` leaves from: the
    /// connection's local address, else a served socket of that transport.
    fn local_for(&self, transport: Transport, dest: SocketAddr) -> Option<SocketAddr> {
        if transport != Transport::Udp {
            if let Some(c) = self.tcp.lock().get(&dest) {
                return Some(c.local);
            }
        }
        let served = self.served.read();
        let of_transport = || served.iter().filter(|s| s.listen.0 == transport);
        of_transport()
            .find(|s| s.local.is_ipv4() == dest.is_ipv4())
            .or_else(|| of_transport().next())
            .map(|s| s.local)
    }

    fn tap_sent(&self, transport: Transport, dest: SocketAddr, bytes: &[u8]) {
        if self.tap.read().is_none() {
            return;
        }
        let Some(local) = self.local_for(transport, dest) else {
            return;
        };
        self.tap(&tap::Copy {
            direction: tap::Direction::Sent,
            transport,
            local,
            peer: dest,
            bytes,
        });
    }

    /// The limits for TCP connections from now on (open ones keep their
    /// place; new timeouts apply at their next read).
    pub fn set_tcp_limits(&self, limits: TcpLimits) {
        *self.tcp_limits.write() = limits;
    }

    /// The TLS certificate, handshake timeout and trunk verification from
    /// now on (open connections keep their session).
    pub fn apply_tls(&self, plan: tls::TlsPlan) {
        self.tls.apply(plan);
    }

    /// Why the last TLS connection to `trunk` failed.
    pub fn tls_error(&self, trunk: &str) -> Option<String> {
        self.tls.last_error(trunk)
    }

    /// The TLS addresses DNS now gives for `who`: connections to them are
    /// verified for its name, not for the address.
    pub fn tls_resolved(&self, who: tls::Resolved, addrs: Vec<SocketAddr>) {
        self.tls.resolved(who, addrs);
    }

    /// TCP connections refused by a limit since start.
    pub fn tcp_refused(&self) -> u64 {
        self.tcp_admission.refused()
    }

    /// Keeps the connection from `peer` open for `time` whatever the idle
    /// timeout: a phone registered over it is reached through it (as
    /// Kamailio's tcp_persistent_flag sets a connection's lifetime to the
    /// registration's).
    pub fn hold_tcp(&self, peer: SocketAddr, time: Duration) {
        if let Some(conn) = self.tcp.lock().get(&peer) {
            let t = &conn.use_times;
            let until = t
                .now_ms()
                .saturating_add(u64::try_from(time.as_millis()).unwrap_or(u64::MAX));
            t.held_until.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// RFC 5923: requests for `alias` (the sent-by of a Via with `;alias`)
    /// go over the connection from `peer`. Only an address of the peer's
    /// own host is taken (a peer cannot draw another host's traffic), and
    /// never in place of a connection of its own.
    pub fn alias_connection(&self, peer: SocketAddr, alias: SocketAddr) {
        if alias.ip() != peer.ip() || alias == peer {
            return;
        }
        let mut conns = self.tcp.lock();
        let Some(conn) = conns.get(&peer).cloned() else {
            return;
        };
        match conns.get(&alias) {
            Some(c) if !c.alias || c.tx.same_channel(&conn.tx) => return,
            _ => {}
        }
        // One alias per connection: a peer cannot grow the table.
        conns.retain(|_, c| !(c.alias && c.tx.same_channel(&conn.tx)));
        conns.insert(
            alias,
            TcpConn {
                alias: true,
                ..conn
            },
        );
    }

    /// Binds every listed socket; on an error nothing stays bound.
    pub async fn bind(listens: &[Listen]) -> Result<Vec<Bound>, TransportError> {
        let mut bound = Vec::new();
        for l in listens {
            let ctx = ListenSnafu {
                transport: l.transport,
                addr: l.addr,
            };
            let listen = (l.transport, l.addr);
            match l.transport {
                Transport::Udp => {
                    let socket = udp_socket(l.addr).context(ctx)?;
                    let local = socket.local_addr().context(ctx)?;
                    let kind = BoundKind::Udp(Arc::new(socket));
                    bound.push(Bound {
                        listen,
                        local,
                        kind,
                    });
                }
                Transport::Tcp | Transport::Tls => {
                    let listener = TcpListener::bind(l.addr).await.context(ctx)?;
                    let local = listener.local_addr().context(ctx)?;
                    let kind = BoundKind::Tcp(listener);
                    bound.push(Bound {
                        listen,
                        local,
                        kind,
                    });
                }
            }
        }
        Ok(bound)
    }

    /// Transport and local address of every served socket, in order.
    pub fn listening(&self) -> Vec<(Transport, SocketAddr)> {
        self.served
            .read()
            .iter()
            .map(|s| (s.listen.0, s.local))
            .collect()
    }

    /// Serves `listens` from now on: binds what is new (an error changes
    /// nothing), then stops what is gone. Unchanged sockets, their
    /// connections, the bindings and the calls are not touched. Returns
    /// whether anything changed.
    pub async fn reconfigure(self: &Arc<Self>, listens: &[Listen]) -> Result<bool, TransportError> {
        let wanted: Vec<(Transport, SocketAddr)> =
            listens.iter().map(|l| (l.transport, l.addr)).collect();
        let current: Vec<(Transport, SocketAddr)> =
            self.served.read().iter().map(|s| s.listen).collect();
        let added: Vec<Listen> = listens
            .iter()
            .filter(|l| !current.contains(&(l.transport, l.addr)))
            .cloned()
            .collect();
        let removed: Vec<(Transport, SocketAddr)> = current
            .into_iter()
            .filter(|k| !wanted.contains(k))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return Ok(false);
        }
        let bound = Self::bind(&added).await?;
        let sink = self.outbound_sink.lock().clone();
        if let Some(sink) = sink {
            self.serve(bound, sink);
        }
        let gone: Vec<Served> = {
            let mut served = self.served.write();
            let (gone, kept) = std::mem::take(&mut *served)
                .into_iter()
                .partition(|s| removed.contains(&s.listen));
            *served = kept;
            gone
        };
        for s in gone {
            tracing::info!(transport = ?s.listen.0, addr = %s.local, "no longer listening");
            s.stop();
        }
        Ok(true)
    }

    /// Starts the receive loops (call inside the runtime: the UDP threads
    /// enter it so the engine can start timers from them).
    pub fn serve(self: &Arc<Self>, bound: Vec<Bound>, sink: Arc<dyn Sink>) {
        let handle = tokio::runtime::Handle::current();
        for b in bound {
            let local = b.local;
            let kind = match b.kind {
                BoundKind::Udp(socket) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    // Several readers per socket: a single busy peer (one
                    // 4-tuple) still spreads over every core.
                    for i in 0..self.readers {
                        let sink = sink.clone();
                        let socket = socket.clone();
                        let handle = handle.clone();
                        let stop = stop.clone();
                        let spawned = std::thread::Builder::new()
                            .name(format!("pbx-udp-{i}"))
                            .spawn(move || {
                                let _runtime = handle.enter();
                                udp_reader(&socket, local, sink.as_ref(), &stop);
                            });
                        if let Err(e) = spawned {
                            tracing::error!(%local, error = %e, "cannot start a UDP receive thread");
                        }
                    }
                    ServedKind::Udp { socket, stop }
                }
                BoundKind::Tcp(listener) => {
                    let sink = sink.clone();
                    let me = self.clone();
                    let transport = b.listen.0;
                    let task = tokio::spawn(async move {
                        loop {
                            match listener.accept().await {
                                Ok((stream, peer)) => {
                                    let limits = *me.tcp_limits.read();
                                    match me.tcp_admission.admit(peer.ip(), &limits, true) {
                                        Some(slot) if transport == Transport::Tls => me
                                            .clone()
                                            .accept_tls(stream, peer, local, sink.clone(), slot),
                                        Some(slot) => {
                                            let _ = stream.set_nodelay(true);
                                            me.clone().start_connection(
                                                stream,
                                                Transport::Tcp,
                                                peer,
                                                local,
                                                sink.clone(),
                                                slot,
                                            )
                                        }
                                        // Closed at once: a refused peer holds nothing.
                                        None => {
                                            tracing::debug!(%peer, "TCP connection limit reached; refused");
                                            drop(stream);
                                        }
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "TCP accept failed");
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            }
                        }
                    });
                    ServedKind::Tcp {
                        accept: task.abort_handle(),
                    }
                }
            };
            self.served.write().push(Served {
                listen: b.listen,
                local,
                kind,
            });
        }
    }

    /// Finishes the TLS handshake of an accepted connection off the accept
    /// loop; the slot is held meanwhile, so a peer that never finishes one
    /// counts against its limit until the handshake timeout frees it.
    fn accept_tls(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        sink: Arc<dyn Sink>,
        slot: Slot,
    ) {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            match self.tls.accept(stream).await {
                Ok(tls) => {
                    self.clone()
                        .start_connection(tls, Transport::Tls, peer, local, sink, slot)
                }
                Err(e) => tracing::debug!(%peer, error = %e, "TLS connection closed"),
            }
        });
    }

    /// Runs a connection (TCP, or TLS after its handshake): a writer task
    /// fed by the send queue and a reader that frames messages.
    fn start_connection<S>(
        self: Arc<Self>,
        stream: S,
        transport: Transport,
        peer: SocketAddr,
        local: SocketAddr,
        sink: Arc<dyn Sink>,
        slot: Slot,
    ) where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
        let times = Arc::new(UseTimes {
            opened: Instant::now(),
            last_write: AtomicU64::new(0),
            held_until: AtomicU64::new(0),
        });
        let use_times = times.clone();
        self.tcp.lock().insert(
            peer,
            TcpConn {
                transport,
                tx: tx.clone(),
                use_times,
                alias: false,
                local,
            },
        );
        let written = times.clone();
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                // A TLS writer buffers records until flushed.
                if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
                written
                    .last_write
                    .store(written.now_ms(), Ordering::Relaxed);
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf: Vec<u8> = Vec::with_capacity(8192);
            let mut chunk = vec![0u8; 16384];
            let mut last_read = Instant::now();
            // Since when the buffer holds part of a message, none completed.
            let mut partial_since: Option<Instant> = None;
            // When the connection counts as idle (written to or held since
            // the last read moves it on).
            let idle_at = |last_read: Instant, idle: Duration| {
                let last_use = last_read.max(times.at(&times.last_write));
                (last_use + idle).max(times.at(&times.held_until))
            };
            'conn: loop {
                let limits = *me.tcp_limits.read();
                let deadline = match partial_since {
                    Some(since) => since + limits.message_timeout,
                    None => idle_at(last_read, limits.idle_timeout),
                };
                match tokio::time::timeout_at(deadline.into(), reader.read(&mut chunk)).await {
                    Err(_) if partial_since.is_some() => {
                        tracing::info!(%peer, "TCP message not complete in time; closing");
                        break;
                    }
                    Err(_) => {
                        if idle_at(last_read, limits.idle_timeout) > Instant::now() {
                            continue; // written to or held since: still in use
                        }
                        tracing::debug!(%peer, "idle TCP connection; closing");
                        break;
                    }
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => {
                        last_read = Instant::now();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
                loop {
                    // CRLF keepalives between messages (RFC 5626 §3.5.1).
                    let skip = buf
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    buf.drain(..skip);
                    match frame_length(&buf) {
                        Ok(Some(len)) => {
                            sink.on_message(&buf[..len], peer, transport, local);
                            buf.drain(..len);
                            partial_since = None;
                        }
                        Ok(None) => {
                            if buf.is_empty() {
                                partial_since = None;
                            } else if partial_since.is_none() {
                                partial_since = Some(Instant::now());
                            }
                            break;
                        }
                        Err(ParseError::TooLarge { .. }) => {
                            if let Some(end) = header_end(&buf) {
                                sink.on_oversized(&buf[..end], peer, transport, local);
                            }
                            tracing::info!(%peer, ?transport, "message over 64 KiB on a connection; closing it");
                            break 'conn;
                        }
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "unframeable TCP stream; closing");
                            break 'conn;
                        }
                    }
                }
            }
            // Give a queued 513 a moment to leave before the writer is dropped.
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Under its peer's address and its aliases.
            me.tcp.lock().retain(|_, c| !c.tx.same_channel(&tx));
        });
    }

    /// Sends without waiting; UDP datagrams that would block are sent by a task.
    pub fn send(self: &Arc<Self>, transport: Transport, dest: SocketAddr, bytes: Vec<u8>) {
        self.tap_sent(transport, dest, &bytes);
        match transport {
            Transport::Udp => {
                let socket = {
                    let served = self.served.read();
                    let udp = || {
                        served.iter().filter_map(|s| match &s.kind {
                            ServedKind::Udp { socket, .. } => Some((s.local, socket)),
                            ServedKind::Tcp { .. } => None,
                        })
                    };
                    udp()
                        .find(|(l, _)| l.is_ipv4() == dest.is_ipv4())
                        .or_else(|| udp().next())
                        .map(|(_, socket)| socket.clone())
                };
                let Some(socket) = socket else {
                    tracing::warn!(%dest, "no UDP socket to send from");
                    return;
                };
                let sent = socket2::SockRef::from(socket.as_ref()).send_to_with_flags(
                    &bytes,
                    &dest.into(),
                    libc::MSG_DONTWAIT,
                );
                match sent {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Send buffer full: wait for room off the caller's thread.
                        let socket = socket.clone();
                        let send = move || {
                            let _ = socket.send_to(&bytes, dest);
                        };
                        match tokio::runtime::Handle::try_current() {
                            Ok(h) => drop(h.spawn_blocking(send)),
                            Err(_) => send(),
                        }
                    }
                    Err(e) => tracing::debug!(%dest, error = %e, "UDP send failed"),
                }
            }
            Transport::Tcp | Transport::Tls => {
                let existing = self
                    .tcp
                    .lock()
                    .get(&dest)
                    .filter(|c| c.transport == transport)
                    .map(|c| c.tx.clone());
                match existing {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            tracing::info!(%dest, "TCP peer not reading; message dropped");
                        }
                    }
                    None => {
                        let me = self.clone();
                        tokio::spawn(
                            async move { me.connect_and_send(transport, dest, bytes).await },
                        );
                    }
                }
            }
        }
    }

    /// Sends a UDP datagram from the served socket bound to `local` (the
    /// one a NATed peer's mapping was opened towards); false when no served
    /// UDP socket is bound there (nothing is sent).
    pub fn send_udp_from(&self, local: SocketAddr, dest: SocketAddr, bytes: &[u8]) -> bool {
        self.tap(&tap::Copy {
            direction: tap::Direction::Sent,
            transport: Transport::Udp,
            local,
            peer: dest,
            bytes,
        });
        let socket = self.served.read().iter().find_map(|s| match &s.kind {
            ServedKind::Udp { socket, .. } if s.local == local => Some(socket.clone()),
            _ => None,
        });
        let Some(socket) = socket else {
            return false;
        };
        let sent = socket2::SockRef::from(socket.as_ref()).send_to_with_flags(
            bytes,
            &dest.into(),
            libc::MSG_DONTWAIT,
        );
        if let Err(e) = sent {
            tracing::debug!(%dest, error = %e, "UDP send failed");
        }
        true
    }

    async fn connect_and_send(
        self: Arc<Self>,
        transport: Transport,
        dest: SocketAddr,
        bytes: Vec<u8>,
    ) {
        let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(dest));
        let Ok(Ok(stream)) = connect.await else {
            tracing::info!(%dest, ?transport, "cannot open connection");
            if transport == Transport::Tls {
                self.tls
                    .connect_failed(dest, "cannot open a TCP connection");
            }
            return;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(dest);
        let sink = self.outbound_sink.lock().clone();
        let limits = *self.tcp_limits.read();
        let slot = self.tcp_admission.admit(dest.ip(), &limits, false);
        let (Some(sink), Some(slot)) = (sink, slot) else {
            return;
        };
        match transport {
            Transport::Tls => match self.tls.connect(stream, dest).await {
                Ok(tls) => self
                    .clone()
                    .start_connection(tls, transport, dest, local, sink, slot),
                Err(e) => {
                    tracing::warn!(%dest, error = %e, "TLS connection failed");
                    return;
                }
            },
            _ => self
                .clone()
                .start_connection(stream, transport, dest, local, sink, slot),
        }
        if let Some(tx) = self.tcp.lock().get(&dest).map(|c| c.tx.clone()) {
            let _ = tx.try_send(bytes);
        }
    }

    pub fn set_outbound_sink(&self, sink: Arc<dyn Sink>) {
        *self.outbound_sink.lock() = Some(sink);
    }
}

impl Served {
    /// Stops serving: UDP readers are woken (shutdown of the read side) and
    /// leave, closing the socket with the last of them; the TCP accept task
    /// is aborted (its connections live on).
    fn stop(self) {
        match self.kind {
            ServedKind::Udp { socket, stop } => {
                stop.store(true, Ordering::Relaxed);
                let _ = socket2::SockRef::from(socket.as_ref()).shutdown(std::net::Shutdown::Read);
            }
            ServedKind::Tcp { accept } => accept.abort(),
        }
    }
}

/// One UDP receive thread: read a datagram, hand it to the sink, repeat
/// until the socket is stopped.
fn udp_reader(socket: &UdpSocket, local: SocketAddr, sink: &dyn Sink, stop: &AtomicBool) {
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); MAX_MESSAGE_SIZE + 1];
    let socket = socket2::SockRef::from(socket);
    while !stop.load(Ordering::Relaxed) {
        // socket2, not std: std asserts on the empty source address that a
        // shut-down socket returns.
        match socket.recv_from(&mut buf) {
            Ok((n, src)) => {
                let Some(src) = src.as_socket() else { continue };
                // SAFETY: recvfrom initialised the first n bytes.
                let data = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
                sink.on_message(data, src, Transport::Udp, local);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tracing::debug!(%local, error = %e, "UDP receive error");
                // Never spin on a persistent error.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
