//! Call parking with sipp against besip-pbxd in B2BUA mode: a phone
//! transfers its call to slot 70, the daemon's state lists it, another
//! extension dials 70 and talks to the parked party; unretrieved, the call
//! rings the parker back after the timeout. CDRs for each leg. Strangers
//! cannot retrieve, an empty slot answers 404. With music on hold on, the
//! waiting party hears it until the retrieval. A trunk's DID routed to the
//! lot: the box answers, the call waits with music until 103 takes it; a
//! full lot answers 486, and a call nobody takes ends at the timeout.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use besip_tests::pbx::office::{b2bua_config, cdrs, no_calls_left};
use besip_tests::pbx::*;
use serde_json::Value;

/// The answered call's INVITE, captured for requests the callee sends.
const UAS_INVITE_CAPTURED: &str = r#"  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="me"/>
    </action>
  </recv>
"#;

fn ok() -> String {
    uas_reply("200 OK", "", "", "", false)
}

/// 101 answers, then transfers the call to slot 70: 202, NOTIFY 200, BYE.
fn parker() -> String {
    let answer = format!(
        "{UAS_INVITE_CAPTURED}{}{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "180 Ringing",
            "[pid]uas[call_number]",
            "[last_Record-Route:]\n",
            "",
            false
        ),
        uas_reply(
            "200 OK",
            "[pid]uas[call_number]",
            &format!("[last_Record-Route:]\n{UAS_CONTACT}Content-Type: application/sdp\n"),
            SDP,
            true
        ),
    );
    let refer = r#"  <pause milliseconds="200"/>
  <send retrans="500"><![CDATA[
REFER [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From:[$me];tag=[pid]uas[call_number]
To:[$peer]
Call-ID: [call_id]
CSeq: 10 REFER
Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
Refer-To: <sip:70@besip.test>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="202"/>
  <recv request="NOTIFY"/>
"#;
    scenario(
        "parker",
        &format!("{answer}{refer}{}  <recv request=\"BYE\"/>\n{}", ok(), ok()),
    )
}

/// The caller: answered by 101, parked, then re-INVITEd (by whoever takes
/// the call) and answers; `end`: what follows.
fn parked_caller(end: &str) -> String {
    let s = caller_answered("100", "101");
    let s = s.replace(
        r#"<recv response="200" rrs="true"/>"#,
        r#"<recv response="200" rrs="true"><action><ereg regexp=".*" search_in="hdr" header="To:" assign_to="callee"/></action></recv>"#,
    );
    let pause = "  <pause milliseconds=\"300\"/>\n";
    let (head, tail) = s.split_once(pause).expect("scenario shape");
    let reinvited = format!(
        "  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "200 OK",
            "",
            &format!("{UAS_CONTACT}Content-Type: application/sdp\n"),
            SDP,
            true
        )
    );
    match end {
        // It hangs up itself.
        "bye" => format!(
            "{head}{reinvited}{pause}{}",
            tail.replacen("[last_To:]", "To:[$callee]", 1)
        ),
        // The other side hangs up (the captured To is then unused: sipp
        // refuses that, so it is logged).
        _ => format!(
            "{}{reinvited}  <recv request=\"BYE\"/>\n{}  <nop><action><log message=\"[$callee]\"/></action></nop>\n</scenario>\n",
            head,
            ok()
        ),
    }
}

fn slots(pbx: &Pbx) -> Vec<Value> {
    pbx.state()["besip-pbx:pbx"]["parking-state"]["slot"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_parked(pbx: &Pbx) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = slots(pbx).into_iter().next() {
            return s;
        }
        assert!(Instant::now() < deadline, "nothing parked: {}", pbx.state());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pairs(list: &[Value]) -> Vec<(String, String)> {
    list.iter()
        .map(|c| {
            (
                c["caller"].as_str().unwrap_or("").to_owned(),
                c["callee"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn b2bua_parked_call_is_retrieved_by_dialling_the_slot() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&b2bua_config(port, ""), port);
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    let b = sipp.spawn("b", &parker(), b_port, pbx.port, &[]);
    let a = sipp.spawn(
        "a",
        &parked_caller("wait"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let slot = wait_parked(&pbx);
    assert_eq!(slot["number"], 70, "{slot}");
    assert_eq!(slot["parked"], "sip:100@besip.test", "{slot}");
    assert_eq!(slot["parked-by"], "101", "{slot}");
    assert_eq!(slot["ringing-back"], false, "{slot}");
    assert_state_valid(&pbx, &pbx.state());
    let b = sipp.wait(b);
    assert!(b.success, "parker failed:\n{}", b.log);

    // A stranger cannot take it; 103 does.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let evil = format!(
        "INVITE sip:70@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpark1;rport\r\nFrom: <sip:spy@example.com>;tag=ev\r\nTo: <sip:70@besip.test>\r\nCall-ID: park-evil\r\nCSeq: 1 INVITE\r\nContact: <sip:spy@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(evil.as_bytes(), ("127.0.0.1", pbx.port))
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let answer = loop {
        let n = sock.recv(&mut buf).expect("an answer");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !m.starts_with("SIP/2.0 100") {
            break m;
        }
    };
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    let empty = sipp.run(
        "empty",
        &caller_rejected("102", "71", 404),
        free_port(),
        pbx.port,
        &["-au", "102", "-ap", "pw102"],
    );
    assert!(empty.success, "empty slot 71:\n{}", empty.log);
    let r = sipp.run(
        "r",
        &caller_answered("103", "70"),
        free_port(),
        pbx.port,
        &["-au", "103", "-ap", "pw103"],
    );
    let a = sipp.wait(a);
    assert!(r.success, "retriever failed:\n{}", r.log);
    assert!(a.success, "parked caller failed:\n{}", a.log);
    assert!(slots(&pbx).is_empty(), "{}", pbx.state());
    let list = cdrs(&pbx, 2);
    let p = pairs(&list);
    for want in [
        ("sip:100@besip.test", "sip:101@besip.test"),
        ("sip:100@besip.test", "sip:103@besip.test"),
    ] {
        assert!(
            p.iter().any(|x| x.0 == want.0 && x.1 == want.1),
            "{want:?} not in {p:?}"
        );
    }
    no_calls_left(&pbx);
}

#[test]
fn b2bua_parked_call_rings_the_parker_back_after_the_timeout() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&b2bua_config(port, "\toption parking_timeout '5'\n"), port);
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    let b = sipp.spawn("b", &parker(), b_port, pbx.port, &[]);
    let started = Instant::now();
    let a = sipp.spawn(
        "a",
        &parked_caller("bye"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    wait_parked(&pbx);
    let b = sipp.wait(b);
    assert!(b.success, "parker failed:\n{}", b.log);
    // The parker's phone again, now rung back.
    let b2 = sipp.spawn("b2", &callee_answers(100), b_port, pbx.port, &[]);
    let a = sipp.wait(a);
    let b2 = sipp.wait(b2);
    assert!(a.success, "parked caller failed:\n{}", a.log);
    assert!(b2.success, "parker not rung back:\n{}", b2.log);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "rung back before the timeout"
    );
    let list = cdrs(&pbx, 3);
    let p = pairs(&list);
    for want in [
        ("sip:100@besip.test", "sip:101@besip.test"),
        ("sip:100@besip.test", "sip:70@besip.test"),
    ] {
        assert!(
            p.iter().any(|x| x.0 == want.0 && x.1 == want.1),
            "{want:?} not in {p:?}"
        );
    }
    assert_eq!(
        p.iter().filter(|x| x.1 == "sip:101@besip.test").count(),
        2,
        "{p:?}"
    );
    assert!(slots(&pbx).is_empty(), "{}", pbx.state());
    no_calls_left(&pbx);
}

/// The box as configured over NETCONF with the CLI: a call parked by a
/// sipp phone is listed by `show pbx parking-state`, and a watched
/// extension's lamp by `show pbx presence-state`.
#[test]
fn cli_shows_parked_calls() {
    use besip_tests::cli::{admin, besip};
    use besip_tests::harness::bin_path;
    use besip_tests::netconf::{NetconfServer, ADMIN_PASSWORD};
    use std::process::{Command, Stdio};
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let server = NetconfServer::start();
    let sip_port = free_port();
    admin(
        server.port,
        &[
            "set pbx mode b2bua",
            "set pbx domain besip.test",
            "set pbx auth realm besip.test",
            "set pbx auth algorithms md5",
            "set pbx listen u address 127.0.0.1",
            &format!("set pbx listen u port {sip_port}"),
            "set pbx extension 100 password pw100",
            "set pbx extension 101 password pw101",
            "set pbx parking first-slot 70",
            "commit",
        ],
    );
    let mut daemon = Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(server.root_path())
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip-pbxd");
    let socket = server.root_path().join("run/pbx.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !options_answered(sip_port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, sip_port);
    let b = sipp.spawn("b", &parker(), b_port, sip_port, &[]);
    let mut a = sipp.spawn(
        "a",
        &parked_caller("wait"),
        free_port(),
        sip_port,
        &["-au", "100", "-ap", "pw100"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let out = besip(
            server.port,
            "admin",
            ADMIN_PASSWORD,
            &["-c", "show pbx parking-state"],
            "",
        );
        let text = out.stdout.clone();
        if text.contains("70") && text.contains("sip:100@besip.test") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no parked call shown: {}{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = sipp.wait(b);
    // The parked caller would wait for its retrieval until sipp's timeout.
    let _ = a.kill();
    let _ = a.wait();
    assert!(shown.contains("101"), "parker not shown:\n{shown}");
    assert!(socket.exists() || !shown.is_empty());
}

/// With music on hold on, the parked party hears the store's music while
/// it waits (from the relay port it already receives from); once 103
/// retrieves the call the two hear each other through the relay and the
/// music has stopped (this fails with the music left running).
#[test]
fn b2bua_parked_party_hears_music_until_retrieved() {
    use besip_tests::pbx::media_phone::{holds, MediaPhone};
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let uci = b2bua_config(
        port,
        "\toption rtp_port_min '46600'\n\toption rtp_port_max '46799'\n\toption music_on_hold_enabled '1'\n",
    );
    let pbx = Pbx::start(&uci, port);
    // The music: a 1250 Hz tone uploaded as the store's music-on-hold.
    let music = besip_media::tone::sine(1250.0, 6000.0, 1000);
    let audio = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        besip_media::wav::encode(1, &music),
    );
    pbx.ipc(
        "rpc",
        serde_json::json!({"name": "upload-prompt", "input": {"name": "music-on-hold", "audio": audio}}),
    )
    .expect("upload the music");
    let sipp = Sipp::new();
    let phone = MediaPhone::start(500.0);
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    let b = sipp.spawn("b", &parker(), b_port, pbx.port, &[]);
    let a = sipp.spawn(
        "a",
        &parked_caller("wait").replace("[media_port]", &phone.port.to_string()),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    // The caller talks to the relay's port named in its 200.
    let deadline = Instant::now() + Duration::from_secs(10);
    let relay_a = loop {
        let st = pbx.state();
        if let Some(p) = st["besip-pbx:pbx"]["nat-state"]["relay"][0]["caller-rtp-port"].as_u64() {
            break p as u16;
        }
        assert!(Instant::now() < deadline, "the call is not anchored: {st}");
        std::thread::sleep(Duration::from_millis(50));
    };
    phone.set_peer((std::net::Ipv4Addr::LOCALHOST, relay_a).into());
    wait_parked(&pbx);
    let parked = Instant::now();
    let deadline = parked + Duration::from_secs(8);
    while !phone.heard_tone_since(parked, 1250.0) {
        assert!(Instant::now() < deadline, "the parked party hears no music");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sipp.wait(b).success, "parker failed");
    // 103 retrieves it, saying 700 Hz through the relay.
    let retriever = MediaPhone::start(700.0);
    let r = sipp.spawn(
        "r",
        &besip_tests::pbx::media_phone::media_caller("103", "70", &retriever.sdp(), Some(3000)),
        free_port(),
        pbx.port,
        &["-au", "103", "-ap", "pw103"],
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while !slots(&pbx).is_empty() {
        assert!(Instant::now() < deadline, "not retrieved: {}", pbx.state());
        std::thread::sleep(Duration::from_millis(50));
    }
    let retrieved = Instant::now();
    let relay_b = pbx.state()["besip-pbx:pbx"]["nat-state"]["relay"][0]["callee-rtp-port"]
        .as_u64()
        .expect("the relay's other port") as u16;
    retriever.set_peer((std::net::Ipv4Addr::LOCALHOST, relay_b).into());
    let deadline = Instant::now() + Duration::from_secs(8);
    while !phone.heard_tone_since(retrieved, 700.0) {
        assert!(
            Instant::now() < deadline,
            "the parked party does not hear the retriever"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(800));
    let window = phone.heard_last(Duration::from_millis(600));
    assert!(
        holds(&window, 700.0, 0.3),
        "the parked party lost the retriever"
    );
    assert!(
        !holds(&window, 1250.0, 0.1),
        "the music went on after the retrieval"
    );
    assert!(
        retriever.heard_tone_since(retrieved, 500.0),
        "the retriever does not hear the parked party"
    );
    let r = sipp.wait(r);
    assert!(r.success, "retriever failed:\n{}", r.log);
    let a = sipp.wait(a);
    assert!(a.success, "parked caller failed:\n{}", a.log);
}

/// The provider's call from 127.0.0.2 to `did` offering `sdp`: answered
/// by the box, then what `then` expects.
fn trunk_call(did: &str, sdp: &str, then: &str) -> String {
    let invite = format!(
        r#"  <send retrans="500"><![CDATA[
INVITE sip:{did}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:0301999@provider.example>;tag=[pid]trunk[call_number]
To: <sip:{did}@besip.test>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:0301999@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
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
"#
    );
    scenario("trunk", &format!("{invite}{then}"))
}

/// A refused trunk call (`code`, then the ACK).
fn trunk_refused(did: &str, code: u16) -> String {
    let ok = trunk_call(did, SDP, "");
    let head = &ok[..ok.find("  <recv response=\"200\"").expect("scenario shape")];
    format!(
        "{head}  <recv response=\"{code}\"/>\n  <send><![CDATA[\nACK sip:{did}@besip.test SIP/2.0\n[last_Via:]\n[last_From:]\n[last_To:]\nCall-ID: [call_id]\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n</scenario>\n"
    )
}

/// B2BUA mode with music on, RTP ports from `rtp`, lot `options`, and the
/// trunk 'prov' whose DID 0301070 goes to the parking lot.
fn lot_config(port: u16, rtp: u16, options: &str) -> String {
    besip_tests::pbx::office::media_base(
        port,
        "b2bua",
        rtp,
        &format!("\toption music_on_hold_enabled '1'\n{options}"),
    ) + "config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.2'\n\toption port '5999'\n\n\
config inbound_route 'ir_lot'\n\toption name 'lot'\n\toption did '0301070'\n\toption trunk 'prov'\n\toption destination_parking '1'\n\n"
}

/// An inbound route to the parking lot: the trunk's call is answered on
/// the relay and waits on slot 70 hearing the music (no parker in the
/// state), until 103 dials 70 and the two hear each other; CDRs name the
/// slot, then the retriever. A stranger's call to the DID is no trunk call.
#[test]
fn a_did_to_the_parking_lot_waits_until_an_extension_takes_it() {
    use besip_tests::pbx::media_phone::{media_caller, MediaPhone};
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&lot_config(port, 47000, ""), port);
    let sipp = Sipp::new();
    // The stranger dials the DID from 127.0.0.1: not the trunk, nothing parked.
    let stranger = sipp.run(
        "stranger",
        &trunk_refused("0301070", 404).replace("0301999@provider", "spy@provider"),
        free_port(),
        port,
        &[],
    );
    assert!(
        !stranger.log.contains("SIP/2.0 200"),
        "a stranger's call was answered:\n{}",
        stranger.log
    );
    assert!(slots(&pbx).is_empty(), "{}", pbx.state());

    let caller = MediaPhone::start(500.0);
    let waits = format!(
        "  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n  <recv request=\"BYE\"/>\n{}",
        uas_reply(
            "200 OK",
            "",
            &format!("{UAS_CONTACT}Content-Type: application/sdp\n"),
            &caller.sdp(),
            true
        ),
        ok()
    );
    let trunk = sipp.spawn(
        "trunk",
        &trunk_call("0301070", &caller.sdp(), &waits),
        free_port(),
        port,
        &["-i", "127.0.0.2"],
    );
    let slot = wait_parked(&pbx);
    assert_eq!(slot["number"], 70, "{slot}");
    assert_eq!(slot["parked"], "sip:0301999@provider.example", "{slot}");
    assert!(slot.get("parked-by").is_none(), "{slot}");
    assert_state_valid(&pbx, &pbx.state());
    let relay_a = pbx.state()["besip-pbx:pbx"]["nat-state"]["relay"][0]["caller-rtp-port"]
        .as_u64()
        .expect("the waiting call is on the relay") as u16;
    caller.set_peer((std::net::Ipv4Addr::LOCALHOST, relay_a).into());
    let parked = Instant::now();
    let deadline = parked + Duration::from_secs(8);
    // The built-in melody starts on A (440 Hz).
    while !caller.heard_tone_since(parked, 440.0) {
        assert!(Instant::now() < deadline, "the waiting call hears no music");
        std::thread::sleep(Duration::from_millis(100));
    }

    let retriever = MediaPhone::start(700.0);
    let r = sipp.spawn(
        "r",
        &media_caller("103", "70", &retriever.sdp(), Some(3000)),
        free_port(),
        port,
        &["-au", "103", "-ap", "pw103"],
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while !slots(&pbx).is_empty() {
        assert!(Instant::now() < deadline, "not retrieved: {}", pbx.state());
        std::thread::sleep(Duration::from_millis(50));
    }
    let retrieved = Instant::now();
    let relay_b = pbx.state()["besip-pbx:pbx"]["nat-state"]["relay"][0]["callee-rtp-port"]
        .as_u64()
        .expect("the relay's other port") as u16;
    retriever.set_peer((std::net::Ipv4Addr::LOCALHOST, relay_b).into());
    let deadline = Instant::now() + Duration::from_secs(8);
    while !(caller.heard_tone_since(retrieved, 700.0)
        && retriever.heard_tone_since(retrieved, 500.0))
    {
        assert!(
            Instant::now() < deadline,
            "the trunk's caller and 103 do not hear each other"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = sipp.wait(r);
    assert!(r.success, "retriever failed:\n{}", r.log);
    let trunk = sipp.wait(trunk);
    assert!(trunk.success, "the trunk's call failed:\n{}", trunk.log);
    let list = cdrs(&pbx, 1);
    let p = pairs(&list);
    assert!(
        p.iter()
            .any(|x| x.0 == "sip:0301999@provider.example" && x.1 == "sip:103@besip.test"),
        "{p:?}"
    );
    no_calls_left(&pbx);
}

/// A lot of one slot: a second call to it while the first waits gets 486;
/// nobody takes the first, so after the timeout the box hangs up on it
/// (there is no parker to ring back) and the slot is free again.
#[test]
fn a_call_sent_to_a_full_lot_is_refused_and_an_untaken_one_ends_at_the_timeout() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let uci = lot_config(
        port,
        47200,
        "\toption parking_slots '1'\n\toption parking_timeout '5'\n",
    );
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let hung_up = format!("  <recv request=\"BYE\"/>\n{}", ok());
    let started = Instant::now();
    let first = sipp.spawn(
        "first",
        &trunk_call("0301070", SDP, &hung_up),
        free_port(),
        port,
        &["-i", "127.0.0.2"],
    );
    wait_parked(&pbx);
    let second = sipp.run(
        "second",
        &trunk_refused("0301070", 486),
        free_port(),
        port,
        &["-i", "127.0.0.2"],
    );
    assert!(second.success, "full lot:\n{}", second.log);
    let first = sipp.wait(first);
    assert!(
        first.success,
        "the waiting call was not ended:\n{}",
        first.log
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "ended before the timeout"
    );
    assert!(slots(&pbx).is_empty(), "{}", pbx.state());
    no_calls_left(&pbx);
}
