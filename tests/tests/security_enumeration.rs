//! Extension enumeration reveals nothing: REGISTER, INVITE and OPTIONS for
//! an existing extension and for a missing one get the same answers (status
//! and headers, but for tags and nonces), with and without wrong
//! credentials, from our domain (the svwar way) and from a foreign one.

use std::net::UdpSocket;
use std::time::Duration;

use besip_tests::pbx::{config, free_port, Pbx};

/// What a response says, without what differs per request (tags, nonces,
/// the user named in the request).
fn normalised(response: &str, user: &str) -> String {
    response
        .lines()
        .map(|l| {
            let l = l.replace(user, "USER");
            let mut out = String::new();
            for part in l.split([';', ',']) {
                let p = part.trim();
                if p.starts_with("tag=") || p.starts_with("nonce=") || p.starts_with("opaque=") {
                    continue;
                }
                out.push_str(p);
                out.push('|');
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A request of `method` for `user` over UDP; `from_domain` names the caller's domain.
fn ask(port: u16, method: &str, user: &str, from_domain: &str, auth: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr").port();
    let ruri = if method == "REGISTER" {
        "sip:besip.test".to_owned()
    } else {
        format!("sip:{user}@besip.test")
    };
    let request = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKenum{me}\r\nFrom: <sip:{user}@{from_domain}>;tag=e{me}\r\nTo: <sip:{user}@besip.test>\r\nCall-ID: enum{me}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@127.0.0.1:{me}>\r\n{auth}Max-Forwards: 70\r\nUser-Agent: friendly-phone\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(request.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = vec![0u8; 65536];
    // The final answer (skip 100 Trying).
    for _ in 0..5 {
        let (n, _) = sock.recv_from(&mut buf).expect("answer");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 100 ") {
            // Normalise the Via (our port) and Call-ID.
            return text
                .replace(&format!("enum{me}"), "ID")
                .replace(&format!("127.0.0.1:{me}"), "ME")
                .replace(&format!("e{me}"), "FTAG")
                .replace(&me.to_string(), "PORT");
        }
    }
    panic!("no final answer to {method} for {user}");
}

#[test]
fn extension_enumeration_reveals_nothing() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let wrong = |user: &str, method: &str, header: &str| {
        let uri = if method == "REGISTER" {
            "sip:besip.test".to_owned()
        } else {
            format!("sip:{user}@besip.test")
        };
        format!("{header}: Digest username=\"{user}\", realm=\"besip.test\", nonce=\"deadbeef\", uri=\"{uri}\", response=\"00000000000000000000000000000000\", algorithm=MD5\r\n")
    };
    // 102 exists (not registered), 555 does not.
    for (method, from_domain, header) in [
        ("REGISTER", "besip.test", "Authorization"),
        ("INVITE", "besip.test", "Proxy-Authorization"),
        ("OPTIONS", "besip.test", "Proxy-Authorization"),
        ("INVITE", "evil.example", ""),
        ("OPTIONS", "evil.example", ""),
    ] {
        let mut answers = Vec::new();
        for user in ["102", "555"] {
            let plain = ask(pbx.port, method, user, from_domain, "");
            let bad = if header.is_empty() {
                String::new()
            } else {
                ask(
                    pbx.port,
                    method,
                    user,
                    from_domain,
                    &wrong(user, method, header),
                )
            };
            answers.push((normalised(&plain, user), normalised(&bad, user)));
        }
        assert_eq!(
            answers[0], answers[1],
            "{method} from {from_domain}: an existing and a missing user answered differently"
        );
        assert!(
            !answers[0].0.starts_with("SIP/2.0 2"),
            "{method}: {}",
            answers[0].0
        );
    }
}
