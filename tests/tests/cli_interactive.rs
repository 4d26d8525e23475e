//! The interactive `besip` shell driven through a pseudo-terminal (rexpect):
//! completion, `?` help with YANG descriptions, history, an error with a
//! suggestion, a configuration session ending in commit, and a denied
//! change for a monitor-group user. The shell talks NETCONF over SSH to a
//! real besip-netconfd (`besip --host`; netconfd does not yet offer the shell
//! itself on an SSH `shell` request).

use besip_tests::cli::admin;
use besip_tests::harness::bin_path;
use besip_tests::netconf::{NetconfServer, ADMIN_PASSWORD};
use std::process::Command;

fn shell(port: u16, user: &str, password: &str) -> rexpect::session::PtySession {
    let mut command = Command::new(bin_path("besip"));
    command
        .args(["--port", &port.to_string(), "--user", user])
        .env("BESIP_PASSWORD", password)
        .env("BESIP_KNOWN_HOSTS", besip_tests::cli::SCRATCH_KNOWN_HOSTS);
    rexpect::session::spawn_command(command, Some(20_000)).expect("spawn besip in a pty")
}

#[test]
fn interactive_session_completes_helps_and_commits() {
    let server = NetconfServer::start();
    let mut p = shell(server.port, "admin", ADMIN_PASSWORD);
    let prompt = "admin@127.0.0.1> ";
    p.exp_string(prompt).unwrap();
    // Tab completes a node name.
    p.send("set pbx ext").unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.exp_string("set pbx extension ").unwrap();
    p.send("100 password s3cret\r").unwrap();
    p.flush().unwrap();
    p.exp_string(prompt).unwrap();
    // `?` lists enum values with their YANG descriptions, keeps the line.
    p.send("set pbx mode ?").unwrap();
    p.flush().unwrap();
    p.exp_string("Back-to-back user agent").unwrap();
    p.exp_string("set pbx mode ").unwrap();
    p.send("b2\t").unwrap();
    p.flush().unwrap();
    p.exp_string("set pbx mode b2bua ").unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string(prompt).unwrap();
    // List keys complete from the candidate configuration.
    p.send("delete pbx extension ?").unwrap();
    p.flush().unwrap();
    p.exp_string("existing entry").unwrap();
    p.send_control('u').unwrap();
    // An error names the bad word and suggests the right one.
    p.send("set pbx extensoin 1 password x\r").unwrap();
    p.flush().unwrap();
    p.exp_string("unknown word 'extensoin' after 'pbx'; did you mean: extension?")
        .unwrap();
    p.send("commit comment from the pty\r").unwrap();
    p.flush().unwrap();
    p.exp_string("Commit complete.").unwrap();
    // History: up arrow brings the last command back.
    p.send("\x1b[A").unwrap();
    p.flush().unwrap();
    p.exp_string("commit comment from the pty").unwrap();
    p.send_control('u').unwrap();
    p.send("show configuration running pbx\r").unwrap();
    p.flush().unwrap();
    p.exp_string("set pbx extension 100 password s3cret")
        .unwrap();
    p.exp_string(prompt).unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    let running = admin(server.port, &["show configuration running pbx"]);
    assert!(running.contains("set pbx mode b2bua"), "{running}");
    assert!(
        running.contains("set pbx extension 100 password s3cret"),
        "{running}"
    );
}

#[test]
fn monitor_user_is_denied_in_the_shell() {
    let server = NetconfServer::start();
    let hash = besip_core::password::hash("mon-pw").unwrap();
    admin(
        server.port,
        &[
            &format!("set system user watcher password-hash {hash}"),
            "set system user watcher group monitor",
            "commit",
        ],
    );
    let mut p = shell(server.port, "watcher", "mon-pw");
    p.exp_string("watcher@127.0.0.1> ").unwrap();
    p.send("set pbx extension 5 password x\r").unwrap();
    p.flush().unwrap();
    p.exp_string("may not change").unwrap();
    p.send("exit\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
    assert_eq!(admin(server.port, &["compare"]).trim(), "No changes.");
}
