//! Helpers for the monitoring tests: writing pcap files with synthetic RTP
//! and SIP traffic of known quality, and running `besip-monitord analyze` and
//! `tshark -z rtp,streams` on them.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use crate::harness::bin_path;

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// A pcap file being built in memory (records in push order).
pub struct Pcap {
    pub linktype: u32,
    pub records: Vec<(f64, Vec<u8>)>,
}

impl Pcap {
    pub fn new(linktype: u32) -> Self {
        Pcap {
            linktype,
            records: Vec::new(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&self.linktype.to_le_bytes());
        for (ts, frame) in &self.records {
            let secs = ts.floor();
            let usec = ((ts - secs) * 1e6).round() as u32;
            out.extend_from_slice(&(secs as u32).to_le_bytes());
            out.extend_from_slice(&usec.min(999_999).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(frame);
        }
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).expect("write pcap");
    }
}

fn checksum16(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IP + UDP packet carrying `payload` (UDP checksum 0 on IPv4; computed on IPv6).
pub fn ip_udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = checksum16(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&udp);
            ip
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pseudo.extend_from_slice(&udp);
            let c = checksum16(&pseudo);
            udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&udp_len.to_be_bytes());
            ip.extend_from_slice(&[17, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&udp);
            ip
        }
        _ => panic!("mixed address families"),
    }
}

/// Wraps an IP packet in the link header of `linktype` (Ethernet with an
/// optional 802.1Q tag, Linux cooked v1 or v2).
pub fn link(linktype: u32, vlan: Option<u16>, ip: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    let mut f = Vec::new();
    match linktype {
        LINKTYPE_ETHERNET => {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
            if let Some(tag) = vlan {
                f.extend_from_slice(&[0x81, 0x00]);
                f.extend_from_slice(&tag.to_be_bytes());
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LINKTYPE_LINUX_SLL => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LINKTYPE_LINUX_SLL2 => {
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 1, 0, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        }
        other => panic!("unsupported link type {other}"),
    }
    f.extend_from_slice(ip);
    f
}

pub fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat(0xd5).take(payload_len));
    p
}

/// A synthetic RTP stream of known quality (20 ms packets, 8 kHz clock).
#[derive(Clone)]
pub struct StreamSpec {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub ssrc: u32,
    pub pt: u8,
    pub count: u32,
    pub first_seq: u16,
    pub start: f64,
    /// Indices (0-based packet numbers) never sent.
    pub dropped: Vec<u32>,
    /// Indices whose packet arrives after the next one.
    pub swapped: Vec<u32>,
    /// Indices sent twice.
    pub duplicated: Vec<u32>,
    /// Arrival jitter amplitude in ms (deterministic pseudo-random, < 20).
    pub jitter_ms: f64,
    /// Indices that are telephone-event (PT 101) packets instead of voice.
    pub events: Vec<u32>,
}

impl StreamSpec {
    pub fn new(src: &str, sport: u16, dst: &str, dport: u16, ssrc: u32, count: u32) -> Self {
        StreamSpec {
            src: src.parse().expect("src address"),
            sport,
            dst: dst.parse().expect("dst address"),
            dport,
            ssrc,
            pt: 8,
            count,
            first_seq: 1000,
            start: 1_700_000_000.0,
            dropped: Vec::new(),
            swapped: Vec::new(),
            duplicated: Vec::new(),
            jitter_ms: 0.0,
            events: Vec::new(),
        }
    }

    /// (arrival time, IP packet) in arrival order.
    pub fn packets(&self) -> Vec<(f64, Vec<u8>)> {
        let mut order: Vec<u32> = (0..self.count).collect();
        for &i in &self.swapped {
            let i = i as usize;
            if i + 1 < order.len() {
                order.swap(i, i + 1);
            }
        }
        let mut rng: u64 = u64::from(self.ssrc) | 1;
        let mut out = Vec::new();
        for (pos, &i) in order.iter().enumerate() {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((rng >> 33) as f64 / (1u64 << 31) as f64) * self.jitter_ms / 1000.0;
            let arrival = self.start + pos as f64 * 0.020 + noise;
            if self.dropped.contains(&i) {
                continue;
            }
            let pt = if self.events.contains(&i) {
                101
            } else {
                self.pt
            };
            let payload = rtp(
                pt,
                i == 0,
                self.first_seq.wrapping_add(i as u16),
                160 * i,
                self.ssrc,
                if pt == 101 { 4 } else { 160 },
            );
            let ip = ip_udp(self.src, self.sport, self.dst, self.dport, &payload);
            if self.duplicated.contains(&i) {
                out.push((arrival, ip.clone()));
                out.push((arrival + 0.001, ip));
            } else {
                out.push((arrival, ip));
            }
        }
        out
    }
}

/// Merges packets of several sources by arrival time (stable) into a pcap.
pub fn capture(linktype: u32, vlan: Option<u16>, mut packets: Vec<(f64, Vec<u8>)>) -> Pcap {
    packets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut pcap = Pcap::new(linktype);
    for (ts, ip) in packets {
        pcap.records.push((ts, link(linktype, vlan, &ip)));
    }
    pcap
}

/// A SIP message from alice to bob; with `sdp`, a PCMU + telephone-event
/// offer/answer for that media address and port.
pub fn sip_message(start: &str, call_id: &str, cseq: &str, sdp: Option<(&str, u16)>) -> Vec<u8> {
    let body = sdp.map(|(addr, port)| {
        format!("v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
    });
    let mut m = format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bK1\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"
    );
    match &body {
        Some(b) => m.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => m.push_str("Content-Length: 0\r\n\r\n"),
    }
    m.into_bytes()
}

/// `besip-monitord analyze FILE --format json` parsed, plus stderr.
pub fn analyze_json(file: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let out = Command::new(bin_path("besip-monitord"))
        .arg("analyze")
        .arg(file)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .expect("run besip-monitord analyze");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "analyze {} failed: {stderr}",
        file.display()
    );
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "analyze output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (v, stderr)
}

/// One row of `tshark -q -z rtp,streams`.
#[derive(Debug, Clone)]
pub struct TsharkStream {
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    pub ssrc: u32,
    pub packets: u64,
    pub lost: i64,
    pub max_delta_ms: f64,
    pub mean_jitter_ms: f64,
    pub max_jitter_ms: f64,
}

pub fn have_tshark() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs tshark's RTP stream statistics (heuristic RTP on) and parses the rows.
pub fn tshark_streams(file: &Path) -> Vec<TsharkStream> {
    let out = Command::new("tshark")
        .args([
            "-q",
            "-o",
            "rtp.heuristic_rtp:TRUE",
            "-z",
            "rtp,streams",
            "-r",
        ])
        .arg(file)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 17 || !t[6].starts_with("0x") {
            continue;
        }
        let num = |s: &str| {
            s.parse::<f64>()
                .unwrap_or_else(|_| panic!("tshark field {s:?} in {line}"))
        };
        rows.push(TsharkStream {
            src: t[2].to_string(),
            sport: t[3].parse().expect("port"),
            dst: t[4].to_string(),
            dport: t[5].parse().expect("port"),
            ssrc: u32::from_str_radix(&t[6][2..], 16).expect("ssrc"),
            packets: t[8].parse().expect("packets"),
            lost: t[9].parse().expect("lost"),
            max_delta_ms: num(t[13]),
            mean_jitter_ms: num(t[15]),
            max_jitter_ms: num(t[16]),
        });
    }
    rows
}

/// A running besip-monitord with its own root.
pub struct Monitord {
    pub root: crate::harness::TempRoot,
    pub child: std::process::Child,
}

impl Monitord {
    /// Writes `uci` as the besip_monitoring package and starts the daemon;
    /// waits for its IPC socket.
    pub fn start(uci: &str) -> Monitord {
        let root = crate::harness::TempRoot::new();
        std::fs::write(root.path().join("etc/config/besip_monitoring"), uci).expect("write UCI");
        Self::start_in(root)
    }

    /// Starts the daemon on a root whose UCI files exist already (e.g.
    /// rendered by besip-netconfd).
    pub fn start_in(root: crate::harness::TempRoot) -> Monitord {
        let child = Command::new(bin_path("besip-monitord"))
            .arg("--root")
            .arg(root.path())
            .args(["--log-level", "debug", "--foreground"])
            .stderr(std::fs::File::create(root.path().join("monitord.log")).expect("log file"))
            .spawn()
            .expect("start besip-monitord");
        let m = Monitord { root, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !m.socket().exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "besip-monitord did not open its IPC socket"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        m
    }

    pub fn socket(&self) -> std::path::PathBuf {
        self.root.path().join("run/monitoring.sock")
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("monitord.log")).unwrap_or_default()
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.root.path().join("var/lib/besip/monitoring.db")
    }

    /// SIGTERM and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "besip-monitord did not stop on SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Monitord {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on 127.0.0.1 whose successor is free too (RTP + RTCP).
pub fn free_udp_pair() -> u16 {
    loop {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind probe");
        let p = s.local_addr().expect("addr").port();
        if p % 2 == 0 && p < 65000 && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// IPv4 + TCP segment (PSH|ACK) carrying `payload`; checksums are not checked by the analyzers.
pub fn ip4_tcp(
    src: std::net::Ipv4Addr,
    sport: u16,
    dst: std::net::Ipv4Addr,
    dport: u16,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + 20 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 2, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum16(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&sport.to_be_bytes());
    ip.extend_from_slice(&dport.to_be_bytes());
    ip.extend_from_slice(&seq.to_be_bytes());
    ip.extend_from_slice(&1u32.to_be_bytes());
    ip.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    ip.extend_from_slice(payload);
    ip
}

/// Whether sipp and sip-tester's g711a.pcap (for uac_pcap) are installed.
pub fn have_sipp() -> bool {
    Path::new("/usr/share/sip-tester/g711a.pcap").exists()
}

/// One real call on loopback: sipp uas (RTP echo) on `sip_port`, sipp
/// uac_pcap from `sip_port + 1` playing g711a.pcap (236 PCMA packets, ~5 s);
/// media ports from `mp` (uas) and `mp + 8` (uac). Panics if the call fails.
pub fn sipp_echo_call(sip_port: u16, mp: u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    // uac_pcap opens pcap/g711a.pcap relative to its cwd.
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap")).expect("symlink");
    let mut uas = Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &sip_port.to_string()])
        .args(["-rtp_echo", "-mp", &mp.to_string(), "-m", "1", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start sipp uas");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let uac = Command::new("timeout")
        .current_dir(dir.path())
        .args([
            "60",
            "sipp",
            "-sn",
            "uac_pcap",
            &format!("127.0.0.1:{sip_port}"),
        ])
        .args(["-i", "127.0.0.1", "-p", &(sip_port + 1).to_string()])
        .args(["-mp", &(mp + 8).to_string(), "-m", "1", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run sipp uac");
    let _ = uas.kill();
    let _ = uas.wait();
    assert!(uac.success(), "sipp uac_pcap call failed");
}
