//! A packet tap on the loopback interface of the caller's network
//! namespace (AF_PACKET, root only): the RTP (PCMU) packets delivered to
//! chosen UDP ports, with their source, for tests that check what reached
//! a phone on the wire.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One RTP packet seen on its way in.
#[derive(Clone, Debug)]
pub struct RtpPacket {
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
    pub payload_type: u8,
    pub payload: Vec<u8>,
}

/// Taps loopback until dropped.
pub struct RtpTap {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<RtpPacket>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RtpTap {
    /// Starts tapping `lo` of the calling thread's namespace for RTP to a
    /// destination port in `ports`.
    pub fn start(ports: std::ops::RangeInclusive<u16>) -> RtpTap {
        // SAFETY: plain socket calls; the descriptor is owned right away.
        let fd = unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM,
                i32::from((libc::ETH_P_IP as u16).to_be()),
            );
            assert!(fd >= 0, "AF_PACKET socket (root needed)");
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: a zeroed sockaddr_ll filled in and passed with its size.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
            addr.sll_ifindex = libc::if_nametoindex(c"lo".as_ptr()) as i32;
            let rc = libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "bind the tap to lo");
            let timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (flag, out) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: buffers valid for their lengths.
                let (n, kind) = unsafe {
                    let mut from: libc::sockaddr_ll = std::mem::zeroed();
                    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                    let n = libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                        &mut len,
                    );
                    (n, from.sll_pkttype)
                };
                // Loopback shows each packet twice: keep it on its way in.
                if n <= 0 || kind != libc::PACKET_HOST {
                    continue;
                }
                if let Some(p) = parse(&buf[..n as usize]).filter(|p| ports.contains(&p.to.port()))
                {
                    out.lock().expect("tap").push(p);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        RtpTap {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Every packet seen so far.
    pub fn packets(&self) -> Vec<RtpPacket> {
        self.seen.lock().expect("tap").clone()
    }
}

impl Drop for RtpTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An IPv4/UDP/RTP packet (version 2, not RTCP).
fn parse(ip: &[u8]) -> Option<RtpPacket> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let udp = ip.get(ihl..)?;
    if udp.len() < 8 + 12 {
        return None;
    }
    let addr = |a: &[u8], p: &[u8]| {
        SocketAddrV4::new(
            Ipv4Addr::new(a[0], a[1], a[2], a[3]),
            u16::from_be_bytes([p[0], p[1]]),
        )
    };
    let rtp = &udp[8..];
    let payload_type = rtp[1] & 0x7f;
    if rtp[0] >> 6 != 2 || (64..96).contains(&payload_type) {
        return None;
    }
    let mut head = 12 + 4 * usize::from(rtp[0] & 0x0f);
    if rtp[0] & 0x10 != 0 {
        let ext = rtp.get(head + 2..head + 4)?;
        head += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    Some(RtpPacket {
        from: addr(&ip[12..16], &udp[0..2]),
        to: addr(&ip[16..20], &udp[2..4]),
        payload_type,
        payload: rtp.get(head..)?.to_vec(),
    })
}

/// G.711 µ-law to linear 16-bit.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if b & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// The PCMU audio of `packets`, decoded in order.
pub fn pcmu_samples<'a>(packets: impl IntoIterator<Item = &'a RtpPacket>) -> Vec<i16> {
    packets
        .into_iter()
        .filter(|p| p.payload_type == 0)
        .flat_map(|p| p.payload.iter().map(|&b| ulaw_to_linear(b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_decodes_known_values() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }
}
