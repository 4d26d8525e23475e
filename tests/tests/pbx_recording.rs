//! Call recording in B2BUA mode with sipp placing and answering the call
//! and the tests' own RTP phones on real sockets: a call to an extension
//! with record-calls always is anchored on the relay, each phone says its
//! tone, and the stereo WAV has the caller's tone on the left and the
//! callee's on the right for the call's length; a call between extensions
//! that are not recorded leaves no recording and passes no relay; a
//! dialplan route with record-calls always records the calls it sends to
//! its trunk, and max-recordings keeps the newest.

use std::time::{Duration, Instant};

use besip_tests::baresip::dominant_frequency;
use besip_tests::pbx::media_phone::{spawn_call, MediaPhone};
use besip_tests::pbx::office::{b2bua_config, with_ext};
use besip_tests::pbx::*;
use serde_json::Value;

/// (channels, samples) of a PCM WAV.
fn wav(path: &std::path::Path) -> (u16, Vec<i16>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"RIFF");
    let channels = u16::from_le_bytes([b[22], b[23]]);
    assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 8000);
    (channels, besip_tests::baresip::wav_samples(path))
}

fn relay_ports(pbx: &Pbx) -> Option<(u16, u16)> {
    let state = pbx.state();
    let r = &state["besip-pbx:pbx"]["nat-state"]["relay"][0];
    Some((
        r["caller-rtp-port"].as_u64()? as u16,
        r["callee-rtp-port"].as_u64()? as u16,
    ))
}

fn recordings(pbx: &Pbx) -> Vec<Value> {
    pbx.state()["besip-pbx:pbx"]["recording-state"]["recording"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// 100 calls `callee` (registered by a sipp UAS whose SDP names `b`),
/// both phones talk for about 3 s, 100 hangs up. Relay ports, if any.
fn call(
    pbx: &Pbx,
    sipp: &Sipp,
    port: u16,
    callee: &str,
    a: &MediaPhone,
    b: &MediaPhone,
) -> Option<(u16, u16)> {
    let uas_port = free_port();
    register(sipp, callee, uas_port, port);
    call_to(pbx, sipp, port, (callee, uas_port), a, b)
}

/// As `call`, to a sipp UAS already reachable on `uas_port` (a trunk).
fn call_to(
    pbx: &Pbx,
    sipp: &Sipp,
    port: u16,
    (callee, uas_port): (&str, u16),
    a: &MediaPhone,
    b: &MediaPhone,
) -> Option<(u16, u16)> {
    let uas = sipp.spawn(
        &format!("uas-{callee}"),
        &callee_answers(0).replace("[media_port]", &b.port.to_string()),
        uas_port,
        port,
        &[],
    );
    let caller = spawn_call(
        &sipp,
        &format!("caller-{callee}"),
        ("100", callee),
        &a.sdp(),
        Some(3500),
        port,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ports = None;
    while Instant::now() < deadline {
        ports = relay_ports(pbx);
        if ports.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lo = std::net::Ipv4Addr::LOCALHOST;
    match ports {
        Some((pa, pb)) => {
            a.set_peer((lo, pa).into());
            b.set_peer((lo, pb).into());
        }
        None => {
            // No relay: the phones talk straight to each other.
            a.set_peer((lo, b.port).into());
            b.set_peer((lo, a.port).into());
        }
    }
    let c = sipp.wait(caller);
    assert!(c.success, "caller:\n{}", c.log);
    let u = sipp.wait(uas);
    assert!(u.success, "callee:\n{}", u.log);
    ports
}

#[test]
fn a_recorded_extensions_call_is_kept_as_stereo_wav() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = b2bua_config(
        port,
        "\toption rtp_port_min '45000'\n\toption rtp_port_max '45199'\n",
    );
    let uci = with_ext(&uci, "101", "\toption record_calls 'always'\n");
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();

    // 102 is not recorded: no relay, no recording.
    let (a, b) = (MediaPhone::start(500.0), MediaPhone::start(1300.0));
    assert_eq!(
        call(&pbx, &sipp, port, "102", &a, &b),
        None,
        "an unrecorded call passed the relay"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(recordings(&pbx).is_empty());

    let (a, b) = (MediaPhone::start(600.0), MediaPhone::start(1400.0));
    assert!(
        call(&pbx, &sipp, port, "101", &a, &b).is_some(),
        "recorded call not anchored"
    );
    // Each phone heard the other through the relay.
    assert!(a.heard_tone_since(Instant::now() - Duration::from_secs(10), 1400.0));
    assert!(b.heard_tone_since(Instant::now() - Duration::from_secs(10), 600.0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let l = recordings(&pbx);
        if !l.is_empty() {
            break l;
        }
        assert!(Instant::now() < deadline, "no recording kept");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_state_valid(&pbx, &pbx.state());
    assert_eq!(list.len(), 1, "{list:?}");
    let r = &list[0];
    assert!(r["caller"].as_str().unwrap().contains("sip:100@"), "{r}");
    assert!(r["callee"].as_str().unwrap().contains("101"), "{r}");
    let duration = r["duration"].as_u64().unwrap();
    assert!((2500..=4500).contains(&duration), "duration {duration} ms");
    let file = pbx
        .root
        .path()
        .join("var/lib/besip/recordings")
        .join(format!("{}.wav", r["id"].as_str().unwrap()));
    let (channels, samples) = wav(&file);
    assert_eq!(channels, 2);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!((left.len() as u64 / 8).abs_diff(duration) <= 40);
    let (fl, fr) = (
        dominant_frequency(&left, 8000),
        dominant_frequency(&right, 8000),
    );
    assert!(
        (fl - 600.0).abs() <= 10.0,
        "left channel holds {fl} Hz, not the caller's 600"
    );
    assert!(
        (fr - 1400.0).abs() <= 10.0,
        "right channel holds {fr} Hz, not the callee's 1400"
    );
}

#[test]
fn an_on_demand_recording_runs_between_two_toggle_codes() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let uci = b2bua_config(
        port,
        "\toption rtp_port_min '45200'\n\toption rtp_port_max '45399'\n",
    );
    let uci = with_ext(&uci, "101", "\toption record_calls 'on-demand'\n");
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let uas_port = free_port();
    register(&sipp, "101", uas_port, port);
    let (a, b) = (MediaPhone::start(600.0), MediaPhone::start(1400.0));
    let uas = sipp.spawn(
        "uas",
        &callee_answers(0).replace("[media_port]", &b.port.to_string()),
        uas_port,
        port,
        &[],
    );
    let caller = spawn_call(&sipp, "caller", ("100", "101"), &a.sdp(), Some(5000), port);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (pa, pb) = loop {
        if let Some(p) = relay_ports(&pbx) {
            break p;
        }
        assert!(Instant::now() < deadline, "on-demand call not anchored");
        std::thread::sleep(Duration::from_millis(50));
    };
    let lo = std::net::Ipv4Addr::LOCALHOST;
    a.set_peer((lo, pa).into());
    b.set_peer((lo, pb).into());
    std::thread::sleep(Duration::from_millis(1000));
    // The callee keys *1, talks 2 s, keys *1 again; the call goes on.
    b.press("*1");
    std::thread::sleep(Duration::from_millis(2000));
    b.press("*1");
    let c = sipp.wait(caller);
    assert!(c.success, "caller:\n{}", c.log);
    let u = sipp.wait(uas);
    assert!(u.success, "callee:\n{}", u.log);
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let l = recordings(&pbx);
        if !l.is_empty() {
            break l;
        }
        assert!(Instant::now() < deadline, "no on-demand recording kept");
        std::thread::sleep(Duration::from_millis(100));
    };
    let duration = list[0]["duration"].as_u64().unwrap();
    // Between the two codes only (keys are 200 ms apart), not the 5 s call.
    assert!(
        (1500..=3200).contains(&duration),
        "on-demand recording lasted {duration} ms"
    );
    let file = pbx
        .root
        .path()
        .join("var/lib/besip/recordings")
        .join(format!("{}.wav", list[0]["id"].as_str().unwrap()));
    let (_, samples) = wav(&file);
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!((dominant_frequency(&right, 8000) - 1400.0).abs() <= 10.0);
}

#[test]
fn a_recorded_route_records_its_calls_and_the_count_limit_keeps_the_newest() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    let port = free_port();
    let trunk_port = free_port();
    let uci = b2bua_config(
        port,
        "\toption rtp_port_min '45200'\n\toption rtp_port_max '45399'\n\toption recording_max_recordings '1'\n",
    ) + &format!(
        "config trunk 'trunk_acme'\n\toption name 'acme'\n\toption host '127.0.0.1'\n\toption port '{trunk_port}'\n\toption transport 'udp'\n\n\
config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'acme'\n\toption record_calls 'always'\n\n"
    );
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    for (tones, number) in [((700.0, 1500.0), "0555"), ((800.0, 1600.0), "0556")] {
        let (a, b) = (MediaPhone::start(tones.0), MediaPhone::start(tones.1));
        assert!(
            call_to(&pbx, &sipp, port, (number, trunk_port), &a, &b).is_some(),
            "a call by the recorded route was not anchored"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !recordings(&pbx)
            .iter()
            .any(|r| r["callee"].as_str().unwrap_or("").contains(number))
        {
            assert!(
                Instant::now() < deadline,
                "the call to {number} was not recorded"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // max-recordings 1: only the newest is kept, on disk too.
    let list = recordings(&pbx);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(
        list[0]["callee"].as_str().unwrap().contains("0556"),
        "{list:?}"
    );
    let dir = pbx.root.path().join("var/lib/besip/recordings");
    let wavs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .collect();
    assert_eq!(wavs.len(), 1, "{wavs:?}");
    let (_, samples) = wav(&wavs[0].path());
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let f = dominant_frequency(&left, 8000);
    assert!((f - 800.0).abs() <= 10.0, "the kept recording holds {f} Hz");
}
