//! STUN messages (RFC 5389 §6, §15): a Binding request is checked and its
//! answer built. Anything else on the port (responses, indications, other
//! protocols, truncated or inconsistent messages) gets no answer at all:
//! a server that answers garbage is a reflector.

use std::net::{IpAddr, SocketAddr};

const HEADER_LEN: usize = 20;
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;

const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_UNKNOWN_ATTRIBUTES: u16 = 0x000A;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_FINGERPRINT: u16 = 0x8028;
/// FINGERPRINT is the CRC-32 of the message up to it, XORed with "STUN".
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Comprehension-required attributes (below 0x8000) a Binding request may
/// carry that we understand (and ignore: no authentication is offered).
/// RFC 3489's RESPONSE-ADDRESS and CHANGE-REQUEST are deliberately absent:
/// the first would make us send to a third party, the second asks for a
/// reply from another address we do not have; both get 420 (RFC 5780 §7.2).
const UNDERSTOOD: &[u16] = &[
    ATTR_MAPPED_ADDRESS,
    ATTR_USERNAME,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_ERROR_CODE,
    ATTR_UNKNOWN_ATTRIBUTES,
    ATTR_REALM,
    ATTR_NONCE,
    ATTR_XOR_MAPPED_ADDRESS,
];

/// The answer to a datagram from `source`, or None when it must be dropped.
pub fn answer(datagram: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    let request = Request::parse(datagram)?;
    let mut out = Writer::new(&request);
    if !request.unknown.is_empty() {
        out.start(BINDING_ERROR);
        let reason = b"Unknown Attribute";
        let mut code = vec![0, 0, 4, 20];
        code.extend_from_slice(reason);
        out.attribute(ATTR_ERROR_CODE, &code);
        let list: Vec<u8> = request
            .unknown
            .iter()
            .flat_map(|t| t.to_be_bytes())
            .collect();
        out.attribute(ATTR_UNKNOWN_ATTRIBUTES, &list);
    } else {
        out.start(BINDING_SUCCESS);
        let mapped = SocketAddr::new(source.ip().to_canonical(), source.port());
        if request.classic {
            out.attribute(ATTR_MAPPED_ADDRESS, &address_value(mapped, None));
        } else {
            let xored = address_value(mapped, Some(&request.transaction));
            out.attribute(ATTR_XOR_MAPPED_ADDRESS, &xored);
        }
    }
    if request.fingerprint {
        out.fingerprint();
    }
    Some(out.finish())
}

/// What of a Binding request the answer depends on.
struct Request {
    /// Magic cookie and transaction ID: the 16 bytes after type and length.
    transaction: [u8; 16],
    /// No magic cookie: an RFC 3489 client.
    classic: bool,
    /// Comprehension-required attributes we do not understand (at most as
    /// many as fit in the request, so the error is no larger than it).
    unknown: Vec<u16>,
    fingerprint: bool,
}

impl Request {
    fn parse(datagram: &[u8]) -> Option<Request> {
        let header = datagram.get(..HEADER_LEN)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if kind != BINDING_REQUEST || length % 4 != 0 || HEADER_LEN + length != datagram.len() {
            return None;
        }
        let mut transaction = [0u8; 16];
        transaction.copy_from_slice(&header[4..20]);
        let classic =
            u32::from_be_bytes([header[4], header[5], header[6], header[7]]) != MAGIC_COOKIE;
        let mut unknown = Vec::new();
        let mut fingerprint = false;
        let mut at = HEADER_LEN;
        while at < datagram.len() {
            let tlv = datagram.get(at..at + 4)?;
            let attr = u16::from_be_bytes([tlv[0], tlv[1]]);
            let len = usize::from(u16::from_be_bytes([tlv[2], tlv[3]]));
            let value = datagram.get(at + 4..at + 4 + len)?;
            let next = at + 4 + len.div_ceil(4) * 4;
            if fingerprint {
                return None; // FINGERPRINT must be the last attribute
            }
            if attr == ATTR_FINGERPRINT {
                let expected =
                    crc32fast::hash(&fingerprinted_prefix(datagram, at)) ^ FINGERPRINT_XOR;
                if value.len() != 4 || u32::from_be_bytes(value.try_into().ok()?) != expected {
                    return None; // not STUN after all
                }
                fingerprint = true;
            } else if attr < 0x8000 && !UNDERSTOOD.contains(&attr) && !unknown.contains(&attr) {
                unknown.push(attr);
            }
            at = next;
        }
        if at != datagram.len() {
            return None;
        }
        Some(Request {
            transaction,
            classic,
            unknown,
            fingerprint,
        })
    }
}

/// The bytes FINGERPRINT at `at` covers: the message up to it, with the
/// length field as if FINGERPRINT ended the message (it does).
fn fingerprinted_prefix(datagram: &[u8], at: usize) -> Vec<u8> {
    let mut prefix = datagram[..at].to_vec();
    let length = u16::try_from(at + 8 - HEADER_LEN).unwrap_or(u16::MAX);
    prefix[2..4].copy_from_slice(&length.to_be_bytes());
    prefix
}

/// MAPPED-ADDRESS, or XOR-MAPPED-ADDRESS given the transaction (§15.1, §15.2).
fn address_value(addr: SocketAddr, xor_with: Option<&[u8; 16]>) -> Vec<u8> {
    let mut port = addr.port();
    let mut value = vec![0u8];
    let mut ip = match addr.ip() {
        IpAddr::V4(v4) => {
            value.push(0x01);
            v4.octets().to_vec()
        }
        IpAddr::V6(v6) => {
            value.push(0x02);
            v6.octets().to_vec()
        }
    };
    if let Some(key) = xor_with {
        // The cookie (the first 4 bytes of `key`), then the transaction ID.
        port ^= u16::from_be_bytes([key[0], key[1]]);
        for (byte, k) in ip.iter_mut().zip(key.iter()) {
            *byte ^= k;
        }
    }
    value.extend_from_slice(&port.to_be_bytes());
    value.extend_from_slice(&ip);
    value
}

/// Builds one response: header, then attributes, each padded to 4 bytes.
struct Writer {
    bytes: Vec<u8>,
    transaction: [u8; 16],
}

impl Writer {
    fn new(request: &Request) -> Writer {
        Writer {
            bytes: Vec::with_capacity(64),
            transaction: request.transaction,
        }
    }

    fn start(&mut self, kind: u16) {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes.extend_from_slice(&[0, 0]);
        self.bytes.extend_from_slice(&self.transaction);
    }

    fn attribute(&mut self, kind: u16, value: &[u8]) {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(value);
        let padding = value.len().div_ceil(4) * 4 - value.len();
        self.bytes.extend(std::iter::repeat_n(0u8, padding));
        self.set_length(self.bytes.len() - HEADER_LEN);
    }

    fn fingerprint(&mut self) {
        let at = self.bytes.len();
        let crc = crc32fast::hash(&fingerprinted_prefix(&self.bytes, at)) ^ FINGERPRINT_XOR;
        self.attribute(ATTR_FINGERPRINT, &crc.to_be_bytes());
    }

    fn set_length(&mut self, length: usize) {
        let length = u16::try_from(length).unwrap_or(u16::MAX);
        self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
    }

    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cookie: u32, attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0, 0];
        m.extend_from_slice(&cookie.to_be_bytes());
        m.extend_from_slice(&[7u8; 12]);
        for (kind, value) in attributes {
            m.extend_from_slice(&kind.to_be_bytes());
            m.extend_from_slice(&(value.len() as u16).to_be_bytes());
            m.extend_from_slice(value);
            m.extend(std::iter::repeat_n(
                0,
                value.len().div_ceil(4) * 4 - value.len(),
            ));
        }
        let len = (m.len() - HEADER_LEN) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    fn attribute(msg: &[u8], kind: u16) -> Option<Vec<u8>> {
        let mut at = HEADER_LEN;
        while at + 4 <= msg.len() {
            let t = u16::from_be_bytes([msg[at], msg[at + 1]]);
            let l = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
            if t == kind {
                return Some(msg[at + 4..at + 4 + l].to_vec());
            }
            at += 4 + l.div_ceil(4) * 4;
        }
        None
    }

    #[test]
    fn binding_request_gets_the_xor_mapped_source() {
        let source: SocketAddr = "192.0.2.33:40000".parse().unwrap();
        let resp = answer(&request(MAGIC_COOKIE, &[]), source).expect("answered");
        assert_eq!(&resp[..2], &[0x01, 0x01]);
        assert_eq!(&resp[4..20], &request(MAGIC_COOKIE, &[])[4..20]);
        let v = attribute(&resp, ATTR_XOR_MAPPED_ADDRESS).expect("xor-mapped");
        assert_eq!(v[1], 1);
        assert_eq!(u16::from_be_bytes([v[2], v[3]]) ^ 0x2112, 40000);
        let ip: Vec<u8> = v[4..8]
            .iter()
            .zip(MAGIC_COOKIE.to_be_bytes())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(ip, vec![192, 0, 2, 33]);
        assert_eq!(
            usize::from(u16::from_be_bytes([resp[2], resp[3]])),
            resp.len() - 20
        );
    }

    #[test]
    fn ipv6_source_is_xored_with_cookie_and_transaction() {
        let source: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let req = request(MAGIC_COOKIE, &[]);
        let resp = answer(&req, source).expect("answered");
        let v = attribute(&resp, ATTR_XOR_MAPPED_ADDRESS).expect("xor-mapped");
        assert_eq!(v[1], 2);
        let ip: Vec<u8> = v[4..20]
            .iter()
            .zip(&req[4..20])
            .map(|(a, b)| a ^ b)
            .collect();
        let ip: [u8; 16] = ip.try_into().unwrap();
        assert_eq!(
            std::net::Ipv6Addr::from(ip),
            "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn classic_client_gets_plain_mapped_address() {
        let source: SocketAddr = "198.51.100.7:1234".parse().unwrap();
        let resp = answer(&request(0x0102_0304, &[]), source).expect("answered");
        let v = attribute(&resp, ATTR_MAPPED_ADDRESS).expect("mapped");
        assert_eq!(v, vec![0, 1, 0x04, 0xD2, 198, 51, 100, 7]);
        assert!(attribute(&resp, ATTR_XOR_MAPPED_ADDRESS).is_none());
    }

    #[test]
    fn unknown_required_attributes_get_420_listing_them() {
        let source: SocketAddr = "192.0.2.1:1".parse().unwrap();
        // CHANGE-REQUEST (RFC 3489) and an unassigned one; SOFTWARE is optional.
        let req = request(
            MAGIC_COOKIE,
            &[(0x0003, &[0, 0, 0, 6]), (0x7777, b"x"), (0x8022, b"phone")],
        );
        let resp = answer(&req, source).expect("answered");
        assert_eq!(&resp[..2], &[0x01, 0x11]);
        let code = attribute(&resp, ATTR_ERROR_CODE).expect("error-code");
        assert_eq!(&code[2..4], &[4, 20]);
        assert_eq!(
            attribute(&resp, ATTR_UNKNOWN_ATTRIBUTES).unwrap(),
            vec![0, 3, 0x77, 0x77]
        );
    }

    #[test]
    fn fingerprint_is_checked_and_answered() {
        let source: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let mut req = request(MAGIC_COOKIE, &[(0x8028, &[0, 0, 0, 0])]);
        let at = req.len() - 8;
        let crc = crc32fast::hash(&req[..at]) ^ FINGERPRINT_XOR;
        req[at + 4..].copy_from_slice(&crc.to_be_bytes());
        let resp = answer(&req, source).expect("answered");
        let fp = attribute(&resp, ATTR_FINGERPRINT).expect("fingerprint");
        let at = resp.len() - 8;
        assert_eq!(
            u32::from_be_bytes(fp.try_into().unwrap()),
            crc32fast::hash(&resp[..at]) ^ FINGERPRINT_XOR
        );
        // A wrong fingerprint: not STUN, no answer.
        let last = req.len() - 1;
        req[last] ^= 0x01;
        assert!(answer(&req, source).is_none());
    }

    #[test]
    fn everything_else_is_dropped() {
        let source: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let good = request(MAGIC_COOKIE, &[(0x8022, b"abcd")]);
        assert!(answer(&good, source).is_some());
        // Truncated, a wrong length, a response, an indication, SIP, empty.
        assert!(answer(&good[..good.len() - 1], source).is_none());
        let mut wrong_len = good.clone();
        wrong_len[3] += 4;
        assert!(answer(&wrong_len, source).is_none());
        let mut response = good.clone();
        response[1] = 0x01;
        response[0] = 0x01;
        assert!(answer(&response, source).is_none());
        let mut indication = good.clone();
        indication[1] = 0x11;
        assert!(answer(&indication, source).is_none());
        assert!(answer(b"OPTIONS sip:x SIP/2.0\r\n\r\n", source).is_none());
        assert!(answer(&[], source).is_none());
        // An attribute running past the end.
        let mut overrun = request(MAGIC_COOKIE, &[(0x8022, b"abcd")]);
        overrun[23] = 40;
        assert!(answer(&overrun, source).is_none());
    }
}
