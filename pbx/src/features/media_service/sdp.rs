//! The SDP of calls the box answers itself: what the caller offers (its
//! media address, the codec chosen by the box's preference among those
//! offered, telephone-event payload type, direction) and our answer.

use std::net::{IpAddr, SocketAddr};

use besip_media::codec::Codec;

/// What we take from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub media: SocketAddr,
    pub codec: Codec,
    /// The payload type the offer gave the codec.
    pub payload_type: u8,
    /// Payload type of telephone-event/8000, when offered.
    pub events: Option<u8>,
    pub direction: &'static str,
}

/// Why an offer cannot be answered (488 Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoAudio,
    NoCommonCodec,
    Encrypted,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NoAudio => "Not Acceptable Here: No Audio Stream",
            Refused::NoCommonCodec => "Not Acceptable Here: No Common Codec",
            Refused::Encrypted => "Not Acceptable Here: No SRTP For Media Services",
        }
    }
}

/// Parses the first audio stream of an offer; the codec is the first of
/// `codecs` (the box's preference) the offer has.
pub fn parse(sdp: &str, codecs: &[Codec]) -> Result<Offer, Refused> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut formats: Vec<u8> = Vec::new();
    let mut events = None;
    let mut mapped: Vec<(u8, Codec)> = Vec::new();
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
            let name = name.trim();
            if name
                .to_ascii_lowercase()
                .starts_with("telephone-event/8000")
            {
                events = pt.parse().ok();
            } else if let (Ok(pt), Some(codec)) = (pt.parse::<u8>(), Codec::from_rtpmap(name)) {
                mapped.push((pt, codec));
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
    // An rtpmap names a payload type; a static one may go without.
    let codec_of = |pt: u8| {
        mapped
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| *c)
            .or_else(|| Codec::from_static_payload_type(pt))
    };
    let (codec, payload_type) = codecs
        .iter()
        .find_map(|&want| {
            formats
                .iter()
                .find(|&&pt| codec_of(pt) == Some(want))
                .map(|&pt| (want, pt))
        })
        .ok_or(Refused::NoCommonCodec)?;
    let ip = media_ip.or(session_ip).ok_or(Refused::NoAudio)?;
    let port = port.filter(|p| *p != 0).ok_or(Refused::NoAudio)?;
    Ok(Offer {
        media: SocketAddr::new(ip, port),
        codec,
        payload_type,
        events: events.filter(|pt| formats.contains(pt)),
        direction,
    })
}

/// Our answer: `ip`/`port` where we receive, the law and events chosen.
pub fn answer(offer: &Offer, ip: IpAddr, port: u16, session: u64, version: u64) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let pt = offer.payload_type;
    let mut formats = pt.to_string();
    let mut attributes = format!("a=rtpmap:{pt} {}\r\n", offer.codec.rtpmap());
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
/// the ACK): the box's codecs in its preference, and telephone-event.
pub fn offer(ip: IpAddr, port: u16, session: u64, codecs: &[Codec]) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut formats = String::new();
    let mut attributes = String::new();
    for c in codecs {
        let pt = c.static_payload_type();
        formats.push_str(&format!("{pt} "));
        attributes.push_str(&format!("a=rtpmap:{pt} {}\r\n", c.rtpmap()));
    }
    format!(
        "v=0\r\no=besip {session} 1 IN {family} {ip}\r\ns=besip\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}101\r\n{attributes}a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\n";

    #[test]
    fn the_box_preference_and_events_are_taken() {
        let o = parse(OFFER, &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!(o.media, "10.0.0.1:4000".parse().unwrap());
        assert_eq!((o.codec, o.payload_type), (Codec::Pcma, 8));
        assert_eq!(o.events, Some(101));
        let a = answer(&o, "127.0.0.1".parse().unwrap(), 30000, 7, 1);
        assert!(a.contains("m=audio 30000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:8 PCMA/8000") && a.contains("a=sendrecv"));
        assert_eq!(parse(&a, &Codec::ALL).unwrap().media.port(), 30000);
        // G.722 (static 9) when preferred; the offer's order does not decide.
        let o = parse(OFFER, &[Codec::G722, Codec::Pcmu]).unwrap();
        assert_eq!((o.codec, o.payload_type), (Codec::G722, 9));
    }

    #[test]
    fn a_codec_is_found_by_its_rtpmap_whatever_its_payload_type() {
        let sdp =
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 117 0\r\na=rtpmap:117 G722/8000\r\n";
        let o = parse(sdp, &[Codec::G722, Codec::Pcmu]).unwrap();
        assert_eq!((o.codec, o.payload_type), (Codec::G722, 117));
        let a = answer(&o, "127.0.0.1".parse().unwrap(), 30000, 1, 1);
        assert!(a.contains("m=audio 30000 RTP/AVP 117\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:117 G722/8000"), "{a}");
        // A dynamic payload type with no rtpmap is nothing we know.
        let bare = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 117\r\n";
        assert_eq!(parse(bare, &Codec::ALL), Err(Refused::NoCommonCodec));
        // Opus alone: nothing in common.
        let opus =
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(parse(opus, &Codec::ALL), Err(Refused::NoCommonCodec));
    }

    #[test]
    fn unacceptable_offers_are_refused() {
        let all = &Codec::ALL;
        assert_eq!(parse("v=0\r\n", all), Err(Refused::NoAudio));
        assert_eq!(
            parse(
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 9\r\n",
                &[Codec::Pcmu]
            ),
            Err(Refused::NoCommonCodec)
        );
        assert_eq!(
            parse(
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/SAVP 0\r\n",
                all
            ),
            Err(Refused::Encrypted)
        );
        assert_eq!(
            parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", all),
            Err(Refused::NoAudio),
            "no connection address"
        );
        assert_eq!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n", all),
            Err(Refused::NoAudio),
            "stream refused"
        );
    }

    #[test]
    fn our_late_offer_parses_as_an_offer() {
        let ours = offer("127.0.0.1".parse().unwrap(), 30000, 1, &Codec::ALL);
        let o = parse(&ours, &Codec::ALL).unwrap();
        assert_eq!(
            (o.media.port(), o.codec, o.events),
            (30000, Codec::Pcmu, Some(101))
        );
        assert!(
            ours.contains("m=audio 30000 RTP/AVP 0 8 9 101\r\n"),
            "{ours}"
        );
        // An answer naming G.722 only is understood by the same parser.
        let o = parse(&ours.replace("RTP/AVP 0 8 9 101", "RTP/AVP 9"), &Codec::ALL).unwrap();
        assert_eq!((o.codec, o.payload_type), (Codec::G722, 9));
    }

    #[test]
    fn hold_is_mirrored() {
        let o = parse(
            &OFFER.replace("a=fmtp:101 0-15\r\n", "a=sendonly\r\n"),
            &Codec::ALL,
        )
        .unwrap();
        assert_eq!(o.direction, "sendonly");
        assert!(answer(&o, "::1".parse().unwrap(), 1, 1, 2).contains("a=recvonly"));
    }
}
