//! besip-pbxd in B2BUA mode with sipp: the call is two dialogs, nothing of
//! one side leaks to the other, BYE is bridged, and a call past the maximum
//! duration is ended by the PBX on both legs.

use besip_tests::pbx::office::received;
use besip_tests::pbx::*;

fn header_lines<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .collect()
}

#[test]
fn b2bua_call_hides_topology_and_bridges_bye() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(
        &config(port, "\toption mode 'b2bua'\n").replace("\toption mode 'proxy'\n", ""),
        port,
    );
    let sipp = Sipp::new();
    let callee_port = free_port();
    let caller_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    let uas = sipp.spawn("uas", &callee_answers(100), callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "101"),
        caller_port,
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);

    let caller_trace = sipp.messages("uac");
    let callee_trace = sipp.messages("uas");
    let caller_call_ids: Vec<String> = caller_trace
        .lines()
        .filter(|l| l.starts_with("Call-ID:"))
        .map(|l| l.trim_start_matches("Call-ID:").trim().to_owned())
        .collect();
    assert!(!caller_call_ids.is_empty());
    let callee_msgs = received(&callee_trace);
    let invite = callee_msgs
        .iter()
        .find(|m| m.contains("INVITE sip:"))
        .expect("callee got an INVITE");
    let bye = callee_msgs
        .iter()
        .find(|m| m.contains("BYE sip:"))
        .expect("callee got the bridged BYE");
    for m in [invite, bye] {
        // Only our Via, our Contact, no Record-Route, a Call-ID of our own.
        let vias = header_lines(m, "Via");
        assert_eq!(vias.len(), 1, "more than our Via reached the callee:\n{m}");
        assert!(vias[0].contains(&format!("127.0.0.1:{port}")), "{m}");
        assert!(
            !m.contains(&format!(":{caller_port}")),
            "caller's port leaked:\n{m}"
        );
        assert!(header_lines(m, "Record-Route").is_empty(), "{m}");
        for id in &caller_call_ids {
            assert!(!m.contains(id.as_str()), "caller's Call-ID leaked:\n{m}");
        }
    }
    let contact = header_lines(invite, "Contact");
    assert!(
        contact
            .iter()
            .all(|c| c.contains(&format!("127.0.0.1:{port}"))),
        "{contact:?}"
    );
    // And the other way: nothing of the callee reaches the caller.
    for m in received(&caller_trace) {
        assert!(
            !m.contains(&format!(":{callee_port}")),
            "callee's port leaked:\n{m}"
        );
        assert!(header_lines(&m, "Record-Route").is_empty(), "{m}");
    }
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
fn b2bua_ends_a_call_past_the_maximum_duration() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let extra = "\toption mode 'b2bua'\n\toption b2bua_max_call_duration '2'\n";
    let pbx = Pbx::start(
        &config(port, extra).replace("\toption mode 'proxy'\n", ""),
        port,
    );
    let sipp = Sipp::new();
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    // Neither side hangs up: both wait for the PBX's BYE.
    let caller_scenario = caller_answered("100", "101");
    let cut = caller_scenario
        .find("  <pause milliseconds=\"300\"/>")
        .expect("scenario shape");
    let caller_scenario = format!(
        "{}  <recv request=\"BYE\"/>\n  <send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n</scenario>\n",
        &caller_scenario[..cut]
    );
    let uas = sipp.spawn("uas", &callee_answers(100), callee_port, pbx.port, &[]);
    let started = std::time::Instant::now();
    let caller = sipp.run(
        "uac",
        &caller_scenario,
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(
        caller.success,
        "caller did not get the PBX's BYE:\n{}",
        caller.log
    );
    assert!(
        callee.success,
        "callee did not get the PBX's BYE:\n{}",
        callee.log
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "call ended before the maximum"
    );
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
fn b2bua_cancel_of_a_ringing_call_reaches_the_callee_leg() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(
        &config(port, "\toption mode 'b2bua'\n").replace("\toption mode 'proxy'\n", ""),
        port,
    );
    let sipp = Sipp::new();
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
fn b2bua_bridges_a_re_invite() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(
        &config(port, "\toption mode 'b2bua'\n").replace("\toption mode 'proxy'\n", ""),
        port,
    );
    let sipp = Sipp::new();
    let callee_port = free_port();
    register(&sipp, "101", callee_port, pbx.port);
    // Caller: after the ACK, a re-INVITE with a new offer, its 200 and ACK, then BYE.
    let reinvite = format!(
        r#"  <send retrans="500"><![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]call[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 3 INVITE
Contact: <sip:100@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]call[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 3 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="300"/>
"#
    );
    let caller_scenario = caller_answered("100", "101")
        .replacen("  <pause milliseconds=\"300\"/>\n", &reinvite, 1)
        .replace("CSeq: 3 BYE", "CSeq: 4 BYE");
    // Callee: takes the bridged re-INVITE (its own CSeq space) and answers it.
    let callee_reinvite = format!(
        r#"  <recv request="ACK"/>
  <recv request="INVITE"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv request="ACK"/>
"#
    );
    let callee_scenario =
        callee_answers(100).replacen("  <recv request=\"ACK\"/>\n", &callee_reinvite, 1);
    let uas = sipp.spawn("uas", &callee_scenario, callee_port, pbx.port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_scenario,
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);
    // The callee saw the re-INVITE in its own dialog: CSeq 2 of the B leg, not the caller's 3.
    let trace = sipp.messages("uas");
    let reinvite_seen = trace
        .split("-----------------------------------------------")
        .filter(|b| b.contains("message received") && b.contains("INVITE sip:"))
        .nth(1)
        .expect("callee got a second INVITE");
    assert!(reinvite_seen.contains("CSeq: 2 INVITE"), "{reinvite_seen}");
}
