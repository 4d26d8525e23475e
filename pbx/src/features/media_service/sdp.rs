//! The SDP of calls the box answers itself: what the caller offers (its
//! media address, G.711 law, telephone-event payload type, direction) and
//! our answer.

use std::net::{IpAddr, SocketAddr};

use besip_media::g711::Law;

/// What we take from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub media: SocketAddr,
    pub law: Law,
    /// Payload type of telephone-event/8000, when offered.
    pub events: Option<u8>,
    pub direction: &'static str,
}

/// Why an offer cannot be answered (488 Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoAudio,
    NoG711,
    Encrypted,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NoAudio => "Not Acceptable Here: No Audio Stream",
            Refused::NoG711 => "Not Acceptable Here: G.711 Only",
            Refused::Encrypted => "Not Acceptable Here: No SRTP For Media Services",
        }
    }
}

/// Parses the first audio stream of an offer.
pub fn parse(sdp: &str) -> Result<Offer, Refused> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut formats: Vec<u8> = Vec::new();
    let mut events = None;
    let mut direction = "sendrecv";
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut encrypted = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if seen_audio {
                break; // only the first audio stream
            }
            let mut f = m.split_whitespace();
            in_audio = f.next() == Some("audio");
            if in_audio {
                seen_audio = true;
                port = f.next().and_then(|p| p.parse().ok());
                let proto = f.next().unwrap_or("");
                encrypted = proto.contains("SAVP");
                formats = f.filter_map(|p| p.parse().ok()).collect();
            }
            continue;
        }
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2).and_then(|a| a.parse().ok());
            if in_audio {
                media_ip = ip;
            } else if !seen_audio {
                session_ip = ip;
            }
            continue;
        }
        if !in_audio && seen_audio {
            continue;
        }
        if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, name) = map.split_once(' ').unwrap_or((map, ""));
            if name
                .to_ascii_lowercase()
                .starts_with("telephone-event/8000")
            {
                events = pt.parse().ok();
            }
        } else if let Some(d) = line.strip_prefix("a=") {
            direction = match d {
                "sendonly" => "sendonly",
                "recvonly" => "recvonly",
                "inactive" => "inactive",
                "sendrecv" => "sendrecv",
                _ => direction,
            };
        }
    }
    if !seen_audio {
        return Err(Refused::NoAudio);
    }
    if encrypted {
        return Err(Refused::Encrypted);
    }
    let law = formats
        .iter()
        .find_map(|&pt| Law::from_payload_type(pt))
        .ok_or(Refused::NoG711)?;
    let ip = media_ip.or(session_ip).ok_or(Refused::NoAudio)?;
    let port = port.filter(|p| *p != 0).ok_or(Refused::NoAudio)?;
    Ok(Offer {
        media: SocketAddr::new(ip, port),
        law,
        events: events.filter(|pt| formats.contains(pt)),
        direction,
    })
}

/// Our answer: `ip`/`port` where we receive, the law and events chosen.
pub fn answer(offer: &Offer, ip: IpAddr, port: u16, session: u64, version: u64) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let law = offer.law;
    let mut formats = law.payload_type().to_string();
    let mut attributes = format!("a=rtpmap:{} {}/8000\r\n", law.payload_type(), law.name());
    if let Some(pt) = offer.events {
        formats.push_str(&format!(" {pt}"));
        attributes.push_str(&format!(
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
        ));
    }
    let direction = match offer.direction {
        "sendonly" => "recvonly",
        "recvonly" => "sendonly",
        "inactive" => "inactive",
        _ => "sendrecv",
    };
    format!(
        "v=0\r\no=besip {session} {version} IN {family} {ip}\r\ns=besip\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{attributes}a=ptime:20\r\na={direction}\r\n"
    )
}

/// Our offer when the caller sent none (late offer: its answer comes in
/// the ACK): both laws and telephone-event.
pub fn offer(ip: IpAddr, port: u16, session: u64) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    format!(
        "v=0\r\no=besip {session} 1 IN {family} {ip}\r\ns=besip\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\n";

    #[test]
    fn the_first_g711_law_and_events_are_taken() {
        let o = parse(OFFER).unwrap();
        assert_eq!(o.media, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(o.law, Law::A);
        assert_eq!(o.events, Some(101));
        let a = answer(&o, "127.0.0.1".parse().unwrap(), 30000, 7, 1);
        assert!(a.contains("m=audio 30000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:8 PCMA/8000") && a.contains("a=sendrecv"));
        assert_eq!(parse(&a).unwrap().media.port(), 30000);
    }

    #[test]
    fn unacceptable_offers_are_refused() {
        assert_eq!(parse("v=0\r\n"), Err(Refused::NoAudio));
        assert_eq!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 9\r\n"),
            Err(Refused::NoG711)
        );
        assert_eq!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/SAVP 0\r\n"),
            Err(Refused::Encrypted)
        );
        assert_eq!(
            parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(Refused::NoAudio),
            "no connection address"
        );
        assert_eq!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n"),
            Err(Refused::NoAudio),
            "stream refused"
        );
    }

    #[test]
    fn our_late_offer_parses_as_an_offer() {
        let o = parse(&offer("127.0.0.1".parse().unwrap(), 30000, 1)).unwrap();
        assert_eq!(
            (o.media.port(), o.law, o.events),
            (30000, Law::Mu, Some(101))
        );
    }

    #[test]
    fn hold_is_mirrored() {
        let o = parse(&OFFER.replace("a=fmtp:101 0-15\r\n", "a=sendonly\r\n")).unwrap();
        assert_eq!(o.direction, "sendonly");
        assert!(answer(&o, "::1".parse().unwrap(), 1, 1, 2).contains("a=recvonly"));
    }
}
