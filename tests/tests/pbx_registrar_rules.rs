//! Registrar rules over real UDP with digest credentials computed by the test:
//! max contacts per AOR, `*` removal, q-values, Path used as a route set, and
//! loop detection (482) when a Path leads back to the PBX itself.

use std::net::UdpSocket;
use std::time::Duration;

use besip_tests::pbx::*;

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

#[test]
fn max_contacts_wildcard_removal_and_q_values() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, "\toption registrar_max_contacts '2'\n"), port);
    let s = client();
    let r = raw_register(
        &s,
        port,
        "100",
        "pw100",
        "Contact: <sip:100@127.0.0.1:7001>;q=0.2\r\nContact: <sip:100@127.0.0.1:7002>;q=0.9\r\n",
        "mc1",
    );
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert_eq!(r.matches("Contact: ").count(), 2, "{r}");
    let r = raw_register(
        &s,
        port,
        "100",
        "pw100",
        "Contact: <sip:100@127.0.0.1:7003>\r\n",
        "mc2",
    );
    assert!(
        r.starts_with("SIP/2.0 403 ") && r.contains("Too Many Contacts"),
        "{r}"
    );
    let state = pbx.state();
    let regs = state["besip-pbx:pbx"]["registrations"]["registration"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(regs.len(), 2, "{state}");
    assert!(regs.iter().any(|r| r["q"] == "0.900"), "{state}");
    // `*` with Expires: 0 removes every contact of the AOR; `*` without it is refused.
    let r = raw_register(&s, port, "100", "pw100", "Contact: *\r\n", "mc3");
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    let r = raw_register(
        &s,
        port,
        "100",
        "pw100",
        "Contact: *\r\nExpires: 0\r\n",
        "mc4",
    );
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert!(pbx.registrations().is_empty());
}

#[test]
fn path_is_used_as_route_set_and_a_loop_back_to_us_gives_482() {
    let port = free_port();
    let _pbx = Pbx::start(&config(port, ""), port);
    let s = client();
    // The binding's Path leads through the PBX itself: a real loop.
    let lines =
        format!("Contact: <sip:102@127.0.0.1:{port}>\r\nPath: <sip:127.0.0.1:{port};lr>\r\n");
    let r = raw_register(&s, port, "102", "pw102", &lines, "path1");
    assert!(
        r.starts_with("SIP/2.0 200 ") && r.contains("Path: <sip:127.0.0.1:"),
        "{r}"
    );
    let me = s.local_addr().expect("addr").port();
    let invite = format!(
        "INVITE sip:102@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKloop1;rport\r\nFrom: <sip:x@far.example>;tag=l1\r\nTo: <sip:102@besip.test>\r\nCall-ID: loop1@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(invite.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let final_response = loop {
        let (n, _) = s.recv_from(&mut buf).expect("answer to the looping INVITE");
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            break r;
        }
    };
    assert!(
        final_response.starts_with("SIP/2.0 482 "),
        "{final_response}"
    );
}

/// RFC 8760: a client answering the SHA-256 challenge registers; a SHA-256
/// answer with the wrong password does not.
#[test]
fn sha256_digest_registration() {
    use sha2::{Digest, Sha256};
    let port = free_port();
    let cfg = config(port, "").replace(
        "\toption auth_algorithms 'md5'\n",
        "\toption auth_algorithms 'md5-and-sha-256'\n",
    );
    let pbx = Pbx::start(&cfg, port);
    let s = client();
    let me = s.local_addr().expect("addr").port();
    let sha = |x: String| format!("{:x}", Sha256::digest(x.as_bytes()));
    let mut buf = vec![0u8; 65536];
    for (call, password, expect) in [
        ("sha-bad", "nope", "SIP/2.0 401 "),
        ("sha-good", "pw100", "SIP/2.0 200 "),
    ] {
        let request = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{call}{cseq};rport\r\nFrom: <sip:100@besip.test>;tag={call}\r\nTo: <sip:100@besip.test>\r\nCall-ID: {call}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@127.0.0.1:{me}>\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        s.send_to(request(1, "").as_bytes(), ("127.0.0.1", port))
            .expect("send");
        let (n, _) = s.recv_from(&mut buf).expect("challenge");
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        let challenge = r
            .lines()
            .find(|l| l.starts_with("WWW-Authenticate:") && l.contains("algorithm=SHA-256"))
            .unwrap_or_else(|| panic!("no SHA-256 challenge offered: {r}"));
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .expect("nonce");
        let ha1 = sha(format!("100:besip.test:{password}"));
        let ha2 = sha("REGISTER:sip:besip.test".into());
        let resp = sha(format!("{ha1}:{nonce}:00000001:c1:auth:{ha2}"));
        let auth = format!("Authorization: Digest username=\"100\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:besip.test\", response=\"{resp}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c1\"\r\n");
        s.send_to(request(2, &auth).as_bytes(), ("127.0.0.1", port))
            .expect("send");
        let (n, _) = s.recv_from(&mut buf).expect("answer");
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(r.starts_with(expect), "{call}: {r}");
    }
    assert_eq!(pbx.registrations().len(), 1);
}
