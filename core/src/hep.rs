//! HEP v3 (the HOMER encapsulation protocol) encoding, shared by the PBX
//! (SIP messages) and the monitoring daemon (call-quality reports): a
//! header "HEP3" + total length, then type-length-value chunks of the
//! generic vendor (0).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Chunk types of the generic vendor.
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

/// What the payload is (HEP's protocol type chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Sip = 0x01,
    /// A call-quality report in JSON (HOMER's "full MOS report").
    QualityReportJson = 0x22,
}

/// Largest HEP packet sent (one UDP datagram).
pub const MAX_PACKET: usize = 65_507;

/// One captured message or report.
pub struct Packet<'a> {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// IP protocol number of the original traffic (17 UDP, 6 TCP).
    pub ip_protocol: u8,
    /// Since the Unix epoch.
    pub time: Duration,
    pub payload_type: Payload,
    pub capture_id: u32,
    pub correlation_id: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    // Callers keep every value far below 64 KiB (MAX_PACKET is checked).
    out.extend_from_slice(&((6 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// The HEP v3 packet of `p` (None when its addresses are of different
/// families or it does not fit one datagram).
pub fn encode(p: &Packet<'_>) -> Option<Vec<u8>> {
    let correlation = p.correlation_id.filter(|c| c.len() <= 1024);
    let mut out = Vec::with_capacity(128 + p.payload.len());
    out.extend_from_slice(b"HEP3\0\0");
    match (p.source.ip(), p.destination.ip()) {
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
    put(&mut out, chunk::IP_PROTOCOL, &[p.ip_protocol]);
    put(&mut out, chunk::SOURCE_PORT, &p.source.port().to_be_bytes());
    put(
        &mut out,
        chunk::DESTINATION_PORT,
        &p.destination.port().to_be_bytes(),
    );
    let seconds = u32::try_from(p.time.as_secs()).unwrap_or(u32::MAX);
    put(&mut out, chunk::TIME_SECONDS, &seconds.to_be_bytes());
    put(
        &mut out,
        chunk::TIME_MICROSECONDS,
        &p.time.subsec_micros().to_be_bytes(),
    );
    put(&mut out, chunk::PROTOCOL_TYPE, &[p.payload_type as u8]);
    put(&mut out, chunk::CAPTURE_ID, &p.capture_id.to_be_bytes());
    if let Some(id) = correlation {
        put(&mut out, chunk::CORRELATION_ID, id);
    }
    if out.len() + 6 + p.payload.len() > MAX_PACKET {
        return None;
    }
    put(&mut out, chunk::PAYLOAD, p.payload);
    let total = u16::try_from(out.len()).ok()?;
    out[4..6].copy_from_slice(&total.to_be_bytes());
    Some(out)
}

/// A non-blocking UDP socket towards a collector: sends never wait, a
/// packet that cannot leave at once is dropped (the caller counts it).
pub struct Sender {
    socket: std::net::UdpSocket,
    collector: SocketAddr,
}

impl Sender {
    pub fn open(collector: SocketAddr) -> std::io::Result<Sender> {
        let any: IpAddr = match collector {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
        socket.set_nonblocking(true)?;
        Ok(Sender { socket, collector })
    }

    pub fn collector(&self) -> SocketAddr {
        self.collector
    }

    /// Encodes and sends `p`; false when it was not sent.
    pub fn send(&self, p: &Packet<'_>) -> bool {
        encode(p).is_some_and(|bytes| self.socket.send_to(&bytes, self.collector).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn packet<'a>(source: &str, payload: &'a [u8]) -> Packet<'a> {
        Packet {
            source: source.parse().expect("addr"),
            destination: "198.51.100.1:5060".parse().expect("addr"),
            ip_protocol: 17,
            time: Duration::new(1_700_000_000, 5_000),
            payload_type: Payload::Sip,
            capture_id: 7,
            correlation_id: Some(b"abc@x"),
            payload,
        }
    }

    #[test]
    fn a_packet_carries_addresses_time_ids_and_payload() {
        let p = encode(&packet("192.0.2.9:5070", b"OPTIONS")).expect("packet");
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        let c = chunks(&p);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone());
        assert_eq!(get(chunk::IP_FAMILY), Some(vec![2]));
        assert_eq!(get(chunk::IPV4_SOURCE), Some(vec![192, 0, 2, 9]));
        assert_eq!(get(chunk::IPV4_DESTINATION), Some(vec![198, 51, 100, 1]));
        assert_eq!(
            get(chunk::SOURCE_PORT),
            Some(5070u16.to_be_bytes().to_vec())
        );
        assert_eq!(get(chunk::IP_PROTOCOL), Some(vec![17]));
        assert_eq!(
            get(chunk::TIME_MICROSECONDS),
            Some(5u32.to_be_bytes().to_vec())
        );
        assert_eq!(get(chunk::CAPTURE_ID), Some(7u32.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::CORRELATION_ID), Some(b"abc@x".to_vec()));
        assert_eq!(get(chunk::PAYLOAD), Some(b"OPTIONS".to_vec()));
    }

    #[test]
    fn mixed_families_and_giant_payloads_are_not_encoded() {
        assert!(encode(&packet("[2001:db8::1]:5060", b"x")).is_none());
        let big = vec![b'a'; 70_000];
        assert!(encode(&packet("192.0.2.9:5070", &big)).is_none());
    }
}
