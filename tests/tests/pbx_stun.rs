//! The STUN server of besip-pbxd (/pbx/stun): a Python client learns the
//! address and port it is seen from (RFC 5389 and RFC 3489 clients); what
//! is not a Binding request gets no answer, a flood from one source is cut
//! to the configured rate, a reload moves the socket and a taken port
//! refuses the reload.

use std::net::UdpSocket;
use std::process::Command;

use besip_tests::pbx::*;

/// A stdlib-only STUN client. argv: server host, port, client address,
/// then one of: rfc5389 | rfc3489 | response-address | flood N | garbage.
/// Prints one line per answer: "mapped IP PORT", "error CODE" or "none".
const CLIENT: &str = r#"
import os, socket, struct, sys
host, port, local, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((local, 0))
s.settimeout(1.0)
COOKIE = 0x2112A442

def request(cookie=True, attrs=b""):
    tid = os.urandom(12)
    head = struct.pack("!HHI", 1, len(attrs), COOKIE if cookie else struct.unpack("!I", os.urandom(4))[0] | 1)
    return head + tid + attrs

def read(expect_tid):
    try:
        data, _ = s.recvfrom(4096)
    except socket.timeout:
        return "none"
    kind, length, cookie = struct.unpack("!HHI", data[:8])
    assert data[8:20] == expect_tid[8:20], "transaction id differs"
    assert length == len(data) - 20
    at = 20
    out = "none"
    while at < len(data):
        t, l = struct.unpack("!HH", data[at:at + 4])
        v = data[at + 4:at + 4 + l]
        if t == 0x0020:
            xport = struct.unpack("!H", v[2:4])[0] ^ (COOKIE >> 16)
            ip = bytes(a ^ b for a, b in zip(v[4:8], struct.pack("!I", COOKIE)))
            out = "mapped %s %d" % (socket.inet_ntoa(ip), xport)
        elif t == 0x0001 and out == "none":
            out = "mapped %s %d" % (socket.inet_ntoa(v[4:8]), struct.unpack("!H", v[2:4])[0])
        elif t == 0x0009:
            out = "error %d" % (v[2] * 100 + v[3])
        at += 4 + (l + 3) // 4 * 4
    if kind == 0x0101 and out.startswith("error") or kind == 0x0111 and not out.startswith("error"):
        out = "bad-class"
    return out

print("local", s.getsockname()[1])
if mode in ("rfc5389", "rfc3489"):
    r = request(cookie=(mode == "rfc5389"))
    s.sendto(r, (host, port)); print(read(r))
elif mode == "response-address":
    # RFC 3489 RESPONSE-ADDRESS naming a third party: refused, never followed.
    attr = struct.pack("!HHBBH4s", 0x0002, 8, 0, 1, 9, socket.inet_aton("127.0.0.99"))
    r = request(attrs=attr)
    s.sendto(r, (host, port)); print(read(r))
elif mode == "flood":
    n = int(sys.argv[5])
    for _ in range(n):
        s.sendto(request(), (host, port))
    s.settimeout(0.5)
    answered = 0
    while True:
        try:
            s.recvfrom(4096); answered += 1
        except socket.timeout:
            break
    print("answered", answered)
elif mode == "garbage":
    r = request()
    bad = [b"", b"\x00" * 19, r[:-1] + b"", r[:2] + b"\x00\x04" + r[4:], b"\x01\x01" + r[2:],
           b"OPTIONS sip:x SIP/2.0\r\n\r\n", os.urandom(1400), r[:2] + b"\xff\xfc" + r[4:] + os.urandom(65000)]
    for b in bad:
        s.sendto(b, (host, port))
    s.settimeout(0.5)
    try:
        s.recvfrom(4096); print("answered")
    except socket.timeout:
        print("silent")
"#;

fn stun(port: u16, local: &str, mode: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .args(["127.0.0.1", &port.to_string(), local])
        .args(mode)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stun_config(sip: u16, stun_port: u16) -> String {
    config(
        sip,
        &format!(
            "\toption stun_enabled '1'\n\toption stun_address '127.0.0.1'\n\toption stun_port '{stun_port}'\n\toption stun_max_requests_per_source '5'\n"
        ),
    )
}

#[test]
fn stun_answers_binding_requests_with_the_source_seen() {
    let sip = free_port();
    let port = free_udp();
    let pbx = Pbx::start(&stun_config(sip, port), sip);

    // A modern client from a distinct loopback source learns that source.
    let lines = stun(port, "127.0.0.3", &["rfc5389"]);
    let local = lines[0].strip_prefix("local ").expect("local port");
    assert_eq!(lines[1], format!("mapped 127.0.0.3 {local}"), "{lines:?}");
    // An RFC 3489 client (no magic cookie) gets the plain MAPPED-ADDRESS.
    let lines = stun(port, "127.0.0.4", &["rfc3489"]);
    let local = lines[0].strip_prefix("local ").expect("local port");
    assert_eq!(lines[1], format!("mapped 127.0.0.4 {local}"), "{lines:?}");
    // RESPONSE-ADDRESS is not followed: 420 to the sender itself.
    let lines = stun(port, "127.0.0.5", &["response-address"]);
    assert_eq!(lines[1], "error 420", "{lines:?}");

    let answered_before = pbx.counter("stun-answered");
    assert_eq!(answered_before, 3);

    // Garbage, truncated, responses, SIP, a gigantic datagram: no answer.
    let dropped_before = pbx.counter("stun-dropped");
    let lines = stun(port, "127.0.0.6", &["garbage"]);
    assert_eq!(lines[1], "silent", "{lines:?}");
    assert!(pbx.counter("stun-dropped") >= dropped_before + 7);

    // A flood from one source: 5 answered per second (the configured rate).
    let lines = stun(port, "127.0.0.7", &["flood", "200"]);
    let answered: u32 = lines[1]
        .strip_prefix("answered ")
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(
        (1..=10).contains(&answered),
        "a flood of 200 got {answered} answers"
    );
    // ...while another source is still served, and so is SIP.
    let lines = stun(port, "127.0.0.8", &["rfc5389"]);
    assert!(lines[1].starts_with("mapped 127.0.0.8 "), "{lines:?}");
    assert!(options_answered(sip));
    assert_state_valid(&pbx, &pbx.state());
}

#[test]
fn reload_moves_the_stun_socket_and_a_taken_port_is_refused() {
    let sip = free_port();
    let first = free_udp();
    let pbx = Pbx::start(&stun_config(sip, first), sip);
    assert!(stun(first, "127.0.0.3", &["rfc5389"])[1].starts_with("mapped"));
    let config_path = pbx.root.path().join("etc/config/besip_pbx");

    // A port someone else holds: the reload is refused, the old socket stays.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    std::fs::write(&config_path, stun_config(sip, taken)).unwrap();
    let refused = pbx.ipc("reload", serde_json::json!({}));
    let message = refused.expect_err("reload onto a taken port must fail");
    assert!(message.contains("STUN"), "{message}");
    assert!(stun(first, "127.0.0.3", &["rfc5389"])[1].starts_with("mapped"));

    // A free port: served after the reload, the old one closed.
    let second = free_udp();
    std::fs::write(&config_path, stun_config(sip, second)).unwrap();
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    assert!(stun(second, "127.0.0.3", &["rfc5389"])[1].starts_with("mapped"));
    assert_eq!(stun(first, "127.0.0.3", &["rfc5389"])[1], "none");

    // Disabled: nothing served.
    std::fs::write(&config_path, config(sip, "")).unwrap();
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    assert_eq!(stun(second, "127.0.0.3", &["rfc5389"])[1], "none");
    assert!(UdpSocket::bind(("127.0.0.1", second)).is_ok());
}
