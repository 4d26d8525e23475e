//! `besip` against a real besip-netconfd: configuration sessions with `-c`
//! and scripts, errors with suggestions, exit codes, NACM for a monitor user.

use besip_tests::cli::{admin, besip, uci_files};
use besip_tests::netconf::{NetconfServer, ADMIN_PASSWORD};

#[test]
fn configuration_session_commits_and_renders() {
    let server = NetconfServer::start();
    let port = server.port;
    admin(
        port,
        &[
            "set pbx extension 100 password s3cret",
            "set pbx mode b2bua",
        ],
    );
    let compare = admin(port, &["compare"]);
    assert!(
        compare.contains("+ set pbx extension 100 password s3cret"),
        "{compare}"
    );
    assert!(compare.contains("+ set pbx mode b2bua"), "{compare}");
    // Nothing in running yet.
    let running = admin(port, &["show configuration running pbx"]);
    assert!(!running.contains("extension"), "{running}");
    let out = admin(port, &["commit comment first extension"]);
    assert!(out.contains("Commit complete"), "{out}");
    assert_eq!(admin(port, &["compare"]).trim(), "No changes.");
    let running = admin(port, &["show configuration running pbx extension"]);
    assert_eq!(running.trim(), "set pbx extension 100 password s3cret");
    let uci = uci_files(server.root_path());
    let pbx = &uci
        .iter()
        .find(|(n, _)| n == "besip_pbx")
        .expect("besip_pbx")
        .1;
    assert!(pbx.contains("option password 's3cret'"), "{pbx}");
    assert!(pbx.contains("option mode 'b2bua'"), "{pbx}");
    // The comment is in the commit history (state of besip-system).
    let history = admin(port, &["show commit-history | match comment"]);
    assert!(history.contains("first extension"), "{history}");

    // delete, then rollback 0 brings the committed entry back into the candidate.
    admin(port, &["delete pbx extension 100", "commit"]);
    assert!(!admin(port, &["show configuration running"]).contains("extension 100"));
    admin(port, &["rollback 1"]);
    let compare = admin(port, &["compare"]);
    assert!(
        compare.contains("+ set pbx extension 100 password s3cret"),
        "{compare}"
    );
    admin(port, &["discard"]);
    assert_eq!(admin(port, &["compare"]).trim(), "No changes.");
    assert_eq!(
        admin(port, &["show configuration running | count"]).trim(),
        format!(
            "Count: {} lines",
            admin(port, &["show configuration running"]).lines().count()
        )
    );
}

#[test]
fn errors_name_the_word_and_exit_codes_are_stable() {
    let server = NetconfServer::start();
    let port = server.port;
    let out = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["-c", "set pbx extensoin 100 password x"],
        "",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("unknown word 'extensoin' after 'pbx'; did you mean: extension?"),
        "{}",
        out.stderr
    );
    // A value the YANG type refuses: the server's error, with its path.
    let out = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["-c", "set pbx mode bogus"],
        "",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("mode"), "{}", out.stderr);
    assert_eq!(admin(port, &["compare"]).trim(), "No changes.");
    // Wrong password: 3; unknown flag: 2; nobody listening: 3.
    let out = besip(port, "admin", "wrong", &["-c", "compare"], "");
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("login refused"), "{}", out.stderr);
    let out = besip(port, "admin", ADMIN_PASSWORD, &["--bogus-flag"], "");
    assert_eq!(out.code, 2);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = besip(closed_port, "admin", ADMIN_PASSWORD, &["-c", "compare"], "");
    assert_eq!(out.code, 3, "{}", out.stderr);
}

#[test]
fn script_on_stdin_stops_at_the_failing_line() {
    let server = NetconfServer::start();
    let port = server.port;
    let script = "# a comment\nset pbx extension 200 password a\n\nset pbx extension 201 pasword b\nset pbx extension 202 password c\n";
    let out = besip(port, "admin", ADMIN_PASSWORD, &[], script);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("line 4: unknown word 'pasword'"),
        "{}",
        out.stderr
    );
    let compare = admin(port, &["compare"]);
    assert!(compare.contains("extension 200"), "{compare}");
    assert!(!compare.contains("extension 202"), "{compare}");
    let out = besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &[],
        "discard\ncommit\nshow configuration | count\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Count:"), "{}", out.stdout);
}

#[test]
fn monitor_user_reads_but_cannot_change() {
    let server = NetconfServer::start();
    let port = server.port;
    let hash = besip_core::password::hash("mon-pw").expect("hash");
    admin(
        port,
        &[
            &format!("set system user watcher password-hash {hash}"),
            "set system user watcher group monitor",
            "commit",
        ],
    );
    let out = besip(
        port,
        "watcher",
        "mon-pw",
        &["-c", "show configuration running pbx"],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = besip(
        port,
        "watcher",
        "mon-pw",
        &["-c", "set pbx extension 300 password x"],
        "",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("may not change"), "{}", out.stderr);
    assert!(!admin(port, &["compare"]).contains("300"));
}
