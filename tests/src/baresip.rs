//! Debian's baresip (1.0) as a real phone: a configuration directory of its
//! own, its SIP trace (`-s`), remote control over ctrl_tcp (netstring JSON
//! commands, responses and events), what it heard recorded by the sndfile
//! module, and the audio helpers to check a recording (WAV in, dominant
//! frequency out) and to make a tone for `aufile` to play.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How one phone is set up.
pub struct PhoneConfig {
    /// The accounts line, e.g. `<sip:100@besip.test>;auth_pass=pw100;…`.
    pub account: String,
    /// `sip_listen`: the address and port SIP is bound to.
    pub sip_listen: String,
    /// `net_interface`: the address baresip names in Contact and SDP (and
    /// binds SIP to); None lets it pick one. Its RTP sockets are bound to
    /// the wildcard address whatever this says.
    pub address: Option<String>,
    /// `audio_source`: module and device, e.g. `ausine,440` or `aufile,<wav>`.
    pub audio_source: String,
    /// Sample rate and channels of the source (ausine needs 48000/2,
    /// aufile the WAV's own) and of the player.
    pub audio_format: (u32, u8),
    /// `rtp_ports`.
    pub rtp_ports: Option<(u16, u16)>,
    /// Record what is sent and heard (sndfile: `dump-*-enc.wav`, `-dec.wav`),
    /// without a jitter buffer.
    pub record: bool,
    /// `sip_cafile`.
    pub cafile: Option<PathBuf>,
    /// ctrl_tcp's listen address.
    pub control: SocketAddr,
    /// More modules (e.g. `srtp.so`).
    pub modules: Vec<String>,
}

impl PhoneConfig {
    /// A phone for `account` controlled on `control`, playing a 440 Hz sine.
    pub fn new(account: String, control: SocketAddr) -> PhoneConfig {
        PhoneConfig {
            account,
            sip_listen: "127.0.0.1:0".into(),
            address: None,
            audio_source: "ausine,440".into(),
            audio_format: (48000, 2),
            rtp_ports: None,
            record: false,
            cafile: None,
            control,
            modules: Vec::new(),
        }
    }

    fn text(&self, dir: &Path) -> String {
        let (rate, channels) = self.audio_format;
        let source_module = self.audio_source.split(',').next().unwrap_or("ausine");
        // No sound device: the player is a bridge nobody reads.
        let mut c = format!(
            "poll_method\t\tepoll\nsip_listen\t\t{}\n\
             audio_player\t\taubridge,nowhere\naudio_source\t\t{}\naudio_alert\t\taubridge,nowhere\n\
             ausrc_srate\t\t{rate}\nausrc_channels\t\t{channels}\nauplay_srate\t\t{rate}\nauplay_channels\t\t{channels}\n\
             module_path\t\t/usr/lib/baresip/modules\nmodule\t\t\tg711.so\nmodule\t\t\t{source_module}.so\n\
             module\t\t\taubridge.so\n",
            self.sip_listen, self.audio_source
        );
        for m in &self.modules {
            c.push_str(&format!("module\t\t\t{m}\n"));
        }
        if self.record {
            // No jitter buffer: what arrives is decoded and recorded at once.
            c.push_str(&format!(
                "module\t\t\tsndfile.so\nsnd_path\t\t{}\njitter_buffer_delay\t0-0\n",
                dir.display()
            ));
        }
        if let Some(a) = &self.address {
            c.push_str(&format!("net_interface\t\t{a}\n"));
        }
        if let Some((min, max)) = self.rtp_ports {
            c.push_str(&format!("rtp_ports\t\t{min}-{max}\n"));
        }
        if let Some(ca) = &self.cafile {
            c.push_str(&format!("sip_cafile\t\t{}\n", ca.display()));
        }
        c.push_str(&format!(
            "module_app\t\taccount.so\nmodule_app\t\tmenu.so\nmodule_app\t\tctrl_tcp.so\nctrl_tcp_listen\t\t{}\n",
            self.control
        ));
        c
    }
}

/// A running baresip; killed on drop. It lives in the network namespace of
/// the thread that started it.
pub struct Baresip {
    child: Child,
    trace: PathBuf,
    control: SocketAddr,
    dir: tempfile::TempDir,
}

impl Baresip {
    pub fn start(config: &PhoneConfig) -> Baresip {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config"), config.text(dir.path())).expect("write config");
        std::fs::write(dir.path().join("accounts"), format!("{}\n", config.account))
            .expect("write accounts");
        std::fs::write(dir.path().join("contacts"), "").expect("write contacts");
        let trace = dir.path().join("trace.txt");
        let out = std::fs::File::create(&trace).expect("trace file");
        let err = out.try_clone().expect("trace file");
        // -s: the SIP trace (every message sent and received) on stdout.
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .arg("-s")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start baresip");
        Baresip {
            child,
            trace,
            control: config.control,
            dir,
        }
    }

    /// The SIP trace and log so far, without terminal colours.
    pub fn trace(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.trace).unwrap_or_default())
    }

    /// A remote control connection (waits up to 5 s for ctrl_tcp).
    pub fn control(&self) -> Control {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(self.control) {
                Ok(stream) => {
                    return Control {
                        stream,
                        buf: Vec::new(),
                        events: Vec::new(),
                        seen: 0,
                        token: 0,
                    }
                }
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "ctrl_tcp on {}: {e}\n{}",
                    self.control,
                    self.trace()
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the phone heard (sndfile's decoder dumps, oldest first). baresip
    /// 1.0 records nothing after a hold: its decoder's filters are dropped
    /// when a stream turns sendonly/recvonly and never set up again.
    pub fn heard(&self) -> Vec<i16> {
        self.recordings("-dec.wav")
            .iter()
            .flat_map(|p| wav_samples(p))
            .collect()
    }

    /// The sample rate of what the phone heard (its decoder's, e.g. 16000
    /// for G.722), from the first recording's header.
    pub fn heard_rate(&self) -> Option<u32> {
        let first = self.recordings("-dec.wav").into_iter().next()?;
        let bytes = std::fs::read(first).ok()?;
        Some(u32::from_le_bytes(bytes.get(24..28)?.try_into().ok()?))
    }

    fn recordings(&self, suffix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ctrl_tcp connection: commands with their responses, events kept in
/// the order they came.
pub struct Control {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every event received so far.
    pub events: Vec<serde_json::Value>,
    /// Events before this index were already returned by `wait_event`.
    seen: usize,
    token: u32,
}

impl Control {
    /// Sends `command` and returns its response (within 5 s).
    pub fn command(&mut self, command: &str, params: &str) -> serde_json::Value {
        self.token += 1;
        let token = format!("t{}", self.token);
        let js =
            serde_json::json!({"command": command, "params": params, "token": token}).to_string();
        self.stream
            .write_all(format!("{}:{js},", js.len()).as_bytes())
            .expect("ctrl_tcp write");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|m| m["response"] == true && m["token"] == token.as_str())
            {
                return self.events.remove(i);
            }
            assert!(
                Instant::now() < deadline,
                "no response to {command}: {:?}",
                self.events
            );
            self.poll(deadline);
        }
    }

    /// The next event of `kind` (CALL_ESTABLISHED, CALL_CLOSED…) not yet
    /// returned, within `timeout`.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events[self.seen..]
                .iter()
                .position(|e| e["event"] == true && e["type"] == kind)
            {
                self.seen += i + 1;
                return Some(self.events[self.seen - 1].clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.poll(deadline);
        }
    }

    /// Reads what arrives until `deadline` (at most 100 ms), netstrings into `events`.
    fn poll(&mut self, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut chunk = [0u8; 65536];
        if let Ok(n) = self.stream.read(&mut chunk) {
            self.buf.extend_from_slice(&chunk[..n]);
        }
        while let Some(colon) = self.buf.iter().position(|&b| b == b':') {
            let Some(len) = std::str::from_utf8(&self.buf[..colon])
                .ok()
                .and_then(|l| l.parse::<usize>().ok())
            else {
                panic!(
                    "bad netstring from ctrl_tcp: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            };
            let end = colon + 1 + len;
            if self.buf.len() < end + 1 {
                break;
            }
            let msg = serde_json::from_slice(&self.buf[colon + 1..end]).expect("ctrl_tcp JSON");
            self.events.push(msg);
            self.buf.drain(..=end);
        }
    }
}

/// True when baresip is installed (scripts/install-deps installs baresip-core).
pub fn have_baresip() -> bool {
    Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One message of a baresip SIP trace.
pub struct TracedMessage {
    pub transport: String,
    pub from: String,
    pub to: String,
    pub text: String,
}

/// The messages of a baresip SIP trace, in order.
pub fn messages(trace: &str) -> Vec<TracedMessage> {
    let mut out: Vec<TracedMessage> = Vec::new();
    for line in trace.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [tp @ ("UDP" | "TCP" | "TLS"), from, "->", to] = words.as_slice() {
            out.push(TracedMessage {
                transport: tp.to_string(),
                from: from.to_string(),
                to: to.to_string(),
                text: String::new(),
            });
        } else if let Some(m) = out.last_mut() {
            m.text.push_str(line);
            m.text.push('\n');
        }
    }
    out
}

/// Writes `secs` seconds of a `freq` Hz sine as a 16-bit mono WAV at `rate`.
pub fn write_tone_wav(path: &Path, freq: f64, secs: u32, rate: u32) {
    let n = rate * secs;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let t = f64::from(i) / f64::from(rate);
        let v = (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).expect("write WAV");
}

/// The 16-bit samples of a WAV file, also one still being written (the
/// sizes in its header are then not final: everything after the `data`
/// chunk's header is taken).
pub fn wav_samples(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if id == b"data" {
            return bytes[at + 8..]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        at += 8 + size + size % 2;
    }
    Vec::new()
}

/// Power of `freq` in `samples` (Goertzel).
pub fn tone_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequency of `samples` between 100 Hz and 3900 Hz, in 5 Hz steps.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    (20..=780)
        .map(|k| f64::from(k) * 5.0)
        .map(|f| (f, tone_power(samples, rate, f)))
        .fold(
            (0.0, f64::MIN),
            |best, x| if x.1 > best.1 { x } else { best },
        )
        .0
}

/// Root mean square of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_tone_reads_back_at_its_frequency() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.wav");
        write_tone_wav(&path, 1000.0, 1, 8000);
        let samples = wav_samples(&path);
        assert_eq!(samples.len(), 8000);
        assert_eq!(dominant_frequency(&samples[..1600], 8000), 1000.0);
        assert!(rms(&samples) > 5000.0);
    }
}
