//! Music on hold in B2BUA mode and in proxy mode (calls anchored on the
//! relay by /pbx/nat/media-relay), with sipp placing, holding and resuming
//! the call and the tests' own RTP phones on real sockets: when the caller
//! holds (re-INVITE with a=sendonly, or a=inactive) the callee hears the
//! music uploaded to the prompt store and not the caller; on resume it
//! hears the caller again and the music stops.

use std::time::{Duration, Instant};

use base64::Engine as _;
use besip_tests::pbx::media_phone::{holds, media_caller, MediaPhone};
use besip_tests::pbx::office::media_base;
use besip_tests::pbx::*;
use serde_json::json;

fn reinvite(cseq: u32, sdp: &str) -> String {
    format!(
        r#"  <send retrans="500"><![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]m[call_number]
To: <sip:101@besip.test>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:100@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]m[call_number]
To: <sip:101@besip.test>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"#
    )
}

/// The caller: talks 2 s, holds 3 s (`hold`: a=sendonly or a=inactive),
/// resumes 2 s, hangs up. The answer to an inactive hold must be inactive.
fn holding_caller(sdp: &str, hold: &str) -> String {
    let s = media_caller("100", "101", sdp, Some(2000));
    let cut = s
        .find("  <send retrans=\"500\"><![CDATA[\nBYE")
        .expect("scenario shape");
    let (head, bye) = s.split_at(cut);
    let bye = bye.replace("CSeq: 3 BYE", "CSeq: 5 BYE");
    let held = sdp.replace("a=ptime:20", &format!("a=ptime:20\n{hold}"));
    let mut hold_step = reinvite(3, &held);
    if hold == "a=inactive" {
        hold_step = hold_step.replacen(
            "  <recv response=\"200\"/>",
            "  <recv response=\"200\"><action><ereg regexp=\"a=inactive\" search_in=\"body\" check_it=\"true\" assign_to=\"dir\"/></action></recv>\n  <Reference variables=\"dir\"/>",
            1,
        );
    }
    format!(
        "{head}{hold_step}  <pause milliseconds=\"3000\"/>\n{}  <pause milliseconds=\"2000\"/>\n{bye}",
        reinvite(4, sdp)
    )
}

/// The callee: answers with `port` in its SDP, takes two re-INVITEs, the BYE.
fn callee(port: u16) -> String {
    let answer = callee_answers(0).replace("[media_port]", &port.to_string());
    let reinvite = format!(
        "  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "200 OK",
            "",
            &format!("{UAS_CONTACT}Content-Type: application/sdp\n"),
            &SDP.replace("[media_port]", &port.to_string()),
            true
        )
    );
    answer.replacen(
        "  <recv request=\"BYE\"/>",
        &format!("{reinvite}{reinvite}  <recv request=\"BYE\"/>"),
        1,
    )
}

#[test]
fn a_held_party_hears_the_music_and_not_the_holder() {
    held_party_hears_music("b2bua", "a=sendonly", 45400);
}

#[test]
fn an_inactive_hold_plays_the_music_too_and_the_holder_is_answered_inactive() {
    held_party_hears_music("b2bua", "a=inactive", 45600);
}

#[test]
fn proxy_mode_anchored_calls_get_music_on_hold_too() {
    held_party_hears_music("proxy", "a=sendonly", 45800);
    held_party_hears_music("proxy", "a=inactive", 46000);
}

fn held_party_hears_music(mode: &str, hold: &str, rtp: u16) {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = media_base(
        port,
        mode,
        rtp,
        "\toption music_on_hold_enabled '1'\n\toption nat_media_relay 'always'\n",
    );
    let pbx = Pbx::start(&uci, port);
    // The music: a 1250 Hz tone uploaded as the store's music-on-hold.
    let music: Vec<i16> = (0..8000)
        .map(|i| (6000.0 * (std::f64::consts::TAU * 1250.0 * f64::from(i) / 8000.0).sin()) as i16)
        .collect();
    let audio =
        base64::engine::general_purpose::STANDARD.encode(besip_media::wav::encode(1, &music));
    pbx.ipc(
        "rpc",
        json!({"name": "upload-prompt", "input": {"name": "music-on-hold", "audio": audio}}),
    )
    .expect("upload the music");

    let sipp = Sipp::new();
    let (a, b) = (MediaPhone::start(500.0), MediaPhone::start(1700.0));
    let uas_port = free_port();
    register(&sipp, "101", uas_port, port);
    let uas = sipp.spawn("callee", &callee(b.port), uas_port, port, &[]);
    let caller = sipp.spawn(
        "caller",
        &holding_caller(&a.sdp(), hold),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let ports = loop {
        let st = pbx.state();
        let r = &st["besip-pbx:pbx"]["nat-state"]["relay"][0];
        if let (Some(pa), Some(pb)) = (r["caller-rtp-port"].as_u64(), r["callee-rtp-port"].as_u64())
        {
            break (pa as u16, pb as u16);
        }
        assert!(
            Instant::now() < deadline,
            "{mode}: call not anchored on the relay"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let lo = std::net::Ipv4Addr::LOCALHOST;
    a.set_peer((lo, ports.0).into());
    b.set_peer((lo, ports.1).into());
    // Talking (0.5–1.8 s), held (2.6–4.6 s), resumed (5.6–6.8 s).
    let window = |from: u64, to: u64| {
        std::thread::sleep(
            (start + Duration::from_millis(to)).saturating_duration_since(Instant::now()),
        );
        b.heard_between(
            start + Duration::from_millis(from),
            start + Duration::from_millis(to),
        )
    };
    let talking = window(500, 1800);
    let held = window(2600, 4600);
    let resumed = window(5600, 6800);
    assert!(
        holds(&talking, 500.0, 0.5),
        "{mode} {hold}: before the hold 101 did not hear 100"
    );
    assert!(
        !holds(&talking, 1250.0, 0.05),
        "{mode} {hold}: music before the hold"
    );
    assert!(
        holds(&held, 1250.0, 0.5),
        "{mode} {hold}: no music while held"
    );
    assert!(
        !holds(&held, 500.0, 0.05),
        "{mode} {hold}: the holder was heard while holding"
    );
    assert!(
        holds(&resumed, 500.0, 0.5),
        "{mode} {hold}: after the resume 101 did not hear 100"
    );
    assert!(
        !holds(&resumed, 1250.0, 0.05),
        "{mode} {hold}: music after the resume"
    );
    // The holder heard the held party all along.
    assert!(a.heard_tone_since(start, 1700.0));
    let c = sipp.wait(caller);
    assert!(c.success, "{mode} {hold}: caller:\n{}", c.log);
    let u = sipp.wait(uas);
    assert!(u.success, "{mode} {hold}: callee:\n{}", u.log);
}
