//! `besip --host` checks the box's SSH host key as ssh does: the first
//! connection stores it, a different key on the same host:port is refused
//! (exit code 3, naming how to accept it), and `--accept-new-host-key`
//! accepts the new key.

use besip_tests::cli::{besip_with_env, Output};
use besip_tests::harness::TempRoot;
use besip_tests::netconf::{NetconfServer, ADMIN_PASSWORD};

fn hostname(port: u16, known_hosts: &str, extra: &[&str]) -> Output {
    let mut args = vec!["-c", "show configuration running system hostname"];
    args.extend_from_slice(extra);
    besip_with_env(
        port,
        "admin",
        ADMIN_PASSWORD,
        &args,
        "",
        &[("BESIP_KNOWN_HOSTS", known_hosts)],
    )
}

#[test]
fn host_key_trusted_on_first_use_refused_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("besip/known_hosts");
    let known_hosts = file.to_str().unwrap();

    let first = NetconfServer::start();
    let port = first.port;
    let out = hostname(port, known_hosts, &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("stored the host key"), "{}", out.stderr);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        stored.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")),
        "{stored}"
    );
    // The same key again: accepted silently, nothing added.
    let out = hostname(port, known_hosts, &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("host key"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stored);

    // Another box (a new host key) on the same address and port.
    drop(first);
    let second = NetconfServer::start_on(TempRoot::new(), port);
    let out = hostname(port, known_hosts, &[]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("host key of [127.0.0.1]") && out.stderr.contains("has changed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--accept-new-host-key") && out.stderr.contains("remove line 1"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("besip"),
        "no command ran: {}",
        out.stdout
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stored);

    let out = hostname(port, known_hosts, &["--accept-new-host-key"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("replaced the stored host key"),
        "{}",
        out.stderr
    );
    let replaced = std::fs::read_to_string(&file).unwrap();
    assert_ne!(replaced, stored);
    assert_eq!(replaced.lines().count(), 1, "{replaced}");
    let out = hostname(port, known_hosts, &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    drop(second);
}
