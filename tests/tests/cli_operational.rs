//! Operational commands of `besip` with a real besip-pbxd behind
//! besip-netconfd: `show pbx <state>` (a <get> with a subtree filter answered
//! by the daemon over IPC) and `request pbx unregister` (a module RPC).

use besip_tests::cli::{admin, besip};
use besip_tests::harness::bin_path;
use besip_tests::netconf::{NetconfServer, ADMIN_PASSWORD};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn state_and_rpcs_reach_the_daemon() {
    let server = NetconfServer::start();
    let port = server.port;
    // Daemon down: a clear error and exit code 1.
    let out = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["-c", "request pbx unregister aor 100"],
        "",
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not running"), "{}", out.stderr);

    let sip_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    admin(
        port,
        &[
            "set pbx listen t address 127.0.0.1",
            &format!("set pbx listen t port {sip_port}"),
            "commit",
        ],
    );
    let mut pbx = Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(server.root_path())
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip-pbxd");
    let socket = server.root_path().join("run/pbx.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let counters = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["-c", "show pbx counters"],
        "",
    );
    let unregister = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["-c", "request pbx unregister aor 100"],
        "",
    );
    let typo = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["-c", "request pbx unregister aro 100"],
        "",
    );
    let _ = pbx.kill();
    let _ = pbx.wait();
    assert!(
        socket.exists() || counters.code == 0,
        "besip-pbxd did not open its socket"
    );
    assert_eq!(counters.code, 0, "{}", counters.stderr);
    assert!(
        counters
            .stdout
            .lines()
            .any(|l| l.starts_with("pbx counters ")),
        "{}",
        counters.stdout
    );
    // Only the counters: no other state (e.g. extensions) is printed. A
    // counter may itself be named after extensions (refused
    // extension-call-limit), so every line must be a counter line.
    assert!(
        counters
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.starts_with("pbx counters ")),
        "{}",
        counters.stdout
    );
    assert_eq!(unregister.code, 0, "{}", unregister.stderr);
    assert_eq!(unregister.stdout.trim(), "removed 0");
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr
            .contains("unknown word 'aro' after 'unregister'; did you mean: aor"),
        "{}",
        typo.stderr
    );
}
