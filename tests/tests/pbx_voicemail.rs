//! Voicemail with sipp placing the calls and the tests' own RTP phones:
//! a call to an unregistered extension with a mailbox reaches the mailbox
//! in both modes (beep, the caller's tone recorded, # ends it), the WAV
//! holds that tone for its duration, a subscribed phone is notified of the
//! counts (RFC 3842), the owner listens by *97 with its PIN (1 plays, 7
//! deletes), a busy extension's caller reaches the mailbox too, wrong PINs
//! end the call, and other people's mailboxes are refused.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use besip_tests::baresip::{dominant_frequency, wav_samples};
use besip_tests::pbx::media_phone::{refused_call, spawn_call, MediaPhone};
use besip_tests::pbx::office::{base, media_base, with_ext, MODES};
use besip_tests::pbx::*;
use serde_json::Value;

fn mailbox(pbx: &Pbx, ext: &str) -> Value {
    let state = pbx.state();
    state["besip-pbx:pbx"]["voicemail-state"]["mailbox"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["extension"] == ext).cloned())
        .unwrap_or(Value::Null)
}

fn wait_mailbox(pbx: &Pbx, ext: &str, messages: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = mailbox(pbx, ext);
        let n = m["message"].as_array().map_or(0, Vec::len);
        if n == messages {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "mailbox {ext} never had {messages}: {m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wavs(pbx: &Pbx, ext: &str) -> Vec<PathBuf> {
    let dir = pbx.root.path().join("var/lib/besip/voicemail").join(ext);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "wav"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Subscriber of `user`'s own mailbox that expects NOTIFYs with `counts`
/// ("new/old"), in order.
fn mwi_subscriber(user: &str, counts: &[&str]) -> String {
    let subscribe = |cseq: u32, auth: &str| {
        format!(
            "SUBSCRIBE sip:{user}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]s[call_number]
To: <sip:{user}@besip.test>
Call-ID: [call_id]
CSeq: {cseq} SUBSCRIBE
Contact: <sip:{user}@[local_ip]:[local_port]>
Event: message-summary
Accept: application/simple-message-summary
Expires: 600
{auth}Max-Forwards: 70
Content-Length: 0

"
        )
    };
    let mut notifies = String::new();
    for (i, c) in counts.iter().enumerate() {
        notifies.push_str(&format!(
            r#"  <recv request="NOTIFY">
    <action><ereg regexp="Voice-Message: {c} " search_in="body" check_it="true" assign_to="n{i}"/></action>
  </recv>
  <Reference variables="n{i}"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"#
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="mwi">
  <send retrans="500"><![CDATA[
{}]]></send>
  <recv response="407" auth="true"/>
  <send retrans="500"><![CDATA[
{}]]></send>
  <recv response="200"/>
{notifies}</scenario>
"#,
        subscribe(1, ""),
        subscribe(2, "[authentication]\n")
    )
}

fn config(port: u16, mode: &str, rtp: u16) -> String {
    let uci = media_base(port, mode, rtp, "");
    let uci = with_ext(
        &uci,
        "101",
        "\toption voicemail_enabled '1'\n\toption voicemail_pin '4321'\n",
    );
    with_ext(&uci, "102", "\toption voicemail_enabled '1'\n")
}

/// 100 calls `callee`, says `tone` after the beep for about 2 s, presses #.
fn leave_message(sipp: &Sipp, port: u16, callee: &str, tone: f64, name: &str) {
    let phone = MediaPhone::start(tone);
    let call = spawn_call(&sipp, name, ("100", callee), &phone.sdp(), None, port);
    let answered = Instant::now();
    phone.wait_peer();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !phone.heard_tone_since(answered, 1000.0) {
        assert!(Instant::now() < deadline, "no beep from the mailbox");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2000));
    phone.press("#");
    let done = sipp.wait(call);
    assert!(
        done.success,
        "the mailbox did not end the call after #:\n{}",
        done.log
    );
}

#[test]
fn a_message_is_left_filed_notified_and_heard_in_both_modes() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    for (i, mode) in MODES.iter().enumerate() {
        let port = free_port();
        let pbx = Pbx::start(&config(port, mode, 42000 + 200 * i as u16), port);
        let sipp = Sipp::new();
        // 101's phone watches its mailbox: 0/0 now, 1/0 after the message.
        let watcher = sipp.spawn(
            &format!("{mode}-mwi"),
            &mwi_subscriber("101", &["0/0", "1/0"]),
            free_port(),
            port,
            &["-au", "101", "-ap", "pw101"],
        );
        std::thread::sleep(Duration::from_millis(500));

        // 101 is not registered: unavailable, so the mailbox answers.
        leave_message(&sipp, port, "101", 700.0, &format!("{mode}-leave"));
        let m = wait_mailbox(&pbx, "101", 1);
        assert_state_valid(&pbx, &pbx.state());
        assert_eq!(m["new-messages"], 1, "{m}");
        let msg = &m["message"][0];
        assert!(
            msg["caller"].as_str().unwrap().contains("sip:100@"),
            "{msg}"
        );
        let duration = msg["duration"].as_u64().unwrap();
        assert!(
            (1500..=3500).contains(&duration),
            "{mode}: duration {duration} ms"
        );
        let files = wavs(&pbx, "101");
        assert_eq!(files.len(), 1, "{files:?}");
        let samples = wav_samples(&files[0]);
        let millis = samples.len() as u64 / 8;
        assert!(
            millis.abs_diff(duration) <= 40,
            "{mode}: WAV {millis} ms, note {duration} ms"
        );
        let f = dominant_frequency(&samples, 8000);
        assert!(
            (f - 700.0).abs() <= 10.0,
            "{mode}: message holds {f} Hz, not 700"
        );
        let w = sipp.wait(watcher);
        assert!(w.success, "{mode}: MWI NOTIFYs wrong:\n{}", w.log);

        // The owner listens: PIN, one mark (one new message), 1 plays it, 7 deletes it.
        let owner = MediaPhone::start(0.0);
        let call = spawn_call(
            &sipp,
            &format!("{mode}-listen"),
            ("101", "*97"),
            &owner.sdp(),
            None,
            port,
        );
        owner.wait_peer();
        owner.press("4321#");
        std::thread::sleep(Duration::from_millis(2500));
        let pressed = Instant::now();
        owner.press("1");
        std::thread::sleep(Duration::from_millis(3000));
        assert!(
            owner.heard_tone_since(pressed, 700.0),
            "{mode}: the message was not played"
        );
        assert_eq!(mailbox(&pbx, "101")["message"][0]["heard"], true);
        owner.press("7");
        wait_mailbox(&pbx, "101", 0);
        assert!(
            wavs(&pbx, "101").is_empty(),
            "{mode}: deleted message still on disk"
        );
        owner.press("#");
        let done = sipp.wait(call);
        assert!(
            done.success,
            "{mode}: mailbox call did not end:\n{}",
            done.log
        );
    }
}

#[test]
fn busy_extension_sends_callers_to_its_mailbox_and_wrong_pins_end_the_call() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&config(port, "b2bua", 42600), port);
    let sipp = Sipp::new();
    let busy_port = free_port();
    register(&sipp, "102", busy_port, port);
    let busy = sipp.spawn(
        "busy-102",
        &callee_rejects(486, "Busy Here"),
        busy_port,
        port,
        &[],
    );
    leave_message(&sipp, port, "102", 1300.0, "busy-leave");
    let r = sipp.wait(busy);
    assert!(r.success, "102 was not rung first:\n{}", r.log);
    let m = wait_mailbox(&pbx, "102", 1);
    assert_eq!(m["new-messages"], 1);
    let f = dominant_frequency(&wav_samples(&wavs(&pbx, "102")[0]), 8000);
    assert!((f - 1300.0).abs() <= 10.0, "{f}");

    // 102 has no PIN: its mailbox cannot be listened to by phone.
    let refused = refused_call(
        &sipp,
        "no-pin",
        ("102", "*97"),
        &MediaPhone::start(0.0).sdp(),
        403,
        port,
    );
    assert!(refused.success, "{}", refused.log);
    // Three wrong PINs: the mailbox hangs up.
    let phone = MediaPhone::start(0.0);
    let call = spawn_call(&sipp, "wrong-pin", ("101", "*97"), &phone.sdp(), None, port);
    phone.wait_peer();
    phone.press("1111#2222#3333#");
    let done = sipp.wait(call);
    assert!(
        done.success,
        "wrong PINs did not end the call:\n{}",
        done.log
    );
    // 101 records its greeting by phone (0, speak, #); a caller hears it
    // before the beep.
    let owner = MediaPhone::start(0.0);
    let call = spawn_call(&sipp, "greeting", ("101", "*97"), &owner.sdp(), None, port);
    owner.wait_peer();
    owner.press("4321#");
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    owner.press("0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !owner.heard_tone_since(t, 1000.0) {
        assert!(Instant::now() < deadline, "no beep before the greeting");
        std::thread::sleep(Duration::from_millis(50));
    }
    owner.set_tone(1100.0);
    std::thread::sleep(Duration::from_millis(1500));
    owner.set_tone(0.0);
    owner.press("#");
    std::thread::sleep(Duration::from_millis(600));
    owner.press("#");
    let done = sipp.wait(call);
    assert!(done.success, "{}", done.log);
    let greeting = pbx
        .root
        .path()
        .join("var/lib/besip/voicemail/101/greeting.wav");
    let f = dominant_frequency(&wav_samples(&greeting), 8000);
    assert!((f - 1100.0).abs() <= 10.0, "greeting holds {f} Hz");
    let caller = MediaPhone::start(0.0);
    let call = spawn_call(
        &sipp,
        "hears-greeting",
        ("100", "101"),
        &caller.sdp(),
        None,
        port,
    );
    let t = Instant::now();
    caller.wait_peer();
    let deadline = Instant::now() + Duration::from_secs(8);
    while !caller.heard_tone_since(t, 1000.0) {
        assert!(Instant::now() < deadline, "no beep after the greeting");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        caller.heard_tone_since(t, 1100.0),
        "the greeting was not played before the beep"
    );
    // Keys pressed during the beep are dropped: the recording starts after it.
    std::thread::sleep(Duration::from_millis(500));
    caller.press("#");
    let done = sipp.wait(call);
    assert!(done.success, "{}", done.log);

    let mut sub = mwi_subscriber("100", &[]);
    sub = sub
        .replace("SUBSCRIBE sip:100@", "SUBSCRIBE sip:101@")
        .replace("<recv response=\"200\"/>", "<recv response=\"403\"/>");
    let other = sipp.run(
        "other-mailbox",
        &sub,
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(
        other.success,
        "100 could watch 101's mailbox:\n{}",
        other.log
    );
}

#[test]
fn phones_with_unsolicited_mwi_are_told_without_subscribing() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = base(
        port,
        "b2bua",
        "\toption rtp_port_min '42800'\n\toption rtp_port_max '42999'\n",
    );
    // Do-not-disturb: calls go to the mailbox without ringing the phone.
    let uci = with_ext(
        &uci,
        "101",
        "\toption voicemail_enabled '1'\n\toption voicemail_unsolicited_mwi '1'\n\toption do_not_disturb '1'\n",
    );
    let _pbx = Pbx::start(&uci, port);
    // 101's phone: registered, never subscribes.
    let phone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = phone.local_addr().unwrap().port();
    let ok = raw_register(
        &phone,
        port,
        "101",
        "pw101",
        &format!("Contact: <sip:101@127.0.0.1:{me}>\r\nExpires: 600\r\n"),
        "mwi-reg",
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let sipp = Sipp::new();
    leave_message(&sipp, port, "101", 700.0, "leave-unsolicited");
    phone
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let notify = loop {
        let (n, from) = phone.recv_from(&mut buf).expect("an unsolicited NOTIFY");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("NOTIFY ") {
            // Answered as a phone does.
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for h in text.lines().filter(|l| {
                ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                    .iter()
                    .any(|p| l.starts_with(p))
            }) {
                ok.push_str(h.trim_end());
                ok.push_str("\r\n");
            }
            ok.push_str("Content-Length: 0\r\n\r\n");
            phone.send_to(ok.as_bytes(), from).unwrap();
            break text;
        }
    };
    assert!(notify.contains("Event: message-summary"), "{notify}");
    assert!(
        notify.contains("Messages-Waiting: yes") && notify.contains("Voice-Message: 1/0 "),
        "{notify}"
    );
}

/// The any-mailbox code (*98): 102 keys 101's mailbox and its PIN and
/// hears 101's message; a mailbox that does not exist, or has no PIN, is
/// asked for a PIN like any other and refuses them all (the call ends
/// after three), so a caller cannot tell which mailboxes exist.
#[test]
fn any_mailbox_is_reached_by_number_and_pin_and_unknown_ones_look_the_same() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&config(port, "b2bua", 42800), port);
    let sipp = Sipp::new();
    leave_message(&sipp, port, "101", 900.0, "any-leave");
    wait_mailbox(&pbx, "101", 1);

    let phone = MediaPhone::start(0.0);
    let call = spawn_call(
        &sipp,
        "any-listen",
        ("102", "*98"),
        &phone.sdp(),
        None,
        port,
    );
    phone.wait_peer();
    std::thread::sleep(Duration::from_millis(500));
    phone.press("101#");
    std::thread::sleep(Duration::from_millis(1000));
    phone.press("4321#");
    std::thread::sleep(Duration::from_millis(2500));
    let pressed = Instant::now();
    phone.press("1");
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        phone.heard_tone_since(pressed, 900.0),
        "101's message was not played to 102 by *98"
    );
    phone.press("#");
    let done = sipp.wait(call);
    assert!(done.success, "{}", done.log);
    assert_eq!(mailbox(&pbx, "101")["message"][0]["heard"], true);

    for (number, what) in [("555", "no such mailbox"), ("102", "a mailbox without PIN")] {
        let phone = MediaPhone::start(0.0);
        let call = spawn_call(
            &sipp,
            &format!("any-{number}"),
            ("100", "*98"),
            &phone.sdp(),
            None,
            port,
        );
        phone.wait_peer();
        std::thread::sleep(Duration::from_millis(500));
        phone.press(&format!("{number}#"));
        for pin in ["1111#", "2222#", "3333#"] {
            std::thread::sleep(Duration::from_millis(1200));
            phone.press(pin);
        }
        let done = sipp.wait(call);
        assert!(
            done.success,
            "{what}: three PINs did not end the call:\n{}",
            done.log
        );
    }
    // Nothing those callers keyed changed 101's mailbox.
    assert_eq!(
        mailbox(&pbx, "101")["message"].as_array().map(Vec::len),
        Some(1)
    );
}

/// The limits of /pbx/voicemail: a message stops at max-message-length
/// (the box hangs up); a mailbox holding max-messages refuses the next
/// caller (486); max-sessions bounds the calls in voicemail at once (486
/// beyond); messages older than the retention are deleted (at start too)
/// and younger ones kept.
#[test]
fn length_count_sessions_and_retention_limits_hold() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = config(port, "b2bua", 43000).replace(
        "\toption rtp_port_min",
        "\toption voicemail_max_message_length '5'\n\toption voicemail_max_messages '1'\n\toption voicemail_max_sessions '1'\n\toption voicemail_retention '1'\n\toption rtp_port_min",
    );
    assert!(uci.contains("voicemail_retention '1'"), "{uci}");
    // The box was off while 102's mailbox aged: a message of three days
    // ago and one of an hour ago are there when it starts again.
    let mut pbx = Pbx::start(&uci, port);
    pbx.stop();
    let dir = pbx.root.path().join("var/lib/besip/voicemail/102");
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tone = besip_media::wav::encode(1, &besip_media::tone::sine(500.0, 4000.0, 1000));
    for (id, age) in [("old", 3 * 86_400), ("young", 3600)] {
        std::fs::write(dir.join(format!("{id}.wav")), &tone).unwrap();
        let note = serde_json::json!({
            "caller": "sip:100@besip.test", "received": "2026-01-01T00:00:00Z",
            "received_unix": now - age, "duration": 1000, "heard": false
        });
        std::fs::write(dir.join(format!("{id}.json")), note.to_string()).unwrap();
    }
    pbx.spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.join("old.wav").exists() {
        assert!(
            Instant::now() < deadline,
            "the old message outlived the retention"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = wait_mailbox(&pbx, "102", 1);
    assert!(dir.join("young.wav").exists(), "{m}");
    let sipp = Sipp::new();

    // A caller who never presses #: the message ends at 5 s, the box hangs up.
    let phone = MediaPhone::start(800.0);
    let call = spawn_call(&sipp, "too-long", ("100", "101"), &phone.sdp(), None, port);
    phone.wait_peer();
    // Meanwhile a second caller to voicemail finds max-sessions reached.
    let busy = refused_call(
        &sipp,
        "sessions-full",
        ("101", "*97"),
        &MediaPhone::start(0.0).sdp(),
        486,
        port,
    );
    assert!(
        busy.success,
        "a second voicemail session was taken:\n{}",
        busy.log
    );
    let done = sipp.wait(call);
    assert!(
        done.success,
        "the box did not end the long message:\n{}",
        done.log
    );
    let m = wait_mailbox(&pbx, "101", 1);
    let duration = m["message"][0]["duration"].as_u64().unwrap_or(0);
    assert!(
        (4500..=5200).contains(&duration),
        "message of {duration} ms"
    );

    // 101 holds max-messages (1): the next caller is refused.
    let full = refused_call(
        &sipp,
        "mailbox-full",
        ("100", "101"),
        &MediaPhone::start(0.0).sdp(),
        486,
        port,
    );
    assert!(full.success, "a full mailbox took a message:\n{}", full.log);
    assert_eq!(wavs(&pbx, "101").len(), 1);
}

/// A phone's stream of a call just ended keeps reaching the box's port,
/// and the next call is given that very port (a range of one pair makes
/// it so; the box otherwise takes a just-closed port last). The stream
/// comes from the signalling address, so the new call's endpoint may take
/// it first; the new caller, heard at the address its offer named, wins:
/// its tone is what the message holds, its # ends it, and the stale phone
/// is no longer sent anything.
#[test]
fn a_stream_left_from_an_earlier_call_does_not_take_the_next_one() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = with_ext(
        &base(
            port,
            "b2bua",
            "\toption rtp_port_min '31400'\n\toption rtp_port_max '31401'\n",
        ),
        "101",
        "\toption voicemail_enabled '1'\n",
    );
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    // The earlier call: a message said at 700 Hz; this phone goes on saying it.
    let stale = MediaPhone::start(700.0);
    let call = spawn_call(&sipp, "earlier", ("100", "101"), &stale.sdp(), None, port);
    let box_port = stale.wait_peer();
    assert_eq!(box_port.port(), 31400);
    std::thread::sleep(Duration::from_millis(2000));
    stale.press("#");
    assert!(sipp.wait(call).success);
    wait_mailbox(&pbx, "101", 1);

    // The next caller says 900 Hz. It starts sending once the stale
    // stream has long had the port to itself.
    let caller = MediaPhone::start(900.0);
    let call = spawn_call(&sipp, "next", ("100", "101"), &caller.sdp(), None, port);
    std::thread::sleep(Duration::from_millis(800));
    if caller.peer().is_none() {
        caller.set_peer(box_port);
    }
    std::thread::sleep(Duration::from_millis(500));
    let answered_caller = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    let pressed = Instant::now();
    caller.press("#");
    let m = wait_mailbox(&pbx, "101", 2);
    let done = sipp.wait(call);
    assert!(
        done.success,
        "the caller's # did not end its call:\n{}",
        done.log
    );
    assert!(
        stale.heard_between(answered_caller, pressed).is_empty(),
        "the stale phone was still sent the new call's media"
    );
    let newest = wavs(&pbx, "101").pop().expect("the second message");
    let f = dominant_frequency(&wav_samples(&newest), 8000);
    assert!(
        (f - 900.0).abs() <= 10.0,
        "the message holds {f} Hz, not the caller's 900: {m}"
    );
}
