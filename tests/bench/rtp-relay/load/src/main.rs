//! RTP load of the rtp-relay benchmark: for every call, a G.711 stream each
//! way (one 172-byte packet per 20 ms per direction) sent through the relay
//! under test, counted and timed where it comes out.
//!
//! Usage: besip-rtp-load CALLS_FILE SECONDS [THREADS [TICK_US]]
//!
//! CALLS_FILE has one call per line: `a_bind a_dest b_bind b_dest` — side A
//! sends from a socket bound at a_bind to a_dest, the relay's port for A,
//! and receives B's stream there; likewise B. Calls may share a bind address
//! (one socket then carries many calls' streams, as the harness does so that
//! the generator can batch): the relay under test still has a socket pair
//! per call and answers each call's announced address.
//!
//! Built not to be the bottleneck: THREADS threads (default: the CPUs this
//! process may run on) each own some of the sockets; every millisecond each
//! sends the due packets of its streams in batches (`sendmmsg`, one call
//! per socket) and reads its sockets in batches (`recvmmsg`). Every packet
//! carries its stream, its sequence number, when it was sent and the run's
//! id (what an earlier run left queued in the relay is not counted); latency is taken against the
//! kernel's receive timestamp (SO_TIMESTAMPNS), so a generator slow to read
//! does not add to the relay's latency. Streams are spread evenly over the
//! 20 ms packet time.
//!
//! Prints one line of `key=value` figures: packets sent and received, loss,
//! latency percentiles through the relay, and the generator's own health:
//! how late its packets left against their schedule (share sent more than
//! LATE_MS late, p99 and worst lateness), datagrams its own sockets dropped
//! for want of buffer (`gen_rcvbuf_drops`) and its CPU use. `gen_ok=0` says
//! the generator, not the relay, may have been the limit: such a run's loss
//! and latency are not the relay's.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PTIME: Duration = Duration::from_millis(20);
const PACKET: usize = 12 + 160;
/// Latency histogram: one bucket per microsecond up to 200 ms.
const BUCKETS: usize = 200_000;
/// Lateness histogram: one bucket per 10 µs up to 1 s.
const LAG_BUCKET_US: u64 = 10;
const LAG_BUCKETS: usize = 100_000;
/// A packet sent later than this after its due time is "late".
const LATE_MS: u64 = 5;
/// Share of late packets above which the run is flagged (percent).
const LATE_PCT_MAX: f64 = 1.0;
/// Packets read (or sent) per system call at most.
const BATCH: usize = 64;
/// Packets gathered before they are sent, at most.
const SEND_MAX: usize = 1024;
/// How often a thread sends what is due and reads what came (TICK_US, the
/// fourth argument, to change it).
const TICK: Duration = Duration::from_millis(1);
/// How long after the last packet sent the threads keep reading.
const DRAIN: Duration = Duration::from_millis(300);

// Linux socket options (generic values; x86-64, aarch64).
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;
const SO_TIMESTAMPNS: libc::c_int = 35;
const SO_RXQ_OVFL: libc::c_int = 40;

/// One direction of one call: sent from `sock` to `dest`.
struct Stream {
    id: u32,
    sock: usize,
    dest: SocketAddr,
    /// When in each 20 ms slot it is due.
    offset: Duration,
}

struct Totals {
    sent: u64,
    send_errors: u64,
    received: u64,
    foreign: u64,
    hist: Vec<u64>,
    lag: Vec<u64>,
    ovfl: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: besip-rtp-load CALLS_FILE SECONDS [THREADS [TICK_US]]");
        std::process::exit(2);
    }
    let text =
        std::fs::read_to_string(&args[1]).unwrap_or_else(|e| fail(&format!("{}: {e}", args[1])));
    let seconds: f64 = args[2]
        .parse()
        .unwrap_or_else(|_| fail("SECONDS is a number"));
    let threads: usize = args
        .get(3)
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let tick = args
        .get(4)
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .map_or(TICK, Duration::from_micros);
    // Sockets, one per distinct bind address; streams, two per call.
    let mut binds: HashMap<SocketAddr, usize> = HashMap::new();
    let mut sockets: Vec<UdpSocket> = Vec::new();
    let mut streams: Vec<(usize, SocketAddr)> = Vec::new();
    let mut socket_of = |addr: SocketAddr| -> usize {
        *binds.entry(addr).or_insert_with(|| {
            sockets.push(bind(addr));
            sockets.len() - 1
        })
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            fail(&format!("bad call line: {line}"));
        }
        let [a_bind, a_dest, b_bind, b_dest] = [f[0], f[1], f[2], f[3]].map(addr);
        streams.push((socket_of(a_bind), a_dest));
        streams.push((socket_of(b_bind), b_dest));
    }
    let calls = streams.len() / 2;
    let total_streams = streams.len().max(1) as u32;
    let threads = threads.min(sockets.len()).max(1);

    // Thread t owns the sockets i with i % threads == t and their streams.
    let mut owned: Vec<(Vec<UdpSocket>, Vec<Stream>)> =
        (0..threads).map(|_| (Vec::new(), Vec::new())).collect();
    let mut local = vec![0usize; sockets.len()];
    for (i, sock) in sockets.into_iter().enumerate() {
        local[i] = owned[i % threads].0.len();
        owned[i % threads].0.push(sock);
    }
    for (id, (sock, dest)) in streams.iter().enumerate() {
        owned[sock % threads].1.push(Stream {
            id: id as u32,
            sock: local[*sock],
            dest: *dest,
            offset: PTIME * id as u32 / total_streams,
        });
    }
    let slots = (seconds / PTIME.as_secs_f64()) as u32;
    let cpu0 = cpu_time();
    let start = Instant::now() + Duration::from_millis(20);
    // Send stamps are wall-clock nanoseconds, as are the kernel's receive stamps.
    let handles: Vec<_> = owned
        .into_iter()
        .map(|(socks, streams)| {
            let socks = Arc::new(socks);
            std::thread::spawn(move || run(&socks, &streams, start, slots, tick))
        })
        .collect();
    let mut t = Totals {
        sent: 0,
        send_errors: 0,
        received: 0,
        foreign: 0,
        hist: vec![0; BUCKETS],
        lag: vec![0; LAG_BUCKETS],
        ovfl: 0,
    };
    for h in handles {
        let part = h.join().unwrap_or_else(|_| fail("a thread panicked"));
        t.sent += part.sent;
        t.send_errors += part.send_errors;
        t.received += part.received;
        t.foreign += part.foreign;
        t.ovfl += part.ovfl;
        for (total, x) in t.hist.iter_mut().zip(&part.hist) {
            *total += x;
        }
        for (total, x) in t.lag.iter_mut().zip(&part.lag) {
            *total += x;
        }
    }
    let wall = start.elapsed().as_secs_f64().max(1e-3);
    let gen_cpu = 100.0 * (cpu_time() - cpu0) / wall;
    let loss = if t.sent == 0 {
        0.0
    } else {
        100.0 * (t.sent.saturating_sub(t.received)) as f64 / t.sent as f64
    };
    let late_from = (LATE_MS * 1000 / LAG_BUCKET_US) as usize;
    let late: u64 = t.lag[late_from..].iter().sum();
    let late_pct = if t.sent == 0 {
        0.0
    } else {
        100.0 * late as f64 / t.sent as f64
    };
    let lag_ms = |p: f64| percentile(&t.lag, p) as f64 * LAG_BUCKET_US as f64 / 1000.0;
    let gen_ok = late_pct <= LATE_PCT_MAX && t.ovfl == 0 && t.send_errors == 0;
    println!(
        "calls={calls} threads={threads} tick_us={} sent={} received={} loss_pct={loss:.4} p50_us={} p99_us={} max_us={} \
         late_pct={late_pct:.3} lag_p99_ms={:.2} sender_lag_ms={:.1} gen_rcvbuf_drops={} send_errors={} \
         foreign={} gen_cpu_pct={gen_cpu:.1} gen_ok={}",
        tick.as_micros(),
        t.sent,
        t.received,
        percentile(&t.hist, 0.50),
        percentile(&t.hist, 0.99),
        percentile(&t.hist, 1.0),
        lag_ms(0.99),
        lag_ms(1.0),
        t.ovfl,
        t.send_errors,
        t.foreign,
        u8::from(gen_ok),
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("besip-rtp-load: {msg}");
    std::process::exit(1)
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| fail(&format!("bad address {s}")))
}

fn setsockopt(sock: &UdpSocket, name: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: an int option on our own socket.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// A blocking socket (reads pass MSG_DONTWAIT) with large buffers, kernel
/// receive timestamps and drop counts.
fn bind(at: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind(at).unwrap_or_else(|e| fail(&format!("bind {at}: {e}")));
    const BUF: libc::c_int = 16 << 20;
    if !setsockopt(&sock, SO_RCVBUFFORCE, BUF) {
        setsockopt(&sock, libc::SO_RCVBUF, BUF);
    }
    if !setsockopt(&sock, SO_SNDBUFFORCE, BUF) {
        setsockopt(&sock, libc::SO_SNDBUF, BUF);
    }
    setsockopt(&sock, SO_TIMESTAMPNS, 1);
    setsockopt(&sock, SO_RXQ_OVFL, 1);
    sock
}

fn cpu_time() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Tells this run's packets from those an earlier run left in the relay.
fn run_id() -> u32 {
    static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ID.get_or_init(|| (realtime_ns() as u32) ^ std::process::id().rotate_left(16))
}

fn realtime_ns() -> u64 {
    // SAFETY: clock_gettime fills the timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sockaddr_of(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; we fill the family's part.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// One thread: every TICK, sends what of its streams is due (one
/// `sendmmsg` per socket) and reads its sockets empty (`recvmmsg`), until
/// DRAIN after the last slot. Packets are thus sent up to a TICK after their
/// due time; what is later than that is the generator's lag.
fn run(
    socks: &[UdpSocket],
    streams: &[Stream],
    start: Instant,
    slots: u32,
    tick_every: Duration,
) -> Totals {
    let mut t = Totals {
        sent: 0,
        send_errors: 0,
        received: 0,
        foreign: 0,
        hist: vec![0; BUCKETS],
        lag: vec![0; LAG_BUCKETS],
        ovfl: 0,
    };
    let dests: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        streams.iter().map(|s| sockaddr_of(&s.dest)).collect();
    let run_id = run_id();
    let mut rx = Reader::new(run_id);
    let mut tx_bufs = vec![[0u8; PACKET]; SEND_MAX];
    let mut pending: Vec<Vec<usize>> = vec![Vec::new(); socks.len()];
    let end = PTIME * slots;
    let (mut slot, mut idx) = (0u32, 0usize);
    let mut last_ovfl = vec![0u32; socks.len()];
    let mut tick = start;
    loop {
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        // Gather what is due, send it in one batch per socket.
        let mut full = true;
        while full {
            let now = start.elapsed();
            let mut gathered = 0;
            while slot < slots && !streams.is_empty() && gathered < SEND_MAX {
                let s = &streams[idx];
                let due = PTIME * slot + s.offset;
                if due > now {
                    break;
                }
                let lag_us = (now - due).as_micros() as u64;
                t.lag[((lag_us / LAG_BUCKET_US) as usize).min(LAG_BUCKETS - 1)] += 1;
                let buf = &mut tx_bufs[gathered];
                buf[0] = 0x80; // RTP v2, PT 0 (PCMU)
                buf[1] = 0;
                buf[2..4].copy_from_slice(&(slot as u16).to_be_bytes());
                buf[4..8].copy_from_slice(&(slot.wrapping_mul(160)).to_be_bytes());
                buf[8..12].copy_from_slice(&s.id.to_be_bytes());
                buf[20..24].copy_from_slice(&run_id.to_be_bytes());
                pending[s.sock].push(idx | gathered << 32);
                gathered += 1;
                idx += 1;
                if idx == streams.len() {
                    idx = 0;
                    slot += 1;
                }
            }
            full = gathered == SEND_MAX;
            if gathered > 0 {
                for (sock, list) in socks.iter().zip(pending.iter_mut()) {
                    if list.is_empty() {
                        continue;
                    }
                    let stamp = realtime_ns();
                    for &entry in list.iter() {
                        tx_bufs[entry >> 32][12..20].copy_from_slice(&stamp.to_be_bytes());
                    }
                    send_batch(sock, list, &mut tx_bufs, &dests, &mut t);
                    list.clear();
                }
            }
            // Read every socket empty (the kernel stamped each packet on
            // arrival), also between the batches of a thread far behind.
            for (sock, last) in socks.iter().zip(last_ovfl.iter_mut()) {
                while rx.read(sock, &mut t, last) == BATCH {}
            }
        }
        if slot >= slots && start.elapsed() >= end + DRAIN {
            break;
        }
        // The next tick; a thread behind does not try to catch up ticks.
        tick = (tick + tick_every).max(Instant::now());
    }
    t
}

/// Sends the packets `list` (stream index | buffer index << 32) from `sock`.
fn send_batch(
    sock: &UdpSocket,
    list: &[usize],
    bufs: &mut [[u8; PACKET]],
    dests: &[(libc::sockaddr_storage, libc::socklen_t)],
    t: &mut Totals,
) {
    let mut iovs: Vec<libc::iovec> = list
        .iter()
        .map(|&e| libc::iovec {
            iov_base: bufs[e >> 32].as_mut_ptr().cast(),
            iov_len: PACKET,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = list
        .iter()
        .zip(iovs.iter_mut())
        .map(|(&e, iov)| {
            let (ss, len) = &dests[e & 0xffff_ffff];
            // SAFETY: all-zero msghdr is valid; the pointers set live until sent.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = (ss as *const libc::sockaddr_storage).cast_mut().cast();
            hdr.msg_namelen = *len;
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    let mut done = 0;
    while done < msgs.len() {
        let n = (msgs.len() - done).min(BATCH * 4);
        // SAFETY: `msgs[done..done + n]` point at live buffers and addresses.
        let rc =
            unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs[done..].as_mut_ptr(), n as u32, 0) };
        if rc > 0 {
            done += rc as usize;
            t.sent += rc as u64;
        } else {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // This one packet fails (e.g. an ICMP error of an earlier send): skip it.
            t.send_errors += 1;
            done += 1;
        }
    }
}

/// Batched reads with receive timestamps.
struct Reader {
    /// Packets of this run carry it (bytes 20..24).
    run_id: u32,
    bufs: Vec<[u8; 256]>,
    ctrl: Vec<[u64; 16]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Reader {
    fn new(run_id: u32) -> Reader {
        let mut r = Reader {
            run_id,
            bufs: vec![[0u8; 256]; BATCH],
            ctrl: vec![[0u64; 16]; BATCH],
            iovs: Vec::with_capacity(BATCH),
            // SAFETY: all-zero mmsghdr is valid (set up before each use).
            msgs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
        };
        for b in r.bufs.iter_mut() {
            r.iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: 256,
            });
        }
        r
    }

    fn read(&mut self, sock: &UdpSocket, t: &mut Totals, last_ovfl: &mut u32) -> usize {
        for i in 0..BATCH {
            // SAFETY: zeroed msghdr, then pointers into our own buffers.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            hdr.msg_controllen = std::mem::size_of::<[u64; 16]>();
            self.msgs[i] = libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            };
        }
        // SAFETY: every message points at live buffers of the given sizes.
        let rc = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc <= 0 {
            return 0;
        }
        let fallback = realtime_ns();
        for i in 0..rc as usize {
            let len = self.msgs[i].msg_len as usize;
            let (stamp, ovfl) = cmsgs(&self.msgs[i].msg_hdr);
            if let Some(o) = ovfl {
                // The socket's drop count so far (it only grows).
                if o > *last_ovfl {
                    t.ovfl += u64::from(o - *last_ovfl);
                    *last_ovfl = o;
                }
            }
            let buf = &self.bufs[i];
            if len != PACKET || buf[0] != 0x80 || buf[20..24] != self.run_id.to_be_bytes() {
                // Not ours, or late from an earlier run through the same relay.
                t.foreign += 1;
                continue;
            }
            t.received += 1;
            let sent_at = u64::from_be_bytes(buf[12..20].try_into().unwrap_or([0; 8]));
            let at = stamp.unwrap_or(fallback);
            let us = (at.saturating_sub(sent_at) / 1000) as usize;
            t.hist[us.min(BUCKETS - 1)] += 1;
        }
        rc as usize
    }
}

/// The receive timestamp (wall-clock ns) and the socket's drop counter of
/// a received message.
fn cmsgs(hdr: &libc::msghdr) -> (Option<u64>, Option<u32>) {
    let (mut stamp, mut ovfl) = (None, None);
    // SAFETY: walking the control data the kernel just wrote.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(data.cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            } else if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_RXQ_OVFL {
                ovfl = Some(std::ptr::read_unaligned(data.cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    (stamp, ovfl)
}

fn percentile(hist: &[u64], p: f64) -> usize {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (us, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return us;
        }
    }
    hist.len() - 1
}
