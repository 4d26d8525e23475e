//! The media side of a phone in the media-service tests (conference,
//! voicemail): sipp places the call with an SDP naming this socket, and
//! this socket is the phone's RTP: it sends a tone (PCMU, 20 ms packets)
//! and RFC 4733 key presses to where the box's RTP comes from, and keeps
//! what it hears with arrival times, so that a test can tell which tones
//! reached which phone, when.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::baresip::tone_power;
use crate::rtp_tap::ulaw_to_linear;

struct Inner {
    heard: Mutex<Vec<(Instant, Vec<i16>)>>,
    peer: Mutex<Option<SocketAddr>>,
    tone: Mutex<f64>,
    keys: Mutex<VecDeque<char>>,
}

pub struct MediaPhone {
    pub port: u16,
    inner: Arc<Inner>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaPhone {
    /// A phone saying a `tone` Hz sine (0: silence) once the box talks.
    pub fn start(tone: f64) -> MediaPhone {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
        socket.set_nonblocking(true).expect("nonblocking");
        let port = socket.local_addr().expect("addr").port();
        let inner = Arc::new(Inner {
            heard: Mutex::new(Vec::new()),
            peer: Mutex::new(None),
            tone: Mutex::new(tone),
            keys: Mutex::new(VecDeque::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (i, s) = (inner.clone(), stop.clone());
        let thread = std::thread::spawn(move || run(socket, i, s));
        MediaPhone {
            port,
            inner,
            stop,
            thread: Some(thread),
        }
    }

    /// The SDP offer of this phone: PCMU and telephone-event 101.
    pub fn sdp(&self) -> String {
        format!(
            "v=0\no=phone 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20",
            self.port
        )
    }

    /// Sends to `peer` from now on (a phone told where by its SDP answer).
    pub fn set_peer(&self, peer: SocketAddr) {
        *self.inner.peer.lock().unwrap() = Some(peer);
    }

    pub fn set_tone(&self, tone: f64) {
        *self.inner.tone.lock().unwrap() = tone;
    }

    /// Presses `keys` (RFC 4733), 200 ms apart.
    pub fn press(&self, keys: &str) {
        self.inner.keys.lock().unwrap().extend(keys.chars());
    }

    /// Where the box's RTP comes from, once it came.
    pub fn peer(&self) -> Option<SocketAddr> {
        *self.inner.peer.lock().unwrap()
    }

    /// Waits until the box's RTP arrives.
    pub fn wait_peer(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.peer() {
                return p;
            }
            assert!(Instant::now() < deadline, "no RTP from the box");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the phone heard from `from` to `to`.
    pub fn heard_between(&self, from: Instant, to: Instant) -> Vec<i16> {
        self.inner
            .heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .flat_map(|(_, s)| s.iter().copied())
            .collect()
    }

    /// What the phone heard in the last `window`.
    pub fn heard_last(&self, window: Duration) -> Vec<i16> {
        let now = Instant::now();
        self.heard_between(now - window, now)
    }

    /// True when some 200 ms stretch since `since` holds `freq`.
    pub fn heard_tone_since(&self, since: Instant, freq: f64) -> bool {
        let all = self.heard_between(since, Instant::now());
        all.chunks(1600)
            .any(|c| c.len() == 1600 && holds(c, freq, 0.3))
    }
}

impl Drop for MediaPhone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// True when `freq` carries at least `share` of the power of `samples`.
pub fn holds(samples: &[i16], freq: f64, share: f64) -> bool {
    if samples.is_empty() {
        return false;
    }
    let n = samples.len() as f64;
    let total = samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n;
    // A sine of mean power P gives Goertzel power P·n²/2.
    total > 100.0 && 2.0 * tone_power(samples, 8000, freq) / (n * n) >= share * total
}

fn mu_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(32635) + 0x84;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while pcm & mask == 0 && exponent > 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

fn packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn key_code(k: char) -> u8 {
    match k {
        '0'..='9' => k as u8 - b'0',
        '*' => 10,
        '#' => 11,
        _ => 12,
    }
}

fn run(socket: UdpSocket, inner: Arc<Inner>, stop: Arc<AtomicBool>) {
    let ssrc = 0x1234_5678 ^ u32::from(socket.local_addr().map(|a| a.port()).unwrap_or(0));
    let (mut seq, mut ts, mut phase) = (1u16, 160u32, 0u64);
    let mut buf = [0u8; 2048];
    let mut key_pause = 0u32;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        next += Duration::from_millis(20);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            if len < 12 || buf[0] >> 6 != 2 {
                continue;
            }
            let mut peer = inner.peer.lock().unwrap();
            if peer.is_none() {
                *peer = Some(from);
            }
            if buf[1] & 0x7F != 0 || Some(from) != *peer {
                continue;
            }
            let start = 12 + 4 * usize::from(buf[0] & 0x0F);
            let samples: Vec<i16> = buf[start.min(len)..len]
                .iter()
                .map(|&b| ulaw_to_linear(b))
                .collect();
            inner.heard.lock().unwrap().push((Instant::now(), samples));
        }
        let Some(peer) = *inner.peer.lock().unwrap() else {
            continue;
        };
        let tone = *inner.tone.lock().unwrap();
        let payload: Vec<u8> = (0..160)
            .map(|_| {
                let s = if tone > 0.0 {
                    8000.0 * (std::f64::consts::TAU * tone * phase as f64 / 8000.0).sin()
                } else {
                    0.0
                };
                phase += 1;
                mu_encode(s as i16)
            })
            .collect();
        let _ = socket.send_to(&packet(0, seq == 1, seq, ts, ssrc, &payload), peer);
        seq = seq.wrapping_add(1);
        if key_pause > 0 {
            key_pause -= 1;
        } else if let Some(k) = inner.keys.lock().unwrap().pop_front() {
            // One event: three updates and the end three times, one timestamp.
            let code = key_code(k);
            for (i, end) in [
                (1u16, false),
                (2, false),
                (3, false),
                (4, true),
                (4, true),
                (4, true),
            ] {
                let flags = if end { 0x80 | 10 } else { 10 };
                let dur = (160 * i).to_be_bytes();
                let _ = socket.send_to(
                    &packet(
                        101,
                        i == 1 && !end,
                        seq,
                        ts,
                        ssrc,
                        &[code, flags, dur[0], dur[1]],
                    ),
                    peer,
                );
                seq = seq.wrapping_add(1);
            }
            key_pause = 10;
        }
        ts = ts.wrapping_add(160);
    }
}

/// A sipp caller scenario: `user` calls `callee` with `sdp` (digest auth
/// with -au/-ap), then either hangs up after `hang_up_ms` or (None) waits
/// for the box's BYE and answers it.
pub fn media_caller(user: &str, callee: &str, sdp: &str, hang_up_ms: Option<u32>) -> String {
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE sip:{callee}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]m[call_number]
To: <sip:{callee}@besip.test>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
{auth}Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}
"
        )
    };
    let end = match hang_up_ms {
        Some(ms) => format!(
            r#"  <pause milliseconds="{ms}"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]m[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
"#
        ),
        None => r#"  <recv request="BYE" timeout="60000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"#
        .to_owned(),
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="media caller">
  <send retrans="500"><![CDATA[
{}]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[
ACK sip:{callee}@besip.test SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
{}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]m[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
{end}</scenario>
"#,
        invite(1, ""),
        invite(2, "[authentication]\n")
    )
}

/// A caller whose call is refused with `code` after authenticating.
pub fn media_caller_refused(user: &str, callee: &str, sdp: &str, code: u16) -> String {
    let ok = media_caller(user, callee, sdp, Some(0));
    let head = &ok[..ok.find("  <recv response=\"180\"").expect("scenario shape")];
    format!(
        r#"{head}  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:{callee}@besip.test SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"#
    )
}

/// `user` (password pw<user>) calls `callee` offering `sdp` and the box
/// must refuse with `code`.
pub fn refused_call(
    sipp: &crate::pbx::Sipp,
    name: &str,
    (user, callee): (&str, &str),
    sdp: &str,
    code: u16,
    pbx_port: u16,
) -> crate::pbx::SippResult {
    let pw = format!("pw{user}");
    sipp.run(
        name,
        &media_caller_refused(user, callee, sdp, code),
        crate::pbx::free_port(),
        pbx_port,
        &["-au", user, "-ap", &pw],
    )
}

/// `user` (password pw<user>) calls `callee` offering `sdp` in the
/// background (`media_caller`: hangs up after `hang_up_ms`, or waits for
/// the box's BYE).
pub fn spawn_call(
    sipp: &crate::pbx::Sipp,
    name: &str,
    (user, callee): (&str, &str),
    sdp: &str,
    hang_up_ms: Option<u32>,
    pbx_port: u16,
) -> std::process::Child {
    let pw = format!("pw{user}");
    sipp.spawn(
        name,
        &media_caller(user, callee, sdp, hang_up_ms),
        crate::pbx::free_port(),
        pbx_port,
        &["-au", user, "-ap", &pw],
    )
}
