//! SIP over TCP cannot exhaust the PBX (/pbx/tcp): real TCP clients on
//! loopback hit the per-source and the global connection limit, an idle
//! connection and a message trickled for ever are closed, an endless header
//! and a huge Content-Length are dropped, and the daemon keeps answering.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use besip_tests::pbx::*;

const PER_SOURCE: usize = 4;
const GLOBAL: usize = 7;

fn register(n: usize) -> String {
    format!(
        "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcp{n}\r\nFrom: <sip:100@besip.test>;tag=t{n}\r\nTo: <sip:100@besip.test>\r\nCall-ID: tcp{n}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:100@127.0.0.1:5999;transport=tcp>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A TCP connection to the PBX from `source` (any 127.0.0.0/8 address).
fn connect(source: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        let from: SocketAddr = format!("{source}:0").parse().expect("addr");
        sock.bind(from).expect("bind source");
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        sock.connect(to).await.expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// What the PBX sends back: Some(text) for a response, None when it closed
/// the connection (EOF or reset) without answering.
fn answer(stream: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => None,
        Err(e) => panic!("no answer and no close: {e}"),
    }
}

/// Sends a REGISTER and returns the answer (None: closed unanswered).
fn try_register(stream: &mut TcpStream, n: usize) -> Option<String> {
    if stream.write_all(register(n).as_bytes()).is_err() {
        return None;
    }
    answer(stream)
}

fn assert_challenged(answer: Option<String>, what: &str) {
    let a = answer.unwrap_or_else(|| panic!("{what}: closed unanswered"));
    assert!(a.starts_with("SIP/2.0 401 "), "{what}: {a}");
}

/// True once the PBX has closed `stream` (bounded wait).
fn closed_by_pbx(stream: &mut TcpStream) -> bool {
    answer(stream).is_none()
}

/// REGISTERs 101 over `stream` with digest credentials (MD5, qop=auth)
/// and returns the final answer.
fn authenticated_register(stream: &mut TcpStream) -> String {
    let challenge = try_register(stream, 200).expect("challenge");
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("nonce")
        .to_owned();
    let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
    let ha1 = md5("101:besip.test:pw101".into());
    let ha2 = md5("REGISTER:sip:besip.test".into());
    let resp = md5(format!("{ha1}:{nonce}:00000001:c0:auth:{ha2}"));
    let req = register(201)
        .replace("sip:100@", "sip:101@")
        .replace("CSeq: 1 ", "CSeq: 2 ")
        .replace(
            "Max-Forwards",
            &format!("Expires: 60\r\nAuthorization: Digest username=\"101\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0\"\r\nMax-Forwards"),
        );
    stream.write_all(req.as_bytes()).expect("send");
    answer(stream).expect("answer to the authenticated REGISTER")
}

fn udp_register_answered(port: u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = register(999).replace("SIP/2.0/TCP", "SIP/2.0/UDP");
    sock.send_to(req.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("PBX answers REGISTER");
    let a = String::from_utf8_lossy(&buf[..n]);
    assert!(a.starts_with("SIP/2.0 401 "), "{a}");
}

#[test]
fn connection_limits_timeouts_and_size_bounds_hold() {
    let port = free_port();
    let extra = format!(
        "\toption tcp_max_connections '{GLOBAL}'\n\toption tcp_max_connections_per_source '{PER_SOURCE}'\n\toption tcp_idle_timeout '3'\n\toption tcp_message_read_timeout '2'\n"
    );
    let pbx = Pbx::start(&config(port, &extra), port);

    // A phone registered over TCP (one of the GLOBAL connections).
    let mut registered = connect("127.0.0.7", port);
    let ok = authenticated_register(&mut registered);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");

    // Per source: PER_SOURCE connections are served, the next one is closed.
    let mut first: Vec<TcpStream> = (0..PER_SOURCE)
        .map(|i| {
            let mut s = connect("127.0.0.1", port);
            assert_challenged(try_register(&mut s, i), "connection within the limit");
            s
        })
        .collect();
    let mut over = connect("127.0.0.1", port);
    assert_eq!(
        try_register(&mut over, 50),
        None,
        "connection over the per-source limit served"
    );
    // Another source still gets in, up to the global limit.
    let mut others: Vec<TcpStream> = (0..GLOBAL - PER_SOURCE - 1)
        .map(|i| {
            let mut s = connect("127.0.0.2", port);
            assert_challenged(try_register(&mut s, 60 + i), "another source");
            s
        })
        .collect();
    let mut third = connect("127.0.0.3", port);
    assert_eq!(
        try_register(&mut third, 70),
        None,
        "connection over the global limit served"
    );
    assert!(pbx.counter("tcp-refused") >= 2);
    // UDP is not affected.
    udp_register_answered(port);

    // A phone registered over TCP keeps its connection past the idle
    // timeout (requests for it go over it); idle ones are closed
    // (idle-timeout 3 s) and free their places.
    for s in first.iter_mut().chain(others.iter_mut()) {
        assert!(closed_by_pbx(s), "idle connection kept open");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_challenged(
        try_register(&mut registered, 202),
        "the registered phone's connection after the idle timeout",
    );
    let mut again = connect("127.0.0.1", port);
    assert_challenged(
        try_register(&mut again, 80),
        "a place freed by the idle close",
    );
    drop(again);

    // A message trickled byte by byte is closed at message-read-timeout
    // (2 s) although the connection is never idle.
    let mut slow = connect("127.0.0.4", port);
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = false;
    for b in register(90).bytes().cycle().take(200) {
        if Instant::now() > deadline {
            break;
        }
        if slow.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("a trickled message was answered"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a trickled message kept its connection");

    // An endless header (over 64 KiB without an end) is dropped.
    let mut endless = connect("127.0.0.5", port);
    let mut head = "REGISTER sip:besip.test SIP/2.0\r\n".to_owned();
    while head.len() < 70_000 {
        head.push_str("X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let _ = endless.write_all(head.as_bytes());
    assert!(
        closed_by_pbx(&mut endless),
        "an endless header kept its connection"
    );
    // A huge Content-Length is refused at once (maybe with a 513), and the
    // connection closed without waiting for the body.
    let mut huge = connect("127.0.0.6", port);
    let req = register(91).replace("Content-Length: 0", "Content-Length: 100000000");
    huge.write_all(req.as_bytes()).expect("send");
    let mut got = String::new();
    while let Some(a) = answer(&mut huge) {
        got.push_str(&a);
        assert!(got.len() < 65_536, "endless answer");
    }
    assert!(got.is_empty() || got.starts_with("SIP/2.0 513 "), "{got}");

    // Still healthy: TCP and UDP REGISTERs answered, state valid.
    let mut fine = connect("127.0.0.1", port);
    assert_challenged(try_register(&mut fine, 92), "after the attacks");
    udp_register_answered(port);
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}
