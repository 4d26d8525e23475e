//! A real DNS server for the tests: dnsmasq on 127.0.0.1 and a port of the
//! test's own, serving only the records the test gives it (NAPTR, SRV,
//! host records), and a DNS "server" that never answers.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when dnsmasq is installed (scripts/install-deps installs dnsmasq-base).
pub fn have_dnsmasq() -> bool {
    Command::new("dnsmasq").arg("--version").output().is_ok()
}

/// A running dnsmasq; stopped when dropped.
pub struct Dnsmasq {
    pub port: u16,
    child: Option<Child>,
}

impl Dnsmasq {
    /// Serves `records` (dnsmasq options such as `--srv-host=…`) on
    /// 127.0.0.1:`port` with TTL `ttl` seconds, and waits until it answers.
    pub fn start(port: u16, ttl: u32, records: &[String]) -> Dnsmasq {
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                // Names under .test are ours: unknown ones get NXDOMAIN, not REFUSED.
                "--local=/test/",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--local-ttl={ttl}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let d = Dnsmasq {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(port) {
            assert!(
                Instant::now() < deadline,
                "dnsmasq does not answer on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A query for the A record of "probe.test" (RFC 1035 §4.1).
fn probe_query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["probe", "test"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether a DNS server on 127.0.0.1:`port` answers at all.
fn answers(port: u16) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    if sock.send_to(&probe_query(), ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[..2] == [0x12, 0x34])
}

/// `--host-record` of `name` at `ip`.
pub fn host(name: &str, ip: &str) -> String {
    format!("--host-record={name},{ip}")
}

/// `--srv-host` of `service` (`_sip._udp.example.test`).
pub fn srv(service: &str, target: &str, port: u16, priority: u16, weight: u16) -> String {
    format!("--srv-host={service},{target},{port},{priority},{weight}")
}

/// `--naptr-record` of `name` pointing at SRV name `replacement` ("s" flag).
pub fn naptr(name: &str, order: u16, preference: u16, service: &str, replacement: &str) -> String {
    format!("--naptr-record={name},{order},{preference},s,{service},,{replacement}")
}

/// A UDP socket on 127.0.0.1 that reads DNS queries and never answers:
/// (port, number of queries it got so far).
pub fn silent_dns_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind silent DNS server");
    let port = sock.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Lives as long as the test process.
        while sock.recv_from(&mut buf).is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    (port, got)
}
