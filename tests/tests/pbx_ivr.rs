//! IVR menus with sipp placing the calls and the tests' own RTP phones, in
//! both modes: prompts uploaded over the daemon's RPC (bad uploads refused,
//! nothing stored) and played; key 1 joins a conference in the same call;
//! key 2 opens a nested menu whose key 4, or the extension keyed directly,
//! transfers the caller by REFER; no key at all goes, after the repeats,
//! to the timeout destination (a mailbox), where the message is filed.

use std::time::{Duration, Instant};

use base64::Engine as _;
use besip_tests::pbx::media_phone::{media_caller, media_caller_refused, spawn_call, MediaPhone};
use besip_tests::pbx::office::{base, media_base, with_ext, MODES};
use besip_tests::pbx::*;
use serde_json::json;

const MENUS: &str = "config conference 'conference_800'\n\toption number '800'\n\n\
config ivr 'ivr_main'\n\toption name 'main'\n\toption number '500'\n\toption prompt 'welcome'\n\toption timeout '2'\n\toption repeats '1'\n\toption timeout_destination_voicemail '101'\n\n\
config ivr_entry 'ivr_main_1'\n\toption ivr 'main'\n\toption key '1'\n\toption destination_conference '800'\n\n\
config ivr_entry 'ivr_main_2'\n\toption ivr 'main'\n\toption key '2'\n\toption destination_ivr 'sales'\n\n\
config ivr 'ivr_sales'\n\toption name 'sales'\n\toption prompt 'sales'\n\toption timeout '3'\n\toption direct_dial '1'\n\n\
config ivr_entry 'ivr_sales_4'\n\toption ivr 'sales'\n\toption key '4'\n\toption destination_extension '102'\n\n";

fn tone_wav(freq: f64, ms: u32, channels: u16) -> Vec<u8> {
    let n = (8 * ms) as usize;
    let mut samples = Vec::new();
    for i in 0..n {
        let s = (7000.0 * (std::f64::consts::TAU * freq * i as f64 / 8000.0).sin()) as i16;
        for _ in 0..channels {
            samples.push(s);
        }
    }
    besip_media::wav::encode(channels, &samples)
}

fn upload(pbx: &Pbx, name: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
    pbx.ipc(
        "rpc",
        json!({"name": "upload-prompt", "input": {"name": name, "audio": audio}}),
    )
}

/// The caller: after the menu transfers it, it answers the REFER (checking
/// its Refer-To) with 202 and hangs up on the box, as a phone does.
fn transferred_caller(sdp: &str, to: &str) -> String {
    let s = media_caller("100", "500", sdp, None);
    let head = &s[..s.find("  <recv request=\"BYE\"").expect("scenario shape")];
    format!(
        r#"{head}  <recv request="REFER" timeout="30000">
    <action><ereg regexp="sip:{to}@besip.test" search_in="hdr" header="Refer-To:" check_it="true" assign_to="rt"/></action>
  </recv>
  <Reference variables="rt"/>
  <send><![CDATA[
SIP/2.0 202 Accepted
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]m[call_number]
To: <sip:500@besip.test>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#
    )
}

fn wait_tone(phone: &MediaPhone, since: Instant, freq: f64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !phone.heard_tone_since(since, freq) {
        assert!(Instant::now() < deadline, "{what}: {freq} Hz never heard");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn menus_route_by_key_nest_transfer_and_time_out_in_both_modes() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    for (i, mode) in MODES.iter().enumerate() {
        let port = free_port();
        let rtp = 43000 + 200 * i as u16;
        let uci = media_base(port, mode, rtp, "") + MENUS;
        let uci = with_ext(&uci, "101", "\toption voicemail_enabled '1'\n");
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();

        // Uploads: checked, and a refused one leaves nothing behind.
        let prompts = pbx.root.path().join("var/lib/besip/prompts");
        assert!(upload(&pbx, "welcome", &tone_wav(1200.0, 1000, 1)).is_ok());
        assert!(upload(&pbx, "sales", &tone_wav(1600.0, 1000, 1)).is_ok());
        for (name, bytes, why) in [
            ("stereo", tone_wav(500.0, 500, 2), "mono"),
            ("junk", b"RIFF\x00\x00\x00\x00WAVEnothing".to_vec(), "chunk"),
            ("../escape", tone_wav(500.0, 500, 1), "not a prompt name"),
        ] {
            let e = upload(&pbx, name, &bytes).expect_err("bad upload taken");
            assert!(e.contains(why), "{name}: {e}");
        }
        let e = pbx
            .ipc(
                "rpc",
                json!({"name": "upload-prompt", "input": {"name": "x", "audio": "%%%"}}),
            )
            .expect_err("bad base64 taken");
        assert!(e.contains("base64"), "{e}");
        let mut stored: Vec<String> = std::fs::read_dir(&prompts)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        stored.sort();
        assert_eq!(stored, ["sales.wav", "welcome.wav"]);

        // 1: the welcome prompt, then the conference in the same call.
        let phone = MediaPhone::start(0.0);
        let call = spawn_call(
            &sipp,
            &format!("{mode}-to-room"),
            ("100", "500"),
            &phone.sdp(),
            None,
            port,
        );
        phone.wait_peer();
        let t = Instant::now() - Duration::from_millis(500);
        wait_tone(&phone, t, 1200.0, "welcome prompt");
        phone.press("1");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rooms = pbx.state()["besip-pbx:pbx"]["conference-state"]["room"].clone();
            if rooms[0]["participants"] == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: key 1 did not join the room: {rooms}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pbx.ipc(
            "rpc",
            json!({"name": "kick-participant", "input": {"room": "800"}}),
        )
        .unwrap();
        let done = sipp.wait(call);
        assert!(done.success, "{mode}: {}", done.log);

        // 2 then 4 (or 102#): the nested menu's prompt, then a REFER to 102.
        for (keys, what) in [("4", "key"), ("102#", "direct dial")] {
            let phone = MediaPhone::start(0.0);
            let call = sipp.spawn(
                &format!("{mode}-{what}"),
                &transferred_caller(&phone.sdp(), "102"),
                free_port(),
                port,
                &["-au", "100", "-ap", "pw100"],
            );
            phone.wait_peer();
            phone.press("2");
            let t = Instant::now();
            wait_tone(&phone, t, 1600.0, "nested menu prompt");
            phone.press(keys);
            let done = sipp.wait(call);
            assert!(
                done.success,
                "{mode} {what}: no REFER to 102:\n{}",
                done.log
            );
        }

        // No key: the menu twice, then 101's mailbox (its beep); a message is left.
        let phone = MediaPhone::start(900.0);
        let call = spawn_call(
            &sipp,
            &format!("{mode}-timeout"),
            ("100", "500"),
            &phone.sdp(),
            None,
            port,
        );
        phone.wait_peer();
        let t = Instant::now();
        wait_tone(&phone, t, 1000.0, "mailbox beep after the timeouts");
        assert!(
            t.elapsed() >= Duration::from_secs(5),
            "{mode}: the menu did not repeat"
        );
        std::thread::sleep(Duration::from_millis(1500));
        phone.press("#");
        let done = sipp.wait(call);
        assert!(done.success, "{mode}: {}", done.log);
        let vm = pbx.state()["besip-pbx:pbx"]["voicemail-state"]["mailbox"].clone();
        assert_eq!(vm[0]["extension"], "101", "{vm}");
        assert_eq!(vm[0]["new-messages"], 1, "{vm}");
    }
}

#[test]
fn the_default_prompt_set_is_taken_by_the_prompt_store() {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok()
    };
    if !have("espeak-ng") || !have("sox") {
        eprintln!("espeak-ng or sox missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gen-prompts");
    let out = std::process::Command::new(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let pbx = Pbx::start(&base(port, "b2bua", ""), port);
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = e
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".wav")
            .to_owned();
        let r = upload(&pbx, &name, &std::fs::read(e.path()).unwrap())
            .expect("generated prompt refused");
        assert!(r["duration"].as_u64().unwrap() > 500, "{name}: {r}");
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        ["goodbye", "invalid", "pin", "vm-greeting", "welcome"]
    );
}

/// Prompts recorded by phone (/pbx/prompt-recording), in both modes: 100
/// (allowed) dials *771, hears the beep, says a 700 Hz tone and presses #;
/// it hears its recording played back, the store holds recording-1 with
/// that tone, and a menu naming recording-1 plays it to the next caller.
/// 101 (not allowed) is refused; a code without a number is not one.
#[test]
fn prompts_recorded_by_phone_are_kept_and_played_by_a_menu_in_both_modes() {
    if !have_sipp() {
        eprintln!("sipp missing: skipped");
        return;
    }
    for (i, mode) in MODES.iter().enumerate() {
        let port = free_port();
        let rtp = 43600 + 200 * i as u16;
        let uci = media_base(port, mode, rtp, "\tlist prompt_recording_extension '100'\n")
            + "config ivr 'ivr_rec'\n\toption name 'rec'\n\toption number '510'\n\toption prompt 'recording-1'\n\toption timeout '5'\n\n";
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let auth = |u: &'static str| ["-au", u, "-ap", if u == "100" { "pw100" } else { "pw101" }];

        let phone = MediaPhone::start(0.0);
        let call = sipp.spawn(
            &format!("{mode}-record"),
            &media_caller("100", "*771", &phone.sdp(), None),
            free_port(),
            port,
            &auth("100"),
        );
        phone.wait_peer();
        let t = Instant::now() - Duration::from_millis(500);
        wait_tone(&phone, t, 1000.0, "the beep before recording");
        std::thread::sleep(Duration::from_millis(300));
        phone.set_tone(700.0);
        std::thread::sleep(Duration::from_millis(1500));
        phone.set_tone(0.0);
        std::thread::sleep(Duration::from_millis(200));
        let pressed = Instant::now();
        phone.press("#");
        wait_tone(&phone, pressed, 700.0, "the recording played back");
        let done = sipp.wait(call);
        assert!(done.success, "{mode}: {}", done.log);

        let stored = pbx
            .root
            .path()
            .join("var/lib/besip/prompts/recording-1.wav");
        let audio = besip_media::wav::parse(&std::fs::read(&stored).expect("recording-1.wav"))
            .expect("a WAV");
        let samples = audio.channel(0);
        let seconds = samples.len() as f64 / 8000.0;
        assert!(
            (1.5..=3.0).contains(&seconds),
            "{mode}: recording-1 lasts {seconds} s"
        );
        let tone_at = |from: f64, to: f64| {
            let (a, b) = ((from * 8000.0) as usize, (to * 8000.0) as usize);
            besip_media::tone::holds(&samples[a..b.min(samples.len())], 700.0, 0.8)
        };
        let has_tone = (0..((seconds - 1.0) * 10.0) as usize)
            .any(|k| tone_at(k as f64 / 10.0, k as f64 / 10.0 + 1.0));
        assert!(has_tone, "{mode}: a second of 700 Hz not in recording-1");

        // The menu plays it.
        let listener = MediaPhone::start(0.0);
        let call = sipp.spawn(
            &format!("{mode}-menu"),
            &media_caller("101", "510", &listener.sdp(), Some(3000)),
            free_port(),
            port,
            &auth("101"),
        );
        listener.wait_peer();
        wait_tone(
            &listener,
            Instant::now() - Duration::from_millis(500),
            700.0,
            "the menu's recorded prompt",
        );
        assert!(sipp.wait(call).success);

        // 101 may not record; *77 alone is no code (nothing to record).
        let r = sipp.run(
            &format!("{mode}-refused"),
            &media_caller_refused("101", "*772", &listener.sdp(), 403),
            free_port(),
            port,
            &auth("101"),
        );
        assert!(r.success, "{mode}: 101 recorded a prompt: {}", r.log);
        assert!(!pbx
            .root
            .path()
            .join("var/lib/besip/prompts/recording-2.wav")
            .exists());
    }
}
