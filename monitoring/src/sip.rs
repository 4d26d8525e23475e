//! SIP messages and their SDP bodies, as far as call correlation needs them.

use std::net::IpAddr;

/// What a SIP message tells about a call.
#[derive(Debug, Clone, Default)]
pub struct SipInfo {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub is_invite: bool,
    /// A BYE or CANCEL request: the call is over.
    pub is_end: bool,
    pub media: Vec<Media>,
}

/// One `m=` line with its connection address and payload-type map.
#[derive(Debug, Clone)]
pub struct Media {
    pub address: Option<IpAddr>,
    pub port: u16,
    pub payload_types: Vec<u8>,
    /// (payload type, encoding name, clock rate) from `a=rtpmap`.
    pub rtpmap: Vec<(u8, String, u32)>,
}

/// True when the payload starts like a SIP request or response.
pub fn looks_like_sip(p: &[u8]) -> bool {
    // Every request method and "SIP/2.0" start with an upper-case letter; RTP never does.
    if !p.first().is_some_and(u8::is_ascii_uppercase) {
        return false;
    }
    if p.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let line_end = p
        .iter()
        .take(256)
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(p.len().min(256));
    let line = &p[..line_end];
    line.ends_with(b" SIP/2.0") && line.first().is_some_and(|b| b.is_ascii_uppercase())
}

fn header_uri(value: &str) -> String {
    // "Alice" <sip:a@x>;tag=1 -> sip:a@x
    if let (Some(a), Some(b)) = (value.find('<'), value.find('>')) {
        if a < b {
            return value[a + 1..b].to_string();
        }
    }
    value.split(';').next().unwrap_or("").trim().to_string()
}

/// Parses a SIP message (lenient: unknown or broken lines are skipped).
pub fn parse(p: &[u8]) -> Option<SipInfo> {
    if !looks_like_sip(p) {
        return None;
    }
    let text = String::from_utf8_lossy(p);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None => match text.find("\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (&text[..], ""),
        },
    };
    let mut lines = head.lines();
    let start = lines.next()?;
    let mut info = SipInfo {
        is_invite: start.starts_with("INVITE "),
        is_end: start.starts_with("BYE ") || start.starts_with("CANCEL "),
        ..SipInfo::default()
    };
    let mut cseq_invite = false;
    let mut has_sdp = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => info.call_id = value.to_string(),
            "from" | "f" => info.from = header_uri(value),
            "to" | "t" => info.to = header_uri(value),
            "cseq" => cseq_invite = value.ends_with("INVITE"),
            "content-type" | "c" => {
                has_sdp = value.to_ascii_lowercase().starts_with("application/sdp")
            }
            _ => {}
        }
    }
    if info.call_id.is_empty() {
        return None;
    }
    info.is_invite |= cseq_invite && start.starts_with("INVITE");
    if has_sdp {
        info.media = parse_sdp(body);
    }
    Some(info)
}

/// Media descriptions of an SDP body; session-level `c=` applies unless a
/// media-level one overrides it.
pub fn parse_sdp(body: &str) -> Vec<Media> {
    let mut session_addr: Option<IpAddr> = None;
    let mut media: Vec<Media> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=") {
            let addr = c
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse().ok());
            match media.last_mut() {
                Some(m) => m.address = addr,
                None => session_addr = addr,
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse().ok());
            let _proto = parts.next();
            let pts = parts.filter_map(|p| p.parse().ok()).collect();
            if let (true, Some(port)) = (kind == "audio" || kind == "video", port) {
                media.push(Media {
                    address: session_addr,
                    port,
                    payload_types: pts,
                    rtpmap: Vec::new(),
                });
            }
        } else if let Some(a) = line.strip_prefix("a=rtpmap:") {
            let Some(m) = media.last_mut() else { continue };
            let mut it = a.split_whitespace();
            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
            let enc = it.next().unwrap_or("");
            let mut enc_parts = enc.split('/');
            let name = enc_parts.next().unwrap_or("").to_string();
            let clock = enc_parts
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(8000);
            if let Some(pt) = pt.filter(|p| *p < 128) {
                m.rtpmap.push((pt, name, clock));
            }
        }
    }
    media
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_with_sdp() {
        let msg = b"INVITE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP a\r\nf: \"A\" <sip:alice@a>;tag=1\r\nTo: <sip:bob@b>\r\ni: abc@host\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let i = parse(msg).unwrap();
        assert_eq!(
            (i.call_id.as_str(), i.from.as_str(), i.to.as_str()),
            ("abc@host", "sip:alice@a", "sip:bob@b")
        );
        assert!(i.is_invite);
        assert_eq!(i.media.len(), 1);
        assert_eq!(i.media[0].port, 4000);
        assert_eq!(i.media[0].address, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            i.media[0].rtpmap[1],
            (101, "telephone-event".to_string(), 8000)
        );
    }

    #[test]
    fn garbage_is_not_sip() {
        assert!(parse(b"\x80\x08garbage").is_none());
        assert!(parse(b"INVITE sip:x SIP/2.0\r\n\r\n").is_none()); // no Call-ID
        assert!(parse(&[b'I'; 5000]).is_none());
    }
}
