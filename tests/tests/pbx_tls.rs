//! SIP over TLS (/pbx/tls, listen transport tls, trunk transport tls) with
//! real TLS clients and servers on loopback (Python's ssl module, OpenSSL):
//! a phone registers and calls over TLS to a phone on UDP (Via SIP/2.0/TLS,
//! double Record-Route, the BYE back over the phone's own connection), the
//! generated certificate is reused across restarts, a trunk over TLS is
//! verified against its CA (a wrong CA is refused and named in the state),
//! and an attacker's plaintext, stalled handshakes, garbage and giant
//! messages change nothing. A real phone (baresip) over TLS with SRTP calls
//! a plain-RTP phone through the B2BUA (pbx_tls/baresip.rs).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::certs::test_ca_for;
use besip_tests::pbx::*;

#[path = "pbx_tls/baresip.rs"]
mod baresip;

/// Shared by the drivers: a TLS client, message reading, digest answers.
const PY_COMMON: &str = r#"
import hashlib, re, socket, ssl, sys, time

def tls_client(port, cafile, source="127.0.0.1"):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

class Stream:
    """SIP messages framed by Content-Length on a TLS socket."""
    def __init__(self, sock):
        self.sock, self.buf = sock, b""
    def send(self, text):
        self.sock.sendall(text.encode())
    def recv(self):
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = self.buf[:head_end].decode(errors="replace")
                m = re.search(r"(?im)^content-length:\s*(\d+)", head)
                total = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) >= total:
                    msg, self.buf = self.buf[:total], self.buf[total:]
                    return msg.decode(errors="replace")
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLError, OSError):
                return None
            if not data:
                return None
            self.buf += data

class Udp:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.dest = None
    def send(self, text):
        self.sock.sendto(text.encode(), self.dest)
    def recv(self):
        data, _ = self.sock.recvfrom(65536)
        return data.decode(errors="replace")

def header(msg, name):
    m = re.search(r"(?im)^" + name + r":\s*(.*?)\r?$", msg)
    return m.group(1) if m else None

def headers(msg, name):
    return re.findall(r"(?im)^" + name + r":\s*(.*?)\r?$", msg)

def first_line(msg):
    return msg.split("\r\n", 1)[0] if msg else "none"

def md5(s):
    return hashlib.md5(s.encode()).hexdigest()

def authorization(challenge, user, method, uri, header_name):
    realm = re.search(r'realm="([^"]*)"', challenge).group(1)
    nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
    ha1 = md5(f"{user}:{realm}:pw{user}")
    ha2 = md5(f"{method}:{uri}")
    resp = md5(f"{ha1}:{nonce}:00000001:c0:auth:{ha2}")
    return (f'{header_name}: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0"\r\n')

def final(stream):
    while True:
        m = stream.recv()
        if m is None or not m.startswith("SIP/2.0 1"):
            return m
"#;

/// Phone A (100) over TLS, phone B (101) over UDP: both register, A calls
/// B, B hangs up.
const PY_CALL: &str = r#"
tls_port, udp_port, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def register(stream, user, via_tp, contact):
    req = ("REGISTER sip:besip.test SIP/2.0\r\n"
           f"Via: SIP/2.0/{via_tp} {contact};branch=z9hG4bKreg{user}{{n}};rport\r\n"
           f"From: <sip:{user}@besip.test>;tag=r{user}\r\nTo: <sip:{user}@besip.test>\r\n"
           f"Call-ID: reg{user}@test\r\nCSeq: {{n}} REGISTER\r\n"
           f"Contact: <sip:{user}@{contact}{';transport=tls' if via_tp == 'TLS' else ''}>\r\n"
           "Expires: 300\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n")
    stream.send(req.format(n=1, auth=""))
    r = final(stream)
    if r and r.startswith("SIP/2.0 401"):
        auth = authorization(header(r, "WWW-Authenticate"), user, "REGISTER", "sip:besip.test", "Authorization")
        stream.send(req.format(n=2, auth=auth))
        r = final(stream)
    return r

a = Stream(tls_client(tls_port, cafile))
a_addr = "127.0.0.1:%d" % a.sock.getsockname()[1]
r = register(a, "100", "TLS", a_addr)
print("a-register", first_line(r))
print("a-register-via", header(r, "Via").split()[0] if r else "none")

b = Udp()
b.dest = ("127.0.0.1", udp_port)
b_addr = "127.0.0.1:%d" % b.sock.getsockname()[1]
print("b-register", first_line(register(b, "101", "UDP", b_addr)))

invite = ("INVITE sip:101@besip.test SIP/2.0\r\n"
          f"Via: SIP/2.0/TLS {a_addr};branch=z9hG4bKinv{{n}};rport\r\n"
          "From: <sip:100@besip.test>;tag=a1\r\nTo: <sip:101@besip.test>\r\n"
          "Call-ID: call1@test\r\nCSeq: {n} INVITE\r\n"
          f"Contact: <sip:100@{a_addr};transport=tls>\r\nMax-Forwards: 70\r\n{{auth}}Content-Length: 0\r\n\r\n")
a.send(invite.format(n=1, auth=""))
r = final(a)
if r and r.split()[1] in ("401", "407"):
    name = "Proxy" if r.split()[1] == "407" else "WWW"
    a.send(f"ACK sip:101@besip.test SIP/2.0\r\nVia: {header(r, 'Via')}\r\nFrom: {header(r, 'From')}\r\n"
           f"To: {header(r, 'To')}\r\nCall-ID: call1@test\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    challenge = header(r, name + "-Authenticate")
    answer = "Proxy-Authorization" if name == "Proxy" else "Authorization"
    a.send(invite.format(n=2, auth=authorization(challenge, "100", "INVITE", "sip:101@besip.test", answer)))

# B gets the INVITE over UDP.
inv = b.recv()
while not inv.startswith("INVITE"):
    inv = b.recv()
print("b-invite-via", header(inv, "Via").split()[0])
rr = headers(inv, "Record-Route")
print("b-record-route", ",".join(rr).replace(" ", ""))
ok = ("SIP/2.0 200 OK\r\n" + "".join(f"Via: {v}\r\n" for v in headers(inv, "Via"))
      + "".join(f"Record-Route: {v}\r\n" for v in rr)
      + f"From: {header(inv, 'From')}\r\nTo: {header(inv, 'To')};tag=b1\r\nCall-ID: call1@test\r\n"
      f"CSeq: {header(inv, 'CSeq')}\r\nContact: <sip:101@{b_addr}>\r\nContent-Length: 0\r\n\r\n")
b.send(ok)

r = final(a)
print("a-answer", first_line(r))
# A's route set is the Record-Route reversed (RFC 3261 12.1.2).
a_routes = headers(r, "Record-Route")[::-1] if r else []
routes = "".join(f"Route: {v}\r\n" for v in a_routes)
a.send(f"ACK sip:101@{b_addr} SIP/2.0\r\nVia: SIP/2.0/TLS {a_addr};branch=z9hG4bKack1;rport\r\n"
       f"{routes}From: <sip:100@besip.test>;tag=a1\r\nTo: {header(r, 'To')}\r\nCall-ID: call1@test\r\n"
       "CSeq: 2 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
ack = b.recv()
print("b-ack", first_line(ack).split()[0])

# B hangs up: its route set is the Record-Route in order.
routes = "".join(f"Route: {v}\r\n" for v in rr)
b.send(f"BYE sip:100@{a_addr};transport=tls SIP/2.0\r\nVia: SIP/2.0/UDP {b_addr};branch=z9hG4bKbye1;rport\r\n"
       f"{routes}From: {header(inv, 'To')};tag=b1\r\nTo: {header(inv, 'From')}\r\nCall-ID: call1@test\r\n"
       "CSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
bye = a.recv()
print("a-bye", first_line(bye).split()[0] if bye else "none")
if bye:
    a.send("SIP/2.0 200 OK\r\n" + "".join(f"Via: {v}\r\n" for v in headers(bye, "Via"))
           + f"From: {header(bye, 'From')}\r\nTo: {header(bye, 'To')}\r\nCall-ID: call1@test\r\n"
           f"CSeq: {header(bye, 'CSeq')}\r\nContent-Length: 0\r\n\r\n")
    print("b-bye-answer", first_line(b.recv()))
print("done")
"#;

/// An attacker against the TLS port (per-source limit 3, handshake timeout 2 s).
const PY_ATTACK: &str = r#"
port, cafile = int(sys.argv[1]), sys.argv[2]
OPTIONS = ("OPTIONS sip:besip.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKopt{n}\r\n"
           "From: <sip:x@besip.test>;tag=o\r\nTo: <sip:besip.test>\r\nCall-ID: opt{n}@test\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: {length}\r\n\r\n")

def tls_answer(source="127.0.0.1", n=0):
    try:
        s = Stream(tls_client(port, cafile, source))
        s.send(OPTIONS.format(n=n, extra="", length=0))
        return first_line(s.recv())
    except (ssl.SSLError, OSError) as e:
        return "refused"

def closed(sock):
    """True once the PBX closes a connection that never sent a byte."""
    sock.settimeout(15)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False

# Plaintext SIP to the TLS port: no SIP answer, the connection closes.
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
raw.sendall(OPTIONS.format(n=1, extra="", length=0).encode())
got = b""
try:
    while True:
        d = raw.recv(4096)
        if not d:
            break
        got += d
except (ConnectionResetError, socket.timeout):
    pass
print("plaintext-sip-answer", "yes" if b"SIP/2.0" in got else "no")

# Handshakes that never finish hold the per-source slots...
stalled = [socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.9", 0)) for _ in range(3)]
print("over-limit", tls_answer("127.0.0.9", 2))
print("other-source", tls_answer("127.0.0.10", 3).split(" ")[1])
# ...until the handshake timeout closes them and frees the slots.
print("stalled-closed", all(closed(s) for s in stalled))
print("after-timeout", tls_answer("127.0.0.9", 4).split(" ")[1])

# Garbage after the handshake: the connection is closed, nothing answered.
g = Stream(tls_client(port, cafile))
g.send("\x01\x02 this is not SIP at all \xff\r\n\r\n" * 4)
print("garbage-answer", first_line(g.recv()))

# A giant message: 513 (or a close), never buffered.
big = Stream(tls_client(port, cafile))
big.send(OPTIONS.format(n=5, extra="", length=200000))
try:
    big.sock.sendall(b"x" * 70000)
except OSError:
    pass
answer = big.recv()
print("giant-answer", answer.split(" ")[1] if answer else "none")
print("alive", tls_answer("127.0.0.1", 6).split(" ")[1])
print("done")
"#;

/// Providers over TLS: each port in argv serves REGISTER with 200 (the
/// certificate and key files first).
const PY_PROVIDER: &str = r#"
import threading
cert, key, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
said = threading.Lock()

def say(*words):
    # One write per line under a lock: print() writes its words one by one,
    # so two threads' lines could interleave.
    with said:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()

def serve(listener, port):
    while True:
        conn, _ = listener.accept()
        try:
            s = Stream(ctx.wrap_socket(conn, server_side=True))
        except (ssl.SSLError, OSError) as e:
            say("handshake-failed", port)
            continue
        while True:
            m = s.recv()
            if m is None:
                break
            if m.startswith("REGISTER"):
                say("register", port, header(m, "Via").split()[0])
                s.send("SIP/2.0 200 OK\r\n" + "".join(f"Via: {v}\r\n" for v in headers(m, "Via"))
                       + f"From: {header(m, 'From')}\r\nTo: {header(m, 'To')};tag=p\r\n"
                       f"Call-ID: {header(m, 'Call-ID')}\r\nCSeq: {header(m, 'CSeq')}\r\n"
                       f"Contact: {header(m, 'Contact')};expires=60\r\nContent-Length: 0\r\n\r\n")

for p in ports:
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", p))
    l.listen(8)
    threading.Thread(target=serve, args=(l, p), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"#;

fn python(driver: &str, args: &[String]) -> Vec<(String, String)> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!("{PY_COMMON}\n{driver}"))
        .args(args)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("done"),
        "driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

/// The test configuration with a TLS listen on `tls_port` and `extra` in main.
fn tls_config(port: u16, tls_port: u16, extra: &str) -> String {
    config(port, extra)
        + &format!("config listen 'listen_tls'\n\toption name 'tls'\n\toption transport 'tls'\n\toption address '127.0.0.1'\n\toption port '{tls_port}'\n\n")
}

#[test]
fn register_and_call_over_tls_to_a_udp_phone() {
    let (port, tls_port) = (free_port(), free_port());
    let mut pbx = Pbx::start(&tls_config(port, tls_port, ""), port);
    let cert = pbx.root.path().join("etc/besip/sip-tls-cert.pem");
    let first_cert = std::fs::read_to_string(&cert).expect("a certificate was generated");
    // The generated certificate is kept and reused.
    pbx.stop();
    pbx.spawn();
    assert_eq!(
        std::fs::read_to_string(&cert).expect("certificate"),
        first_cert,
        "the certificate is reused after a restart"
    );

    let cafile = cert.display().to_string();
    let out = python(PY_CALL, &[tls_port.to_string(), port.to_string(), cafile]);
    assert_eq!(value(&out, "a-register"), "SIP/2.0 200 OK");
    assert_eq!(value(&out, "a-register-via"), "SIP/2.0/TLS");
    assert_eq!(value(&out, "b-register"), "SIP/2.0 200 OK");
    assert_eq!(value(&out, "b-invite-via"), "SIP/2.0/UDP");
    // Double Record-Route: the UDP side first (B's next hop), the TLS side
    // for A.
    let rr = value(&out, "b-record-route");
    assert_eq!(
        rr,
        format!("<sip:127.0.0.1:{port};lr>,<sip:127.0.0.1:{tls_port};transport=tls;lr>"),
        "record-route of a call crossing UDP and TLS"
    );
    assert_eq!(value(&out, "a-answer"), "SIP/2.0 200 OK");
    assert_eq!(value(&out, "b-ack"), "ACK");
    // The BYE reaches A over its own TLS connection (it has no listener).
    assert_eq!(value(&out, "a-bye"), "BYE");
    assert_eq!(value(&out, "b-bye-answer"), "SIP/2.0 200 OK");
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
    let regs = state["besip-pbx:pbx"]["registrations"]["registration"].to_string();
    assert!(
        regs.contains("tls:127.0.0.1"),
        "TLS binding in state: {regs}"
    );
}

#[test]
fn attacks_on_the_tls_port_change_nothing() {
    let (port, tls_port) = (free_port(), free_port());
    let extra = "\toption tcp_max_connections_per_source '3'\n\toption tls_handshake_timeout '2'\n";
    let pbx = Pbx::start(&tls_config(port, tls_port, extra), port);
    let cafile = pbx
        .root
        .path()
        .join("etc/besip/sip-tls-cert.pem")
        .display()
        .to_string();
    let out = python(PY_ATTACK, &[tls_port.to_string(), cafile]);
    assert_eq!(value(&out, "plaintext-sip-answer"), "no");
    assert_eq!(value(&out, "over-limit"), "refused", "{out:?}");
    assert_eq!(value(&out, "other-source"), "200");
    assert_eq!(value(&out, "stalled-closed"), "True");
    assert_eq!(value(&out, "after-timeout"), "200");
    assert_eq!(value(&out, "garbage-answer"), "none");
    let giant = value(&out, "giant-answer");
    assert!(giant == "513" || giant == "none", "giant message: {giant}");
    assert_eq!(value(&out, "alive"), "200");
    assert!(pbx.counter("tcp-refused") >= 1, "the refusal is counted");
    assert!(pbx.registrations().is_empty());
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM,
/// server certificate PEM, server key PEM).
fn test_ca(name: &str) -> (String, String, String) {
    test_ca_for(name, &["127.0.0.1"])
}

fn trunk_uci(name: &str, port: u16, ca: &str) -> String {
    format!(
        "config trunk 'trunk_{name}'\n\toption name '{name}'\n\toption host '127.0.0.1'\n\toption port '{port}'\n\toption transport 'tls'\n\toption username 'acme'\n\toption password 's3cret'\n\toption register '1'\n\toption tls_ca '{ca}'\n\n"
    )
}

/// A TLS provider (Python's ssl module) serving `cert`/`key` on `ports`:
/// it answers REGISTERs with 200 and reports each one on its stdout.
struct Provider {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl Provider {
    fn start(cert: &str, key: &str, ports: &[u16]) -> Provider {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert).expect("write");
        std::fs::write(&key_file, key).expect("write");
        let mut child = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(format!("{PY_COMMON}\n{PY_PROVIDER}"))
            .arg(&cert_file)
            .arg(&key_file)
            .args(ports.iter().map(u16::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
        Provider {
            child,
            lines,
            _dir: dir,
        }
    }

    /// Stops the provider: what it reported.
    fn stop(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let seen = self.lines.by_ref().map_while(Result::ok).collect();
        let _ = self.child.wait();
        seen
    }
}

/// /pbx/trunk-registrations/trunk[name] of `state`.
fn trunk_registration(state: &serde_json::Value, name: &str) -> serde_json::Value {
    state["besip-pbx:pbx"]["trunk-registrations"]["trunk"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == name).cloned())
        .unwrap_or_default()
}

#[test]
fn trunk_over_tls_verifies_the_provider() {
    let (ca, cert, key) = test_ca("provider CA");
    let (other_ca, _, _) = test_ca("another CA");
    let (good, bad) = (free_port(), free_port());
    let provider = Provider::start(&cert, &key, &[good, bad]);

    let port = free_port();
    let uci = config(port, "") + &trunk_uci("good", good, &ca) + &trunk_uci("bad", bad, &other_ca);
    let pbx = Pbx::start(&uci, port);
    let trunk = trunk_registration;
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let state = pbx.state();
        let (g, b) = (trunk(&state, "good"), trunk(&state, "bad"));
        // The refused trunk is retried (state failed after its transaction
        // timeout); its error shows at once.
        if g["state"] == "registered" && b.get("last-tls-error").is_some() {
            break state;
        }
        assert!(Instant::now() < deadline, "trunks: {g} {b}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_state_valid(&pbx, &state);
    let bad_state = trunk(&state, "bad");
    assert_ne!(bad_state["state"], "registered");
    let error = bad_state["last-tls-error"].as_str().unwrap_or("");
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "the wrong CA is named: {bad_state}"
    );
    assert!(trunk(&state, "good").get("last-tls-error").is_none());
    let seen = provider.stop();
    assert!(
        seen.iter()
            .any(|l| l == &format!("register {good} SIP/2.0/TLS")),
        "the good provider got a REGISTER over TLS: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with(&format!("register {bad}"))),
        "nothing reached the provider with the wrong certificate: {seen:?}"
    );
}

/// RFC 5922 §4: a trunk named by DNS is verified for its SIP domain (the
/// configured host), whatever SRV target and address DNS gives for it. The
/// provider's certificate names provider.test only; dnsmasq points
/// _sips._tcp.provider.test at edge1.test (127.0.0.1), and
/// _sips._tcp.impostor.test at the same kind of server: the first trunk
/// registers over TLS, the second is refused for the name.
#[test]
fn trunk_named_by_dns_is_verified_for_its_domain() {
    if !besip_tests::dns::have_dnsmasq() {
        eprintln!("SKIP: dnsmasq not installed");
        return;
    }
    let (ca, cert, key) = test_ca_for("provider CA", &["provider.test"]);
    let (good, bad) = (free_port(), free_port());
    let provider = Provider::start(&cert, &key, &[good, bad]);
    let dns = besip_tests::dns::Dnsmasq::start(
        free_port(),
        60,
        &[
            format!("--srv-host=_sips._tcp.provider.test,edge1.test,{good},0,10"),
            format!("--srv-host=_sips._tcp.impostor.test,edge2.test,{bad},0,10"),
            "--host-record=edge1.test,127.0.0.1".to_owned(),
            "--host-record=edge2.test,127.0.0.1".to_owned(),
        ],
    );
    let port = free_port();
    let main = format!(
        "\tlist dns_server '127.0.0.1'\n\toption dns_server_port '{}'\n",
        dns.port
    );
    let named = |name: &str, host: &str| {
        format!(
            "config trunk 'trunk_{name}'\n\toption name '{name}'\n\toption host '{host}'\n\toption transport 'tls'\n\toption username 'acme'\n\toption password 's3cret'\n\toption register '1'\n\toption tls_ca '{ca}'\n\n"
        )
    };
    let uci =
        config(port, &main) + &named("good", "provider.test") + &named("bad", "impostor.test");
    let pbx = Pbx::start(&uci, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let state = pbx.state();
        let (g, b) = (
            trunk_registration(&state, "good"),
            trunk_registration(&state, "bad"),
        );
        if g["state"] == "registered" && b.get("last-tls-error").is_some() {
            break state;
        }
        assert!(Instant::now() < deadline, "trunks: {g} {b}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_state_valid(&pbx, &state);
    let bad_state = trunk_registration(&state, "bad");
    assert_ne!(bad_state["state"], "registered");
    let error = bad_state["last-tls-error"].as_str().unwrap_or("");
    assert!(
        error.contains("NotValidForName") || error.contains("not valid for name"),
        "the impostor's name mismatch is named: {bad_state}"
    );
    let seen = provider.stop();
    assert!(
        seen.iter()
            .any(|l| l == &format!("register {good} SIP/2.0/TLS")),
        "provider.test got a REGISTER over TLS: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with(&format!("register {bad}"))),
        "nothing reached the server that is not impostor.test: {seen:?}"
    );
}
