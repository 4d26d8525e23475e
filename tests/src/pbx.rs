//! Helpers for the pbx tests: running besip-pbxd on loopback with a UCI
//! configuration, running sipp scenarios against it, reading its IPC state.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{bin_path, TempRoot};

pub mod media_phone;
pub mod office;
mod scenarios;
mod state_check;
pub use scenarios::*;
pub use state_check::assert_state_valid;

/// A free UDP (and, almost surely, TCP) port on 127.0.0.1.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind probe socket");
        let port = udp.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// UCI text of a PBX on 127.0.0.1:`port` (UDP and TCP) with extensions
/// 100..=103 (password `pw<number>`), alias `boss` → 100, and `extra` appended
/// to the main section.
pub fn config(port: u16, extra_main: &str) -> String {
    let mut s = format!(
        "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'besip.test'\n\toption auth_realm 'besip.test'\n\toption auth_algorithms 'md5'\n{extra_main}\n\
config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '{port}'\n\n\
config listen 'listen_tcp'\n\toption name 'tcp'\n\toption transport 'tcp'\n\toption address '127.0.0.1'\n\toption port '{port}'\n\n"
    );
    for n in 100..=103 {
        s.push_str(&format!(
            "config extension 'extension_{n}'\n\toption number '{n}'\n\toption password 'pw{n}'\n\toption enabled '1'\n\n"
        ));
    }
    s.push_str("config alias 'alias_boss'\n\toption alias 'boss'\n\toption extension '100'\n\n");
    s
}

pub struct Pbx {
    pub root: TempRoot,
    pub port: u16,
    child: Option<Child>,
    /// Log filter of a daemon whose log goes to `log()` instead of the
    /// test's stderr.
    log_filter: Option<String>,
}

impl Pbx {
    /// Starts besip-pbxd with `uci` as its configuration and waits until it answers.
    pub fn start(uci: &str, port: u16) -> Pbx {
        Pbx::start_with(uci, port, None)
    }

    /// `start`, logging at `filter` (e.g. "trace") into a file that `log()`
    /// reads: for tests that check what the daemon writes to its log.
    pub fn start_logged(uci: &str, port: u16, filter: &str) -> Pbx {
        Pbx::start_with(uci, port, Some(filter.to_owned()))
    }

    fn start_with(uci: &str, port: u16, log_filter: Option<String>) -> Pbx {
        let root = TempRoot::new();
        std::fs::write(root.path().join("etc/config/besip_pbx"), uci).expect("write config");
        let mut pbx = Pbx {
            root,
            port,
            child: None,
            log_filter,
        };
        pbx.spawn();
        pbx
    }

    /// Replaces the daemon's configuration file with `uci` and reloads it
    /// (IPC `reload`: the two-phase prepare + apply).
    pub fn reload(&self, uci: &str) -> Result<serde_json::Value, String> {
        std::fs::write(self.root.path().join("etc/config/besip_pbx"), uci).expect("write config");
        self.ipc("reload", serde_json::json!({}))
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("pbx.log")
    }

    /// What a daemon started with `start_logged` has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let (filter, stderr) = match &self.log_filter {
            Some(filter) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log_path())
                    .expect("open the daemon's log");
                (filter.as_str(), Stdio::from(file))
            }
            None => ("besip_pbx=info", Stdio::inherit()),
        };
        let child = Command::new(bin_path("besip-pbxd"))
            .arg("--root")
            .arg(self.root.path())
            .arg("--log-level")
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start besip-pbxd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "besip-pbxd did not open its IPC socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn socket(&self) -> PathBuf {
        self.root.path().join("run/pbx.sock")
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        child.wait().expect("wait for besip-pbxd")
    }

    /// Calls an IPC method and returns its result.
    pub fn ipc(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        crate::harness::ipc_call(&self.socket(), method, params)
    }

    pub fn state(&self) -> serde_json::Value {
        self.ipc("state", serde_json::json!({})).expect("state")
    }

    /// Registrations in the state as (aor, contact) pairs.
    pub fn registrations(&self) -> Vec<(String, String)> {
        let s = self.state();
        s["besip-pbx:pbx"]["registrations"]["registration"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r["aor"].as_str().unwrap_or("").to_owned(),
                            r["contact"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn counter(&self, name: &str) -> u64 {
        let s = self.state();
        let v = &s["besip-pbx:pbx"]["counters"][name];
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_u64())
            .unwrap_or(0)
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// True when sipp is installed (scripts/install-deps installs sip-tester).
pub fn have_sipp() -> bool {
    Command::new("sipp").arg("-v").output().is_ok()
}

/// A sipp run: scenario text, local port, remote port, extra arguments.
pub struct Sipp {
    dir: tempfile::TempDir,
}

impl Default for Sipp {
    fn default() -> Self {
        Self::new()
    }
}

impl Sipp {
    pub fn new() -> Sipp {
        Sipp {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Text of the message trace (-trace_msg) of the scenario run as `name`.
    pub fn messages(&self, name: &str) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if f.starts_with(&format!("{name}_")) && f.ends_with("_messages.log") {
                    out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    fn command(
        &self,
        name: &str,
        scenario: &str,
        local_port: u16,
        pbx_port: u16,
        args: &[&str],
    ) -> Command {
        let path = self.dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, scenario).expect("write scenario");
        let mut cmd = Command::new("sipp");
        cmd.current_dir(self.dir.path())
            .arg(format!("127.0.0.1:{pbx_port}"))
            .arg("-sf")
            .arg(&path)
            .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error"])
            .args(["-trace_err", "-trace_msg"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs a scenario to completion.
    pub fn run(
        &self,
        name: &str,
        scenario: &str,
        local_port: u16,
        pbx_port: u16,
        args: &[&str],
    ) -> SippResult {
        let out = self
            .command(name, scenario, local_port, pbx_port, args)
            .output()
            .expect("run sipp");
        SippResult::new(out, self.dir.path())
    }

    /// Starts a scenario in the background (a UAS waiting for a call).
    pub fn spawn(
        &self,
        name: &str,
        scenario: &str,
        local_port: u16,
        pbx_port: u16,
        args: &[&str],
    ) -> Child {
        let child = self
            .command(name, scenario, local_port, pbx_port, args)
            .spawn()
            .expect("start sipp");
        // sipp needs a moment to bind its socket.
        std::thread::sleep(Duration::from_millis(300));
        child
    }

    pub fn wait(&self, child: Child) -> SippResult {
        SippResult::new(
            child.wait_with_output().expect("wait sipp"),
            self.dir.path(),
        )
    }
}

pub struct SippResult {
    pub success: bool,
    /// sipp's own output plus its error and message traces, for failure messages.
    pub log: String,
}

impl SippResult {
    fn new(out: Output, dir: &Path) -> SippResult {
        let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    log.push_str(&format!("\n--- {} ---\n", p.display()));
                    log.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        SippResult {
            success: out.status.success(),
            log,
        }
    }
}

/// Registers `user` from 127.0.0.1:`local_port` (password pw<user>); panics with the log if it fails.
pub fn register(sipp: &Sipp, user: &str, local_port: u16, pbx_port: u16) {
    let pw = format!("pw{user}");
    let r = sipp.run(
        &format!("reg-{user}-{local_port}"),
        &register_scenario(user, 3600, 200),
        local_port,
        pbx_port,
        &["-au", user, "-ap", &pw],
    );
    assert!(
        r.success,
        "REGISTER of {user} from port {local_port} failed:\n{}",
        r.log
    );
}

/// True when an OPTIONS to the server at 127.0.0.1:`port` over UDP is
/// answered 200 within a second (the keepalive answer of the proxy).
pub fn options_answered(port: u16) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr").port();
    let request = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKopt{me}{port};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p{me}\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: opt{me}-{port}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    if sock
        .send_to(request.as_bytes(), ("127.0.0.1", port))
        .is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => buf[..n].starts_with(b"SIP/2.0 200 "),
        Err(_) => false, // timeout, or port unreachable
    }
}

/// MD5 for the test's own digest computation (RFC 1321), so the test does not
/// share code with the daemon it checks.
pub fn md5_digest(input: &[u8]) -> u128 {
    let s: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(s[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a0.to_le_bytes());
    out[4..8].copy_from_slice(&b0.to_le_bytes());
    out[8..12].copy_from_slice(&c0.to_le_bytes());
    out[12..].copy_from_slice(&d0.to_le_bytes());
    u128::from_be_bytes(out)
}

/// The Authorization header line (MD5, qop=auth, realm besip.test) answering
/// the 401 `challenge` to a REGISTER of `user`.
pub fn register_authorization(challenge: &str, user: &str, password: &str) -> String {
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("nonce");
    let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
    let ha1 = md5(format!("{user}:besip.test:{password}"));
    let ha2 = md5("REGISTER:sip:besip.test".into());
    let resp = md5(format!("{ha1}:{nonce}:00000001:c0:auth:{ha2}"));
    format!("Authorization: Digest username=\"{user}\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0\"\r\n")
}

/// REGISTER over a plain UDP socket with digest credentials computed here
/// (MD5, qop=auth): `lines` are extra header lines (Contact, Expires, Path…).
/// Returns the final response text.
pub fn raw_register(
    sock: &UdpSocket,
    pbx_port: u16,
    user: &str,
    password: &str,
    lines: &str,
    call: &str,
) -> String {
    let me = sock.local_addr().expect("addr");
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK{call}{cseq};rport\r\nFrom: <sip:{user}@besip.test>;tag={call}\r\nTo: <sip:{user}@besip.test>\r\nCall-ID: {call}@test\r\nCSeq: {cseq} REGISTER\r\n{lines}{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            me.port()
        )
    };
    let mut buf = vec![0u8; 65536];
    sock.send_to(request(1, "").as_bytes(), ("127.0.0.1", pbx_port))
        .expect("send");
    let (n, _) = sock.recv_from(&mut buf).expect("challenge");
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("SIP/2.0 401 "), "{r}");
    let auth = register_authorization(&r, user, password);
    sock.send_to(request(2, &auth).as_bytes(), ("127.0.0.1", pbx_port))
        .expect("send");
    let (n, _) = sock.recv_from(&mut buf).expect("final answer to REGISTER");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
