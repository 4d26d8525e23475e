//! HEP v3 export of the SIP traffic (/pbx/hep), as Kamailio's siptrace:
//! every message the transports send or receive is copied, wrapped in a
//! HEP v3 packet (addresses, ports, transport, time, capture id, the
//! Call-ID as correlation id) and sent to the collector over UDP. The
//! socket is non-blocking and nothing is queued: when the collector or the
//! network cannot keep up, copies are dropped and counted, never delaying
//! a SIP message.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::config::{HepSettings, Transport};
use crate::features::state::Engine;
use crate::transport::tap::{Copy, Tap};

/// HEP v3 chunk types (generic vendor 0).
mod chunk {
    pub const IP_FAMILY: u16 = 0x0001;
    pub const IP_PROTOCOL: u16 = 0x0002;
    pub const IPV4_SOURCE: u16 = 0x0003;
    pub const IPV4_DESTINATION: u16 = 0x0004;
    pub const IPV6_SOURCE: u16 = 0x0005;
    pub const IPV6_DESTINATION: u16 = 0x0006;
    pub const SOURCE_PORT: u16 = 0x0007;
    pub const DESTINATION_PORT: u16 = 0x0008;
    pub const TIME_SECONDS: u16 = 0x0009;
    pub const TIME_MICROSECONDS: u16 = 0x000a;
    pub const PROTOCOL_TYPE: u16 = 0x000b;
    pub const CAPTURE_ID: u16 = 0x000c;
    pub const PAYLOAD: u16 = 0x000f;
    pub const CORRELATION_ID: u16 = 0x0011;
}

/// HEP protocol type of a SIP payload.
const PROTOCOL_SIP: u8 = 0x01;
/// Largest HEP packet sent (a UDP datagram); bigger messages are not copied.
const MAX_PACKET: usize = 65_507;

/// Exported and dropped copies since start (kept across reconfigurations).
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// The running export: its settings and socket.
struct Exporter {
    settings: HepSettings,
    socket: UdpSocket,
    counters: Arc<Counters>,
}

impl Tap for Exporter {
    fn copy(&self, m: &Copy<'_>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let Some(packet) = encode(m, self.settings.capture_id, now) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match self.socket.send_to(&packet, self.settings.collector) {
            Ok(_) => self.counters.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The export of the daemon: follows /pbx/hep.
#[derive(Default)]
pub struct Export {
    running: Mutex<Option<HepSettings>>,
    counters: Arc<Counters>,
}

impl Export {
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Starts, moves or stops the export as the running configuration says
/// (at start and after each reload).
pub fn reconcile(engine: &Engine) {
    let want = engine.config().hep;
    let export = engine.hep();
    let mut running = export.running.lock();
    if *running == want {
        return;
    }
    let tap = want.and_then(|settings| {
        let any: IpAddr = match settings.collector {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind(SocketAddr::new(any, 0))
            .and_then(|s| s.set_nonblocking(true).map(|()| s));
        match socket {
            Ok(socket) => {
                tracing::info!(collector = %settings.collector, "HEP export of SIP messages");
                Some(Arc::new(Exporter {
                    settings,
                    socket,
                    counters: export.counters.clone(),
                }) as Arc<dyn Tap>)
            }
            Err(e) => {
                tracing::error!(collector = %settings.collector, error = %e, "no HEP export: cannot open a socket");
                None
            }
        }
    });
    if tap.is_none() && want.is_none() {
        tracing::info!("HEP export stopped");
    }
    engine.transports().set_tap(tap);
    *running = want;
}

fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    // Chunk: vendor 0, type, length of header (6) and value.
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((6 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// The HEP v3 packet of message `m` at time `now` (None when its addresses
/// are of different families or it is too big for one datagram).
fn encode(m: &Copy<'_>, capture_id: u32, now: std::time::Duration) -> Option<Vec<u8>> {
    let (source, destination) = match m.direction {
        crate::transport::tap::Direction::Received => (m.peer, m.local),
        crate::transport::tap::Direction::Sent => (m.local, m.peer),
    };
    let correlation = call_id(m.bytes);
    let mut out = Vec::with_capacity(128 + m.bytes.len());
    out.extend_from_slice(b"HEP3\0\0");
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put(&mut out, chunk::IP_FAMILY, &[2]);
            put(&mut out, chunk::IPV4_SOURCE, &s.octets());
            put(&mut out, chunk::IPV4_DESTINATION, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            put(&mut out, chunk::IP_FAMILY, &[10]);
            put(&mut out, chunk::IPV6_SOURCE, &s.octets());
            put(&mut out, chunk::IPV6_DESTINATION, &d.octets());
        }
        _ => return None,
    }
    let protocol = match m.transport {
        Transport::Udp => 17,
        Transport::Tcp | Transport::Tls => 6,
    };
    put(&mut out, chunk::IP_PROTOCOL, &[protocol]);
    put(&mut out, chunk::SOURCE_PORT, &source.port().to_be_bytes());
    put(&mut out, chunk::DESTINATION_PORT, &destination.port().to_be_bytes());
    let seconds = u32::try_from(now.as_secs()).unwrap_or(u32::MAX);
    put(&mut out, chunk::TIME_SECONDS, &seconds.to_be_bytes());
    put(&mut out, chunk::TIME_MICROSECONDS, &now.subsec_micros().to_be_bytes());
    put(&mut out, chunk::PROTOCOL_TYPE, &[PROTOCOL_SIP]);
    put(&mut out, chunk::CAPTURE_ID, &capture_id.to_be_bytes());
    if let Some(id) = correlation {
        put(&mut out, chunk::CORRELATION_ID, id);
    }
    if out.len() + 6 + m.bytes.len() > MAX_PACKET {
        return None;
    }
    put(&mut out, chunk::PAYLOAD, m.bytes);
    let total = u16::try_from(out.len()).ok()?;
    out[4..6].copy_from_slice(&total.to_be_bytes());
    Some(out)
}

/// The Call-ID of a SIP message (its long or compact header), without
/// parsing the whole message: at most 256 bytes, else none.
fn call_id(bytes: &[u8]) -> Option<&[u8]> {
    let head_end = memchr::memmem::find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = &bytes[..head_end];
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = line[colon + 1..].trim_ascii();
            return (!value.is_empty() && value.len() <= 256).then_some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tap::Direction;

    /// (type, value) of each chunk after the 6-byte header.
    fn chunks(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = &p[6..];
        while rest.len() >= 6 {
            let kind = u16::from_be_bytes([rest[2], rest[3]]);
            let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
            out.push((kind, rest[6..len].to_vec()));
            rest = &rest[len..];
        }
        out
    }

    #[test]
    fn a_received_message_is_wrapped_with_its_addresses_and_call_id() {
        let msg = b"INVITE sip:100@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5070\r\ni: abc@x\r\n\r\n";
        let copy = Copy {
            direction: Direction::Received,
            transport: Transport::Udp,
            local: "198.51.100.1:5060".parse().expect("addr"),
            peer: "192.0.2.9:5070".parse().expect("addr"),
            bytes: msg,
        };
        let p = encode(&copy, 7, std::time::Duration::new(1_700_000_000, 5_000)).expect("packet");
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        let c = chunks(&p);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone());
        assert_eq!(get(chunk::IP_FAMILY), Some(vec![2]));
        assert_eq!(get(chunk::IPV4_SOURCE), Some(vec![192, 0, 2, 9]));
        assert_eq!(get(chunk::IPV4_DESTINATION), Some(vec![198, 51, 100, 1]));
        assert_eq!(get(chunk::SOURCE_PORT), Some(5070u16.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::IP_PROTOCOL), Some(vec![17]));
        assert_eq!(get(chunk::TIME_MICROSECONDS), Some(5u32.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::CAPTURE_ID), Some(7u32.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::CORRELATION_ID), Some(b"abc@x".to_vec()));
        assert_eq!(get(chunk::PAYLOAD), Some(msg.to_vec()));
    }

    #[test]
    fn mixed_families_and_giant_messages_are_not_copied() {
        let big = vec![b'a'; 70_000];
        let copy = |local: &str, bytes: &'static [u8]| Copy {
            direction: Direction::Sent,
            transport: Transport::Tcp,
            local: local.parse().expect("addr"),
            peer: "192.0.2.9:5070".parse().expect("addr"),
            bytes,
        };
        let d = std::time::Duration::ZERO;
        assert!(encode(&copy("[2001:db8::1]:5060", b"x"), 1, d).is_none());
        let leaked: &'static [u8] = Box::leak(big.into_boxed_slice());
        assert!(encode(&copy("198.51.100.1:5060", leaked), 1, d).is_none());
        assert!(call_id(b"OPTIONS x SIP/2.0\r\nCall-ID:\r\n\r\n").is_none());
    }
}
