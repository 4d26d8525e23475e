//! G.722 with a real phone: baresip (its g722 module, spandsp's codec)
//! offering G.722 only joins a conference room in both modes, beside one
//! of the tests' G.711 phones. The box answers G.722 (payload type 9);
//! the G.711 phone hears baresip's tone (our G.722 decoder understood a
//! real encoder) and baresip hears the G.711 phone's tone (our encoder is
//! understood by a real decoder). A caller offering only codecs the box
//! does not speak (Opus) gets 488; with `media-codec` set to PCMU only, a
//! G.722-only phone is refused too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use besip_tests::baresip::{
    dominant_frequency, have_baresip, rms, write_tone_wav, Baresip, PhoneConfig,
};
use besip_tests::harness::wait_for;
use besip_tests::pbx::media_phone::{media_caller, refused_call, spawn_call, MediaPhone};
use besip_tests::pbx::office::{base, MODES};
use besip_tests::pbx::*;

const ROOM: &str = "config conference 'conference_800'\n\toption number '800'\n\n";
const BARESIP_TONE: f64 = 1000.0;
const PHONE_TONE: f64 = 600.0;

fn g722_phone(pbx_port: u16, tone: &std::path::Path, codecs: &str) -> Baresip {
    let mut config = PhoneConfig::new(
        format!("<sip:101@besip.test>;auth_pass=pw101;outbound=\"sip:127.0.0.1:{pbx_port}\";regint=0;audio_codecs={codecs}"),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    config.sip_listen = format!("127.0.0.1:{}", free_port());
    config.address = Some("127.0.0.1".into());
    config.audio_source = format!("aufile,{}", tone.display());
    config.audio_format = (16000, 1);
    config.record = true;
    config.modules.push("g722.so".into());
    Baresip::start(&config)
}

#[test]
fn a_g722_phone_and_a_g711_phone_hear_each_other_in_a_room_in_both_modes() {
    if !have_sipp() || !have_baresip() {
        eprintln!("SKIP: needs sipp and baresip");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tone = dir.path().join("tone.wav");
    write_tone_wav(&tone, BARESIP_TONE, 30, 16000);
    for mode in MODES {
        let port = free_port();
        let uci = base(
            port,
            mode,
            "\toption rtp_port_min '41400'\n\toption rtp_port_max '41599'\n",
        ) + ROOM;
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let phone = MediaPhone::start(PHONE_TONE);
        let scenario = media_caller("100", "800", &phone.sdp(), None);
        let _caller = sipp.spawn(
            &format!("{mode}-g711"),
            &scenario,
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        phone.wait_peer();

        let b = g722_phone(port, &tone, "G722/16000/1");
        let mut ctl = b.control();
        let dial = ctl.command("dial", "sip:800@besip.test");
        assert_eq!(dial["ok"], true, "{dial}");
        ctl.wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{mode}: no CALL_ESTABLISHED:\n{}", b.trace()));
        let trace = b.trace();
        let answer = trace
            .split("SIP/2.0 200 OK")
            .find(|m| m.contains("CSeq: ") && m.contains(" INVITE") && m.contains("m=audio "))
            .unwrap_or_else(|| panic!("{mode}: no 200 with SDP:\n{trace}"));
        assert!(
            answer.contains("RTP/AVP 9") && answer.contains("a=rtpmap:9 G722/8000"),
            "{mode}: the box did not answer G.722:\n{answer}"
        );

        // The G.711 phone hears baresip's tone through our G.722 decoder.
        let since = Instant::now();
        wait_for(
            10,
            || format!("{mode}: the G.711 phone never heard {BARESIP_TONE} Hz"),
            || phone.heard_tone_since(since, BARESIP_TONE).then_some(()),
        );
        // baresip hears the G.711 phone's tone through our G.722 encoder.
        let heard = wait_for(
            10,
            || format!("{mode}: baresip heard {} samples", b.heard().len()),
            || {
                let h = b.heard();
                (h.len() >= 32000).then_some(h)
            },
        );
        let rate = b.heard_rate().expect("recording rate");
        let tail = &heard[heard.len() - rate as usize / 4..];
        let freq = dominant_frequency(tail, rate);
        assert!(
            (freq - PHONE_TONE).abs() <= 10.0 && rms(tail) > 300.0,
            "{mode}: baresip hears {freq} Hz at rms {} (rate {rate})",
            rms(tail)
        );
        assert_eq!(ctl.command("hangup", "")["ok"], true);
        drop(b);
        drop(pbx);
    }
}

#[test]
fn offers_without_a_codec_of_the_box_get_488() {
    if !have_sipp() {
        eprintln!("SKIP: needs sipp");
        return;
    }
    let port = free_port();
    let uci = base(
        port,
        "proxy",
        "\toption rtp_port_min '41600'\n\toption rtp_port_max '41699'\n\tlist media_codec 'PCMU'\n",
    ) + ROOM;
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let phone = MediaPhone::start(PHONE_TONE);
    let opus = phone
        .sdp()
        .replace("RTP/AVP 0 101", "RTP/AVP 111 101")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:111 opus/48000/2");
    assert!(opus.contains("opus/48000/2"), "{opus}");
    let g722 = phone
        .sdp()
        .replace("RTP/AVP 0 101", "RTP/AVP 9 101")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:9 G722/8000");
    for (what, sdp) in [("opus", opus), ("G.722 (not in media-codec)", g722)] {
        let r = refused_call(
            &sipp,
            &format!("refused-{what}"),
            ("100", "800"),
            &sdp,
            488,
            port,
        );
        assert!(r.success, "{what} was not refused with 488: {}", r.log);
    }
    // PCMU still joins.
    let ok = spawn_call(
        &sipp,
        "pcmu",
        ("100", "800"),
        &phone.sdp(),
        Some(1000),
        port,
    );
    phone.wait_peer();
    drop(ok);
    drop(pbx);
}
