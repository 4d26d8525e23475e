//! Link, network and transport headers down to the UDP/TCP payload.
//!
//! Hand-written because it is the hot path of offline analysis and needs only
//! fixed-layout headers; every length is checked, so garbage yields `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// libpcap link types we understand.
pub const LINKTYPE_ETHERNET: i32 = 1;
pub const LINKTYPE_RAW: i32 = 101;
pub const LINKTYPE_LINUX_SLL: i32 = 113;
pub const LINKTYPE_LINUX_SLL2: i32 = 276;
pub const LINKTYPE_IPV4: i32 = 228;
pub const LINKTYPE_IPV6: i32 = 229;
pub const LINKTYPE_NULL: i32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A decoded transport payload.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub transport: Transport,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Why a frame yielded no datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IP/UDP/TCP (ARP, ICMP, ...): not an error.
    NotUdp,
    /// A non-first IP fragment, or a first fragment whose UDP payload is incomplete.
    Fragment,
    /// Truncated or inconsistent headers.
    Malformed,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decodes one captured frame of the given link type.
pub fn decode(linktype: i32, frame: &[u8]) -> Result<Datagram<'_>, Skip> {
    ip(network(linktype, frame)?)
}

/// The IP packet inside a frame (link header and VLAN tags removed).
fn network(linktype: i32, frame: &[u8]) -> Result<&[u8], Skip> {
    let (ethertype, body) = match linktype {
        LINKTYPE_ETHERNET => (be16(frame, 12), frame.get(14..)),
        LINKTYPE_LINUX_SLL => (be16(frame, 14), frame.get(16..)),
        LINKTYPE_LINUX_SLL2 => (be16(frame, 0), frame.get(20..)),
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => return Ok(frame),
        // BSD loopback: 4-byte address family in host order.
        LINKTYPE_NULL => return frame.get(4..).ok_or(Skip::Malformed),
        _ => return Err(Skip::NotUdp),
    };
    let (Some(mut ethertype), Some(mut body)) = (ethertype, body) else {
        return Err(Skip::Malformed);
    };
    // 802.1Q / 802.1ad tags, possibly stacked.
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) && tags < 4 {
        ethertype = be16(body, 2).ok_or(Skip::Malformed)?;
        body = body.get(4..).ok_or(Skip::Malformed)?;
        tags += 1;
    }
    match ethertype {
        0x0800 | 0x86dd => Ok(body),
        _ => Err(Skip::NotUdp),
    }
}

/// One IPv4 fragment, for reassembly.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Fragment<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub id: u16,
    pub protocol: u8,
    /// Offset of `data` in the original payload, in bytes.
    pub offset: usize,
    pub more: bool,
    pub data: &'a [u8],
}

/// The IPv4 fragment in a frame, if it is one.
pub fn ipv4_fragment(linktype: i32, frame: &[u8]) -> Option<Ipv4Fragment<'_>> {
    let p = network(linktype, frame).ok()?;
    if p.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(be16(p, 2)?);
    if ihl < 20 || p.len() < ihl || total < ihl {
        return None;
    }
    let flags_frag = be16(p, 6)?;
    let more = flags_frag & 0x2000 != 0;
    let offset = usize::from(flags_frag & 0x1fff) * 8;
    if !more && offset == 0 {
        return None;
    }
    Some(Ipv4Fragment {
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        id: be16(p, 4)?,
        protocol: p[9],
        offset,
        more,
        data: &p[ihl..total.min(p.len())],
    })
}

/// A reassembled transport payload (UDP or TCP header first).
pub fn reassembled(
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    seg: &[u8],
) -> Result<Datagram<'_>, Skip> {
    transport(protocol, IpAddr::V4(src), IpAddr::V4(dst), seg, false)
}

fn ip(packet: &[u8]) -> Result<Datagram<'_>, Skip> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4(packet),
        Some(6) => ipv6(packet),
        _ => Err(Skip::Malformed),
    }
}

fn ipv4(p: &[u8]) -> Result<Datagram<'_>, Skip> {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl {
        return Err(Skip::Malformed);
    }
    let total = usize::from(be16(p, 2).ok_or(Skip::Malformed)?);
    if total < ihl {
        return Err(Skip::Malformed);
    }
    // Frames may carry Ethernet padding; snaplen may cut the tail.
    let end = total.min(p.len());
    let flags_frag = be16(p, 6).ok_or(Skip::Malformed)?;
    let more_fragments = flags_frag & 0x2000 != 0;
    let offset = flags_frag & 0x1fff;
    if offset != 0 {
        return Err(Skip::Fragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    let rest = &p[ihl..end];
    transport(p[9], src, dst, rest, more_fragments)
}

fn ipv6(p: &[u8]) -> Result<Datagram<'_>, Skip> {
    if p.len() < 40 {
        return Err(Skip::Malformed);
    }
    let payload_len = usize::from(be16(p, 4).ok_or(Skip::Malformed)?);
    let mut next = p[6];
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    dst.copy_from_slice(&p[24..40]);
    let end = (40 + payload_len).min(p.len());
    let mut rest = &p[40..end];
    let mut fragmented = false;
    // Walk extension headers (hop-by-hop, routing, destination options, fragment).
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let len = (usize::from(*rest.get(1).ok_or(Skip::Malformed)?) + 1) * 8;
                next = rest[0];
                rest = rest.get(len..).ok_or(Skip::Malformed)?;
            }
            44 => {
                let off = be16(rest, 2).ok_or(Skip::Malformed)?;
                if off >> 3 != 0 {
                    return Err(Skip::Fragment);
                }
                fragmented = off & 1 != 0;
                next = rest[0];
                rest = rest.get(8..).ok_or(Skip::Malformed)?;
            }
            _ => break,
        }
    }
    transport(
        next,
        IpAddr::V6(Ipv6Addr::from(src)),
        IpAddr::V6(Ipv6Addr::from(dst)),
        rest,
        fragmented,
    )
}

fn transport<'a>(
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    seg: &'a [u8],
    fragmented: bool,
) -> Result<Datagram<'a>, Skip> {
    match proto {
        17 => {
            let src_port = be16(seg, 0).ok_or(Skip::Malformed)?;
            let dst_port = be16(seg, 2).ok_or(Skip::Malformed)?;
            let len = usize::from(be16(seg, 4).ok_or(Skip::Malformed)?);
            if len < 8 {
                return Err(Skip::Malformed);
            }
            if fragmented && len > seg.len() {
                // First fragment of a larger datagram: the rest is not reassembled.
                return Err(Skip::Fragment);
            }
            let end = len.min(seg.len());
            let payload = seg.get(8..end).ok_or(Skip::Malformed)?;
            Ok(Datagram {
                transport: Transport::Udp,
                src,
                dst,
                src_port,
                dst_port,
                payload,
            })
        }
        6 => {
            if fragmented {
                return Err(Skip::Fragment);
            }
            let src_port = be16(seg, 0).ok_or(Skip::Malformed)?;
            let dst_port = be16(seg, 2).ok_or(Skip::Malformed)?;
            let off = usize::from(*seg.get(12).ok_or(Skip::Malformed)? >> 4) * 4;
            if off < 20 {
                return Err(Skip::Malformed);
            }
            let payload = seg.get(off..).ok_or(Skip::Malformed)?;
            Ok(Datagram {
                transport: Transport::Tcp,
                src,
                dst,
                src_port,
                dst_port,
                payload,
            })
        }
        _ => Err(Skip::NotUdp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_v4(payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        let total = (20 + 8 + payload.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&4000u16.to_be_bytes());
        ip.extend_from_slice(&5000u16.to_be_bytes());
        ip.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(payload);
        ip
    }

    #[test]
    fn ethernet_vlan_sll_sll2() {
        let ip = udp_v4(b"hello");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let d = decode(LINKTYPE_ETHERNET, &eth).unwrap();
        assert_eq!(
            (d.src_port, d.dst_port, d.payload),
            (4000, 5000, &b"hello"[..])
        );
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LINKTYPE_LINUX_SLL, &sll).unwrap().payload, b"hello");
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(
            decode(LINKTYPE_LINUX_SLL2, &sll2).unwrap().payload,
            b"hello"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let ip = udp_v4(b"payload");
        for cut in 0..ip.len() {
            let _ = decode(LINKTYPE_RAW, &ip[..cut]);
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let frame: Vec<u8> = (0..(x % 80) as usize)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            for lt in [
                LINKTYPE_ETHERNET,
                LINKTYPE_LINUX_SLL,
                LINKTYPE_LINUX_SLL2,
                LINKTYPE_RAW,
            ] {
                let _ = decode(lt, &frame);
            }
        }
    }
}
