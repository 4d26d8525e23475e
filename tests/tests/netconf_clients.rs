//! Drives besip-netconfd with real NETCONF clients: the ncclient suite
//! (tests/netconf/test_*.py, run by /usr/bin/python3 -m pytest) and yuma123
//! yangcli batch scripts (modules fetched from the server with get-schema).

use besip_tests::netconf::{run_pytest, suite_dir, NetconfServer, PytestRun, ADMIN_PASSWORD};
use std::process::Command;

#[test]
fn ncclient_suite() {
    let server = NetconfServer::start();
    let PytestRun {
        success,
        stdout,
        stderr,
    } = run_pytest(&server, &suite_dir(), &["-x"]);
    assert!(
        success,
        "ncclient suite failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    assert!(stdout.contains("passed"), "{stdout}");
}

/// Run a yangcli batch script against the server; yangcli always exits 0, so
/// callers check its output.
fn yangcli(server: &NetconfServer, script: &str) -> String {
    let home = tempfile::tempdir().expect("yangcli home");
    let path = home.path().join("script");
    std::fs::write(&path, script).expect("write yangcli script");
    let output = Command::new("yangcli")
        .arg("--batch-mode")
        .arg(format!("--run-script={}", path.display()))
        .arg("--user=admin")
        .arg(format!("--password={ADMIN_PASSWORD}"))
        .arg("--server=127.0.0.1")
        .arg(format!("--ncport={}", server.port))
        // A fresh HOME: no ~/.yuma cache, so besip modules can only come from the server.
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("run yangcli (apt install yangcli)");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn yangcli_configures_the_box() {
    let server = NetconfServer::start();
    let script = "\
create /system/user -- name=yc1 group=operator
merge /system/user[name='yc1']/full-name value='Yang Cli'
commit
sget-config /system/user source=running
replace /system/user[name='yc1'] -- group=monitor
commit
xget /system/user[name='yc1']
lock target=candidate
unlock target=candidate
merge /system/hostname value=ycbox
discard-changes
sget-config /system/hostname source=candidate
merge /system/hostname value=confbox
commit confirmed confirm-timeout=60
commit
delete /system/user[name='yc1']
commit
remove /system/user[name='yc1']
commit
xget /system/user
get-schema identifier=ietf-netconf-acm format=yang
delete /system/user[name='ghost']
";
    let out = yangcli(&server, script);
    assert!(out.contains("NETCONF session established"), "{out}");
    // besip modules are not installed with yangcli: it fetched them with <get-schema>.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("get-schema") && l.contains("besip-system")),
        "{log}"
    );
    let replies: Vec<&str> = out.split("RPC ").skip(1).collect();
    // The first reply is yangcli's own yang-library/module check; the script follows.
    let script_replies: Vec<&str> = replies
        .iter()
        .copied()
        .filter(|r| {
            r.starts_with("OK Reply") || r.starts_with("Data Reply") || r.starts_with("Error Reply")
        })
        .collect();
    let errors = script_replies
        .iter()
        .filter(|r| r.starts_with("Error Reply"))
        .count();
    // Only the last line (delete of a missing entry) must fail, with data-missing.
    assert_eq!(errors, 1, "{out}");
    assert!(out.contains("data-missing"), "{out}");
    let sget = out
        .find("user yc1")
        .map(|i| &out[i..i + 120])
        .unwrap_or_default();
    assert!(
        sget.contains("group operator") && sget.contains("Yang Cli"),
        "{out}"
    );
    assert!(out.contains("group monitor"), "{out}");
    assert!(out.contains("module ietf-netconf-acm"), "{out}");
    assert!(
        !out.contains("hostname ycbox"),
        "discard-changes did not discard: {out}"
    );

    // What yangcli did is what the server holds.
    let check = yangcli(&server, "sget-config /system source=running\n");
    assert!(check.contains("hostname confbox"), "{check}");
    assert!(!check.contains("user yc1"), "{check}");
}
