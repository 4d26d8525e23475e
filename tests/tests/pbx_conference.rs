//! Conference rooms with sipp placing the calls and the tests' own RTP
//! phones (tests/src/pbx/media_phone.rs) on real sockets, in both modes:
//! three callers each say a different tone; each hears the other two and
//! not itself; a mute key silences one; join and leave tones; the room's
//! PIN and admin PIN; kick over the daemon's RPC; the room full (486);
//! a stranger refused; forged and garbage RTP to a participant's port
//! changes nothing.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use besip_tests::pbx::media_phone::{holds, media_caller, refused_call, spawn_call, MediaPhone};
use besip_tests::pbx::office::{base, media_base, MODES};
use besip_tests::pbx::*;
use serde_json::{json, Value};

const ROOMS: &str = "config conference 'conference_800'\n\toption number '800'\n\toption max_participants '3'\n\n\
config conference 'conference_801'\n\toption number '801'\n\toption pin '1234'\n\toption admin_pin '9999'\n\n";

fn room(pbx: &Pbx, number: &str) -> Value {
    let state = pbx.state();
    state["besip-pbx:pbx"]["conference-state"]["room"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["number"] == number).cloned())
        .unwrap_or(Value::Null)
}

fn wait_participants(pbx: &Pbx, number: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = room(pbx, number);
        if r["participants"].as_u64().unwrap_or(0) == n {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "room {number} never had {n}: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kick(pbx: &Pbx, number: &str, id: Option<u64>) -> u64 {
    let mut input = json!({ "room": number });
    if let Some(id) = id {
        input["participant"] = json!(id);
    }
    let r = pbx
        .ipc("rpc", json!({"name": "kick-participant", "input": input}))
        .expect("kick-participant");
    r["kicked"].as_u64().expect("kicked count")
}

fn id_of(room: &Value, user: &str) -> u64 {
    room["participant"]
        .as_array()
        .and_then(|l| {
            l.iter().find(|p| {
                p["caller"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("sip:{user}@"))
            })
        })
        .and_then(|p| p["id"].as_u64())
        .unwrap_or_else(|| panic!("{user} not in {room}"))
}

#[test]
fn three_callers_hear_each_other_but_not_themselves_in_both_modes() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let uci = base(
            port,
            mode,
            "\toption rtp_port_min '41000'\n\toption rtp_port_max '41199'\n",
        ) + ROOMS;
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let tones = [("100", 500.0), ("101", 1100.0), ("102", 1700.0)];
        let mut phones = Vec::new();
        let mut calls = Vec::new();
        for (i, (user, tone)) in tones.iter().enumerate() {
            let phone = MediaPhone::start(*tone);
            calls.push(spawn_call(
                &sipp,
                &format!("{mode}-caller-{user}"),
                (user, "800"),
                &phone.sdp(),
                None,
                port,
            ));
            phone.wait_peer();
            wait_participants(&pbx, "800", i as u64 + 1);
            phones.push(phone);
        }
        let joined = Instant::now();
        // The third one's join tone reached the first.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            phones[0].heard_tone_since(joined - Duration::from_millis(500), 880.0),
            "{mode}: no join tone"
        );
        std::thread::sleep(Duration::from_millis(1500));
        let window = Duration::from_millis(1000);
        for (i, phone) in phones.iter().enumerate() {
            let heard = phone.heard_last(window);
            assert!(
                heard.len() >= 6000,
                "{mode}: phone {i} heard {} samples",
                heard.len()
            );
            for (j, (_, tone)) in tones.iter().enumerate() {
                let has = holds(&heard, *tone, 0.15);
                assert_eq!(
                    has,
                    i != j,
                    "{mode}: phone {i} hearing tone of {j} ({tone} Hz): {has}"
                );
            }
        }
        assert_state_valid(&pbx, &pbx.state());
        let r = room(&pbx, "800");
        assert_eq!(r["participants"], 3, "{r}");
        assert_eq!(r["locked"], false);
        // Full: a fourth caller gets 486.
        let fourth = MediaPhone::start(0.0);
        let refused = refused_call(
            &sipp,
            &format!("{mode}-fourth"),
            ("103", "800"),
            &fourth.sdp(),
            486,
            port,
        );
        assert!(
            refused.success,
            "{mode}: fourth caller not refused 486:\n{}",
            refused.log
        );

        // 101 mutes itself with 1: the others stop hearing 1100 Hz.
        phones[1].press("1");
        std::thread::sleep(Duration::from_millis(1500));
        let heard = phones[0].heard_last(window);
        assert!(
            !holds(&heard, 1100.0, 0.15),
            "{mode}: muted caller still heard"
        );
        assert!(holds(&heard, 1700.0, 0.15), "{mode}: 102 no longer heard");
        let r = room(&pbx, "800");
        let muted: Vec<bool> = r["participant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["muted"] == true)
            .collect();
        assert_eq!(muted.iter().filter(|m| **m).count(), 1, "{r}");

        // Forged RTP to 100's port on the box (from another port of the
        // same address) and garbage: nobody hears the forged tone.
        let box_port = phones[0].peer().unwrap();
        let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let forged_at = Instant::now();
        for seq in 0..50u16 {
            let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
            p[2..4].copy_from_slice(&(seq + 30000).to_be_bytes());
            p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p.extend((0..160).map(|n| {
                let s = 8000.0 * (std::f64::consts::TAU * 2500.0 * f64::from(n) / 8000.0).sin();
                besip_media::g711::mu_encode(s as i16)
            }));
            forger.send_to(&p, box_port).unwrap();
            forger.send_to(&[0xFF; 3000], box_port).unwrap();
            forger.send_to(&[], box_port).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let heard = phones[2].heard_between(forged_at, Instant::now());
        assert!(
            !holds(&heard, 2500.0, 0.05),
            "{mode}: forged RTP was mixed in"
        );
        assert!(
            holds(&heard, 500.0, 0.15),
            "{mode}: the real 100 went unheard"
        );

        // Kick 102 by RPC: its call ends with our BYE; the others hear the leave tone.
        let r = room(&pbx, "800");
        let before = Instant::now();
        assert_eq!(kick(&pbx, "800", Some(id_of(&r, "102"))), 1);
        let c = calls.pop().unwrap();
        let done = sipp.wait(c);
        assert!(
            done.success,
            "{mode}: kicked caller did not get BYE:\n{}",
            done.log
        );
        wait_participants(&pbx, "800", 2);
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            phones[0].heard_tone_since(before, 660.0),
            "{mode}: no leave tone"
        );
        // Everyone else: one RPC.
        assert_eq!(kick(&pbx, "800", None), 2);
        for c in calls {
            let done = sipp.wait(c);
            assert!(done.success, "{mode}: caller not hung up:\n{}", done.log);
        }
        let left = room(&pbx, "800");
        assert!(left.is_null(), "{mode}: empty room still listed: {left}");
        assert_eq!(kick(&pbx, "800", None), 0);
    }
}

#[test]
fn pin_room_admits_the_right_pin_and_locks_for_its_admin() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = base(
        port,
        "b2bua",
        "\toption rtp_port_min '41200'\n\toption rtp_port_max '41399'\n",
    ) + ROOMS;
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    // A wrong PIN is told (300 Hz) and not admitted; the right one is.
    let guest = MediaPhone::start(600.0);
    let guest_call = spawn_call(&sipp, "guest2", ("100", "801"), &guest.sdp(), None, port);
    guest.wait_peer();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        guest.heard_tone_since(start - Duration::from_millis(300), 440.0),
        "no PIN prompt"
    );
    guest.press("1111#");
    std::thread::sleep(Duration::from_millis(2000));
    assert!(guest.heard_tone_since(start, 300.0), "wrong PIN not told");
    assert!(room(&pbx, "801").is_null(), "admitted with a wrong PIN");
    guest.press("1234#");
    let r = wait_participants(&pbx, "801", 1);
    assert_eq!(r["participant"][0]["admin"], false);

    // The admin joins with its PIN and locks the room with *.
    let admin = MediaPhone::start(900.0);
    let admin_call = spawn_call(&sipp, "admin", ("101", "801"), &admin.sdp(), None, port);
    admin.wait_peer();
    admin.press("9999#");
    let r = wait_participants(&pbx, "801", 2);
    assert!(
        r["participant"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["admin"] == true),
        "{r}"
    );
    guest.press("*"); // not an admin: nothing happens
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(room(&pbx, "801")["locked"], false);
    admin.press("*");
    let deadline = Instant::now() + Duration::from_secs(5);
    while room(&pbx, "801")["locked"] != true {
        assert!(Instant::now() < deadline, "admin could not lock");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Locked: a newcomer is refused 403 before any PIN.
    let late = MediaPhone::start(0.0);
    let refused = refused_call(&sipp, "late", ("102", "801"), &late.sdp(), 403, port);
    assert!(
        refused.success,
        "locked room admitted a caller:\n{}",
        refused.log
    );
    assert_eq!(kick(&pbx, "801", None), 2);
    for c in [guest_call, admin_call] {
        let done = sipp.wait(c);
        assert!(done.success, "{}", done.log);
    }
}

#[test]
fn a_flood_of_calls_stops_at_media_max_calls() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = base(port, "b2bua", "\toption media_max_calls '2'\n") + ROOMS;
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let mut calls = Vec::new();
    let mut phones = Vec::new();
    for (i, user) in ["100", "101"].iter().enumerate() {
        let phone = MediaPhone::start(0.0);
        calls.push(spawn_call(
            &sipp,
            &format!("in-{user}"),
            (user, "800"),
            &phone.sdp(),
            None,
            port,
        ));
        phone.wait_peer();
        wait_participants(&pbx, "800", i as u64 + 1);
        phones.push(phone);
    }
    // The third call to any service is refused at once, whatever the room allows.
    let third = MediaPhone::start(0.0);
    let refused = refused_call(&sipp, "third", ("102", "800"), &third.sdp(), 503, port);
    assert!(
        refused.success,
        "the third call was not refused 503:\n{}",
        refused.log
    );
    assert_eq!(kick(&pbx, "800", None), 2);
    for c in calls {
        assert!(sipp.wait(c).success);
    }
}

#[test]
fn a_late_offer_caller_joins_with_its_answer_in_the_ack() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = base(
        port,
        "b2bua",
        "\toption rtp_port_min '41400'\n\toption rtp_port_max '41599'\n",
    ) + ROOMS;
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let phone = MediaPhone::start(500.0);
    let sdp = phone.sdp();
    let scenario = media_caller("100", "800", &sdp, None)
        .replace(
            &format!("Content-Type: application/sdp\nContent-Length: [len]\n\n{sdp}\n"),
            "Content-Length: 0\n\n",
        )
        .replace(
            "<recv response=\"200\" rrs=\"true\"/>",
            "<recv response=\"200\" rrs=\"true\"><action><ereg regexp=\"RTP/AVP 0 8 9 101\" search_in=\"body\" check_it=\"true\" assign_to=\"o\"/></action></recv>\n  <Reference variables=\"o\"/>",
        )
        .replace(
            "CSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
            &format!("CSeq: 2 ACK\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: [len]\n\n{sdp}\n"),
        );
    assert!(
        !scenario.contains(&format!(
            "Content-Length: [len]\n\n{sdp}\n]]></send>\n  <recv response=\"100\""
        )),
        "INVITE still has an offer"
    );
    let call = sipp.spawn(
        "late",
        &scenario,
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    phone.wait_peer();
    wait_participants(&pbx, "800", 1);
    // A second caller with an ordinary offer: each hears the other.
    let other = MediaPhone::start(1100.0);
    let other_call = spawn_call(&sipp, "offer", ("101", "800"), &other.sdp(), None, port);
    other.wait_peer();
    wait_participants(&pbx, "800", 2);
    std::thread::sleep(Duration::from_millis(1500));
    let window = Duration::from_millis(1000);
    assert!(
        holds(&phone.heard_last(window), 1100.0, 0.3),
        "the late-offer caller does not hear the other"
    );
    assert!(
        holds(&other.heard_last(window), 500.0, 0.3),
        "the late-offer caller is not heard"
    );
    assert_eq!(kick(&pbx, "800", None), 2);
    assert!(sipp.wait(other_call).success);
    let done = sipp.wait(call);
    assert!(done.success, "{}", done.log);
}

#[test]
fn strangers_and_unknown_rooms_are_refused() {
    let port = free_port();
    let uci = base(port, "b2bua", "") + ROOMS;
    let pbx = Pbx::start(&uci, port);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap().port();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:800@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKstranger1\r\nFrom: <sip:evil@elsewhere.test>;tag=e1\r\nTo: <sip:800@besip.test>\r\nCall-ID: stranger-conf\r\nCSeq: 1 INVITE\r\nContact: <sip:evil@127.0.0.1:{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sock.send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let status = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 1") {
            continue;
        }
        break text;
    };
    assert!(status.starts_with("SIP/2.0 403"), "{status}");
    assert!(room(&pbx, "800").is_null());
    assert!(options_answered(port), "daemon still serving");
}

/// A call the box answers outlives the 32 s of 2xx retransmission (RFC
/// 3261 §13.3.1.4: a 2xx never acknowledged is given up after 64·T1 and
/// the session ended): the ACK must have reached the call. Two callers talk in a room for 35 s, both
/// modes at once; each still hears the other at the end, and the calls end
/// by the kick, not before.
#[test]
fn calls_in_a_room_outlive_the_2xx_retransmission_window_in_both_modes() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let runs: Vec<_> = MODES
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            std::thread::spawn(move || {
                let port = free_port();
                let rtp = 47000 + 200 * i as u16;
                let uci = media_base(port, mode, rtp, "") + ROOMS;
                let pbx = Pbx::start(&uci, port);
                let sipp = Sipp::new();
                let mut phones = Vec::new();
                let mut calls = Vec::new();
                for (user, tone) in [("100", 500.0), ("101", 1100.0)] {
                    let phone = MediaPhone::start(tone);
                    calls.push(spawn_call(
                        &sipp,
                        &format!("{mode}-long-{user}"),
                        (user, "800"),
                        &phone.sdp(),
                        None,
                        port,
                    ));
                    phone.wait_peer();
                    phones.push(phone);
                }
                wait_participants(&pbx, "800", 2);
                std::thread::sleep(Duration::from_secs(35));
                let r = room(&pbx, "800");
                assert_eq!(r["participants"], 2, "{mode}: a call ended early: {r}");
                let window = Duration::from_millis(1000);
                assert!(
                    holds(&phones[0].heard_last(window), 1100.0, 0.3),
                    "{mode}: after 35 s 100 no longer hears 101"
                );
                assert!(
                    holds(&phones[1].heard_last(window), 500.0, 0.3),
                    "{mode}: after 35 s 101 no longer hears 100"
                );
                assert_eq!(kick(&pbx, "800", None), 2);
                for c in calls {
                    let done = sipp.wait(c);
                    assert!(done.success, "{mode}: {}", done.log);
                }
            })
        })
        .collect();
    for r in runs {
        r.join().expect("a mode's run failed");
    }
}
