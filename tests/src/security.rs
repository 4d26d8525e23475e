//! Helpers for the besip-secd tests: a network namespace of the test's own, the
//! daemon running inside it, a tiny SIP registrar answering on 127.0.0.1:5060,
//! and UDP senders bound to chosen 127.0.0.x addresses inside the namespace.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{bin_path, TempRoot};

/// True when the tools the namespace tests need are installed (prints why not).
pub fn tools_present(tools: &[&str]) -> bool {
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("SKIP: '{t}' is not installed (scripts/install-deps installs it)");
            return false;
        }
    }
    true
}

/// A network namespace created for one test and deleted on drop (even on panic).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("besip-sec-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(ok.success(), "ip netns add {name} failed");
        let ns = Netns { name };
        assert!(ns.run(&["ip", "link", "set", "lo", "up"]).status.success());
        ns
    }

    /// Run a command inside the namespace and wait for it.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    pub fn run_text(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout).into_owned()
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Move the calling thread into the namespace (sockets it opens live there).
    pub fn enter_thread(&self) {
        let path = format!("/var/run/netns/{}", self.name);
        let f = std::fs::File::open(&path).expect("open netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only the calling thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {path} failed");
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn udp(&self, addr: &str) -> UdpSocket {
        let name = self.name.clone();
        let addr = addr.to_owned();
        std::thread::spawn(move || {
            Netns { name }.enter_thread_no_drop();
            UdpSocket::bind(addr).expect("bind udp in netns")
        })
        .join()
        .expect("netns thread")
    }

    fn enter_thread_no_drop(self) {
        self.enter_thread();
        std::mem::forget(self);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// besip-secd running inside a namespace; killed on drop.
pub struct SecDaemon {
    pub child: Child,
    pub root: PathBuf,
}

impl SecDaemon {
    pub fn start(ns: &Netns, root: &TempRoot) -> SecDaemon {
        // A stale socket from a previous run must not be taken for the new daemon's.
        let _ = std::fs::remove_file(root.path().join("run/security.sock"));
        let log = std::fs::File::create(root.path().join("secd.log")).expect("log file");
        let child = ns
            .command(&bin_path("besip-secd"))
            .args(["--root"])
            .arg(root.path())
            .args(["--foreground", "--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn besip-secd");
        let sock = root.path().join("run/security.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "besip-secd did not open its socket; log:\n{}",
                std::fs::read_to_string(root.path().join("secd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The capture starts right after the socket; give libpcap a moment.
        std::thread::sleep(Duration::from_millis(300));
        SecDaemon {
            child,
            root: root.path().to_owned(),
        }
    }

    pub fn stop(mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("secd.log")).unwrap_or_default()
    }

    /// Calls `method` of the daemon's IPC.
    pub fn call(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        crate::harness::ipc_call(&self.root.join("run/security.sock"), method, params)
    }
}

impl Drop for SecDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A REGISTER from `user` (tiny, enough for the responder and the detector).
pub fn register(user: &str, from: &str, seq: u64, ua: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{seq}x{user}\r\nFrom: <sip:{user}@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {user}-{seq}@{from}\r\nCSeq: {seq} REGISTER\r\nContact: <sip:{user}@{from}>\r\nUser-Agent: {ua}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A minimal registrar on 127.0.0.1:5060 inside the namespace: 200 OK to every
/// REGISTER, except 401 to users whose name starts with "brute". Counts requests per source.
pub struct Responder {
    stop: Arc<AtomicBool>,
    pub seen: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    pub fn start(ns: &Netns) -> Responder {
        let sock = ns.udp("127.0.0.1:5060");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let (flag, counts) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                *counts
                    .lock()
                    .expect("lock")
                    .entry(peer.ip().to_string())
                    .or_insert(0) += 1;
                let text = String::from_utf8_lossy(&buf[..n]);
                if !text.starts_with("REGISTER ") {
                    continue;
                }
                let header = |name: &str| {
                    text.lines()
                        .find(|l| {
                            l.to_ascii_lowercase()
                                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                        })
                        .unwrap_or("")
                        .to_owned()
                };
                let to = header("To");
                let status = if to.contains("sip:brute") {
                    "401 Unauthorized"
                } else {
                    "200 OK"
                };
                let reply = format!(
                    "SIP/2.0 {status}\r\n{}\r\n{}\r\n{};tag=srv\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
                    header("Via"), header("From"), to.trim_end(), header("Call-ID"), header("CSeq")
                );
                let _ = sock.send_to(reply.as_bytes(), peer);
            }
        });
        Responder {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn count(&self, addr: &str) -> u64 {
        self.seen
            .lock()
            .expect("lock")
            .get(addr)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A legitimate phone on `addr` registering every `every` until `stop`; counts (sent, answered).
pub fn legit_client(
    ns: &Netns,
    addr: &str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    let sock = ns.udp(&format!("{addr}:0"));
    let from = sock.local_addr().expect("addr").to_string();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let answered = AtomicU64::new(0);
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            sent += 1;
            let msg = register("alice", &from, sent, "LegitPhone/1.0");
            let _ = sock.send_to(msg.as_bytes(), "127.0.0.1:5060");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(500) {
                if let Ok(n) = sock.recv(&mut buf) {
                    if buf[..n].starts_with(b"SIP/2.0 200")
                        && String::from_utf8_lossy(&buf[..n])
                            .contains(&format!("CSeq: {sent} REGISTER"))
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            std::thread::sleep(every.saturating_sub(t0.elapsed()));
        }
        (sent, answered.load(Ordering::Relaxed))
    })
}

/// Write the UCI package the way core renders it (defaults included where the test relies on them).
pub fn write_config(root: &TempRoot, backend: &str, set: &str, extra: &str) {
    let text = format!(
        "package besip_security\n\nconfig security 'main'\n\toption enabled '1'\n\toption firewall_backend '{backend}'\n\toption firewall_set_name '{set}'\n\tlist capture_interface 'lo'\n\tlist capture_sip_port '5060'\n\toption auth_failure_count '10'\n\toption auth_failure_window '60'\n\toption auth_failure_ban_time '3600'\n\tlist whitelist '127.0.0.5/32'\n\tlist whitelist 'fd00::/8'\n{extra}\nconfig rule 'rule_register'\n\toption name 'register'\n\toption method 'REGISTER'\n\toption count '50'\n\toption window '5'\n\toption ban_time '600'\n\nconfig rule 'rule_short'\n\toption name 'short'\n\toption method 'OPTIONS'\n\toption count '5'\n\toption window '5'\n\toption ban_time '2'\n"
    );
    std::fs::write(root.path().join("etc/config/besip_security"), text).expect("write config");
}

/// `count` OPTIONS from `from` (a 127.0.0.x inside the namespace) to
/// 127.0.0.1:5060, 20 ms apart: enough to cross a "5 in 5 s" rule.
pub fn options_burst(ns: &Netns, from: &str, count: u64) {
    let sender = ns.udp(&format!("{from}:0"));
    for seq in 0..count {
        let msg = register("999", from, seq, "flooder").replacen("REGISTER", "OPTIONS", 2);
        let _ = sender.send_to(msg.as_bytes(), "127.0.0.1:5060");
        std::thread::sleep(Duration::from_millis(20));
    }
}
