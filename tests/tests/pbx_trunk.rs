//! besip-pbxd towards a provider (a sipp UAS on 127.0.0.1): outbound
//! registration of a trunk with digest credentials (MD5 and SHA-256,
//! checked here with the test's own hashing), its refresh and its removal at
//! shutdown; and a call routed to a trunk that challenges the INVITE.

use std::time::{Duration, Instant};

use besip_tests::pbx::assert_state_valid;
use besip_tests::pbx::*;
use sha2::Digest;

/// The provider: challenges each REGISTER (MD5 first, SHA-256 for the
/// refresh and the removal), grants 4 s, and expects the refresh and, at
/// shutdown, the removal (Expires: 0).
fn provider_registrar() -> String {
    let challenge = |alg: &str, n: u32| {
        format!(
            "  <recv request=\"REGISTER\"/>\n{}  <recv request=\"REGISTER\"/>\n{}",
            uas_reply(
                "401 Unauthorized",
                "prov[call_number]",
                &format!("WWW-Authenticate: Digest realm=\"prov.test\", nonce=\"nonce{n}x[pid]\", qop=\"auth\", algorithm={alg}\n"),
                "",
                false
            ),
            uas_reply("200 OK", "prov[call_number]", "[last_Contact:];expires=4\n", "", false)
        )
    };
    scenario(
        "provider",
        &(challenge("MD5", 1) + &challenge("SHA-256", 2) + &challenge("SHA-256", 3)),
    )
}

fn trunk_uci(name: &str, port: u16, extra: &str) -> String {
    format!(
        "config trunk 'trunk_{name}'\n\toption name '{name}'\n\toption host '127.0.0.1'\n\toption port '{port}'\n\toption transport 'udp'\n\toption username 'acme'\n\toption password 's3cret'\n{extra}\n"
    )
}

/// The messages of a sipp trace, each with the time it was logged (seconds).
fn trace_messages(trace: &str) -> Vec<(f64, bool, String)> {
    let mut out = Vec::new();
    for block in trace.split("----------------------------------------------- ") {
        let Some((head, body)) = block.split_once('\n') else {
            continue;
        };
        // "2026-11-23\t17:30:01.123456"
        let Some(time) = head.split_whitespace().nth(1) else {
            continue;
        };
        let secs = time
            .split(':')
            .filter_map(|p| p.parse::<f64>().ok())
            .fold(0.0, |acc, v| acc * 60.0 + v);
        let received = body.contains("message received");
        let msg = body
            .lines()
            .skip_while(|l| !l.starts_with("SIP/2.0") && !l.contains(" SIP/2.0"))
            .collect::<Vec<_>>()
            .join("\n");
        out.push((secs, received, msg));
    }
    out
}

fn digest_param(header: &str, name: &str) -> String {
    let key = format!("{name}=");
    let at = header
        .find(&format!(" {key}"))
        .or_else(|| header.find(&format!(",{key}")))
        .unwrap_or_else(|| panic!("no {name} in {header}"));
    let v = &header[at + 1 + key.len()..];
    let v = v.trim_start_matches('"');
    v.split(['"', ',']).next().unwrap_or("").trim().to_owned()
}

/// RFC 7616 §3.4.1 with qop=auth, computed here (MD5 by the tests' own
/// RFC 1321 code, SHA-256 by the sha2 crate).
fn expected_response(
    alg: &str,
    user: &str,
    realm: &str,
    pw: &str,
    method: &str,
    h: &str,
) -> String {
    let hash = |s: String| match alg {
        "MD5" => format!("{:032x}", md5_digest(s.as_bytes())),
        _ => hex(&sha2::Sha256::digest(s.as_bytes())),
    };
    let ha1 = hash(format!("{user}:{realm}:{pw}"));
    let ha2 = hash(format!("{method}:{}", digest_param(h, "uri")));
    hash(format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        digest_param(h, "nonce"),
        digest_param(h, "nc"),
        digest_param(h, "cnonce")
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

#[test]
fn trunk_registers_with_digest_refreshes_and_unregisters_at_shutdown() {
    registration_round_trip("udp");
}

#[test]
fn trunk_registration_over_tcp() {
    registration_round_trip("tcp");
}

fn registration_round_trip(transport: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let sipp = Sipp::new();
    let args: &[&str] = if transport == "tcp" {
        &["-t", "t1"]
    } else {
        &[]
    };
    let provider = sipp.spawn("prov", &provider_registrar(), prov_port, port, args);
    let uci = config(port, "")
        + &trunk_uci("acme", prov_port, "\toption register '1'\n").replace(
            "option transport 'udp'",
            &format!("option transport '{transport}'"),
        );
    let mut pbx = Pbx::start(&uci, port);
    // Registered, then refreshed at half of the 4 s granted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let trunk = loop {
        let state = pbx.state();
        let t = state["besip-pbx:pbx"]["trunk-registrations"]["trunk"][0].clone();
        if t["registrations"].as_u64() == Some(2) {
            assert_state_valid(&pbx, &state);
            break t;
        }
        assert!(Instant::now() < deadline, "no refresh in time: {state}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(trunk["name"], "acme");
    assert_eq!(trunk["state"], "registered", "{trunk}");
    assert_eq!(trunk["last-response"], "200 OK", "{trunk}");
    assert!(trunk["expires"].as_u64().is_some_and(|e| e <= 4), "{trunk}");
    pbx.stop();
    let r = sipp.wait(provider);
    assert!(r.success, "provider scenario failed:\n{}", r.log);

    let msgs = trace_messages(&sipp.messages("prov"));
    let registers: Vec<&(f64, bool, String)> = msgs
        .iter()
        .filter(|(_, rx, m)| *rx && m.starts_with("REGISTER "))
        .collect();
    assert_eq!(registers.len(), 6, "{msgs:#?}");
    for (i, (_, _, m)) in registers.iter().enumerate() {
        let auth = header(m, "Authorization");
        if i % 2 == 0 {
            assert!(
                auth.is_none(),
                "first REGISTER of a round has no credentials:\n{m}"
            );
            continue;
        }
        let h = auth.unwrap_or_else(|| panic!("no credentials:\n{m}"));
        let alg = if i == 1 { "MD5" } else { "SHA-256" };
        assert!(h.contains(&format!("algorithm={alg}")), "{h}");
        assert_eq!(digest_param(h, "username"), "acme");
        assert_eq!(digest_param(h, "realm"), "prov.test");
        assert_eq!(
            digest_param(h, "response"),
            expected_response(alg, "acme", "prov.test", "s3cret", "REGISTER", h),
            "wrong digest in:\n{m}"
        );
        let want_expires = if i == 5 { "0" } else { "3600" };
        assert_eq!(header(m, "Expires"), Some(want_expires), "{m}");
        let via = header(m, "Via").expect("Via");
        assert!(
            via.starts_with(&format!("SIP/2.0/{}", transport.to_uppercase())),
            "{via}"
        );
    }
    // The refresh came about 2 s after the grant, not at once and not late.
    let granted_at = msgs
        .iter()
        .find(|(_, rx, m)| !*rx && m.starts_with("SIP/2.0 200"))
        .map(|m| m.0)
        .expect("200 sent");
    let gap = registers[2].0 - granted_at;
    assert!(
        (1.5..3.5).contains(&gap),
        "refresh {gap} s after a 4 s grant"
    );
}

/// The provider challenges the first INVITE with 407, takes the ACK, and
/// answers the INVITE that carries credentials; the caller hangs up.
fn provider_challenges_invite() -> String {
    let challenge = uas_reply(
        "407 Proxy Authentication Required",
        "prov[call_number]",
        "Proxy-Authenticate: Digest realm=\"prov.test\", nonce=\"inv[pid]\", qop=\"auth\", algorithm=MD5\n",
        "",
        false,
    );
    let answer = uas_reply(
        "200 OK",
        "prov2[call_number]",
        &format!("[last_Record-Route:]\n{UAS_CONTACT}Content-Type: application/sdp\n"),
        SDP,
        true,
    );
    scenario(
        "provider",
        &format!(
            "  <recv request=\"INVITE\"/>\n{challenge}  <recv request=\"ACK\"/>\n  <recv request=\"INVITE\"/>\n{answer}{}",
            ack_then_bye_answered()
        ),
    )
}

fn cseq_of(msg: &str) -> u32 {
    header(msg, "CSeq")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no CSeq in:\n{msg}"))
}

#[test]
fn b2bua_call_to_a_challenging_trunk_is_retried_with_credentials() {
    call_to_a_challenging_trunk("b2bua");
}

#[test]
fn proxied_call_to_a_challenging_trunk_is_retried_with_credentials() {
    call_to_a_challenging_trunk("proxy");
}

fn call_to_a_challenging_trunk(mode: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(port, "")
        .replace("\toption mode 'proxy'\n", &format!("\toption mode '{mode}'\n"))
        + &trunk_uci("acme", prov_port, "")
        + "config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'acme'\n\n";
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let provider = sipp.spawn("prov", &provider_challenges_invite(), prov_port, port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_answered("100", "0555123"),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let prov = sipp.wait(provider);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(prov.success, "provider failed:\n{}", prov.log);

    let msgs = trace_messages(&sipp.messages("prov"));
    let got = |method: &str| -> Vec<String> {
        msgs.iter()
            .filter(|(_, rx, m)| *rx && m.starts_with(&format!("{method} ")))
            .map(|m| m.2.clone())
            .collect()
    };
    let invites = got("INVITE");
    let acks = got("ACK");
    let byes = got("BYE");
    assert_eq!(invites.len(), 2, "{msgs:#?}");
    // No credentials reach the provider but ours (the caller's were for the PBX).
    assert!(
        header(&invites[0], "Proxy-Authorization").is_none(),
        "{}",
        invites[0]
    );
    let first = cseq_of(&invites[0]);
    // B2BUA: our own dialog, the next CSeq. Proxy: the caller's CSeq is kept.
    let retry_cseq = if mode == "b2bua" { first + 1 } else { first };
    assert_eq!(cseq_of(&invites[1]), retry_cseq);
    assert_eq!(
        header(&invites[0], "Call-ID"),
        header(&invites[1], "Call-ID")
    );
    // The 407 was ACKed with the first INVITE's CSeq (§17.1.1.3).
    assert_eq!(cseq_of(&acks[0]), first);
    let h = header(&invites[1], "Proxy-Authorization").expect("credentials");
    assert_eq!(digest_param(h, "username"), "acme");
    assert_eq!(
        digest_param(h, "response"),
        expected_response("MD5", "acme", "prov.test", "s3cret", "INVITE", h)
    );
    assert!(
        cseq_of(&byes[0]) > retry_cseq,
        "BYE after the retried INVITE"
    );
    // The call's record names the trunk.
    let state = pbx.state();
    let cdr = &state["besip-pbx:pbx"]["accounting-state"]["cdr"][0];
    assert_eq!(cdr["trunk"], "acme", "{state}");
    assert_eq!(cdr["disposition"], "answered", "{state}");
    assert_state_valid(&pbx, &state);
}

/// A provider that first answers 503, then challenges and accepts; later it
/// takes the removal (Expires: 0) after a challenge.
fn provider_fails_once() -> String {
    let reply = |status: &str, headers: &str| {
        format!(
            "  <recv request=\"REGISTER\"/>\n{}",
            uas_reply(status, "prov[call_number]", headers, "", false)
        )
    };
    let challenge =
        "WWW-Authenticate: Digest realm=\"prov.test\", nonce=\"n[pid]\", algorithm=MD5\n";
    scenario(
        "provider",
        &[
            reply("503 Service Unavailable", ""),
            reply("401 Unauthorized", challenge),
            reply("200 OK", "[last_Contact:];expires=3600\n"),
            reply("401 Unauthorized", challenge),
            reply("200 OK", ""),
        ]
        .concat(),
    )
}

#[test]
fn trunk_registration_follows_reload_and_backs_off_after_a_failure() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let sipp = Sipp::new();
    let provider = sipp.spawn("prov", &provider_fails_once(), prov_port, port, &[]);
    let without = config(port, "") + &trunk_uci("acme", prov_port, "\toption register '0'\n");
    let pbx = Pbx::start(&without, port);
    let trunks = |pbx: &Pbx| pbx.state()["besip-pbx:pbx"]["trunk-registrations"]["trunk"].clone();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        trunks(&pbx),
        serde_json::json!([]),
        "register false: nothing"
    );
    let file = pbx.root.path().join("etc/config/besip_pbx");
    std::fs::write(
        &file,
        config(port, "") + &trunk_uci("acme", prov_port, "\toption register '1'\n"),
    )
    .expect("write");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_failure = false;
    loop {
        let t = trunks(&pbx)[0].clone();
        if t["state"] == "failed" {
            saw_failure = true;
            assert_eq!(t["last-response"], "503 Service Unavailable", "{t}");
        }
        if t["state"] == "registered" {
            assert_eq!(t["failures"], 1, "{t}");
            assert!(t["expires"].as_u64().is_some_and(|e| e > 3500), "{t}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not registered after the retry: {t}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_failure, "the 503 was not reported");
    // Trunk removed: its registration is removed at the provider.
    std::fs::write(&file, config(port, "")).expect("write");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    let r = sipp.wait(provider);
    assert!(r.success, "provider scenario failed:\n{}", r.log);
    assert_eq!(trunks(&pbx), serde_json::json!([]));
    let msgs = trace_messages(&sipp.messages("prov"));
    let registers: Vec<&(f64, bool, String)> = msgs
        .iter()
        .filter(|(_, rx, m)| *rx && m.starts_with("REGISTER "))
        .collect();
    assert_eq!(registers.len(), 5, "{msgs:#?}");
    let backoff = registers[1].0 - registers[0].0;
    assert!(
        (1.8..4.0).contains(&backoff),
        "retry {backoff} s after the 503"
    );
    assert_eq!(header(&registers[4].2, "Expires"), Some("0"));
    // The challenge had no qop: RFC 2069 style credentials.
    let h = header(&registers[2].2, "Authorization").expect("credentials");
    assert!(!h.contains("qop="), "{h}");
}

/// Wrong trunk credentials: the provider challenges the retry too; the
/// PBX does not loop and the caller gets 403, not the provider's challenge.
#[test]
fn b2bua_call_with_rejected_trunk_credentials_fails_once() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(port, "\toption mode 'b2bua'\n").replace("\toption mode 'proxy'\n", "")
        + &trunk_uci("acme", prov_port, "")
        + "config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'acme'\n\n";
    let _pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let challenge = r#"  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 407 Proxy Authentication Required
[last_Via:]
[last_From:]
[last_To:];tag=prov[call_number]
[last_Call-ID:]
[last_CSeq:]
Proxy-Authenticate: Digest realm="prov.test", nonce="inv[pid]", algorithm=MD5
Content-Length: 0

]]></send>
  <recv request="ACK"/>
"#;
    let scenario = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"provider\">\n{challenge}{challenge}</scenario>\n"
    );
    let provider = sipp.spawn("prov", &scenario, prov_port, port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_rejected("100", "0555", 403),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let prov = sipp.wait(provider);
    assert!(caller.success, "caller did not get 403:\n{}", caller.log);
    assert!(prov.success, "provider failed:\n{}", prov.log);
    let invites = trace_messages(&sipp.messages("prov"))
        .into_iter()
        .filter(|(_, rx, m)| *rx && m.starts_with("INVITE "))
        .count();
    assert_eq!(invites, 2, "one retry only");
}
