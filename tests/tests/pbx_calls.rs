//! Calls through besip-pbxd in proxy mode between registered sipp UAs:
//! answered call with BYE, CANCEL while ringing, 486 busy, forking.

use besip_tests::pbx::*;

fn setup() -> Option<(Pbx, Sipp)> {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed (scripts/install-deps installs sip-tester)");
        return None;
    }
    let port = free_port();
    Some((Pbx::start(&config(port, ""), port), Sipp::new()))
}

#[test]
fn call_between_two_registered_uas() {
    let Some((pbx, sipp)) = setup() else { return };
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    let uas = sipp.spawn("uas", &callee_answers(200), callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "101"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);
    // The call is over: no active call left, and the 2xx went through us.
    assert!(pbx.counter("replies-2xx") >= 2);
    let state = pbx.state();
    assert_eq!(
        state["besip-pbx:pbx"]["calls"]["call"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "{state}"
    );
}

#[test]
fn call_to_alias_reaches_extension() {
    let Some((pbx, sipp)) = setup() else { return };
    let callee_port = free_port();
    register(&sipp, "100", callee_port, pbx.port);
    let uas = sipp.spawn("uas", &callee_answers(100), callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("101", "boss"),
        free_port(),
        pbx.port,
        &["-au", "101", "-ap", "pw101"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);
}

#[test]
fn cancel_of_a_ringing_call() {
    let Some((pbx, sipp)) = setup() else { return };
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    let uas = sipp.spawn("uas", &callee_cancelled(), callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_cancels("100", "101"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);
}

#[test]
fn busy_callee_gives_486() {
    let Some((pbx, sipp)) = setup() else { return };
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    let uas = sipp.spawn(
        "uas",
        &callee_rejects(486, "Busy Here"),
        callee_port,
        pbx.port,
        &[],
    );
    let caller = sipp.run(
        "uac",
        &caller_rejected("100", "101", 486),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);
}

#[test]
fn unregistered_and_unknown_callees() {
    let Some((pbx, sipp)) = setup() else { return };
    // 102 exists but has no binding: 480. 555 does not exist: 404.
    let r = sipp.run(
        "uac480",
        &caller_rejected("100", "102", 480),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "480 expected:\n{}", r.log);
    let r = sipp.run(
        "uac404",
        &caller_rejected("100", "555", 404),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "404 expected:\n{}", r.log);
}

#[test]
fn forking_to_two_contacts_one_answers_other_is_cancelled() {
    let Some((pbx, sipp)) = setup() else { return };
    let (a, b) = (free_port(), free_port());
    register(&sipp, "101", a, pbx.port);
    register(&sipp, "101", b, pbx.port);
    assert_eq!(pbx.registrations().len(), 2);
    let answers = sipp.spawn("uas-a", &callee_answers(500), a, pbx.port, &[]);
    let cancelled = sipp.spawn("uas-b", &callee_cancelled(), b, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "101"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let answers = sipp.wait(answers);
    let cancelled = sipp.wait(cancelled);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(answers.success, "answering branch failed:\n{}", answers.log);
    assert!(
        cancelled.success,
        "cancelled branch failed:\n{}",
        cancelled.log
    );
}

#[test]
fn call_from_a_tcp_caller_to_a_udp_callee() {
    let Some((pbx, sipp)) = setup() else { return };
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    let uas = sipp.spawn("uas", &callee_answers(100), callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "101"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100", "-t", "t1"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "TCP caller failed:\n{}", caller.log);
    assert!(callee.success, "UDP callee failed:\n{}", callee.log);
}

#[test]
fn unconditional_forwarding_reaches_the_target_extension() {
    let Some((_, sipp)) = setup() else { return };
    let port = free_port();
    let uci = config(port, "").replace(
        "\toption number '102'\n\toption password 'pw102'\n\toption enabled '1'\n",
        "\toption number '102'\n\toption password 'pw102'\n\toption enabled '1'\n\toption forwarding_unconditional '101'\n",
    );
    assert!(uci.contains("forwarding_unconditional"));
    let pbx = Pbx::start(&uci, port);
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    let uas = sipp.spawn("uas", &callee_answers(100), callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "102"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "forwarded callee failed:\n{}", callee.log);
}

#[test]
fn dialplan_route_sends_outside_numbers_to_the_trunk() {
    let Some((_, sipp)) = setup() else { return };
    let port = free_port();
    let trunk_port = free_port();
    let uci = config(port, "")
        + &format!("config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.1'\n\toption port '{trunk_port}'\n\n")
        + "config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption strip '1'\n\toption prepend '+420'\n\toption trunk 'prov'\n\n";
    let pbx = Pbx::start(&uci, port);
    // The provider is a sipp UAS on the trunk port; it must see the rewritten number.
    let provider = callee_answers(100).replacen(
        r#"<recv request="INVITE" rrs="true"/>"#,
        r#"<recv request="INVITE" rrs="true"><action><ereg regexp="^INVITE sip:\+420555123@127\.0\.0\.1" search_in="msg" check_it="true" assign_to="ruri"/></action></recv>
  <Reference variables="ruri"/>"#,
        1,
    );
    let uas = sipp.spawn("provider", &provider, trunk_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "0555123"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(
        callee.success,
        "provider did not get +420555123:\n{}",
        callee.log
    );
}
