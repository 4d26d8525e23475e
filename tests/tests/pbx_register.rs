//! besip-pbxd registrar against sipp: digest auth (good, bad, stale), 423,
//! unregister RPC, restart keeping bindings, listen sockets changed by reload.

use besip_tests::pbx::*;

#[test]
fn register_with_digest_good_and_bad_password() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed (scripts/install-deps installs sip-tester)");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let sipp = Sipp::new();
    let ua = free_port();
    register(&sipp, "100", ua, port);
    let regs = pbx.registrations();
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(regs[0].0, "100@besip.test");
    assert_eq!(regs[0].1, format!("sip:100@127.0.0.1:{ua};transport=UDP"));

    // Wrong password: challenged again, nothing bound, failure counted.
    let ua2 = free_port();
    let bad = sipp.run(
        "bad",
        &register_scenario("101", 3600, 401),
        ua2,
        port,
        &["-au", "101", "-ap", "wrong"],
    );
    assert!(bad.success, "{}", bad.log);
    assert!(!pbx.registrations().iter().any(|r| r.0.starts_with("101@")));
    assert!(pbx.counter("auth-failures") >= 1);

    // Unknown user: exactly the same answer as a wrong password.
    let unknown = sipp.run(
        "unknown",
        &register_scenario("999", 3600, 401),
        free_port(),
        port,
        &["-au", "999", "-ap", "x"],
    );
    assert!(unknown.success, "{}", unknown.log);

    // Too short: 423.
    let brief = sipp.run(
        "brief",
        &register_scenario("102", 10, 423),
        free_port(),
        port,
        &["-au", "102", "-ap", "pw102"],
    );
    assert!(brief.success, "{}", brief.log);

    // Over TCP as well.
    let tcp = sipp.run(
        "tcp",
        &register_scenario("103", 3600, 200),
        free_port(),
        port,
        &["-au", "103", "-ap", "pw103", "-t", "t1"],
    );
    assert!(tcp.success, "{}", tcp.log);
    let regs = pbx.registrations();
    assert!(
        regs.iter()
            .any(|r| r.0 == "103@besip.test" && r.1.contains("transport=TCP")),
        "{regs:?}"
    );

    // RPC unregister removes the binding.
    let out = pbx
        .ipc(
            "rpc",
            serde_json::json!({"name": "besip-pbx:unregister", "input": {"aor": "100@besip.test"}}),
        )
        .expect("rpc");
    assert_eq!(out["removed"], 1);
    assert!(!pbx.registrations().iter().any(|r| r.0 == "100@besip.test"));
}

#[test]
fn stale_nonce_is_rechallenged_with_stale_true() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let _pbx = Pbx::start(&config(port, "\toption auth_nonce_lifetime '10'\n"), port);
    let sipp = Sipp::new();
    // Wait past the nonce lifetime between challenge and answer.
    let scenario = register_scenario("100", 3600, 401).replace(
        "<recv response=\"401\" auth=\"true\"/>\n  <send",
        "<recv response=\"401\" auth=\"true\"/>\n  <pause milliseconds=\"11500\"/>\n  <send",
    );
    let scenario = scenario.replace(
        "<recv response=\"401\"/>",
        "<recv response=\"401\" auth=\"true\"><action><ereg regexp=\"stale=true\" search_in=\"hdr\" header=\"WWW-Authenticate:\" check_it=\"true\" assign_to=\"stale\"/></action></recv>\n  <Reference variables=\"stale\"/>",
    );
    let r = sipp.run(
        "stale",
        &scenario,
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(
        r.success,
        "stale nonce not answered with stale=true:\n{}",
        r.log
    );
}

#[test]
fn restart_keeps_bindings_and_reload_keeps_them_too() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let mut pbx = Pbx::start(&config(port, ""), port);
    let sipp = Sipp::new();
    register(&sipp, "100", free_port(), port);
    register(&sipp, "101", free_port(), port);
    assert_eq!(pbx.registrations().len(), 2);

    // 104 does not exist yet: its REGISTER is challenged again.
    let r = sipp.run(
        "reg104-before",
        &register_scenario("104", 3600, 401),
        free_port(),
        port,
        &["-au", "104", "-ap", "pw104"],
    );
    assert!(r.success, "{}", r.log);
    // Live reload with a changed configuration keeps the bindings and applies the change.
    let cfg = config(port, "\toption registrar_max_expires '4000'\n")
        + "config extension 'extension_104'\n\toption number '104'\n\toption password 'pw104'\n\n";
    std::fs::write(pbx.root.path().join("etc/config/besip_pbx"), cfg).expect("write");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    assert_eq!(pbx.registrations().len(), 2);
    register(&sipp, "104", free_port(), port);
    assert_eq!(pbx.registrations().len(), 3);

    // A bad configuration is refused and changes nothing.
    std::fs::write(
        pbx.root.path().join("etc/config/besip_pbx"),
        "config pbx 'main'\n\toption rtp_port_min '30000'\n\toption rtp_port_max '20000'\n",
    )
    .expect("write");
    let err = pbx
        .ipc("reload", serde_json::json!({}))
        .expect_err("bad config refused");
    assert!(err.contains("port-min"), "{err}");
    assert_eq!(pbx.registrations().len(), 3);

    let status = pbx.stop();
    assert!(status.success(), "daemon exit {status:?}");
    std::fs::write(
        pbx.root.path().join("etc/config/besip_pbx"),
        config(port, ""),
    )
    .expect("write");
    pbx.spawn();
    let mut regs = pbx.registrations();
    regs.sort();
    // 104 is gone from the configuration after the restart, its binding stays
    // in the database until it expires; 100 and 101 are back.
    regs.retain(|r| !r.0.starts_with("104@"));
    assert_eq!(regs.len(), 2, "{regs:?}");
    assert_eq!(regs[0].0, "100@besip.test");
    assert_eq!(regs[1].0, "101@besip.test");
}

/// The `state` answer is valid RFC 7951 data of besip-pbx (checked by yanglint),
/// so core can merge it into <get> replies.
#[test]
fn state_is_valid_yang_data() {
    if !have_sipp()
        || std::process::Command::new("yanglint")
            .arg("-v")
            .output()
            .is_err()
    {
        eprintln!("SKIP: sipp or yanglint not installed (scripts/install-deps)");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let sipp = Sipp::new();
    register(&sipp, "100", free_port(), port);
    let state = pbx.state();
    assert!(
        state["besip-pbx:pbx"]["registrations"]["registration"][0]["expires"]
            .as_u64()
            .is_some_and(|e| e > 3500)
    );
    besip_tests::pbx::assert_state_valid(&pbx, &state);
}

/// A reload moves the listen sockets without a restart: the new port
/// answers, the old one is closed (UDP and TCP), bindings stay; a port that
/// is taken makes the reload fail and changes nothing.
#[test]
fn reload_moves_listen_sockets_and_keeps_bindings() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let old = free_port();
    let pbx = Pbx::start(&config(old, ""), old);
    let sipp = Sipp::new();
    register(&sipp, "100", free_port(), old);
    assert!(options_answered(old));

    let new = free_port();
    let cfg_path = pbx.root.path().join("etc/config/besip_pbx");
    std::fs::write(&cfg_path, config(new, "")).expect("write");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    assert!(options_answered(new), "the new UDP port does not answer");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", new)).is_ok(),
        "the new TCP port does not accept"
    );
    // The old sockets are closed (the UDP readers leave at once).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while options_answered(old) {
        assert!(
            std::time::Instant::now() < deadline,
            "old UDP port still answers"
        );
    }
    // The old TCP listener's task ends asynchronously: give it the same time.
    while std::net::TcpStream::connect(("127.0.0.1", old)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "old TCP port still accepts"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The binding made through the old socket is still there; the new one registers.
    let regs = pbx.registrations();
    assert_eq!(regs.len(), 1, "{regs:?}");
    register(&sipp, "101", free_port(), new);
    assert_eq!(pbx.registrations().len(), 2);

    // A listen on a port someone else holds: refused, the current sockets stay.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").port();
    let cfg = config(new, "")
        + &format!(
            "config listen 'listen_busy'\n\toption name 'busy'\n\toption transport 'tcp'\n\toption address '127.0.0.1'\n\toption port '{busy}'\n\n"
        );
    std::fs::write(&cfg_path, cfg).expect("write");
    let err = pbx
        .ipc("reload", serde_json::json!({}))
        .expect_err("a taken port must refuse the reload");
    assert!(err.contains(&busy.to_string()), "{err}");
    assert!(options_answered(new));
    register(&sipp, "102", free_port(), new);
    assert_eq!(pbx.registrations().len(), 3);
}
