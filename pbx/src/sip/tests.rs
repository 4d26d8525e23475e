//! Parser tests over the RFC 4475-style corpus in `pbx/corpus/`.

use super::*;

fn corpus(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn wsinv_torture_message_parses() {
    let msg = Message::parse(&corpus("wsinv.sip")).expect("wsinv is valid SIP");
    assert_eq!(msg.method(), "INVITE");
    assert_eq!(msg.cseq(), Some((9, "INVITE")));
    assert_eq!(msg.header("Max-Forwards"), Some("0068"));
    // Compact `v:` joins the long Via; three Via values in all.
    let vias = msg.header_values("Via");
    assert_eq!(vias.len(), 3, "{vias:?}");
    let top = msg.top_via().expect("top via");
    assert_eq!(top.transport, "UDP");
    assert_eq!(top.host, "192.0.2.2");
    assert_eq!(top.branch.as_deref(), Some("390skdjuw"));
    let second = Via::parse(vias[1]).expect("second via");
    assert_eq!(second.transport, "TCP");
    assert_eq!(second.branch.as_deref(), Some("z9hG4bK9ikj8"));
    assert_eq!(
        param(msg.header("To").unwrap_or(""), "tag"),
        Some("1918181833n")
    );
    // Folded header value is unfolded into one line.
    assert_eq!(
        msg.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(msg.header_values("Contact").len(), 1);
}

#[test]
fn ipv6_literals_parse() {
    let msg = Message::parse(&corpus("ipv6-good.sip")).expect("valid");
    let uri = Uri::parse(msg.uri()).expect("uri");
    assert_eq!(uri.host, "2001:db8::10");
    assert_eq!(
        uri.socket_addr(),
        Some("[2001:db8::10]:5060".parse().unwrap())
    );
    let via = msg.top_via().expect("via");
    assert_eq!(via.host, "2001:db8::9:1");
    let contact = Uri::parse(addr_uri(msg.header("Contact").unwrap_or(""))).expect("contact");
    assert_eq!(contact.host, "2001:db8::9:1");
    assert_eq!(contact.user.as_deref(), Some("caller"));
}

#[test]
fn content_length_larger_than_body_is_rejected() {
    let err = Message::parse(&corpus("clerr.sip")).unwrap_err();
    assert!(matches!(err, ParseError::ContentLength { .. }), "{err}");
}

#[test]
fn negative_content_length_is_rejected() {
    let err = Message::parse(&corpus("ncl.sip")).unwrap_err();
    assert!(matches!(err, ParseError::ContentLength { .. }), "{err}");
}

#[test]
fn method_cseq_mismatch_is_rejected() {
    let err = Message::parse(&corpus("mismatch01.sip")).unwrap_err();
    assert!(
        matches!(err, ParseError::BadHeader { name: "CSeq", .. }),
        "{err}"
    );
}

#[test]
fn bad_version_missing_cseq_and_garbage_are_rejected() {
    assert!(Message::parse(&corpus("badvers01.sip")).is_err());
    assert!(matches!(
        Message::parse(&corpus("missing-cseq.sip")),
        Err(ParseError::Missing { name: "CSeq" })
    ));
    assert!(Message::parse(&corpus("garbage.sip")).is_err());
    assert!(Message::parse(b"").is_err());
    assert!(Message::parse(&[0xff; 100]).is_err());
}

#[test]
fn compact_response_parses_with_rport() {
    let msg = Message::parse(&corpus("compact-180.sip")).expect("valid");
    assert_eq!(msg.status(), Some(180));
    assert_eq!(msg.call_id(), "compact-call");
    let via = msg.top_via().expect("via");
    assert_eq!(via.rport, Some(Some(5070)));
    assert_eq!(
        via.response_target(),
        Some("127.0.0.2:5070".parse().unwrap())
    );
}

#[test]
fn oversized_message_is_refused() {
    let big = vec![b'a'; MAX_SIZE + 1];
    assert!(matches!(
        Message::parse(&big),
        Err(ParseError::TooLarge { .. })
    ));
}
const MAX_SIZE: usize = message::MAX_MESSAGE_SIZE;

#[test]
fn stream_framing_needs_content_length() {
    let msg = corpus("badinv01.sip");
    assert_eq!(message::frame_length(&msg), Ok(Some(msg.len())));
    assert_eq!(message::frame_length(&msg[..20]), Ok(None));
    let mut two = msg.clone();
    two.extend_from_slice(&msg);
    assert_eq!(message::frame_length(&two), Ok(Some(msg.len())));
    let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n";
    assert!(message::frame_length(no_cl).is_err());
}

#[test]
fn round_trip_keeps_headers_and_body() {
    let msg = Message::parse(&corpus("scalar02-ok.sip")).expect("valid");
    let again = Message::parse(&msg.to_bytes()).expect("reparse");
    assert_eq!(msg, again);
}

#[test]
fn stamp_via_adds_received_and_rport() {
    let v = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport";
    let s = stamp_via(v, "192.0.2.7:4000".parse().unwrap());
    let via = Via::parse(&s).expect("via");
    assert_eq!(via.received.as_deref(), Some("192.0.2.7"));
    assert_eq!(via.rport, Some(Some(4000)));
}

#[test]
fn split_list_respects_quotes_and_brackets() {
    let v = r#""a, b" <sip:x@y;p=1,2>;q=0.5, <sip:z@w>"#;
    assert_eq!(split_list(v).len(), 2);
}

#[test]
fn every_known_header_name_is_canonicalised() {
    for name in super::names::KNOWN {
        assert_eq!(
            super::names::known_name(&name.to_ascii_lowercase()),
            Some(*name)
        );
        assert_eq!(
            super::names::known_name(&name.to_ascii_uppercase()),
            Some(*name)
        );
    }
    assert_eq!(super::names::known_name("X-Custom"), None);
}

#[test]
fn number_and_address_writers_match_display() {
    use super::text::{decimal, push_hex, push_ip};
    for n in [0usize, 7, 10, 65535, usize::MAX] {
        assert_eq!(decimal(n, &mut [0; 20]), n.to_string());
    }
    for (n, w) in [
        (0u64, 8),
        (0xabc, 8),
        (0xdeadbeef, 8),
        (0, 1),
        (u64::MAX, 1),
        (0x10, 1),
    ] {
        let mut s = String::new();
        push_hex(&mut s, n, w);
        assert_eq!(s, format!("{n:0w$x}"));
    }
    for ip in [
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "10.20.3.4",
        "::1",
        "fe80::1",
    ] {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let mut s = String::new();
        push_ip(&mut s, ip);
        assert_eq!(s, ip.to_string());
    }
}
