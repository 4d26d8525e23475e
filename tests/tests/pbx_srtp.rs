//! SRTP (SDES) at the B2BUA's edge: a phone offering SRTP calls out through
//! an RTP-only trunk (the trunk sees plain RTP/AVP and plain packets, the
//! phone gets our key and SRTP), and a plain phone calls a trunk set to
//! `media-encryption sdes` (the reverse). The phone and the provider are
//! Python endpoints with their own SRTP (RFC 3711 over python3-cryptography),
//! so the box's crypto is checked against an independent implementation.
//! Forged and replayed SRTP is not forwarded.

use std::process::Command;

use besip_tests::pbx::*;

/// argv: pbx port, trunk port, mode (phone-srtp | trunk-srtp). Prints
/// `key value` lines the test checks.
const DRIVER: &str = r#"
import base64, hashlib, hmac, os, re, socket, struct, sys, time
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

pbx_port, trunk_port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
PBX = ("127.0.0.1", pbx_port)

def aes_ctr(key, iv, data):
    e = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return e.update(data) + e.finalize()

def derive(mk, ms, label, n):
    iv = bytearray(ms + b"\0\0"); iv[7] ^= label
    return aes_ctr(mk, bytes(iv), b"\0" * n)

class Srtp:
    """One direction, AES_CM_128_HMAC_SHA1_80, ROC 0 (short calls)."""
    def __init__(self, inline):
        raw = base64.b64decode(inline)
        mk, ms = raw[:16], raw[16:30]
        self.k, self.a, self.s = derive(mk, ms, 0, 16), derive(mk, ms, 1, 20), derive(mk, ms, 2, 14)
    def iv(self, ssrc, seq):
        iv = bytearray(self.s + b"\0\0")
        for i, b in enumerate(struct.pack("!I", ssrc)): iv[4 + i] ^= b
        for i, b in enumerate(struct.pack("!Q", seq)[2:]): iv[8 + i] ^= b
        return bytes(iv)
    def protect(self, pkt):
        seq, ssrc = struct.unpack("!H", pkt[2:4])[0], struct.unpack("!I", pkt[8:12])[0]
        body = pkt[:12] + aes_ctr(self.k, self.iv(ssrc, seq), pkt[12:])
        return body + hmac.new(self.a, body + b"\0\0\0\0", hashlib.sha1).digest()[:10]
    def unprotect(self, pkt):
        body, tag = pkt[:-10], pkt[-10:]
        if hmac.new(self.a, body + b"\0\0\0\0", hashlib.sha1).digest()[:10] != tag:
            return None
        seq, ssrc = struct.unpack("!H", body[2:4])[0], struct.unpack("!I", body[8:12])[0]
        return body[:12] + aes_ctr(self.k, self.iv(ssrc, seq), body[12:])

def rtp(seq, ssrc, payload):
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload

def md5(s): return hashlib.md5(s.encode()).hexdigest()
def header(msg, name):
    m = re.search(r"^%s: *(.*?)\r?$" % name, msg, re.M | re.I)
    return m.group(1) if m else ""
def body(msg): return msg.split("\r\n\r\n", 1)[1]
def media(sdp):
    return (re.search(r"c=IN IP4 (\S+)", sdp).group(1), int(re.search(r"m=audio (\d+)", sdp).group(1)))
def crypto(sdp):
    m = re.search(r"a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)", sdp)
    return m.groups() if m else None

def sdp(ip, port, key=None):
    s = "v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n" % (ip, ip)
    if key:
        s += "m=audio %d RTP/SAVP 0\r\na=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:%s\r\n" % (port, key)
    else:
        s += "m=audio %d RTP/AVP 0\r\n" % port
    return s + "a=rtpmap:0 PCMU/8000\r\n"

def udp(ip, port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, port)); s.settimeout(3); return s

phone, trunk = udp("127.0.0.1"), udp("127.0.0.5", trunk_port)
phone_media, trunk_media = udp("127.0.0.1"), udp("127.0.0.5")
pport, pmport, tmport = phone.getsockname()[1], phone_media.getsockname()[1], trunk_media.getsockname()[1]
phone_key = base64.b64encode(os.urandom(30)).decode()
trunk_key = base64.b64encode(os.urandom(30)).decode()

def invite(cseq, auth="", offer=""):
    return ("INVITE sip:0123@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKs%d;rport\r\n"
            "From: <sip:100@besip.test>;tag=ph\r\nTo: <sip:0123@besip.test>\r\nCall-ID: srtp-call\r\n"
            "CSeq: %d INVITE\r\nContact: <sip:100@127.0.0.1:%d>\r\nMax-Forwards: 70\r\n%s"
            "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s") % (pport, cseq, cseq, pport, auth, len(offer), offer)

def final(sock, method):
    while True:
        msg = sock.recv(65536).decode()
        if msg.startswith("SIP/2.0 ") and header(msg, "CSeq").endswith(method) and int(msg.split()[1]) >= 200:
            return msg

offer = sdp("127.0.0.1", pmport, phone_key if mode == "phone-srtp" else None)
phone.sendto(invite(1, offer=offer).encode(), PBX)
ch = final(phone, "INVITE")
nonce = re.search(r'nonce="([^"]*)"', ch).group(1)
totag = re.search(r"tag=([^;\s]+)", header(ch, "To")).group(1)
phone.sendto(("ACK sip:0123@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKs1;rport\r\n"
              "From: <sip:100@besip.test>;tag=ph\r\nTo: <sip:0123@besip.test>;tag=%s\r\nCall-ID: srtp-call\r\n"
              "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n" % (pport, totag)).encode(), PBX)
resp = md5("%s:%s:%s" % (md5("100:besip.test:pw100"), nonce, md5("INVITE:sip:0123@besip.test")))
auth = ('Proxy-Authorization: Digest username="100", realm="besip.test", nonce="%s", '
        'uri="sip:0123@besip.test", response="%s", algorithm=MD5\r\n') % (nonce, resp)
phone.sendto(invite(2, auth, offer).encode(), PBX)

# The provider's side of the call.
req, src = trunk.recvfrom(65536); req = req.decode()
while not req.startswith("INVITE"):
    req, src = trunk.recvfrom(65536); req = req.decode()
tsdp = body(req)
print("trunk-offer-profile", re.search(r"m=audio \d+ (\S+)", tsdp).group(1))
print("trunk-offer-crypto", crypto(tsdp) is not None)
relay_b = media(tsdp)
answer = sdp("127.0.0.5", tmport, trunk_key if mode == "trunk-srtp" else None)
vias = "".join("Via: %s\r\n" % v for v in re.findall(r"^Via: *(.*?)\r?$", req, re.M))
trunk.sendto((("SIP/2.0 200 OK\r\n%sFrom: %s\r\nTo: %s;tag=prov\r\nCall-ID: %s\r\nCSeq: %s\r\n"
              "Contact: <sip:prov@127.0.0.5:%d>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s")
             % (vias, header(req, "From"), header(req, "To"), header(req, "Call-ID"), header(req, "CSeq"),
                trunk_port, len(answer), answer)).encode(), src)

ok = final(phone, "INVITE")
print("phone-final", ok.split()[1])
psdp = body(ok)
print("phone-answer-profile", re.search(r"m=audio \d+ (\S+)", psdp).group(1))
pc = crypto(psdp)
print("phone-answer-crypto", pc is not None and pc[0] == "7" and pc[1] == "AES_CM_128_HMAC_SHA1_80")
relay_a = media(psdp)

# Media both ways; each side speaks what its SDP said, with its own key.
def send_phone(seq, payload, key=None):
    p = rtp(seq, 0x1111, payload)
    if mode == "phone-srtp":
        p = Srtp(key or phone_key).protect(p)
    phone_media.sendto(p, relay_a)
def send_trunk(seq, payload):
    p = rtp(seq, 0x2222, payload)
    if mode == "trunk-srtp":
        p = Srtp(trunk_key).protect(p)
    trunk_media.sendto(p, relay_b)
def recv(sock, key_from_sdp):
    try:
        p = sock.recv(2048)
    except socket.timeout:
        return None
    if key_from_sdp:
        p = Srtp(key_from_sdp).unprotect(p)
        if p is None:
            return b"BAD-TAG"
    return p[12:]

our_key_to_phone = pc[2] if pc else None
tc = crypto(tsdp)
our_key_to_trunk = tc[2] if tc else None
got = []
for seq in range(1, 4):
    send_phone(seq, b"phone-%d" % seq)
    got.append(recv(trunk_media, our_key_to_trunk))
print("trunk-got", b",".join(g or b"none" for g in got).decode())
got = []
for seq in range(1, 4):
    send_trunk(seq, b"trunk-%d" % seq)
    got.append(recv(phone_media, our_key_to_phone))
print("phone-got", b",".join(g or b"none" for g in got).decode())
# A replay of packet 3 and a packet sealed with a stranger's key: not forwarded.
if mode == "phone-srtp":
    send_phone(3, b"phone-3")
    send_phone(4, b"forged", key=base64.b64encode(os.urandom(30)).decode())
    trunk_media.settimeout(0.5)
    print("trunk-got-forged", recv(trunk_media, None) is not None)
print("done")
"#;

fn run(mode: &str, srtp_trunk: bool) -> Vec<(String, String)> {
    let port = free_port();
    let trunk_port = free_port();
    let media = if srtp_trunk { "sdes" } else { "rtp" };
    let uci = config(port, "\toption rtp_port_min '31600'\n\toption rtp_port_max '31698'\n")
        .replace("\toption mode 'proxy'\n", "\toption mode 'b2bua'\n")
        + &format!("config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.5'\n\toption port '{trunk_port}'\n\toption media_encryption '{media}'\n\n")
        + "config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'prov'\n\n";
    let pbx = Pbx::start(&uci, port);
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(DRIVER)
        .args([port.to_string(), trunk_port.to_string(), mode.to_owned()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("done"),
        "driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_state_valid(&pbx, &pbx.state());
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

#[test]
fn srtp_phone_through_an_rtp_only_trunk() {
    let r = run("phone-srtp", false);
    // The provider sees plain RTP in the SDP and on the wire...
    assert_eq!(value(&r, "trunk-offer-profile"), "RTP/AVP", "{r:?}");
    assert_eq!(value(&r, "trunk-offer-crypto"), "False", "{r:?}");
    assert_eq!(value(&r, "trunk-got"), "phone-1,phone-2,phone-3", "{r:?}");
    // ...the phone SRTP with our key, under the tag and suite it offered.
    assert_eq!(value(&r, "phone-final"), "200");
    assert_eq!(value(&r, "phone-answer-profile"), "RTP/SAVP", "{r:?}");
    assert_eq!(value(&r, "phone-answer-crypto"), "True", "{r:?}");
    assert_eq!(value(&r, "phone-got"), "trunk-1,trunk-2,trunk-3", "{r:?}");
    // A replay and a forgery never reach the provider.
    assert_eq!(value(&r, "trunk-got-forged"), "False", "{r:?}");
}

#[test]
fn plain_phone_through_an_srtp_trunk() {
    let r = run("trunk-srtp", true);
    assert_eq!(value(&r, "trunk-offer-profile"), "RTP/SAVP", "{r:?}");
    assert_eq!(value(&r, "trunk-offer-crypto"), "True", "{r:?}");
    assert_eq!(value(&r, "trunk-got"), "phone-1,phone-2,phone-3", "{r:?}");
    assert_eq!(value(&r, "phone-answer-profile"), "RTP/AVP", "{r:?}");
    assert_eq!(value(&r, "phone-answer-crypto"), "False", "{r:?}");
    assert_eq!(value(&r, "phone-got"), "trunk-1,trunk-2,trunk-3", "{r:?}");
}
