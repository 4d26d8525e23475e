//! Whether a party is behind a NAT, from what its messages say against
//! where they come from (Kamailio's nat_uac_test): a top Via whose sent-by
//! is not the source (the port too, over UDP), or a private (RFC 1918),
//! shared (RFC 6598, CGNAT 100.64/10) or unique local (fc00::/7) address
//! in Contact or SDP that is not the source address.

use std::net::{IpAddr, SocketAddr};

use crate::config::Transport;
use crate::features::rtp_relay::media_addr;
use crate::sip::{addr_uri, Message, Uri, Via};

/// RFC 1918, RFC 6598 (100.64.0.0/10), link-local, and IPv6 unique local addresses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The IP and port the first Contact of `msg` names, when its host is an IP literal.
pub fn contact_addr(msg: &Message) -> Option<SocketAddr> {
    let contact = msg.header_values("Contact").into_iter().next()?;
    Uri::parse(addr_uri(contact))?.socket_addr()
}

/// Whether the sender of `msg` (received from `source` over `transport`)
/// is behind a NAT.
pub fn is_nated(msg: &Message, source: SocketAddr, transport: Transport) -> bool {
    let via = msg.first_value("Via").and_then(Via::parse);
    if let Some(via) = via {
        match via.host.parse::<IpAddr>() {
            Ok(ip) if ip != source.ip() => return true,
            Ok(_) if transport == Transport::Udp => {
                let port = via.port.unwrap_or(5060);
                if port != source.port() {
                    return true;
                }
            }
            _ => {}
        }
    }
    let private_elsewhere = |ip: IpAddr| is_private(ip) && ip != source.ip();
    if contact_addr(msg).is_some_and(|c| private_elsewhere(c.ip())) {
        return true;
    }
    sdp_of(msg)
        .and_then(media_addr)
        .is_some_and(|m| private_elsewhere(m.ip()))
}

/// The SDP body of `msg`, if it carries one.
pub fn sdp_of(msg: &Message) -> Option<&str> {
    if msg.body.is_empty() {
        return None;
    }
    let sdp = msg
        .header("Content-Type")
        .is_none_or(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !sdp {
        return None;
    }
    std::str::from_utf8(&msg.body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(via: &str, contact: &str) -> Message {
        let text = format!(
            "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK1;rport\r\nFrom: <sip:100@besip.test>;tag=1\r\nTo: <sip:100@besip.test>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:100@{contact}>\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).expect("parse")
    }

    #[test]
    fn private_and_shared_addresses() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "fd00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "127.0.0.1", "2001:db8::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn nat_is_told_from_via_contact_and_source() {
        let src: SocketAddr = "127.0.0.20:40010".parse().unwrap();
        assert!(!is_nated(
            &msg("127.0.0.20:40010", "127.0.0.20:40010"),
            src,
            Transport::Udp
        ));
        assert!(is_nated(
            &msg("192.168.1.10:5060", "192.168.1.10:5060"),
            src,
            Transport::Udp
        ));
        assert!(is_nated(
            &msg("127.0.0.20:5060", "127.0.0.20:5060"),
            src,
            Transport::Udp
        ));
        // Over TCP the source port is the connection's, not the Via's.
        assert!(!is_nated(
            &msg("127.0.0.20:5060", "127.0.0.20:5060"),
            src,
            Transport::Tcp
        ));
        assert!(is_nated(
            &msg("127.0.0.20:40010", "10.0.0.7:5060"),
            src,
            Transport::Udp
        ));
    }
}
