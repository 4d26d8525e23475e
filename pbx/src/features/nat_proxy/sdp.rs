//! What the relay needs of an SDP offer or answer, and the SDP rewritten to
//! name the relay: connection and origin address, the first audio port,
//! and `a=rtcp:` (RFC 3605) set to the relay's RTCP port.

use std::net::{IpAddr, SocketAddr};

use crate::features::rtp_relay::{media_addr, rewrite_sdp};

/// The media of an offer or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Connection address and first audio port.
    pub rtp: SocketAddr,
    /// Where its RTCP goes: `a=rtcp:`, else the RTP port + 1.
    pub rtcp: SocketAddr,
    /// `a=rtcp-mux`: RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// sendonly, recvonly, inactive or a zero connection address (RFC 3264 §8.4).
    pub hold: bool,
}

/// Why an SDP body cannot be anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Reads the media of `sdp`; an error when it is not an SDP body with an
/// audio stream and a connection address.
pub fn parse(sdp: &str) -> Result<Media, Malformed> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(Malformed("SDP does not start with v=0"));
    }
    if sdp.len() > 16 * 1024 {
        return Err(Malformed("SDP body too large"));
    }
    let audio = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("m=audio "))
        .ok_or(Malformed("SDP has no audio stream (m=audio)"))?;
    let port_ok = audio
        .split_whitespace()
        .next()
        .and_then(|p| p.split('/').next())
        .is_some_and(|p| p.parse::<u16>().is_ok());
    if !port_ok {
        return Err(Malformed("SDP m=audio port is not a number"));
    }
    let rtp = media_addr(sdp).ok_or(Malformed("SDP has no valid connection address (c=)"))?;
    let mut rtcp = None;
    let (mut mux, mut hold) = (false, rtp.ip().is_unspecified());
    for line in sdp.lines().map(str::trim_end) {
        if let Some(v) = line.strip_prefix("a=rtcp:") {
            let mut f = v.split_whitespace();
            let port: u16 = f
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or(Malformed("SDP a=rtcp port is not a number"))?;
            let ip = match (f.next(), f.next(), f.next()) {
                (Some("IN"), Some(_), Some(a)) => a
                    .parse::<IpAddr>()
                    .map_err(|_| Malformed("SDP a=rtcp address is not an IP address"))?,
                _ => rtp.ip(),
            };
            rtcp = Some(SocketAddr::new(ip, port));
        } else if line == "a=rtcp-mux" {
            mux = true;
        } else if matches!(line, "a=sendonly" | "a=recvonly" | "a=inactive") {
            hold = true;
        }
    }
    let rtcp = rtcp.unwrap_or_else(|| SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)));
    Ok(Media {
        rtp,
        rtcp,
        rtcp_mux: mux,
        hold,
    })
}

/// `sdp` naming the relay at `ip`: `rtp_port` for the audio, `rtcp_port`
/// in `a=rtcp:` when it has one (with rtcp-mux, the RTP port). A held
/// stream's zero address (c=0.0.0.0) stays as it is.
pub fn rewrite(sdp: &str, ip: IpAddr, rtp_port: u16, rtcp_port: Option<u16>) -> String {
    let held_zero = media_addr(sdp).is_some_and(|m| m.ip().is_unspecified());
    let out = rewrite_sdp(sdp, ip, rtp_port);
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut fixed = String::with_capacity(out.len() + 16);
    for line in out.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        let eol = &line[text.len()..];
        if text.starts_with("a=rtcp:") {
            let port = rtcp_port.unwrap_or(rtp_port);
            fixed.push_str(&format!("a=rtcp:{port} IN {family} {ip}"));
        } else if held_zero && text.starts_with("c=") {
            fixed.push_str(&format!("c=IN {family} 0.0.0.0"));
        } else {
            fixed.push_str(text);
        }
        fixed.push_str(eol);
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=u 1 2 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 192.168.1.10\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn media_is_read() {
        let m = parse(SDP).expect("sdp");
        assert_eq!(m.rtp, "192.168.1.10:4000".parse().unwrap());
        assert_eq!(m.rtcp, "192.168.1.10:4001".parse().unwrap());
        assert!(!m.rtcp_mux && !m.hold);
        let held = SDP.replace("a=rtpmap", "a=sendonly\r\na=rtpmap");
        assert!(parse(&held).expect("sdp").hold);
        let mux = SDP.replace("a=rtcp:4001 IN IP4 192.168.1.10", "a=rtcp-mux");
        let m = parse(&mux).expect("sdp");
        assert!(m.rtcp_mux);
        assert_eq!(m.rtcp.port(), 4001);
    }

    #[test]
    fn malformed_is_refused() {
        for bad in [
            "hello",
            "v=0\r\nc=IN IP4 1.2.3.4\r\n",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 nowhere\r\nm=audio 4000 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:zz\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relay_is_named() {
        let out = rewrite(SDP, "127.0.0.1".parse().unwrap(), 12000, Some(12001));
        assert!(out.contains("c=IN IP4 127.0.0.1\r\n"), "{out}");
        assert!(out.contains("m=audio 12000 RTP/AVP 0\r\n"), "{out}");
        assert!(out.contains("a=rtcp:12001 IN IP4 127.0.0.1\r\n"), "{out}");
        let zero = SDP.replace("c=IN IP4 192.168.1.10", "c=IN IP4 0.0.0.0");
        let out = rewrite(&zero, "127.0.0.1".parse().unwrap(), 12000, Some(12001));
        assert!(out.contains("c=IN IP4 0.0.0.0\r\n"), "{out}");
    }
}
