//! Just enough decoding of captured frames and SIP text for detection. Anything
//! that does not parse is reported as `None` and counted as malformed by the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub payload: &'a [u8],
    /// A TCP segment (may hold several SIP messages, or start inside one).
    pub tcp: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decode an Ethernet (1), Linux SLL (113) or SLL2 (276) frame carrying IPv4/IPv6 + UDP/TCP.
pub fn decode(linktype: i32, frame: &[u8]) -> Option<Datagram<'_>> {
    let (ethertype, body) = match linktype {
        1 => (be16(frame, 12)?, frame.get(14..)?),
        113 => (be16(frame, 14)?, frame.get(16..)?),
        276 => (be16(frame, 0)?, frame.get(20..)?),
        _ => return None,
    };
    let (ethertype, body) = if ethertype == 0x8100 {
        (be16(body, 2)?, body.get(4..)?)
    } else {
        (ethertype, body)
    };
    match ethertype {
        0x0800 => {
            let ihl = usize::from(body.first()? & 0x0f) * 4;
            let total = usize::from(be16(body, 2)?).min(body.len());
            let frag = be16(body, 6)? & 0x3fff;
            if ihl < 20 || total < ihl || frag & 0x1fff != 0 {
                return None;
            }
            let src = Ipv4Addr::new(body[12], body[13], body[14], body[15]);
            let dst = Ipv4Addr::new(body[16], body[17], body[18], body[19]);
            transport(body[9], body.get(ihl..total)?, src.into(), dst.into())
        }
        0x86dd => {
            let plen = usize::from(be16(body, 4)?);
            let src: [u8; 16] = body.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = body.get(24..40)?.try_into().ok()?;
            let end = (40 + plen).min(body.len());
            transport(
                *body.get(6)?,
                body.get(40..end)?,
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
            )
        }
        _ => None,
    }
}

fn transport(proto: u8, seg: &[u8], src: IpAddr, dst: IpAddr) -> Option<Datagram<'_>> {
    let payload = match proto {
        17 => seg.get(8..)?,
        6 => seg.get(usize::from(seg.get(12)? >> 4) * 4..)?,
        _ => return None,
    };
    Some(Datagram {
        src,
        dst,
        payload,
        tcp: proto == 6,
    })
}

#[derive(Debug, PartialEq)]
pub enum Start<'a> {
    Request(&'a str),
    /// Status code and the CSeq method it answers.
    Response(u16, Option<&'a str>),
}

#[derive(Debug, PartialEq)]
pub struct SipInfo<'a> {
    pub start: Start<'a>,
    pub user_agent: Option<&'a str>,
    pub to_user: Option<&'a str>,
    /// Bytes from the start line to the end of the body, when the header
    /// block ends in this payload (Content-Length, absent = 0).
    pub length: Option<usize>,
    /// A request carrying Authorization or Proxy-Authorization (a password try).
    pub credentials: bool,
    /// A challenge with `stale=true` (an old nonce, not a wrong password).
    pub stale: bool,
    /// Hash of Call-ID and CSeq number: ties a response to its request.
    pub transaction: u64,
}

impl<'a> SipInfo<'a> {
    pub fn new(start: Start<'a>) -> SipInfo<'a> {
        SipInfo {
            start,
            user_agent: None,
            to_user: None,
            length: None,
            credentials: false,
            stale: false,
            transaction: 0,
        }
    }
}

/// FNV-1a, enough to match a response to a request of the same source.
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// SIP messages looked at per TCP segment at most.
const MAX_MESSAGES_PER_SEGMENT: usize = 64;

/// Call `each` for every SIP message of a payload. A UDP datagram is one
/// message. A TCP segment may carry several pipelined ones — each counts, or a
/// flood sent 60 requests per segment would look like one — and may start
/// inside a message: then the first start line found at a line start is used.
/// Returns how many messages were found.
pub fn for_each_sip<'a>(payload: &'a [u8], tcp: bool, mut each: impl FnMut(&SipInfo<'a>)) -> usize {
    if !tcp {
        return match parse_sip(payload) {
            Some(info) => {
                each(&info);
                1
            }
            None => 0,
        };
    }
    let mut at = 0;
    let mut found = 0;
    while at < payload.len() && found < MAX_MESSAGES_PER_SEGMENT {
        let rest = &payload[at..];
        match parse_sip(rest) {
            Some(info) => {
                each(&info);
                found += 1;
                match info.length {
                    Some(length) if length > 0 => at += length,
                    _ => break,
                }
            }
            // Not a start line: try the next line.
            None => match rest.iter().position(|&b| b == b'\n') {
                Some(newline) => at += newline + 1,
                None => break,
            },
        }
    }
    found
}

/// Parse the start line and the few headers detection needs from the first SIP
/// message of a payload (a TCP segment may carry more; the first one is enough
/// to attribute the source).
pub fn parse_sip(payload: &[u8]) -> Option<SipInfo<'_>> {
    let head_end = payload.len().min(8192);
    let text = match std::str::from_utf8(&payload[..head_end]) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&payload[..e.valid_up_to()]).ok()?,
    };
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.next()?;
    let mut parts = first.splitn(3, ' ');
    let a = parts.next()?;
    let b = parts.next()?;
    let start = if a.starts_with("SIP/2.0") {
        let code: u16 = b.parse().ok().filter(|c| (100..700).contains(c))?;
        Start::Response(code, None)
    } else {
        let version = parts.next()?;
        if !version.starts_with("SIP/2.0")
            || a.is_empty()
            || !a.bytes().all(|c| c.is_ascii_uppercase())
        {
            return None;
        }
        Start::Request(a)
    };
    let mut info = SipInfo::new(start);
    let mut content_length = 0usize;
    let (mut call_id, mut cseq_number) = ("", "");
    for line in lines {
        if line.is_empty() {
            info.length = header_block_end(text).map(|end| end + content_length);
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("user-agent") {
            info.user_agent = Some(value);
        } else if name.eq_ignore_ascii_case("to") || name == "t" {
            info.to_user = uri_user(value);
        } else if name.eq_ignore_ascii_case("content-length") || name == "l" {
            content_length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("cseq") {
            cseq_number = value.split_whitespace().next().unwrap_or("");
            if let Start::Response(code, _) = info.start {
                info.start = Start::Response(code, value.split_whitespace().nth(1));
            }
        } else if name.eq_ignore_ascii_case("call-id") || name == "i" {
            call_id = value;
        } else if name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case("proxy-authorization")
        {
            info.credentials = true;
        } else if name.eq_ignore_ascii_case("www-authenticate")
            || name.eq_ignore_ascii_case("proxy-authenticate")
        {
            let lower = value.to_ascii_lowercase();
            info.stale |= lower.contains("stale=true") || lower.contains("stale=\"true\"");
        }
    }
    info.transaction = fnv(
        fnv(0xcbf2_9ce4_8422_2325, call_id.as_bytes()),
        cseq_number.as_bytes(),
    );
    Some(info)
}

/// Offset just past the blank line that ends the header block.
fn header_block_end(text: &str) -> Option<usize> {
    let crlf = text.find("\r\n\r\n").map(|i| i + 4);
    let lf = text.find("\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn uri_user(value: &str) -> Option<&str> {
    let at = value.find("sip:").or_else(|| value.find("sips:"))?;
    let rest = &value[at..];
    let rest = &rest[rest.find(':')? + 1..];
    let end = rest.find('@')?;
    Some(&rest[..end]).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response() {
        let r = parse_sip(
            b"REGISTER sip:x SIP/2.0\r\nTo: <sip:100@x>\r\nUser-Agent: friendly-scanner\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.start, Start::Request("REGISTER"));
        assert_eq!(r.user_agent, Some("friendly-scanner"));
        assert_eq!(r.to_user, Some("100"));
        let s = parse_sip(b"SIP/2.0 401 Unauthorized\r\nt: sip:7@h\r\nCSeq: 2 REGISTER\r\n\r\n")
            .unwrap();
        assert_eq!(s.start, Start::Response(401, Some("REGISTER")));
        assert_eq!(s.to_user, Some("7"));
        assert!(!s.stale && !r.credentials);
        // A password try and its answer share the transaction hash.
        let try_ = parse_sip(b"REGISTER sip:x SIP/2.0\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\nAuthorization: Digest username=\"1\"\r\n\r\n").unwrap();
        let stale = parse_sip(b"SIP/2.0 401 Unauthorized\r\ni: c1\r\nCSeq: 2 REGISTER\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\", stale=TRUE\r\n\r\n").unwrap();
        assert!(try_.credentials && stale.stale);
        assert_eq!(try_.transaction, stale.transaction);
    }

    #[test]
    fn every_message_of_a_tcp_segment_counts() {
        let one = "REGISTER sip:x SIP/2.0\r\nTo: <sip:1@x>\r\nContent-Length: 0\r\n\r\n";
        let with_body = "INVITE sip:2@x SIP/2.0\r\nl: 10\r\n\r\n0123456789";
        let segment = format!("{one}{with_body}{one}");
        let mut methods = Vec::new();
        let n = for_each_sip(segment.as_bytes(), true, |m| {
            methods.push(format!("{:?}", m.start))
        });
        assert_eq!(n, 3, "{methods:?}");
        assert!(methods[1].contains("INVITE"));
        // UDP: one datagram, one message.
        assert_eq!(for_each_sip(segment.as_bytes(), false, |_| {}), 1);
        // A segment that starts inside a message picks up at the next start line.
        let cut = format!("ser-Agent: x\r\n\r\n{one}{one}");
        assert_eq!(for_each_sip(cut.as_bytes(), true, |_| {}), 2);
        // A header block cut by the segment end still counts once.
        assert_eq!(for_each_sip(&one.as_bytes()[..30], true, |_| {}), 1);
        // Bounded work per segment.
        let many = one.repeat(500);
        assert_eq!(
            for_each_sip(many.as_bytes(), true, |_| {}),
            MAX_MESSAGES_PER_SEGMENT
        );
        assert_eq!(for_each_sip(b"\n\n\nnot sip\r\n", true, |_| {}), 0);
    }

    #[test]
    fn garbage_never_panics() {
        for junk in [
            &b""[..],
            b"\xff\xfe",
            b"SIP/2.0",
            b"SIP/2.0 99999 x",
            b"GET / HTTP/1.1\r\n",
            b"reg x SIP/2.0",
        ] {
            assert!(parse_sip(junk).is_none());
        }
        let mut seed = 7u32;
        for n in 0..2000usize {
            let frame: Vec<u8> = (0..n % 120)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            for lt in [1, 113, 276, 0] {
                if let Some(d) = decode(lt, &frame) {
                    let _ = parse_sip(d.payload);
                    let _ = for_each_sip(d.payload, true, |_| {});
                }
            }
        }
    }
}
