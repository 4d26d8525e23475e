//! UDP socket pairs of the RTP relay, served by a few epoll worker threads
//! (one per core) instead of a thread per socket: under load one
//! `epoll_wait` hands a worker many ready sockets, and no packet costs a
//! thread wake-up and context switch. What a packet means (whose it is,
//! where it goes) is the caller's `MediaRoute`; this module only moves bytes.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// Decides the fate of each packet of a pair.
pub trait MediaRoute: Send + Sync + 'static {
    /// A packet from `source`, `packet[..len]`, arrived on side A's socket
    /// (`from_a`) or B's: where to send it from the other side's socket and
    /// its length then (it may be transformed in place, e.g. SRTP; `packet`
    /// has room beyond `len`), or None to drop it.
    fn route(
        &self,
        from_a: bool,
        source: SocketAddr,
        packet: &mut [u8],
        len: usize,
    ) -> Option<(SocketAddr, usize)>;
}

struct Pair {
    a: UdpSocket,
    b: UdpSocket,
    route: Arc<dyn MediaRoute>,
}

struct Worker {
    epoll: OwnedFd,
    pairs: Mutex<HashMap<u64, Arc<Pair>>>,
}

/// A pair being served; dropping it stops serving and closes its sockets.
pub struct MediaPair {
    worker: Arc<Worker>,
    token: u64,
    pair: Arc<Pair>,
}

/// The largest datagram taken; the buffer has room beyond it for what SRTP adds.
const DATAGRAM: usize = 2048;

static WORKERS: OnceLock<Result<Vec<Arc<Worker>>, String>> = OnceLock::new();
static NEXT_WORKER: AtomicUsize = AtomicUsize::new(0);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn workers() -> io::Result<&'static [Arc<Worker>]> {
    let made = WORKERS.get_or_init(|| {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..count)
            .map(|_| start_worker().map_err(|e| e.to_string()))
            .collect()
    });
    made.as_deref().map_err(|e| io::Error::other(e.clone()))
}

fn start_worker() -> io::Result<Arc<Worker>> {
    // SAFETY: epoll_create1 has no memory arguments; the result is checked.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
    let worker = Arc::new(Worker {
        epoll,
        pairs: Mutex::new(HashMap::new()),
    });
    let serving = worker.clone();
    std::thread::Builder::new()
        .name("rtp-relay".into())
        .spawn(move || run_worker(&serving))?;
    Ok(worker)
}

/// Serves `a` and `b` (bound, non-blocking is set here) until the returned
/// handle is dropped.
pub fn serve(a: UdpSocket, b: UdpSocket, route: Arc<dyn MediaRoute>) -> io::Result<MediaPair> {
    let workers = workers()?;
    let worker = workers[NEXT_WORKER.fetch_add(1, Ordering::Relaxed) % workers.len()].clone();
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    let pair = Arc::new(Pair { a, b, route });
    worker.pairs.lock().insert(token, pair.clone());
    let handle = MediaPair {
        worker,
        token,
        pair,
    };
    for (sock, side) in [(&handle.pair.a, 0), (&handle.pair.b, 1)] {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token << 1 | side,
        };
        // SAFETY: both descriptors are open for the life of `handle`.
        let rc = unsafe {
            libc::epoll_ctl(
                handle.worker.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                sock.as_raw_fd(),
                &mut event,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()); // dropping `handle` undoes the rest
        }
    }
    Ok(handle)
}

impl MediaPair {
    /// Sends `packet` to `dest` from side A's socket (`a`) or B's: media
    /// the box itself makes for a leg (music on hold).
    pub fn send_from(&self, a: bool, packet: &[u8], dest: std::net::SocketAddr) {
        let sock = if a { &self.pair.a } else { &self.pair.b };
        // A full socket buffer drops the packet, as the network would.
        let _ = sock.send_to(packet, dest);
    }
}

impl Drop for MediaPair {
    fn drop(&mut self) {
        for sock in [&self.pair.a, &self.pair.b] {
            // SAFETY: removing a descriptor that is still open (ours); an
            // error only means it was never added.
            unsafe {
                libc::epoll_ctl(
                    self.worker.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    sock.as_raw_fd(),
                    std::ptr::null_mut(),
                );
            }
        }
        self.worker.pairs.lock().remove(&self.token);
    }
}

/// Serves the ready sockets, one datagram per socket and turn. The epoll
/// set is level-triggered: a socket that holds more is ready again at the
/// next `epoll_wait`, so a flooded port cannot starve the other calls, and
/// no read is spent finding a socket empty (under RTP load a ready socket
/// mostly holds one packet; draining it took a second, empty `recvfrom`
/// per packet).
fn run_worker(worker: &Worker) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; DATAGRAM + 64];
    loop {
        // SAFETY: `events` has room for the length passed.
        let ready = unsafe {
            libc::epoll_wait(
                worker.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                -1,
            )
        };
        let Ok(ready) = usize::try_from(ready) else {
            continue; // EINTR
        };
        for event in &events[..ready] {
            let data = event.u64;
            let from_a = data & 1 == 0;
            // A pair dropped since the event was queued is simply gone.
            let Some(pair) = worker.pairs.lock().get(&(data >> 1)).cloned() else {
                continue;
            };
            let (from, to) = if from_a {
                (&pair.a, &pair.b)
            } else {
                (&pair.b, &pair.a)
            };
            // An error: nothing queued after all, or an ICMP error of an earlier send.
            let Ok((n, source)) = from.recv_from(&mut buf[..DATAGRAM]) else {
                continue;
            };
            if let Some((target, len)) = pair.route.route(from_a, source, &mut buf, n) {
                let _ = to.send_to(&buf[..len.min(buf.len())], target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Forwards A's packets to `to_b` and drops B's.
    struct OneWay {
        to_b: SocketAddr,
        seen: AtomicU64,
    }

    impl MediaRoute for OneWay {
        fn route(
            &self,
            from_a: bool,
            _: SocketAddr,
            _: &mut [u8],
            len: usize,
        ) -> Option<(SocketAddr, usize)> {
            self.seen.fetch_add(1, Ordering::Relaxed);
            from_a.then_some((self.to_b, len))
        }
    }

    #[test]
    fn forwards_as_routed_and_stops_when_dropped() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let far = UdpSocket::bind("127.0.0.1:0").unwrap();
        far.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let route = Arc::new(OneWay {
            to_b: far.local_addr().unwrap(),
            seen: AtomicU64::new(0),
        });
        let pair = serve(a, b, route.clone()).unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..50u8 {
            phone.send_to(&[i; 172], a_addr).unwrap();
        }
        let mut buf = [0u8; 256];
        for i in 0..50u8 {
            let (n, src) = far.recv_from(&mut buf).expect("forwarded");
            assert_eq!((n, buf[0], src), (172, i, b_addr));
        }
        phone.send_to(b"dropped", b_addr).unwrap();
        for _ in 0..100 {
            if route.seen.load(Ordering::Relaxed) == 51 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(route.seen.load(Ordering::Relaxed), 51);
        drop(pair);
        // The sockets close (once a worker busy with them lets go): the
        // port can be bound again.
        let rebound = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            UdpSocket::bind(a_addr).is_ok()
        });
        assert!(rebound);
    }
}
