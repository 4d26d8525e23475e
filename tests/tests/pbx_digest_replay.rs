//! A digest answer without qop (RFC 2069 style, no nonce count) is good
//! for one request: captured and replayed, it is challenged again, never
//! accepted (pbx/src/auth/mod.rs explains the choice).

use std::net::UdpSocket;
use std::time::Duration;

use besip_tests::pbx::*;

fn register(sock: &UdpSocket, port: u16, cseq: u32, auth: &str) -> String {
    let me = sock.local_addr().expect("addr").port();
    let req = format!(
        "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKnoqop{cseq};rport\r\nFrom: <sip:100@besip.test>;tag=nq\r\nTo: <sip:100@besip.test>\r\nCall-ID: noqop@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@127.0.0.1:{me}>\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).expect("answer");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_replayed_answer_without_qop_is_challenged_again() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let challenge = register(&sock, port, 1, "");
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("nonce")
        .to_owned();
    let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
    let ha1 = md5("100:besip.test:pw100".into());
    let ha2 = md5("REGISTER:sip:besip.test".into());
    // RFC 2069: response = H(HA1:nonce:HA2), no qop, nc or cnonce.
    let resp = md5(format!("{ha1}:{nonce}:{ha2}"));
    let auth = format!("Authorization: Digest username=\"100\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:besip.test\", response=\"{resp}\", algorithm=MD5\r\n");
    let first = register(&sock, port, 2, &auth);
    assert!(first.starts_with("SIP/2.0 200 "), "{first}");
    let failures = pbx.counter("auth-failures");
    // The credentials, captured and sent again in new requests (a new
    // transaction each: a retransmission would only get the cached 200).
    for cseq in [3, 4] {
        let replay = register(&sock, port, cseq, &auth);
        assert!(replay.starts_with("SIP/2.0 401 "), "{replay}");
    }
    assert_eq!(pbx.counter("auth-failures"), failures + 2);
}
