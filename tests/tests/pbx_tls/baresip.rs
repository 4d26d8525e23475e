//! A real phone over TLS with SRTP: Debian's baresip registers over TLS
//! (trusting the PBX's generated certificate) with `mediaenc srtp-mand` and
//! calls a plain-RTP phone on UDP through the B2BUA. SRTP ends at the relay:
//! baresip's offer and our answer are RTP/SAVP with a=crypto, the UDP phone
//! sees RTP/AVP without crypto and gets baresip's sine as plain PCMU, all of
//! baresip's signalling stays on TLS (ACK and BYE too), the BYE ends the
//! call on both legs, and no SRTP key appears in the PBX's log.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::baresip::{have_baresip, messages, Baresip, PhoneConfig};

use super::*;

/// The UDP phone 101. argv: PBX UDP port. Prints `key value` lines (the
/// first, udp-register, once registered); waits for a line on stdin
/// before its BYE.
const PY_UDP_PHONE: &str = r#"
import hashlib, re, socket, sys, time

pbx_port = int(sys.argv[1])
PBX = ("127.0.0.1", pbx_port)

def header(msg, name):
    m = re.search(r"(?im)^" + name + r":\s*(.*?)\r?$", msg)
    return m.group(1) if m else ""
def headers(msg, name):
    return re.findall(r"(?im)^" + name + r":\s*(.*?)\r?$", msg)
def md5(s): return hashlib.md5(s.encode()).hexdigest()
def body(msg): return msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""

sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sip.bind(("127.0.0.1", 0)); sip.settimeout(10)
media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); media.bind(("127.0.0.1", 0)); media.settimeout(5)
me, mport = "127.0.0.1:%d" % sip.getsockname()[1], media.getsockname()[1]

def recv_sip(start):
    while True:
        msg = sip.recvfrom(65536)[0].decode(errors="replace")
        if msg.startswith(start):
            return msg

def register(n, auth=""):
    sip.sendto(("REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKr%d;rport\r\n"
                "From: <sip:101@besip.test>;tag=r1\r\nTo: <sip:101@besip.test>\r\nCall-ID: reg101\r\n"
                "CSeq: %d REGISTER\r\nContact: <sip:101@%s>\r\nExpires: 300\r\nMax-Forwards: 70\r\n%s"
                "Content-Length: 0\r\n\r\n" % (me, n, n, me, auth)).encode(), PBX)
    return recv_sip("SIP/2.0")
r = register(1)
if r.startswith("SIP/2.0 401"):
    nonce = re.search(r'nonce="([^"]*)"', header(r, "WWW-Authenticate")).group(1)
    resp = md5("%s:%s:00000001:c0:auth:%s" % (md5("101:besip.test:pw101"), nonce, md5("REGISTER:sip:besip.test")))
    r = register(2, 'Authorization: Digest username="101", realm="besip.test", nonce="%s", uri="sip:besip.test", '
                    'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0"\r\n' % (nonce, resp))
print("udp-register", r.split("\r\n")[0][8:], flush=True)

# baresip (100) dials 101 (the test, over ctrl_tcp).
inv = recv_sip("INVITE")
offer = body(inv)
print("udp-offer-profile", re.search(r"m=audio \d+ (\S+)", offer).group(1))
print("udp-offer-crypto", "a=crypto" in offer or "inline:" in offer)
relay = (re.search(r"c=IN IP4 (\S+)", offer).group(1), int(re.search(r"m=audio (\d+)", offer).group(1)))
pt = int(re.search(r"m=audio \d+ \S+ (\d+)", offer).group(1))
print("udp-offer-pt", pt)
answer = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          "m=audio %d RTP/AVP %d\r\na=rtpmap:%d %s/8000\r\na=ptime:20\r\n" % (mport, pt, pt, "PCMU" if pt == 0 else "PCMA"))
def reply(code, text, extra="", sdp=""):
    sip.sendto(("SIP/2.0 %d %s\r\n%s%sFrom: %s\r\nTo: %s;tag=u1\r\nCall-ID: %s\r\nCSeq: %s\r\n%s"
                "Content-Length: %d\r\n\r\n%s" % (code, text, "".join("Via: %s\r\n" % v for v in headers(inv, "Via")),
                "".join("Record-Route: %s\r\n" % v for v in headers(inv, "Record-Route")),
                header(inv, "From"), header(inv, "To"), header(inv, "Call-ID"), header(inv, "CSeq"), extra,
                len(sdp), sdp)).encode(), PBX)
reply(180, "Ringing")
reply(200, "OK", "Contact: <sip:101@%s>\r\nContent-Type: application/sdp\r\n" % me, answer)
print("udp-ack", recv_sip("ACK").split()[0])

def ulaw(b):
    b = ~b & 0xff
    t = (((b & 0x0f) << 3) + 0x84) << ((b & 0x70) >> 4)
    return (0x84 - t) if (b & 0x80) else (t - 0x84)

# Media: baresip's 440 Hz sine, SRTP on its leg, arrives here as plain RTP;
# what we send back the relay seals for baresip.
pkts, deadline = [], time.time() + 8
while len(pkts) < 25 and time.time() < deadline:
    try:
        p = media.recv(2048)
    except socket.timeout:
        break
    pkts.append(p)
    media.sendto(p, relay)
print("udp-rtp-packets", len(pkts))
p = pkts[-1] if pkts else b"\0" * 12
print("udp-rtp-version", p[0] >> 6)
print("udp-rtp-pt", p[1] & 0x7f)
print("udp-rtp-length", len(p))
# 20 ms of a 440 Hz sine crosses zero about 17 times; ciphertext (or an
# SRTP tag) read as PCMU would cross about 80 times.
samples = [ulaw(x) for x in p[12:]]
print("udp-rtp-zero-crossings", sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0)))

# Hang up once the test saw baresip's RTP established (our SRTP passed).
sys.stdin.readline()
contact = re.search(r"<([^>]*)>", header(inv, "Contact")).group(1)
sip.sendto(("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKbye1;rport\r\n%sFrom: %s;tag=u1\r\nTo: %s\r\n"
            "Call-ID: %s\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            % (contact, me, "".join("Route: %s\r\n" % v for v in headers(inv, "Record-Route")),
               header(inv, "To"), header(inv, "From"), header(inv, "Call-ID"))).encode(), PBX)
print("udp-bye-answer", recv_sip("SIP/2.0").split("\r\n")[0][8:])
print("done")
"#;

/// A baresip phone (extension 100) over TLS to `tls_port`, trusting
/// `cafile`, remote-controlled on `ctrl_port`, playing a 440 Hz sine.
fn tls_phone(tls_port: u16, ctrl_port: u16, cafile: &Path) -> Baresip {
    let mut config = PhoneConfig::new(
        format!("<sip:100@besip.test;transport=tls>;auth_pass=pw100;outbound=\"sip:127.0.0.1:{tls_port};transport=tls\";mediaenc=srtp-mand;regint=300;audio_codecs=PCMU"),
        SocketAddr::from(([127, 0, 0, 1], ctrl_port)),
    );
    config.cafile = Some(cafile.to_owned());
    config.modules.push("srtp.so".into());
    Baresip::start(&config)
}

/// The `inline:` keys (SDES) in `text`.
fn inline_keys(text: &str) -> Vec<String> {
    text.split("inline:")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
                .collect::<String>()
        })
        .filter(|k| k.len() >= 20)
        .collect()
}

#[test]
fn baresip_over_tls_with_srtp_calls_a_plain_rtp_phone() {
    if !have_baresip() {
        eprintln!("SKIP: baresip not installed (scripts/install-deps installs baresip-core)");
        return;
    }
    let (port, tls_port, ctrl_port) = (free_port(), free_port(), free_port());
    let extra = "\toption rtp_port_min '31800'\n\toption rtp_port_max '31898'\n";
    let uci = tls_config(port, tls_port, extra)
        .replace("\toption mode 'proxy'\n", "\toption mode 'b2bua'\n");
    // Every target at trace level: nothing the daemon or its libraries log
    // may carry a key.
    let pbx = Pbx::start_logged(&uci, port, "trace");
    let cafile = pbx.root.path().join("etc/besip/sip-tls-cert.pem");
    let phone = tls_phone(tls_port, ctrl_port, &cafile);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pbx
        .registrations()
        .iter()
        .any(|(aor, contact)| aor.contains("100@") && contact.contains("transport=tls"))
    {
        assert!(
            Instant::now() < deadline,
            "baresip did not register over TLS:\n{}",
            phone.trace()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut ctl = phone.control();
    let mut driver = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PY_UDP_PHONE)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pbx
        .registrations()
        .iter()
        .any(|(aor, _)| aor.contains("101@"))
    {
        assert!(Instant::now() < deadline, "the UDP phone did not register");
        std::thread::sleep(Duration::from_millis(50));
    }
    // baresip dials 101; once its RTP is established (our SRTP passed its
    // authentication), the UDP phone hangs up.
    let dial = ctl.command("dial", "sip:101@besip.test");
    let rtp_established = ctl.wait_event("CALL_RTPESTAB", Duration::from_secs(10));
    let _ = driver
        .stdin
        .take()
        .expect("driver stdin")
        .write_all(b"bye\n");
    let closed = ctl.wait_event("CALL_CLOSED", Duration::from_secs(5));
    let out = driver.wait_with_output().expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let trace = phone.trace();
    assert!(
        out.status.success() && stdout.contains("done"),
        "driver failed:\n{stdout}\n{}\nbaresip:\n{trace}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let ctx = format!("{r:?}\nbaresip:\n{trace}");

    // The UDP phone: plain RTP/AVP in the SDP and on the wire.
    assert_eq!(value(&r, "udp-register"), "200 OK", "{ctx}");
    assert_eq!(value(&r, "udp-offer-profile"), "RTP/AVP", "{ctx}");
    assert_eq!(value(&r, "udp-offer-crypto"), "False", "{ctx}");
    assert_eq!(value(&r, "udp-ack"), "ACK", "{ctx}");
    assert_eq!(value(&r, "udp-rtp-packets"), "25", "{ctx}");
    assert_eq!(value(&r, "udp-rtp-version"), "2", "{ctx}");
    assert_eq!(value(&r, "udp-rtp-pt"), value(&r, "udp-offer-pt"), "{ctx}");
    // 12 header bytes + 20 ms of PCMU, no SRTP authentication tag.
    assert_eq!(value(&r, "udp-rtp-length"), "172", "{ctx}");
    let crossings: u32 = value(&r, "udp-rtp-zero-crossings").parse().unwrap_or(999);
    assert!(
        (10..=30).contains(&crossings),
        "the UDP phone hears baresip's 440 Hz sine (zero crossings {crossings}): {ctx}"
    );
    assert_eq!(value(&r, "udp-bye-answer"), "200 OK", "{ctx}");

    // baresip: the call came up, its media flowed both ways (RTPESTAB: our
    // SRTP passed its authentication), the BYE closed it.
    let events: Vec<&str> = ctl
        .events
        .iter()
        .filter(|e| e["event"] == true)
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        rtp_established.is_some() && closed.is_some(),
        "{events:?}: {ctx}"
    );
    for e in ["CALL_ESTABLISHED", "CALL_MENC"] {
        assert!(events.contains(&e), "baresip event {e}: {events:?} {ctx}");
    }
    assert_eq!(dial["ok"], true, "{dial}: {ctx}");

    // baresip's side of the signalling: all TLS, SRTP offered and answered.
    let msgs = messages(&trace);
    assert!(
        msgs.iter().all(|m| m.transport == "TLS"),
        "baresip's signalling stays on TLS (our Contact names TLS): {ctx}"
    );
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let sent = |start: &str| {
        msgs.iter()
            .filter(|m| m.to == tls_addr && m.text.starts_with(start))
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
    };
    let received = |start: &str| {
        msgs.iter()
            .filter(|m| m.from == tls_addr && m.text.starts_with(start))
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
    };
    let offer = sent("INVITE ").pop().unwrap_or_default();
    assert!(
        offer.contains("RTP/SAVP") && offer.contains("a=crypto:"),
        "baresip offers SRTP: {offer}"
    );
    let answer = received("SIP/2.0 200 OK")
        .into_iter()
        .find(|m| m.contains(" INVITE\n"))
        .unwrap_or_default();
    assert!(
        answer.contains("RTP/SAVP")
            && answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "the PBX answers SRTP with baresip's tag and suite: {answer}"
    );
    assert!(
        answer.contains(&format!(
            "Contact: <sip:b2bua@127.0.0.1:{tls_port};transport=tls>"
        )),
        "our Contact towards a TLS phone is TLS: {answer}"
    );
    assert!(
        !sent("ACK sip:b2bua").is_empty(),
        "baresip's ACK came over TLS: {ctx}"
    );
    assert!(
        received("BYE ").len() == 1 && sent("SIP/2.0 200 OK").iter().any(|m| m.contains(" BYE\n")),
        "the BYE reached baresip over TLS and was answered: {ctx}"
    );

    // Neither baresip's key nor ours appears in the PBX's log.
    let keys = inline_keys(&trace);
    assert!(keys.len() >= 2, "keys in baresip's trace: {keys:?}");
    let log = pbx.log();
    assert!(!log.is_empty(), "the PBX logged at trace level");
    for key in &keys {
        assert!(
            !log.contains(key.as_str()),
            "SRTP key {key} in the PBX's log"
        );
    }
    assert!(
        !log.contains("inline:"),
        "SDES key material in the PBX's log"
    );

    let state = pbx.state();
    assert_state_valid(&pbx, &state);
    assert_eq!(
        state["besip-pbx:pbx"]["calls"]["call"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        0,
        "the call is over on both legs: {state}"
    );
}
