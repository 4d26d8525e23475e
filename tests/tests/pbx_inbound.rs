//! Inbound routing and ring groups of besip-pbxd with sipp: the provider
//! plays the trunk from 127.0.0.2 (the trunk's host), phones registered
//! as extensions answer on 127.0.0.1. A DID routed to an extension and a
//! DID pattern to a ring group (ring-all: the first to answer wins, the
//! other is cancelled), hunt (a busy and an unanswered member skipped),
//! memory-hunt (the second member joins after member-timeout), the group
//! timeout sending the call to the final destination, a time condition
//! open now (rings the group) and closed now (a holiday: the closed
//! destination), a caller-ID route, the blocklist (603), an inbound route
//! to a number outside that a stranger cannot use (no toll fraud), and
//! YANG refusing malformed patterns; DIDs to a conference room, a mailbox
//! and an IVR menu, and an inbound route that records its calls. The CDRs name the DID, the trunk and
//! who answered; /pbx/inbound-state the groups' calls and the condition.

use std::time::{Duration, Instant};

use besip_tests::pbx::office::cdrs;
use besip_tests::pbx::*;
use serde_json::Value;

const TRUNK_IP: &str = "127.0.0.2";

/// The test configuration in `mode`, a trunk 'prov' at 127.0.0.2:`prov_port`
/// with a dialplan route for numbers starting 0, and `extra` sections.
fn uci(port: u16, mode: &str, prov_port: u16, extra: &str) -> String {
    config(port, "").replacen("\toption mode 'proxy'\n", &format!("\toption mode '{mode}'\n"), 1)
        + &format!(
            "config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '{TRUNK_IP}'\n\toption port '{prov_port}'\n\n\
config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'prov'\n\n"
        )
        + extra
}

fn inbound_route(name: &str, did: &str, dest: &str) -> String {
    format!(
        "config inbound_route 'ir_{name}'\n\toption name '{name}'\n\toption did '{did}'\n\toption trunk 'prov'\n\toption destination_{dest}\n\n"
    )
}

/// Ring group `number` with `strategy`, `members` in order and `options`.
fn ring_group(number: &str, strategy: &str, members: &[&str], options: &str) -> String {
    let mut s = format!(
        "config ring_group 'rg_{number}'\n\toption number '{number}'\n\toption strategy '{strategy}'\n{options}\n"
    );
    for (i, m) in members.iter().enumerate() {
        s.push_str(&format!(
            "config ring_group_member 'rg_{number}_m{i}'\n\toption ring_group '{number}'\n\toption number '{m}'\n\n"
        ));
    }
    s
}

/// The provider's call from `caller` to `did`: INVITE without
/// credentials, then what `after` expects.
fn trunk_invite(caller: &str, did: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunk">
  <send retrans="500"><![CDATA[
INVITE sip:{did}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{caller}@provider.example>;tag=[pid]trunk[call_number]
To: <sip:{did}@besip.test>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{caller}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv response="100" optional="true"/>
"#
    )
}

/// The provider's call, answered, then hung up.
fn trunk_answered(caller: &str, did: &str) -> String {
    let ack = "  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[last_From:]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
";
    format!(
        r#"{}  <recv response="180" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
{ack}  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[last_From:]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#,
        trunk_invite(caller, did)
    )
}

/// The provider's call, refused with `code`.
fn trunk_refused(caller: &str, did: &str, code: u16) -> String {
    format!(
        r#"{}  <recv response="180" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:{did}@besip.test SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"#,
        trunk_invite(caller, did)
    )
}

/// Runs the provider's scenario from the trunk's address.
fn from_trunk(sipp: &Sipp, name: &str, scenario: &str, port: u16) -> SippResult {
    sipp.run(name, scenario, free_port(), port, &["-i", TRUNK_IP])
}

fn inbound_state(pbx: &Pbx) -> Value {
    let state = pbx.state();
    assert_state_valid(pbx, &state);
    state["besip-pbx:pbx"]["inbound-state"].clone()
}

fn assert_inbound_cdr(cdr: &Value, did: &str, answered_by: &str) {
    assert_eq!(cdr["disposition"], "answered", "{cdr}");
    assert_eq!(cdr["did"], did, "{cdr}");
    assert_eq!(cdr["trunk"], "prov", "{cdr}");
    assert_eq!(cdr["answered-by"], answered_by, "{cdr}");
}

fn skip() -> bool {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return true;
    }
    false
}

/// DID 0301000 reaches extension 101; DIDs matching _0302XXX ring group
/// 600 (ring-all of 102 and 103): 102 answers, 103 is cancelled.
#[test]
fn did_to_extension_and_pattern_to_ring_all_group() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = inbound_route("ext", "0301000", "extension '101'")
            + &inbound_route("group", "_0302XXX", "ring_group '600'")
            + &ring_group("600", "ring-all", &["102", "103"], "");
        let pbx = Pbx::start(&uci(port, mode, prov, &extra), port);
        let sipp = Sipp::new();
        let (p101, p102, p103) = (free_port(), free_port(), free_port());
        for (u, p) in [("101", p101), ("102", p102), ("103", p103)] {
            register(&sipp, u, p, port);
        }
        let phone = sipp.spawn("p101", &callee_answers(100), p101, port, &[]);
        let call = from_trunk(
            &sipp,
            "did-ext",
            &trunk_answered("0301999", "0301000"),
            port,
        );
        assert!(call.success, "{mode}: DID to 101:\n{}", call.log);
        assert!(sipp.wait(phone).success, "{mode}: 101");

        let winner = sipp.spawn("p102", &callee_answers(500), p102, port, &[]);
        let loser = sipp.spawn("p103", &callee_cancelled(), p103, port, &[]);
        let call = from_trunk(
            &sipp,
            "did-group",
            &trunk_answered("0301999", "0302555"),
            port,
        );
        assert!(call.success, "{mode}: DID to the group:\n{}", call.log);
        assert!(sipp.wait(winner).success, "{mode}: 102 answers");
        let loser = sipp.wait(loser);
        assert!(loser.success, "{mode}: 103 is cancelled:\n{}", loser.log);

        let list = cdrs(&pbx, 2);
        assert_inbound_cdr(&list[list.len() - 2], "0301000", "101");
        assert_inbound_cdr(&list[list.len() - 1], "0302555", "102");
        let s = inbound_state(&pbx);
        assert_eq!(s["routed-calls"], "2", "{mode}: {s}");
        let g = &s["ring-group"][0];
        assert_eq!(g["number"], "600", "{s}");
        assert_eq!(g["calls"], "1", "{s}");
        assert_eq!(g["answered-calls"], "1", "{s}");
        assert_eq!(g["last-answered-by"], "102", "{s}");
    }
}

/// Hunt with member-timeout 2 s, in both modes: 101 is busy (skipped at
/// once), 102 rings unanswered (cancelled after 2 s), 103 answers.
#[test]
fn hunt_skips_busy_and_unanswered_members() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = inbound_route("group", "0301000", "ring_group '600'")
            + &ring_group(
                "600",
                "hunt",
                &["101", "102", "103"],
                "\toption member_timeout '2'\n",
            );
        let pbx = Pbx::start(&uci(port, mode, prov, &extra), port);
        let sipp = Sipp::new();
        let (p101, p102, p103) = (free_port(), free_port(), free_port());
        for (u, p) in [("101", p101), ("102", p102), ("103", p103)] {
            register(&sipp, u, p, port);
        }
        let busy = sipp.spawn("p101", &callee_rejects(486, "Busy Here"), p101, port, &[]);
        let ringing = sipp.spawn("p102", &callee_cancelled(), p102, port, &[]);
        let answers = sipp.spawn("p103", &callee_answers(100), p103, port, &[]);
        let started = Instant::now();
        let call = from_trunk(&sipp, "hunt", &trunk_answered("0301999", "0301000"), port);
        assert!(call.success, "{mode}: hunt:\n{}", call.log);
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(2), "102 rang its 2 s: {took:?}");
        assert!(
            took < Duration::from_secs(6),
            "101's busy was skipped at once: {took:?}"
        );
        assert!(sipp.wait(busy).success, "101 busy");
        let ringing = sipp.wait(ringing);
        assert!(ringing.success, "102 cancelled:\n{}", ringing.log);
        assert!(sipp.wait(answers).success, "103 answers");
        let list = cdrs(&pbx, 1);
        assert_inbound_cdr(list.last().expect("cdr"), "0301000", "103");
    }
}

/// A ring group as a member of another, in both modes: hunt group 600 is
/// 101 then group 610 (102 and 103); 101 is busy, so 102 and 103 ring
/// together; 103 answers and 102 is cancelled.
#[test]
fn a_group_in_a_group_rings_its_extensions_together() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = inbound_route("group", "0301000", "ring_group '600'")
            + &ring_group(
                "600",
                "hunt",
                &["101", "610"],
                "\toption member_timeout '5'\n",
            )
            + &ring_group(
                "610",
                "hunt",
                &["102", "103"],
                "\toption member_timeout '1'\n",
            );
        let pbx = Pbx::start(&uci(port, mode, prov, &extra), port);
        let sipp = Sipp::new();
        let (p101, p102, p103) = (free_port(), free_port(), free_port());
        for (u, p) in [("101", p101), ("102", p102), ("103", p103)] {
            register(&sipp, u, p, port);
        }
        let busy = sipp.spawn("p101", &callee_rejects(486, "Busy Here"), p101, port, &[]);
        let ringing = sipp.spawn("p102", &callee_cancelled(), p102, port, &[]);
        // Rings 2 s: past the inner group's 1 s member timeout, which does not apply.
        let answers = sipp.spawn("p103", &callee_answers(2000), p103, port, &[]);
        let call = from_trunk(&sipp, "nested", &trunk_answered("0301999", "0301000"), port);
        assert!(call.success, "{mode}: nested group:\n{}", call.log);
        assert!(sipp.wait(busy).success, "{mode}: 101 busy");
        let ringing = sipp.wait(ringing);
        assert!(
            ringing.success,
            "{mode}: 102 rang and was cancelled:\n{}",
            ringing.log
        );
        let answers = sipp.wait(answers);
        assert!(answers.success, "{mode}: 103 answers:\n{}", answers.log);
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("cdr");
        assert_eq!(cdr["disposition"], "answered", "{cdr}");
        assert_eq!(cdr["did"], "0301000", "{cdr}");
    }
}

/// A member's unconditional forwarding inside a ring-all group, both
/// modes: 101 forwards to 103, whose phone rings instead and answers; 102
/// forwards to a number outside and is left out (a phone's forward must
/// not send the group's calls out of the box). Neither 101's nor 102's
/// phone gets an INVITE.
#[test]
fn a_members_forwarding_to_an_extension_is_followed_in_a_group() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = inbound_route("group", "0301000", "ring_group '600'")
            + &ring_group("600", "ring-all", &["101", "102"], "");
        let uci = besip_tests::pbx::office::with_ext(
            &uci(port, mode, prov, &extra),
            "101",
            "\toption forwarding_unconditional '103'\n",
        );
        let uci = besip_tests::pbx::office::with_ext(
            &uci,
            "102",
            "\toption forwarding_unconditional '0555123'\n",
        );
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let (p101, p102, p103) = (free_port(), free_port(), free_port());
        for (u, p) in [("101", p101), ("102", p102), ("103", p103)] {
            register(&sipp, u, p, port);
        }
        // 101's and 102's phones: sockets that only listen.
        let quiet: Vec<std::net::UdpSocket> = [p101, p102]
            .into_iter()
            .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).expect("phone port"))
            .collect();
        let answers = sipp.spawn("p103", &callee_answers(300), p103, port, &[]);
        let call = from_trunk(&sipp, "fwd", &trunk_answered("0301999", "0301000"), port);
        assert!(call.success, "{mode}: group call:\n{}", call.log);
        assert!(sipp.wait(answers).success, "{mode}: 103 answers");
        for (n, sock) in ["101", "102"].iter().zip(&quiet) {
            sock.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 4096];
            let got = sock
                .recv(&mut buf)
                .map(|len| String::from_utf8_lossy(&buf[..len]).into_owned());
            assert!(got.is_err(), "{mode}: {n}'s phone was rung: {got:?}");
        }
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("cdr");
        assert_eq!(cdr["disposition"], "answered", "{cdr}");
    }
}

/// Memory-hunt with member-timeout 2 s, in B2BUA mode: 101 rings alone,
/// after 2 s 102 rings too and answers; 101 is cancelled.
#[test]
fn memory_hunt_adds_the_next_member_after_the_member_timeout() {
    if skip() {
        return;
    }
    let (port, prov) = (free_port(), free_port());
    let extra = inbound_route("group", "0301000", "ring_group '600'")
        + &ring_group(
            "600",
            "memory-hunt",
            &["101", "102"],
            "\toption member_timeout '2'\n",
        );
    let pbx = Pbx::start(&uci(port, "b2bua", prov, &extra), port);
    let sipp = Sipp::new();
    let (p101, p102) = (free_port(), free_port());
    register(&sipp, "101", p101, port);
    register(&sipp, "102", p102, port);
    let first = sipp.spawn("p101", &callee_cancelled(), p101, port, &[]);
    let second = sipp.spawn("p102", &callee_answers(300), p102, port, &[]);
    let started = Instant::now();
    let call = from_trunk(&sipp, "mhunt", &trunk_answered("0301999", "0301000"), port);
    assert!(call.success, "memory-hunt:\n{}", call.log);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "102 joined before the member timeout"
    );
    let first = sipp.wait(first);
    assert!(first.success, "101 rang and was cancelled:\n{}", first.log);
    assert!(sipp.wait(second).success, "102 answers");
    let list = cdrs(&pbx, 1);
    assert_inbound_cdr(list.last().expect("cdr"), "0301000", "102");
}

/// Ring-all with group-timeout 2 s: nobody answers, 101 is cancelled and
/// the call goes to the final destination, extension 102.
#[test]
fn group_timeout_sends_the_call_to_the_final_destination() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = inbound_route("group", "0301000", "ring_group '600'")
            + &ring_group(
                "600",
                "ring-all",
                &["101"],
                "\toption group_timeout '2'\n\toption final_destination_extension '102'\n",
            );
        let pbx = Pbx::start(&uci(port, mode, prov, &extra), port);
        let sipp = Sipp::new();
        let (p101, p102) = (free_port(), free_port());
        register(&sipp, "101", p101, port);
        register(&sipp, "102", p102, port);
        let ringing = sipp.spawn("p101", &callee_cancelled(), p101, port, &[]);
        let last = sipp.spawn("p102", &callee_answers(100), p102, port, &[]);
        let started = Instant::now();
        let call = from_trunk(
            &sipp,
            "timeout",
            &trunk_answered("0301999", "0301000"),
            port,
        );
        assert!(call.success, "{mode}: final destination:\n{}", call.log);
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{mode}: too early"
        );
        let ringing = sipp.wait(ringing);
        assert!(ringing.success, "{mode}: 101 cancelled:\n{}", ringing.log);
        assert!(sipp.wait(last).success, "{mode}: 102 answers");
        let list = cdrs(&pbx, 1);
        assert_inbound_cdr(list.last().expect("cdr"), "0301000", "102");
    }
}

/// The issue's test: a trunk's call to a DID routed to time condition
/// 'office'. With open hours covering every minute of the week it rings
/// ring group 600 (101 answers); with today (and the days either side, for
/// midnight) a holiday it reaches the closed destination, extension 103.
#[test]
fn time_condition_open_rings_the_group_closed_reaches_the_closed_destination() {
    if skip() {
        return;
    }
    let today = chrono_free_today();
    let holidays: String = today
        .iter()
        .map(|d| format!("\tlist holiday '{d}'\n"))
        .collect();
    for (mode, closed) in [
        ("proxy", false),
        ("b2bua", true),
        ("proxy", true),
        ("b2bua", false),
    ] {
        let (port, prov) = (free_port(), free_port());
        let office = format!(
            "config time_condition 'tc_office'\n\toption name 'office'\n\tlist open_hours 'mon-sun 00:00-24:00'\n{}\toption open_destination_ring_group '600'\n\toption closed_destination_extension '103'\n\n",
            if closed { holidays.as_str() } else { "" }
        );
        let extra = inbound_route("office", "_030100X", "time_condition 'office'")
            + &office
            + &ring_group("600", "ring-all", &["101", "102"], "");
        let pbx = Pbx::start(&uci(port, mode, prov, &extra), port);
        let sipp = Sipp::new();
        let (p101, p102, p103) = (free_port(), free_port(), free_port());
        for (u, p) in [("101", p101), ("102", p102), ("103", p103)] {
            register(&sipp, u, p, port);
        }
        let s = inbound_state(&pbx);
        assert_eq!(s["time-condition"][0]["name"], "office", "{s}");
        assert_eq!(s["time-condition"][0]["open"], !closed, "{mode}: {s}");
        let (phones, expect) = if closed {
            (
                vec![sipp.spawn("p103", &callee_answers(100), p103, port, &[])],
                "103",
            )
        } else {
            (
                vec![
                    sipp.spawn("p101", &callee_answers(200), p101, port, &[]),
                    sipp.spawn("p102", &callee_cancelled(), p102, port, &[]),
                ],
                "101",
            )
        };
        let call = from_trunk(&sipp, "office", &trunk_answered("0301999", "0301005"), port);
        assert!(call.success, "{mode} closed={closed}:\n{}", call.log);
        for p in phones {
            let r = sipp.wait(p);
            assert!(r.success, "{mode} closed={closed}: phone:\n{}", r.log);
        }
        let list = cdrs(&pbx, 1);
        assert_inbound_cdr(list.last().expect("cdr"), "0301005", expect);
    }
}

/// Today's date and the days either side (YYYY-MM-DD, the box's local
/// time: the daemon runs here with the same TZ), from `date`.
fn chrono_free_today() -> Vec<String> {
    ["yesterday", "today", "tomorrow"]
        .iter()
        .map(|d| {
            let out = std::process::Command::new("date")
                .args(["-d", d, "+%Y-%m-%d"])
                .output()
                .expect("date");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect()
}

/// A caller-ID route sends callers from 0170... to 102 while the DID's
/// other route goes to 101; a blocklisted caller gets 603 and is counted.
#[test]
fn caller_id_route_and_blocklist() {
    if skip() {
        return;
    }
    let (port, prov) = (free_port(), free_port());
    let extra = inbound_route("main", "0301000", "extension '101'")
        + "config inbound_route 'ir_mobile'\n\toption name 'mobile'\n\toption did '0301000'\n\toption caller_id '_0170.'\n\toption destination_extension '102'\n\n"
        + "";
    // The blocklist is a list of the main section.
    let uci = uci(port, "proxy", prov, &extra);
    let uci = uci.replacen(
        "\toption mode 'proxy'\n",
        "\toption mode 'proxy'\n\tlist blocklist_number '_0900.'\n",
        1,
    );
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let (p101, p102) = (free_port(), free_port());
    register(&sipp, "101", p101, port);
    register(&sipp, "102", p102, port);
    let mobile = sipp.spawn("p102", &callee_answers(100), p102, port, &[]);
    let call = from_trunk(
        &sipp,
        "mobile",
        &trunk_answered("01701234", "0301000"),
        port,
    );
    assert!(call.success, "caller-ID route:\n{}", call.log);
    assert!(
        sipp.wait(mobile).success,
        "102 answers callers from mobiles"
    );
    let blocked = from_trunk(
        &sipp,
        "blocked",
        &trunk_refused("0900666", "0301000", 603),
        port,
    );
    assert!(blocked.success, "blocklisted caller:\n{}", blocked.log);
    let list = cdrs(&pbx, 1);
    assert_inbound_cdr(list.last().expect("cdr"), "0301000", "102");
    let s = inbound_state(&pbx);
    assert_eq!(s["blocked-calls"], "1", "{s}");
    assert_eq!(s["routed-calls"], "1", "{s}");
}

/// An inbound route sends DID 0301000 to the number outside 0555123: from
/// the trunk the call goes out through the trunk; the same INVITE from a
/// stranger (not the trunk's address) is refused and nothing goes out.
#[test]
fn a_stranger_cannot_use_an_inbound_route_to_call_outside() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = inbound_route("fwd", "0301000", "external_number '0555123'");
        let pbx = Pbx::start(&uci(port, mode, prov, &extra), port);
        let sipp = Sipp::new();
        // The stranger on 127.0.0.1 first: refused, the provider gets nothing.
        let stranger = sipp.run(
            "stranger",
            &trunk_refused("0301999", "0301000", 403),
            free_port(),
            port,
            &[],
        );
        assert!(stranger.success, "{mode}: stranger:\n{}", stranger.log);
        let provider = sipp.spawn(
            "provider",
            &callee_answers(100),
            prov,
            port,
            &["-i", TRUNK_IP],
        );
        let call = from_trunk(&sipp, "fwd", &trunk_answered("0301999", "0301000"), port);
        assert!(call.success, "{mode}: routed outside:\n{}", call.log);
        let provider = sipp.wait(provider);
        assert!(provider.success, "{mode}: provider:\n{}", provider.log);
        assert!(
            provider.log.contains("INVITE sip:0555123@"),
            "{mode}: the number outside was called:\n{}",
            provider.log
        );
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("cdr");
        assert_eq!(cdr["did"], "0301000", "{cdr}");
        assert_eq!(cdr["answered-by"], "0555123", "{cdr}");
        let s = inbound_state(&pbx);
        assert_eq!(s["routed-calls"], "1", "{mode}: only the trunk's call: {s}");
    }
}

/// YANG refuses malformed and overlong DID patterns and bad open hours.
#[tokio::test]
async fn yang_refuses_malformed_patterns() {
    use besip_core::datastore::{Datastore, TestOption};
    use besip_core::edit::{DefaultOperation, ErrorOption};
    let root = tempfile::tempdir().expect("tempdir");
    let layout = besip_core::paths::Layout::new(root.path());
    let mut store = Datastore::open(layout.clone()).expect("datastore");
    let mut edit = |inner: String| {
        let xml = format!(
            "<config xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><pbx xmlns=\"urn:besip:pbx\"><extension><number>101</number><password>pw</password></extension>{inner}</pbx></config>"
        );
        let doc = besip_core::xml::parse(&xml).expect("xml");
        store
            .edit_candidate(
                &doc[0].children,
                DefaultOperation::Merge,
                ErrorOption::RollbackOnError,
                TestOption::TestThenSet,
            )
            .map(|_| ())
    };
    let route = |did: &str| {
        format!("<inbound-route><name>r</name><did>{did}</did><destination><extension>101</extension></destination></inbound-route>")
    };
    let long = format!("_{}", "X".repeat(40));
    for bad in [
        "_",
        "abc",
        "_03.0",
        "0301 000",
        "_[1-5]XX",
        long.as_str(),
        "_0*.!",
    ] {
        assert!(edit(route(bad)).is_err(), "DID pattern {bad:?} accepted");
    }
    for bad in [
        "mon-fri 8:00-17:00",
        "someday 08:00-17:00",
        "mon 08:00-25:00",
    ] {
        let tc = format!(
            "<time-condition><name>t</name><open-hours>{bad}</open-hours></time-condition>"
        );
        assert!(edit(tc).is_err(), "open hours {bad:?} accepted");
    }
    edit(route("_030XXX.")).expect("a good pattern");
}

/// The CLI, generated from the YANG module, configures a ring group with
/// its members in order, a time condition, an inbound route and the
/// blocklist, and they reach the PBX's package.
#[test]
fn cli_configures_inbound_routing() {
    use besip_tests::cli::{admin, uci_files};
    use besip_tests::netconf::NetconfServer;
    let server = NetconfServer::start();
    admin(
        server.port,
        &[
            "set pbx extension 101 password s3cret",
            "set pbx extension 102 password s3cret",
            "set pbx trunk prov host 192.0.2.1",
            "set pbx ring-group 600 strategy memory-hunt",
            "set pbx ring-group 600 member-timeout 10",
            "set pbx ring-group 600 member 102",
            "set pbx ring-group 600 member 101",
            "set pbx ring-group 600 final-destination extension 101",
            "set pbx time-condition office open-hours \"mon-fri 08:00-17:00\"",
            "set pbx time-condition office holiday 2026-12-24",
            "set pbx time-condition office open-destination ring-group 600",
            "set pbx time-condition office closed-destination hangup",
            "set pbx inbound-route main did _0301XXX",
            "set pbx inbound-route main trunk prov",
            "set pbx inbound-route main destination time-condition office",
            "set pbx blocklist number _0900.",
            "commit",
        ],
    );
    let shown = admin(server.port, &["show configuration running pbx ring-group"]);
    assert!(shown.contains("strategy memory-hunt"), "{shown}");
    let uci = uci_files(server.root_path());
    let pbx = &uci
        .iter()
        .find(|(n, _)| n == "besip_pbx")
        .expect("besip_pbx")
        .1;
    for option in [
        "option strategy 'memory-hunt'",
        "option final_destination_extension '101'",
        "list open_hours 'mon-fri 08:00-17:00'",
        "option closed_destination_hangup '1'",
        "option open_destination_ring_group '600'",
        "option did '_0301XXX'",
        "option destination_time_condition 'office'",
        "list blocklist_number '_0900.'",
    ] {
        assert!(pbx.contains(option), "{option} missing:\n{pbx}");
    }
    // Members keep the order they were given in.
    let members: Vec<&str> = pbx
        .split("config ring_group_member")
        .skip(1)
        .filter_map(|s| s.lines().find(|l| l.contains("option number")))
        .map(str::trim)
        .collect();
    assert_eq!(
        members,
        ["option number '102'", "option number '101'"],
        "{pbx}"
    );
}

/// An extension's busy forwarding to a hunt group: 101 is busy, the
/// group's watcher takes the call over from forwarding's, skips busy 102
/// and 103 answers; the CDR names both the forward and who answered.
#[test]
fn busy_forward_to_a_hunt_group_hands_the_call_to_the_group() {
    if skip() {
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let (port, prov) = (free_port(), free_port());
        let extra = ring_group(
            "600",
            "hunt",
            &["102", "103"],
            "\toption member_timeout '5'\n",
        );
        let head = "\toption number '101'\n\toption password 'pw101'\n\toption enabled '1'\n";
        let uci = uci(port, mode, prov, &extra).replacen(
            head,
            &format!("{head}\toption forwarding_busy '600'\n"),
            1,
        );
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let (p101, p102, p103) = (free_port(), free_port(), free_port());
        for (u, p) in [("101", p101), ("102", p102), ("103", p103)] {
            register(&sipp, u, p, port);
        }
        let busy = sipp.spawn("p101", &callee_rejects(486, "Busy Here"), p101, port, &[]);
        let busy2 = sipp.spawn("p102", &callee_rejects(486, "Busy Here"), p102, port, &[]);
        let answers = sipp.spawn("p103", &callee_answers(100), p103, port, &[]);
        let one = "<recv response=\"180\" optional=\"true\"/>";
        let caller =
            caller_answered("100", "101").replacen(one, &format!("{one}\n  {one}\n  {one}"), 1);
        let r = sipp.run(
            "caller",
            &caller,
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(r.success, "{mode}: caller:\n{}", r.log);
        assert!(sipp.wait(busy).success, "{mode}: 101 busy");
        assert!(sipp.wait(busy2).success, "{mode}: 102 busy");
        assert!(sipp.wait(answers).success, "{mode}: 103 answers");
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("cdr");
        assert_eq!(cdr["forwarded-by"], "101", "{mode}: {cdr}");
        assert_eq!(cdr["forwarded-to"], "600", "{mode}: {cdr}");
        assert_eq!(cdr["answered-by"], "103", "{mode}: {cdr}");
        let s = inbound_state(&pbx);
        assert_eq!(s["ring-group"][0]["last-answered-by"], "103", "{mode}: {s}");
    }
}

/// The provider's call answered, held `ms`, then hung up.
fn trunk_answered_for(caller: &str, did: &str, ms: u32) -> String {
    trunk_answered(caller, did).replacen(
        "<pause milliseconds=\"300\"/>",
        &format!("<pause milliseconds=\"{ms}\"/>"),
        1,
    )
}

/// Inbound routes to the box's own media services, in both modes: DIDs to
/// a conference room (the caller is a participant while the call lasts),
/// to a mailbox (a voicemail session while it lasts) and to an IVR menu
/// (answered by the box); and, in B2BUA mode, an inbound route with
/// record-calls always records the call it routes to an extension.
#[test]
fn dids_reach_rooms_mailboxes_and_menus_and_a_recorded_route_records() {
    if skip() {
        return;
    }
    for (i, mode) in ["proxy", "b2bua"].into_iter().enumerate() {
        let (port, prov) = (free_port(), free_port());
        let rtp = 46200 + 200 * i as u16;
        let extra = inbound_route("room", "0301500", "conference '800'")
            + &inbound_route("vm", "0301600", "voicemail '101'")
            + &inbound_route("menu", "0301700", "ivr 'main'")
            + &inbound_route("rec", "0301000", "extension '102'").replace(
                "\toption trunk 'prov'\n",
                "\toption trunk 'prov'\n\toption record_calls 'always'\n",
            )
            + "config conference 'conference_800'\n\toption number '800'\n\n\
config ivr 'ivr_main'\n\toption name 'main'\n\toption prompt 'welcome'\n\toption timeout '5'\n\n";
        let uci = uci(port, mode, prov, &extra).replace(
            "\toption mode",
            &format!(
                "\toption rtp_port_min '{rtp}'\n\toption rtp_port_max '{}'\n\toption mode",
                rtp + 199
            ),
        );
        let uci =
            besip_tests::pbx::office::with_ext(&uci, "101", "\toption voicemail_enabled '1'\n");
        assert!(uci.contains("rtp_port_min"), "{uci}");
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();

        let watch = |what: &str, probe: &dyn Fn(&Value) -> bool, scenario: String| {
            let child = sipp.spawn(what, &scenario, free_port(), port, &["-i", TRUNK_IP]);
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut seen = false;
            while Instant::now() < deadline && !seen {
                seen = probe(&pbx.state()["besip-pbx:pbx"]);
                std::thread::sleep(Duration::from_millis(100));
            }
            let done = sipp.wait(child);
            assert!(done.success, "{mode} {what}:\n{}", done.log);
            assert!(seen, "{mode} {what}: never seen in the state");
        };
        watch(
            "did-room",
            &|s| s["conference-state"]["room"][0]["participants"] == 1,
            trunk_answered_for("0301999", "0301500", 2500),
        );
        watch(
            "did-mailbox",
            &|s| s["voicemail-state"]["sessions"] == 1,
            trunk_answered_for("0301999", "0301600", 2500),
        );
        let menu = from_trunk(
            &sipp,
            "did-menu",
            &trunk_answered("0301999", "0301700"),
            port,
        );
        assert!(menu.success, "{mode}: DID to the menu:\n{}", menu.log);

        if mode == "b2bua" {
            let p102 = free_port();
            register(&sipp, "102", p102, port);
            // 102 is one of the tests' RTP phones: it talks to the relay.
            let b = besip_tests::pbx::media_phone::MediaPhone::start(1300.0);
            let answer = callee_answers(100).replace("[media_port]", &b.port.to_string());
            let phone = sipp.spawn("p102", &answer, p102, port, &[]);
            let trunk = sipp.spawn(
                "did-recorded",
                &trunk_answered_for("0301999", "0301000", 3000),
                free_port(),
                port,
                &["-i", TRUNK_IP],
            );
            let deadline = Instant::now() + Duration::from_secs(8);
            let relay_b = loop {
                let st = pbx.state();
                if let Some(p) =
                    st["besip-pbx:pbx"]["nat-state"]["relay"][0]["callee-rtp-port"].as_u64()
                {
                    break p as u16;
                }
                assert!(
                    Instant::now() < deadline,
                    "the recorded route's call was not anchored"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            b.set_peer((std::net::Ipv4Addr::LOCALHOST, relay_b).into());
            let call = sipp.wait(trunk);
            assert!(call.success, "{mode}: DID to 102:\n{}", call.log);
            assert!(sipp.wait(phone).success, "{mode}: 102");
            let deadline = Instant::now() + Duration::from_secs(8);
            loop {
                let list = pbx.state()["besip-pbx:pbx"]["recording-state"]["recording"].clone();
                if list.as_array().is_some_and(|l| !l.is_empty()) {
                    assert!(
                        list[0]["caller"].as_str().unwrap_or("").contains("0301999"),
                        "{list}"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the recorded route's call was not recorded"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
