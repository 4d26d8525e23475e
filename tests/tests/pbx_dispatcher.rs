//! Dispatcher sets: a dialplan route naming a set sends calls to sipp UASes
//! on distinct 127.0.0.x addresses; round-robin spreads them, OPTIONS probing
//! marks a stopped destination down (it then gets no calls, and with all
//! down the caller gets 503), and a 503 from one destination, or no answer
//! at all within no-answer-timeout, fails the call over to the next and
//! marks the destination down (the next call skips it). The IPC state shows
//! each destination's state; YANG refuses a bad no-answer-timeout.

use std::time::{Duration, Instant};

use besip_tests::pbx::assert_state_valid;
use besip_tests::pbx::*;

/// The PBX with set `gw` (`algorithm`, probing every second or off) of
/// destinations `dests` (ip, port), reached by numbers starting with 0.
fn dispatcher_pbx(algorithm: &str, probing: bool, dests: &[(&str, u16)]) -> Pbx {
    let port = free_port();
    Pbx::start(&dispatcher_uci(port, algorithm, probing, dests), port)
}

fn dispatcher_uci(port: u16, algorithm: &str, probing: bool, dests: &[(&str, u16)]) -> String {
    let mut uci = config(port, "");
    uci.push_str(&format!(
        "config dispatcher_set 'dispatcher_set_gw'\n\toption name 'gw'\n\toption algorithm '{algorithm}'\n\toption probing '{}'\n\toption probe_interval '1'\n\n",
        u8::from(probing)
    ));
    for (i, (ip, p)) in dests.iter().enumerate() {
        uci.push_str(&format!(
            "config dispatcher_set_destination 'dispatcher_set_gw__d{i}'\n\toption dispatcher_set 'gw'\n\toption uri 'sip:{ip}:{p}'\n\toption weight '1'\n\n"
        ));
    }
    uci.push_str("config route 'route_out'\n\toption name 'out'\n\toption priority '100'\n\toption match '0'\n\toption strip '0'\n\toption dispatcher_set 'gw'\n\n");
    uci
}

/// (state, calls-sent) of destination `uri` in the IPC state.
fn dest_state(pbx: &Pbx, uri: &str) -> (String, u64) {
    let s = pbx.state();
    let sets = s["besip-pbx:pbx"]["dispatcher-set"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for set in sets {
        for d in set["destination"].as_array().cloned().unwrap_or_default() {
            if d["uri"] == uri {
                let calls = d["calls-sent"].as_str().and_then(|c| c.parse().ok());
                return (
                    d["state"].as_str().unwrap_or("").to_owned(),
                    calls.unwrap_or(u64::MAX),
                );
            }
        }
    }
    panic!("no destination {uri} in the state: {s}");
}

/// last-call-failure of destination `uri` in the IPC state.
fn last_failure(pbx: &Pbx, uri: &str) -> Option<String> {
    let s = pbx.state();
    let sets = s["besip-pbx:pbx"]["dispatcher-set"].as_array().cloned();
    sets.unwrap_or_default()
        .iter()
        .flat_map(|set| set["destination"].as_array().cloned().unwrap_or_default())
        .find(|d| d["uri"] == uri)
        .and_then(|d| d["last-call-failure"].as_str().map(str::to_owned))
}

/// The set's config without probing, a failed destination kept down for a
/// minute (so the second call of a test must skip it), in `mode`.
fn failover_uci(mode: &str, dests: &[(&str, u16)], no_answer_ms: u32) -> (String, u16) {
    let port = free_port();
    let uci = dispatcher_uci(port, "round-robin", false, dests)
        .replace(
            "\toption mode 'proxy'\n",
            &format!("\toption mode '{mode}'\n"),
        )
        .replace(
            "\toption probe_interval '1'\n",
            &format!("\toption probe_interval '60'\n\toption no_answer_timeout '{no_answer_ms}'\n"),
        );
    (uci, port)
}

fn wait_state(pbx: &Pbx, uri: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let (state, _) = dest_state(pbx, uri);
        if state == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{uri} is {state}, not {want}: {}",
            pbx.state()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn call(sipp: &Sipp, pbx: &Pbx, name: &str, scenario: &str) {
    let r = sipp.run(
        name,
        scenario,
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "{name} failed:\n{}", r.log);
}

#[test]
fn round_robin_spreads_calls_over_two_destinations() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let pbx = dispatcher_pbx(
        "round-robin",
        false,
        &[("127.0.0.2", pa), ("127.0.0.3", pb)],
    );
    let sipp = Sipp::new();
    let a = sipp.spawn("a", &callee_answers(0), pa, pbx.port, &["-i", "127.0.0.2"]);
    let b = sipp.spawn("b", &callee_answers(0), pb, pbx.port, &["-i", "127.0.0.3"]);
    call(&sipp, &pbx, "call1", &caller_answered("100", "0555001"));
    call(&sipp, &pbx, "call2", &caller_answered("100", "0555002"));
    let (ra, rb) = (sipp.wait(a), sipp.wait(b));
    assert!(ra.success, "destination a got no call:\n{}", ra.log);
    assert!(rb.success, "destination b got no call:\n{}", rb.log);
    let ua = format!("sip:127.0.0.2:{pa}");
    let ub = format!("sip:127.0.0.3:{pb}");
    assert_eq!(dest_state(&pbx, &ua), ("up".into(), 1));
    assert_eq!(dest_state(&pbx, &ub), ("up".into(), 1));
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

#[test]
fn proxy_fails_over_to_the_next_destination_on_503() {
    failover_on_503("proxy", "127.0.0.4", "127.0.0.5");
}

#[test]
fn b2bua_fails_over_to_the_next_destination_on_503() {
    failover_on_503("b2bua", "127.0.0.10", "127.0.0.11");
}

fn failover_on_503(mode: &str, ip_a: &str, ip_b: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let (uci, port) = failover_uci(mode, &[(ip_a, pa), (ip_b, pb)], 3000);
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let rejects = callee_rejects(503, "Service Unavailable");
    let a = sipp.spawn("a", &rejects, pa, pbx.port, &["-i", ip_a]);
    let b_args = ["-i", ip_b, "-m", "2"];
    let b = sipp.spawn("b", &callee_answers(0), pb, pbx.port, &b_args);
    // Round-robin starts with the first destination: it answers 503, the
    // call is answered by the second (and hung up through it).
    call(&sipp, &pbx, "call", &caller_answered("100", "0555003"));
    let (ua, ub) = (format!("sip:{ip_a}:{pa}"), format!("sip:{ip_b}:{pb}"));
    // The 503 marked a down: the next call goes straight to b.
    assert_eq!(dest_state(&pbx, &ua), ("down".into(), 1));
    assert_eq!(
        last_failure(&pbx, &ua).as_deref(),
        Some("503 Service Unavailable")
    );
    call(&sipp, &pbx, "call2", &caller_answered("100", "0555013"));
    let (ra, rb) = (sipp.wait(a), sipp.wait(b));
    assert!(ra.success, "destination a:\n{}", ra.log);
    assert!(rb.success, "destination b got no failover:\n{}", rb.log);
    assert_eq!(dest_state(&pbx, &ua), ("down".into(), 1));
    assert_eq!(dest_state(&pbx, &ub), ("up".into(), 2));
    assert_eq!(last_failure(&pbx, &ub), None);
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

#[test]
fn proxy_gives_up_a_silent_destination_and_marks_it_down() {
    failover_on_silence("proxy", "127.0.0.12", "127.0.0.13");
}

#[test]
fn b2bua_gives_up_a_silent_destination_and_marks_it_down() {
    failover_on_silence("b2bua", "127.0.0.14", "127.0.0.15");
}

/// A UDP socket that reads and never answers: the SIP methods it got.
fn silent_destination(ip: &str, port: u16) -> std::thread::JoinHandle<Vec<String>> {
    let sock = std::net::UdpSocket::bind((ip, port)).expect("bind silent destination");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        // Bounded: the test is over well before.
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("STOP") {
                    break;
                }
                got.push(text.split(' ').next().unwrap_or("").to_owned());
            }
        }
        got
    })
}

fn failover_on_silence(mode: &str, ip_a: &str, ip_b: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let (uci, port) = failover_uci(mode, &[(ip_a, pa), (ip_b, pb)], 1000);
    let pbx = Pbx::start(&uci, port);
    let silent = silent_destination(ip_a, pa);
    let sipp = Sipp::new();
    let b_args = ["-i", ip_b, "-m", "2"];
    let b = sipp.spawn("b", &callee_answers(0), pb, pbx.port, &b_args);
    // Round-robin starts with a, which never answers: after 1 s the call
    // goes on to b instead of waiting for Timer B (32 s).
    let started = Instant::now();
    call(&sipp, &pbx, "call", &caller_answered("100", "0555014"));
    assert!(
        started.elapsed() < Duration::from_secs(16),
        "failover took {:?}, as long as Timer B",
        started.elapsed()
    );
    let (ua, ub) = (format!("sip:{ip_a}:{pa}"), format!("sip:{ip_b}:{pb}"));
    assert_eq!(dest_state(&pbx, &ua), ("down".into(), 1));
    assert_eq!(
        last_failure(&pbx, &ua).as_deref(),
        Some("no answer in 1000 ms")
    );
    // The next call skips a at once.
    call(&sipp, &pbx, "call2", &caller_answered("100", "0555015"));
    let rb = sipp.wait(b);
    assert!(rb.success, "destination b:\n{}", rb.log);
    assert_eq!(dest_state(&pbx, &ua), ("down".into(), 1));
    assert_eq!(dest_state(&pbx, &ub), ("up".into(), 2));
    // Retransmissions of the INVITE to a stopped when it was given up (at
    // 0 and 0.5 s; Timer A would go on at 1.5 and 3.5 s), and it got no
    // CANCEL (it never answered, RFC 3261 §9.1).
    let left = Duration::from_millis(4000).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    let stop = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    stop.send_to(b"STOP", (ip_a, pa)).expect("stop");
    let got = silent.join().expect("silent destination");
    let invites = got.iter().filter(|m| *m == "INVITE").count();
    assert!((1..=3).contains(&invites), "a got {got:?}");
    assert!(got.iter().all(|m| m == "INVITE"), "a got {got:?}");
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

#[test]
fn probing_marks_a_stopped_destination_down_and_it_gets_no_calls() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let pbx = dispatcher_pbx("round-robin", true, &[("127.0.0.6", pa), ("127.0.0.7", pb)]);
    let (ua, ub) = (format!("sip:127.0.0.6:{pa}"), format!("sip:127.0.0.7:{pb}"));
    let sipp = Sipp::new();
    // Both answer OPTIONS (-aa); a is then stopped. sipp counts each OPTIONS
    // as a call, hence the large -m (the test stops both).
    let uas = |name: &str, ip: &str, port: u16| {
        let args = ["-i", ip, "-aa", "-m", "1000"];
        sipp.spawn(name, &callee_answers(0), port, pbx.port, &args)
    };
    let (mut a, mut b) = (uas("a", "127.0.0.6", pa), uas("b", "127.0.0.7", pb));
    wait_state(&pbx, &ua, "up");
    wait_state(&pbx, &ub, "up");
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
    let _ = a.kill();
    let _ = a.wait();
    wait_state(&pbx, &ua, "down");
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
    // Both calls are answered, by b: a is down and gets none.
    call(&sipp, &pbx, "call1", &caller_answered("100", "0555004"));
    call(&sipp, &pbx, "call2", &caller_answered("100", "0555005"));
    assert_eq!(dest_state(&pbx, &ua), ("down".into(), 0));
    assert_eq!(dest_state(&pbx, &ub), ("up".into(), 2));
    // b is stopped too: every destination down, the caller gets 503.
    let _ = b.kill();
    let _ = b.wait();
    wait_state(&pbx, &ub, "down");
    let rejected = caller_rejected("100", "0555006", 503);
    call(&sipp, &pbx, "call3", &rejected);
}

#[test]
fn reload_changes_the_destinations() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    // a: nothing listens there, so probing marks it down; every call gets 503.
    let mut pbx = dispatcher_pbx("hash-call-id", true, &[("127.0.0.8", pa)]);
    let ua = format!("sip:127.0.0.8:{pa}");
    let ub = format!("sip:127.0.0.9:{pb}");
    wait_state(&pbx, &ua, "down");
    let sipp = Sipp::new();
    let rejected = caller_rejected("100", "0555007", 503);
    call(&sipp, &pbx, "before", &rejected);
    // The reload adds b (alive), and the call reaches it.
    let args = ["-i", "127.0.0.9", "-aa", "-m", "1000"];
    let mut b = sipp.spawn("b", &callee_answers(0), pb, pbx.port, &args);
    let uci = dispatcher_uci(
        pbx.port,
        "hash-call-id",
        true,
        &[("127.0.0.8", pa), ("127.0.0.9", pb)],
    );
    std::fs::write(pbx.root.path().join("etc/config/besip_pbx"), uci).expect("write");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    wait_state(&pbx, &ub, "up");
    assert_eq!(dest_state(&pbx, &ua).0, "down");
    call(&sipp, &pbx, "after", &caller_answered("100", "0555008"));
    assert_eq!(dest_state(&pbx, &ub), ("up".into(), 1));
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
    let _ = b.kill();
    let _ = b.wait();
    // A reload dropping a leaves only b in the state.
    let uci = dispatcher_uci(pbx.port, "hash-call-id", true, &[("127.0.0.9", pb)]);
    std::fs::write(pbx.root.path().join("etc/config/besip_pbx"), uci).expect("write");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    let s = pbx.state();
    let dests = &s["besip-pbx:pbx"]["dispatcher-set"][0]["destination"];
    assert_eq!(dests.as_array().map(Vec::len), Some(1), "{s}");
    assert_eq!(dests[0]["uri"], ub.as_str());
    let _ = pbx.stop();
}

/// A callee that stays silent for 1.6 s, then rings: it must get a CANCEL
/// (answered 200 and 487, whose ACK it waits for).
fn late_callee() -> String {
    let tag = "lateringing[call_number]";
    scenario(
        "late callee",
        &format!(
            r#"  <recv request="INVITE">
    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/></action>
  </recv>
  <pause milliseconds="1600"/>
{}  <recv request="CANCEL"/>
{}  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag={tag}
[last_Call-ID:]
CSeq: [$cseq] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK"/>
"#,
            uas_reply("180 Ringing", tag, UAS_CONTACT, "", false),
            uas_reply("200 OK", tag, "", "", false),
        ),
    )
}

/// A destination given up for silence that rings later is cancelled (§9.1:
/// the CANCEL waits for its provisional) and its ringing never reaches the
/// caller, who is answered by the next destination.
#[test]
fn a_given_up_destination_that_rings_late_is_cancelled() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (ip_a, ip_b) = ("127.0.0.16", "127.0.0.17");
    let (pa, pb) = (free_port(), free_port());
    let (uci, port) = failover_uci("proxy", &[(ip_a, pa), (ip_b, pb)], 1000);
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let a = sipp.spawn("a", &late_callee(), pa, pbx.port, &["-i", ip_a]);
    let b = sipp.spawn("b", &callee_answers(2000), pb, pbx.port, &["-i", ip_b]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555016"));
    let (ra, rb) = (sipp.wait(a), sipp.wait(b));
    assert!(
        ra.success,
        "the late destination got no CANCEL:\n{}",
        ra.log
    );
    assert!(rb.success, "destination b:\n{}", rb.log);
    let seen = sipp.messages("call");
    assert!(
        !seen.contains("lateringing"),
        "the caller heard the given-up branch:\n{seen}"
    );
    assert_eq!(
        dest_state(&pbx, &format!("sip:{ip_a}:{pa}")),
        ("down".into(), 1)
    );
}

/// A callee silent for 1.6 s that then answers 200 at once: it must get
/// our ACK and a BYE (B2BUA mode: nobody uses that answer).
fn late_answer() -> String {
    scenario(
        "late answer",
        &format!(
            "  <recv request=\"INVITE\"/>\n  <pause milliseconds=\"1600\"/>\n{}{}",
            uas_reply("200 OK", "lateanswer[call_number]", UAS_CONTACT, "", true),
            ack_then_bye_answered()
        ),
    )
}

#[test]
fn b2bua_hangs_up_a_late_answer_of_a_given_up_destination() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (ip_a, ip_b) = ("127.0.0.20", "127.0.0.21");
    let (pa, pb) = (free_port(), free_port());
    let (uci, port) = failover_uci("b2bua", &[(ip_a, pa), (ip_b, pb)], 1000);
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let a = sipp.spawn("a", &late_answer(), pa, pbx.port, &["-i", ip_a]);
    let b = sipp.spawn("b", &callee_answers(2000), pb, pbx.port, &["-i", ip_b]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555018"));
    let (ra, rb) = (sipp.wait(a), sipp.wait(b));
    assert!(
        ra.success,
        "the late answer got no ACK and BYE:\n{}",
        ra.log
    );
    assert!(rb.success, "destination b:\n{}", rb.log);
}

#[test]
fn proxy_ends_a_cancelled_call_to_a_silent_destination_with_487() {
    cancel_while_silent("proxy", "127.0.0.18");
}

#[test]
fn b2bua_ends_a_cancelled_call_to_a_silent_destination_with_487() {
    cancel_while_silent("b2bua", "127.0.0.19");
}

/// The caller cancels while the only destination has sent nothing: no
/// CANCEL goes to it (§9.1), and once the branch is given up the caller's
/// INVITE ends 487, not after Timer B.
fn cancel_while_silent(mode: &str, ip: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let pa = free_port();
    let (uci, port) = failover_uci(mode, &[(ip, pa)], 1000);
    let pbx = Pbx::start(&uci, port);
    let silent = silent_destination(ip, pa);
    let sipp = Sipp::new();
    // As caller_cancels, without waiting for a 180 that never comes: the
    // CANCEL follows our 100 Trying.
    let cancels = caller_cancels("100", "0555017").replace("  <recv response=\"180\"/>\n", "");
    let opt = "<recv response=\"100\" optional=\"true\"/>";
    let at = cancels.rfind(opt).expect("the 100 of the second INVITE");
    let cancels = format!(
        "{}<recv response=\"100\"/>{}",
        &cancels[..at],
        &cancels[at + opt.len()..]
    );
    let started = Instant::now();
    call(&sipp, &pbx, "call", &cancels);
    assert!(
        started.elapsed() < Duration::from_secs(16),
        "the 487 took {:?}, as long as Timer B",
        started.elapsed()
    );
    let stop = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    stop.send_to(b"STOP", (ip, pa)).expect("stop");
    let got = silent.join().expect("silent destination");
    assert!(!got.is_empty(), "the destination got no INVITE");
    assert!(got.iter().all(|m| m == "INVITE"), "it got {got:?}");
    // A cancelled call says nothing about the destination.
    let uri = format!("sip:{ip}:{pa}");
    assert_eq!(dest_state(&pbx, &uri), ("up".into(), 1));
}

/// no-answer-timeout through the real configuration core: out of range or
/// not a number is refused (and changes nothing), a good value and the
/// default are rendered as the UCI option the daemon reads.
#[tokio::test]
async fn yang_checks_and_renders_no_answer_timeout() {
    use besip_core::datastore::{CommitOptions, Datastore, NoReload, TestOption};
    use besip_core::edit::{DefaultOperation, ErrorOption};
    let root = tempfile::tempdir().expect("tempdir");
    let layout = besip_core::paths::Layout::new(root.path());
    let mut store = Datastore::open(layout.clone()).expect("datastore");
    let set = |name: &str, timeout: &str| {
        let leaf = match timeout {
            "" => String::new(),
            t => format!("<no-answer-timeout>{t}</no-answer-timeout>"),
        };
        format!(
            "<config xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><pbx xmlns=\"urn:besip:pbx\"><dispatcher-set><name>{name}</name>{leaf}<destination><uri>sip:127.0.0.1:5090</uri></destination></dispatcher-set></pbx></config>"
        )
    };
    let mut edit = |xml: String| {
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
    for bad in ["0", "499", "32001", "70000", "-1", "2s", ""] {
        let bad = if bad.is_empty() { " " } else { bad };
        assert!(edit(set("gw", bad)).is_err(), "{bad} accepted");
    }
    edit(set("gw", "2000")).expect("2000 ms is fine");
    edit(set("other", "")).expect("the default");
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .expect("commit");
    let uci = std::fs::read_to_string(layout.uci_package("besip_pbx")).expect("uci");
    let pkg = besip_core::uci::Package::parse("besip_pbx", &uci).expect("parse");
    let timeout = |name: &str| {
        pkg.sections_of("dispatcher_set")
            .find(|s| s.get("name") == Some(name))
            .and_then(|s| s.get("no_answer_timeout").map(str::to_owned))
    };
    assert_eq!(timeout("gw").as_deref(), Some("2000"), "{uci}");
    assert_eq!(timeout("other").as_deref(), Some("3000"), "{uci}");
}
