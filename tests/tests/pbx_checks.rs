//! besip-pbxd answers to requests it must refuse or answer itself, over real
//! UDP/TCP sockets: OPTIONS keepalive, 501, 483, 482, 484, 403 relaying,
//! 404, 400 for malformed requests, 513 for oversized TCP messages, and a
//! bounded transaction table under a flood of INVITEs.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use besip_tests::pbx::*;

fn request(method: &str, ruri: &str, from: &str, extra: &str, branch: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch};rport\r\nFrom: <{from}>;tag=t{branch}\r\nTo: <{ruri}>\r\nCall-ID: c{branch}@test\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// Sends one datagram and returns the first final (or only) response's start line and text.
fn ask(sock: &UdpSocket, port: u16, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("no answer from besip-pbxd");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 100 ") {
            return text;
        }
    }
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

#[test]
fn proxy_answers_checks_itself() {
    let port = free_port();
    let extra = "\tlist allowed_method 'INVITE'\n\tlist allowed_method 'ACK'\n\tlist allowed_method 'BYE'\n\tlist allowed_method 'CANCEL'\n\tlist allowed_method 'OPTIONS'\n\tlist allowed_method 'REGISTER'\n";
    let pbx = Pbx::start(&config(port, extra), port);
    let s = client();
    let us = format!("sip:127.0.0.1:{port}");

    let r = ask(
        &s,
        port,
        &request(
            "OPTIONS",
            &us,
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "o1",
        ),
    );
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert!(r.contains("Allow: "), "{r}");

    let r = ask(
        &s,
        port,
        &request(
            "MESSAGE",
            "sip:100@besip.test",
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "m1",
        ),
    );
    assert!(r.starts_with("SIP/2.0 501 "), "{r}");

    let r = ask(
        &s,
        port,
        &request(
            "INVITE",
            "sip:100@besip.test",
            "sip:x@far.example",
            "Max-Forwards: 0\r\n",
            "mf0",
        ),
    );
    assert!(r.starts_with("SIP/2.0 483 "), "{r}");

    let r = ask(
        &s,
        port,
        &request(
            "INVITE",
            "sip:bob@elsewhere.example",
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "relay",
        ),
    );
    assert!(r.starts_with("SIP/2.0 403 "), "{r}");

    let r = ask(
        &s,
        port,
        &request(
            "INVITE",
            "sip:besip.test",
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "nouser",
        ),
    );
    assert!(r.starts_with("SIP/2.0 484 "), "{r}");

    let r = ask(
        &s,
        port,
        &request(
            "INVITE",
            "sip:777@besip.test",
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "unknown",
        ),
    );
    assert!(r.starts_with("SIP/2.0 404 "), "{r}");

    // Our own user without credentials: 407 with a digest challenge.
    let r = ask(
        &s,
        port,
        &request(
            "INVITE",
            "sip:101@besip.test",
            "sip:100@besip.test",
            "Max-Forwards: 70\r\n",
            "auth",
        ),
    );
    assert!(
        r.starts_with("SIP/2.0 407 ") && r.contains("Proxy-Authenticate: Digest"),
        "{r}"
    );

    // A retransmitted request gets the same answer again (server transaction).
    let inv = request(
        "INVITE",
        "sip:777@besip.test",
        "sip:x@far.example",
        "Max-Forwards: 70\r\n",
        "unknown",
    );
    let again = ask(&s, port, &inv);
    assert!(
        again.starts_with("SIP/2.0 404 "),
        "retransmission answered again: {again}"
    );

    // Malformed requests: 400 with the reason, daemon still alive.
    let bad = "INVITE sip:100@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:100@besip.test>\r\nCall-ID: bad@test\r\nCSeq: 1 INVITE\r\nContent-Length: 500\r\n\r\n";
    let r = ask(&s, port, bad);
    assert!(
        r.starts_with("SIP/2.0 400 ") && r.contains("Content-Length"),
        "{r}"
    );
    let bad = "OPTIONS sip:100@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:100@besip.test>\r\nCall-ID: bad2@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let r = ask(&s, port, bad);
    assert!(r.starts_with("SIP/2.0 400 ") && r.contains("CSeq"), "{r}");
    // Garbage without a Via cannot be answered: dropped, and the daemon keeps serving.
    s.send_to(b"\x00\x01garbage\r\n\r\n", ("127.0.0.1", port))
        .expect("send");
    let r = ask(
        &s,
        port,
        &request(
            "OPTIONS",
            &us,
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "o2",
        ),
    );
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert!(pbx.counter("malformed") >= 3);
    assert!(pbx.counter("replies-4xx") >= 6);
}

#[test]
fn oversized_tcp_message_gets_513_and_close() {
    let port = free_port();
    let _pbx = Pbx::start(&config(port, ""), port);
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let head = "MESSAGE sip:100@besip.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKbig\r\nFrom: <sip:a@far.example>;tag=1\r\nTo: <sip:100@besip.test>\r\nCall-ID: big@test\r\nCSeq: 1 MESSAGE\r\nContent-Length: 70000\r\n\r\n";
    tcp.write_all(head.as_bytes()).expect("write");
    let _ = tcp.write_all(&vec![b'x'; 70000]);
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("SIP/2.0 513 "), "{text}");
}

#[test]
fn flood_of_invites_keeps_the_transaction_table_bounded() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, "\toption max_transactions '100'\n"), port);
    // A registered callee that never answers keeps every forwarded INVITE pending.
    let sipp = Sipp::new();
    if have_sipp() {
        register(&sipp, "101", free_port(), port);
    } else {
        eprintln!("SKIP part: sipp not installed, flooding 404s instead");
    }
    let s = client();
    s.set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let started = Instant::now();
    let mut sent = 0;
    while sent < 1000 && started.elapsed() < Duration::from_secs(10) {
        let m = request(
            "INVITE",
            "sip:101@besip.test",
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            &format!("f{sent}"),
        );
        s.send_to(m.as_bytes(), ("127.0.0.1", port)).expect("send");
        sent += 1;
        let mut buf = [0u8; 2048];
        while s.recv_from(&mut buf).is_ok() {}
    }
    std::thread::sleep(Duration::from_millis(300));
    let state = pbx.state();
    let tx = state["besip-pbx:pbx"]["counters"]["transactions"]
        .as_u64()
        .expect("transactions gauge");
    assert!(tx <= 100, "transaction table grew to {tx}");
    assert!(
        pbx.counter("replies-5xx") > 0,
        "no 503 under flood: {state}"
    );
    // One source holds at most a quarter of the table: another host is still served.
    // (25 server transactions, each with its client branch.)
    assert!(tx <= 55, "one source filled {tx} of 100 transaction slots");
    let other = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let r = ask(
        &other,
        port,
        &request(
            "MESSAGE",
            "sip:777@besip.test",
            "sip:y@far.example",
            "Max-Forwards: 70\r\n",
            "other",
        ),
    );
    assert!(
        r.starts_with("SIP/2.0 404 "),
        "second source locked out: {r}"
    );
    // Still serving.
    let s = client();
    let r = ask(
        &s,
        port,
        &request(
            "OPTIONS",
            &format!("sip:127.0.0.1:{port}"),
            "sip:x@far.example",
            "Max-Forwards: 70\r\n",
            "after",
        ),
    );
    assert!(
        r.starts_with("SIP/2.0 200 ") || r.starts_with("SIP/2.0 503 "),
        "{r}"
    );
}

#[test]
fn ipv6_socket_answers_and_registers_bindings_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    let port = free_port();
    let uci = format!(
        "{}config listen 'listen_v6'\n\toption name 'v6'\n\toption transport 'udp'\n\toption address '::1'\n\toption port '{port}'\n\n",
        config(port, "")
    );
    let pbx = Pbx::start(&uci, port);
    let s = UdpSocket::bind("[::1]:0").expect("bind v6");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let me = s.local_addr().expect("addr");
    let via_host = format!("[::1]:{}", me.port());
    let options = format!(
        "OPTIONS sip:[::1]:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {via_host};branch=z9hG4bKv6o;rport\r\nFrom: <sip:x@far.example>;tag=1\r\nTo: <sip:[::1]:{port}>\r\nCall-ID: v6o@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(options.as_bytes(), ("::1", port)).expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).expect("answer over IPv6");
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert!(r.contains(&format!("rport={}", me.port())), "{r}");
    // REGISTER with credentials computed here (digest MD5, qop=auth) over IPv6.
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {via_host};branch=z9hG4bKv6r{cseq};rport\r\nFrom: <sip:100@besip.test>;tag=6\r\nTo: <sip:100@besip.test>\r\nCall-ID: v6r@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@[::1]:{}>\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            me.port()
        )
    };
    s.send_to(register(1, "").as_bytes(), ("::1", port))
        .expect("send");
    let (n, _) = s.recv_from(&mut buf).expect("challenge");
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("SIP/2.0 401 "), "{r}");
    let nonce = r
        .split("nonce=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("nonce")
        .to_owned();
    let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
    let ha1 = md5("100:besip.test:pw100".into());
    let ha2 = md5("REGISTER:sip:besip.test".into());
    let resp = md5(format!("{ha1}:{nonce}:00000001:c6:auth:{ha2}"));
    let auth = format!("Authorization: Digest username=\"100\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c6\"\r\n");
    s.send_to(register(2, &auth).as_bytes(), ("::1", port))
        .expect("send");
    let (n, _) = s.recv_from(&mut buf).expect("200");
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    let regs = pbx.registrations();
    assert!(
        regs.iter()
            .any(|(aor, c)| aor == "100@besip.test" && c.contains("[::1]")),
        "{regs:?}"
    );
}
