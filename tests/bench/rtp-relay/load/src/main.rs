//! RTP load of the rtp-relay benchmark: for every call, a G.711 stream each
//! way (one 172-byte packet per 20 ms per direction) sent through the relay
//! under test, counted and timed where it comes out.
//!
//! Usage: besip-rtp-load CALLS_FILE SECONDS [RECEIVER_THREADS]
//! CALLS_FILE has one call per line: `a_bind a_dest b_bind b_dest` — side A's
//! socket (bound at a_bind) sends to a_dest, the relay's port for A, and
//! receives B's stream; likewise B. Prints one line of `key=value` figures:
//! packets sent and received, loss, latency percentiles through the relay,
//! and how late the sender fell behind its schedule (when it is late the
//! load generator, not the relay, is the limit).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PTIME: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 160;
/// Latency histogram: one bucket per microsecond up to 200 ms.
const BUCKETS: usize = 200_000;

struct Call {
    a: UdpSocket,
    a_dest: SocketAddr,
    b: UdpSocket,
    b_dest: SocketAddr,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: besip-rtp-load CALLS_FILE SECONDS [RECEIVER_THREADS]");
        std::process::exit(2);
    }
    let text =
        std::fs::read_to_string(&args[1]).unwrap_or_else(|e| fail(&format!("{}: {e}", args[1])));
    let seconds: f64 = args[2]
        .parse()
        .unwrap_or_else(|_| fail("SECONDS is a number"));
    let receivers: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1).max(1);
    let calls: Vec<Call> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_call)
        .collect();
    let calls = Arc::new(calls);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    // Receivers: each polls its share of the sockets (by call index).
    let mut handles = Vec::new();
    for r in 0..receivers {
        let calls = calls.clone();
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            receive(&calls, r, receivers, start, &stop)
        }));
    }

    let (sent, lag) = send(&calls, start, Duration::from_secs_f64(seconds));
    // Stragglers still in the relay's queues.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut received = 0u64;
    let mut hist = vec![0u64; BUCKETS];
    for h in handles {
        let (n, part) = h.join().unwrap_or_else(|_| fail("a receiver panicked"));
        received += n;
        for (total, x) in hist.iter_mut().zip(part) {
            *total += x;
        }
    }
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
    };
    println!(
        "calls={} sent={sent} received={received} loss_pct={loss:.4} p50_us={} p99_us={} max_us={} sender_lag_ms={:.1}",
        calls.len(),
        percentile(&hist, 0.50),
        percentile(&hist, 0.99),
        percentile(&hist, 1.0),
        lag.as_secs_f64() * 1000.0
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("besip-rtp-load: {msg}");
    std::process::exit(1)
}

fn parse_call(line: &str) -> Call {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 4 {
        fail(&format!("bad call line: {line}"));
    }
    let addr = |s: &str| -> SocketAddr {
        s.parse()
            .unwrap_or_else(|_| fail(&format!("bad address {s}")))
    };
    let bind = |s: &str| -> UdpSocket {
        let sock = UdpSocket::bind(addr(s)).unwrap_or_else(|e| fail(&format!("bind {s}: {e}")));
        sock.set_nonblocking(true)
            .unwrap_or_else(|e| fail(&format!("{s}: {e}")));
        sock
    };
    Call {
        a: bind(f[0]),
        a_dest: addr(f[1]),
        b: bind(f[2]),
        b_dest: addr(f[3]),
    }
}

/// Sends every stream's packets on schedule (each 20 ms slot spread evenly
/// over its streams); returns packets sent and the worst lateness.
fn send(calls: &[Call], start: Instant, duration: Duration) -> (u64, Duration) {
    let streams = calls.len() * 2;
    if streams == 0 {
        return (0, Duration::ZERO);
    }
    let spacing = PTIME / streams as u32;
    let mut packet = [0u8; 12 + PAYLOAD];
    packet[0] = 0x80; // RTP v2, PT 0 (PCMU)
    let mut sent = 0u64;
    let mut worst = Duration::ZERO;
    let slots = (duration.as_secs_f64() / PTIME.as_secs_f64()) as u32;
    for slot in 0..slots {
        for s in 0..streams {
            let due = PTIME * slot + spacing * s as u32;
            let now = start.elapsed();
            if due > now {
                let ahead = due - now;
                // Sleep in coarse steps only; the kernel's timer slack makes fine sleeps late.
                if ahead > Duration::from_micros(200) {
                    std::thread::sleep(ahead);
                }
            } else {
                worst = worst.max(now - due);
            }
            let call = &calls[s / 2];
            let (sock, dest) = if s % 2 == 0 {
                (&call.a, call.a_dest)
            } else {
                (&call.b, call.b_dest)
            };
            let seq = slot as u16;
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[4..8].copy_from_slice(&(slot * 160).to_be_bytes());
            packet[8..12].copy_from_slice(&(s as u32).to_be_bytes());
            let at = start.elapsed().as_nanos() as u64;
            packet[12..20].copy_from_slice(&at.to_be_bytes());
            if sock.send_to(&packet, dest).is_ok() {
                sent += 1;
            }
        }
    }
    (sent, worst)
}

/// Reads the sockets of calls `r`, `r + n`, … until `stop`; returns the
/// packets received and their latency histogram.
fn receive(
    calls: &[Call],
    r: usize,
    n: usize,
    start: Instant,
    stop: &AtomicBool,
) -> (u64, Vec<u64>) {
    let mut hist = vec![0u64; BUCKETS];
    let mut received = 0u64;
    // SAFETY: plain epoll syscalls on descriptors that outlive this function.
    let epfd = unsafe { libc::epoll_create1(0) };
    if epfd < 0 {
        fail("epoll_create1");
    }
    let mine: Vec<&UdpSocket> = calls
        .iter()
        .skip(r)
        .step_by(n)
        .flat_map(|c| [&c.a, &c.b])
        .collect();
    for (i, sock) in mine.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: as above.
        if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, sock.as_raw_fd(), &mut ev) } != 0 {
            fail("epoll_ctl");
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for its length.
        let ready = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 50) };
        for ev in events.iter().take(ready.max(0) as usize) {
            let sock = mine[ev.u64 as usize];
            while let Ok((len, _)) = sock.recv_from(&mut buf) {
                if len < 20 {
                    continue;
                }
                received += 1;
                let sent_at = u64::from_be_bytes(buf[12..20].try_into().unwrap_or([0; 8]));
                let now = start.elapsed().as_nanos() as u64;
                let us = (now.saturating_sub(sent_at) / 1000) as usize;
                hist[us.min(BUCKETS - 1)] += 1;
            }
        }
    }
    // SAFETY: closing our own epoll descriptor.
    unsafe { libc::close(epfd) };
    (received, hist)
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
