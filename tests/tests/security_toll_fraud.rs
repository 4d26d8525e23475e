//! Toll fraud and open relay, tried as an attacker would (sipp as the
//! attacker, sipp as the provider behind a trunk, all on 127.0.0.1), in
//! proxy and B2BUA mode: a foreign caller with a Route to the trunk's
//! address, an INVITE with a made-up To tag aimed at the provider, an
//! extension dialling the provider's address directly (the trunk's
//! credentials must not answer for it). Then the outbound permissions:
//! call classes, simultaneous call limits and the hourly spend limit, each
//! refused 403, counted and notified. (Extension enumeration:
//! security_enumeration.rs.)

use std::time::{Duration, Instant};

use besip_core::ipc::IpcClient;
use besip_tests::pbx::*;

fn trunk_uci(prov_port: u16) -> String {
    format!(
        "config trunk 'trunk_acme'\n\toption name 'acme'\n\toption host '127.0.0.1'\n\toption port '{prov_port}'\n\toption transport 'udp'\n\toption username 'acme'\n\toption password 's3cret'\n\n\
config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'acme'\n\n"
    )
}

/// An INVITE without credentials: `to` is the To header value (with a tag
/// for an in-dialog request), `extra` more header lines; expects `code`
/// whose reason phrase contains `reason`, and ACKs it.
fn attacker(ruri: &str, to: &str, extra: &str, code: u16, reason: &str) -> String {
    scenario(
        "attacker",
        &format!(
            r#"  <send retrans="500"><![CDATA[
INVITE {ruri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:mallory@evil.example>;tag=[pid]atk[call_number]
To: {to}
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:mallory@[local_ip]:[local_port]>
{extra}Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="{code}"><action><ereg regexp="{reason}" search_in="msg" check_it="true" assign_to="phrase"/></action></recv>
  <Reference variables="phrase"/>
  <send><![CDATA[
ACK {ruri} SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"#
        ),
    )
}

/// Received messages of a sipp trace, by first line.
fn received(trace: &str) -> Vec<String> {
    trace
        .split("----------------------------------------------- ")
        .filter(|b| b.contains("message received"))
        .map(|b| {
            b.lines()
                .skip_while(|l| !l.contains("SIP/2.0"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// The provider: challenges an INVITE with 407 and answers the one that
/// carries credentials, then takes ACK and BYE (the legitimate call).
fn provider_challenging() -> String {
    let challenge = uas_reply(
        "407 Proxy Authentication Required",
        "prov[call_number]",
        "Proxy-Authenticate: Digest realm=\"prov.test\", nonce=\"inv[pid]\", algorithm=MD5\n",
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
    format!(
        "  <recv request=\"INVITE\"/>\n{challenge}  <recv request=\"ACK\"/>\n  <recv request=\"INVITE\"/>\n{answer}{}",
        ack_then_bye_answered()
    )
}

/// An authenticated INVITE of `user` to `ruri` that gets `code` from the far end.
fn caller_to_uri_rejected(user: &str, ruri: &str, code: u16) -> String {
    caller_rejected(user, "XNUMX", code).replace("sip:XNUMX@besip.test", ruri)
}

#[test]
fn proxy_toll_fraud_invites_are_refused() {
    toll_fraud_invites_are_refused("proxy");
}

#[test]
fn b2bua_toll_fraud_invites_are_refused() {
    toll_fraud_invites_are_refused("b2bua");
}

fn toll_fraud_invites_are_refused(mode: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(port, "").replace(
        "\toption mode 'proxy'\n",
        &format!("\toption mode '{mode}'\n"),
    ) + &trunk_uci(prov_port);
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    // The provider: the direct-dial INVITE is challenged and must not be
    // retried with the trunk's credentials; then the legitimate call.
    let direct = format!(
        "  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "407 Proxy Authentication Required",
            "provx[call_number]",
            "Proxy-Authenticate: Digest realm=\"prov.test\", nonce=\"d[pid]\", algorithm=MD5\n",
            "",
            false,
        )
    );
    let provider = sipp.spawn(
        "prov1",
        &scenario("provider", &direct),
        prov_port,
        port,
        &[],
    );
    let prov = format!("127.0.0.1:{prov_port}");
    let attacks = [
        // A foreign From, a Route naming the trunk's address.
        (
            "route-to-trunk",
            attacker(
                &format!("sip:0900123@{prov}"),
                &format!("<sip:0900123@{prov}>"),
                &format!("Route: <sip:{prov};lr>\n"),
                403,
                "Relaying Denied",
            ),
        ),
        // The same to our domain: the Route is ignored, the dialplan is not for strangers.
        (
            "route-via-us",
            attacker(
                "sip:0900123@besip.test",
                "<sip:0900123@besip.test>",
                &format!("Route: <sip:{prov};lr>\n"),
                403,
                "Relaying Denied",
            ),
        ),
        // A made-up To tag and the provider in the Request-URI.
        (
            "to-tag",
            attacker(
                &format!("sip:0900123@{prov}"),
                &format!("<sip:0900123@{prov}>;tag=made-up"),
                "",
                481,
                "Does Not Exist",
            ),
        ),
        // The same with a Route naming us (as a record-routed dialog would).
        (
            "to-tag-routed",
            attacker(
                &format!("sip:0900123@{prov}"),
                &format!("<sip:0900123@{prov}>;tag=made-up"),
                &format!("Route: <sip:127.0.0.1:{port};lr>\n"),
                481,
                "Does Not Exist",
            ),
        ),
    ];
    for (name, scen) in &attacks {
        let r = sipp.run(name, scen, free_port(), port, &[]);
        assert!(
            r.success,
            "attack {name} not refused as expected:\n{}",
            r.log
        );
    }
    // An extension dialling the provider's address: the provider's
    // challenge is not answered with the trunk's credentials.
    let direct_code = if mode == "b2bua" { 403 } else { 407 };
    let r = sipp.run(
        "direct",
        &caller_to_uri_rejected("100", &format!("sip:0555000@{prov}"), direct_code),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "direct dial:\n{}", r.log);
    let p = sipp.wait(provider);
    assert!(p.success, "provider:\n{}", p.log);
    let provider = sipp.spawn(
        "prov2",
        &scenario("provider", &provider_challenging()),
        prov_port,
        port,
        &[],
    );
    // The legitimate call through the trunk still works, with credentials.
    let r = sipp.run(
        "legit",
        &caller_answered("100", "0555123"),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "legitimate outbound call failed:\n{}", r.log);
    let p = sipp.wait(provider);
    assert!(p.success, "provider:\n{}", p.log);
    let got = [
        received(&sipp.messages("prov1")),
        received(&sipp.messages("prov2")),
    ]
    .concat();
    let invites: Vec<&String> = got.iter().filter(|m| m.starts_with("INVITE ")).collect();
    assert_eq!(invites.len(), 3, "{got:#?}");
    assert!(
        got.iter().all(|m| !m.contains("0900123")),
        "an attack reached the provider: {got:#?}"
    );
    let with_credentials: Vec<&&String> = invites
        .iter()
        .filter(|m| m.contains("username=\"acme\""))
        .collect();
    assert_eq!(with_credentials.len(), 1, "{invites:#?}");
    assert!(with_credentials[0].contains("0555123"), "{invites:#?}");
    let state = pbx.state();
    let refused = &state["besip-pbx:pbx"]["counters"]["refused"];
    assert_eq!(refused["relay"], "2", "{state}");
    assert_eq!(refused["unknown-dialog"], "2", "{state}");
    assert_state_valid(&pbx, &state);
}

/// The provider answers `calls` calls and takes their BYE.
fn provider_answering() -> String {
    let answer = uas_reply(
        "200 OK",
        "prov[call_number]",
        &format!("[last_Record-Route:]\n{UAS_CONTACT}Content-Type: application/sdp\n"),
        SDP,
        true,
    );
    scenario(
        "provider",
        &format!(
            "  <recv request=\"INVITE\"/>\n{answer}{}",
            ack_then_bye_answered()
        ),
    )
}

/// Waits (bounded) until the state lists an established call.
fn wait_established(pbx: &Pbx) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = pbx.state();
        let calls = s["besip-pbx:pbx"]["calls"]["call"].clone();
        if calls
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["state"] == "established"))
        {
            return;
        }
        assert!(Instant::now() < deadline, "no call established: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn proxy_outbound_permissions_limits_and_spend_refuse_with_403() {
    outbound_permissions_limits_and_spend("proxy");
}

#[test]
fn b2bua_outbound_permissions_limits_and_spend_refuse_with_403() {
    outbound_permissions_limits_and_spend("b2bua");
}

/// The caller's side of a call the PBX ends (B2BUA: the spend limit is
/// reached during the call): answered, ACKed, then the PBX's BYE answered.
fn caller_cut_off(user: &str, callee: &str) -> String {
    let answered = caller_answered(user, callee);
    let pause = answered
        .find("  <pause milliseconds=\"300\"/>")
        .expect("scenario shape");
    format!(
        "{}  <recv request=\"BYE\"/>\n{}</scenario>\n",
        &answered[..pause],
        uas_reply("200 OK", "", "", "", false)
    )
}

fn outbound_permissions_limits_and_spend(mode: &str) {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    // Classes national 0, international 00, premium 0900; everyone may call
    // national numbers; 100 international too, one outbound call at a time;
    // the box two at a time... once 100 holds one, 101 may not add a second
    // when the global limit is one. 101 may spend 1.0 an hour; 0555 costs
    // 600.0 a minute.
    let main = "\toption outbound_max_calls '1'\n\tlist outbound_default_call_class 'national'\n";
    let mut uci = config(port, main).replace(
        "\toption mode 'proxy'\n",
        &format!("\toption mode '{mode}'\n"),
    ) + &trunk_uci(prov_port);
    uci = uci.replace(
        "\toption password 'pw100'\n",
        "\toption password 'pw100'\n\tlist outbound_call_class 'national'\n\tlist outbound_call_class 'international'\n\toption outbound_max_calls '1'\n",
    );
    uci = uci.replace(
        "\toption password 'pw101'\n",
        "\toption password 'pw101'\n\toption outbound_max_spend_per_hour '1.0'\n",
    );
    for (name, prefixes) in [
        ("national", &["0"][..]),
        ("international", &["00"][..]),
        ("premium", &["0900", "0976"][..]),
    ] {
        uci.push_str(&format!(
            "config outbound_call_class '{name}'\n\toption name '{name}'\n"
        ));
        for p in prefixes {
            uci.push_str(&format!("\tlist prefix '{p}'\n"));
        }
        uci.push('\n');
    }
    uci.push_str("config accounting_rate 'rate_0555'\n\toption prefix '0555'\n\toption price_per_minute '600.0'\n\n");
    let pbx = Pbx::start(&uci, port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt
        .block_on(IpcClient::connect(&pbx.socket()))
        .expect("connect IPC");
    let mut notes = client.notifications();
    // Once a call is answered the daemon has subscribed this connection.
    rt.block_on(client.call("ping", serde_json::json!({})))
        .expect("ping");
    let sipp = Sipp::new();
    let auth = |u: &'static str| -> Vec<String> {
        vec!["-au".into(), u.into(), "-ap".into(), format!("pw{u}")]
    };
    let run_refused = |name: &str, user: &'static str, number: &str, reason: &str| {
        let a = auth(user);
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let scen = caller_rejected(user, number, 403).replace(
            "<recv response=\"403\"/>",
            &format!("<recv response=\"403\"><action><ereg regexp=\"{reason}\" search_in=\"msg\" check_it=\"true\" assign_to=\"phrase\"/></action></recv>\n  <Reference variables=\"phrase\"/>"),
        );
        let r = sipp.run(name, &scen, free_port(), port, &args);
        assert!(r.success, "{name}: no 403 {reason}:\n{}", r.log);
    };
    // Premium: 101 has the default (national), 100 national and international.
    run_refused("class-101", "101", "0900123", "Call Class Not Allowed");
    run_refused("class-100", "100", "0976123", "Call Class Not Allowed");
    // 100 holds an international call; its second call and 101's are refused.
    let provider = sipp.spawn("prov1", &provider_answering(), prov_port, port, &[]);
    let a = auth("100");
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let long_call = caller_answered("100", "0049301234").replace(
        "<pause milliseconds=\"300\"/>",
        "<pause milliseconds=\"4000\"/>",
    );
    let held = sipp.spawn("held", &long_call, free_port(), port, &args);
    wait_established(&pbx);
    run_refused(
        "limit-100",
        "100",
        "0555777",
        "Too Many Outbound Calls Of The Caller",
    );
    run_refused("limit-all", "101", "0666777", "Too Many Outbound Calls");
    let r = sipp.wait(held);
    assert!(r.success, "the held call failed:\n{}", r.log);
    let p = sipp.wait(provider);
    assert!(p.success, "provider:\n{}", p.log);
    // 101 spends more than 1.0 in one call (10 a second), then is refused.
    let provider = sipp.spawn("prov2", &provider_answering(), prov_port, port, &[]);
    let a = auth("101");
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = sipp.run(
        "paid",
        // B2BUA ends the call once 1.0 is spent (after 100 ms); a proxy cannot.
        &if mode == "b2bua" {
            caller_cut_off("101", "0555123")
        } else {
            caller_answered("101", "0555123")
        },
        free_port(),
        port,
        &args,
    );
    assert!(r.success, "paid call failed:\n{}", r.log);
    let p = sipp.wait(provider);
    assert!(p.success, "provider:\n{}", p.log);
    run_refused("spend-101", "101", "0555124", "Hourly Spend Limit Reached");
    // Nothing refused reached the provider: one INVITE per provider run.
    for name in ["prov1", "prov2"] {
        let got = received(&sipp.messages(name));
        let invites = got.iter().filter(|m| m.starts_with("INVITE ")).count();
        assert_eq!(invites, 1, "{name}: {got:#?}");
    }
    let state = pbx.state();
    let refused = &state["besip-pbx:pbx"]["counters"]["refused"];
    assert_eq!(refused["call-class"], "2", "{state}");
    assert_eq!(refused["extension-call-limit"], "1", "{state}");
    assert_eq!(refused["global-call-limit"], "1", "{state}");
    assert_eq!(refused["spend-limit"], "1", "{state}");
    assert_eq!(refused["relay"], "0", "{state}");
    assert_state_valid(&pbx, &state);
    // Each refusal was sent as a notification, in order.
    let mut reasons = Vec::new();
    while reasons.len() < 5 {
        let n = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), notes.recv()).await })
            .expect("notification in time")
            .expect("notification");
        assert_eq!(n.name, "besip-pbx:call-refused", "{n:?}");
        reasons.push(n.data["reason"].as_str().unwrap_or("").to_owned());
        if reasons.len() == 3 {
            assert_eq!(n.data["extension"], "100", "{n:?}");
        }
    }
    assert_eq!(
        reasons,
        [
            "call-class",
            "call-class",
            "extension-call-limit",
            "global-call-limit",
            "spend-limit"
        ]
    );
}

/// An inbound trunk call (a foreign caller) reaches a registered extension.
#[test]
fn inbound_trunk_call_reaches_an_extension() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in ["proxy", "b2bua"] {
        let port = free_port();
        let prov_port = free_port();
        let uci = config(port, "").replace(
            "\toption mode 'proxy'\n",
            &format!("\toption mode '{mode}'\n"),
        ) + &trunk_uci(prov_port);
        let pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let callee_port = free_port();
        register(&sipp, "101", callee_port, pbx.port);
        let uas = sipp.spawn("uas", &callee_answers(100), callee_port, port, &[]);
        // The provider calls 101 from its own domain, without credentials.
        let inbound = caller_without_credentials("+420555123@prov.test", "101");
        let r = sipp.run("inbound", &inbound, prov_port, port, &[]);
        let callee = sipp.wait(uas);
        assert!(r.success, "{mode}: inbound call failed:\n{}", r.log);
        assert!(callee.success, "{mode}: callee failed:\n{}", callee.log);
    }
}

/// A call without credentials from `from` (user@domain) to `callee` at
/// our domain, answered, then hung up (the answered part of caller_answered).
fn caller_without_credentials(from: &str, callee: &str) -> String {
    let answered = caller_answered("XCALLER", callee);
    let after_auth = answered
        .find("  <recv response=\"180\" optional=\"true\"/>")
        .expect("scenario shape");
    scenario(
        "caller",
        &format!(
            r#"  <send retrans="500"><![CDATA[
INVITE sip:{callee}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:XCALLER@besip.test>;tag=[pid]call[call_number]
To: <sip:{callee}@besip.test>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:peer@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv response="100" optional="true"/>
{}"#,
            answered[after_auth..].trim_end_matches("</scenario>\n")
        ),
    )
    .replace("<sip:XCALLER@besip.test>", &format!("<sip:{from}>"))
}

/// A trusted peer (by address, 127.0.0.2) places outbound calls without
/// credentials, within its call classes; the same call from another
/// address is refused as relaying.
#[test]
fn trusted_peer_calls_out_within_its_classes() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(port, "")
        + &trunk_uci(prov_port)
        + "config outbound_call_class 'national'\n\toption name 'national'\n\tlist prefix '0'\n\n\
config outbound_call_class 'premium'\n\toption name 'premium'\n\tlist prefix '0900'\n\n\
config outbound_trusted_peer 'gw'\n\toption name 'gw'\n\tlist address '127.0.0.2/32'\n\tlist call_class 'national'\n\n";
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let provider = sipp.spawn("prov", &provider_answering(), prov_port, port, &[]);
    let peer = ["-i", "127.0.0.2"];
    let r = sipp.run(
        "peer-call",
        &caller_without_credentials("gw@gw.example", "0555123"),
        free_port(),
        port,
        &peer,
    );
    assert!(r.success, "the trusted peer's call failed:\n{}", r.log);
    let p = sipp.wait(provider);
    assert!(p.success, "provider:\n{}", p.log);
    let premium = attacker(
        "sip:0900123@besip.test",
        "<sip:0900123@besip.test>",
        "",
        403,
        "Call Class Not Allowed",
    );
    let r = sipp.run("peer-premium", &premium, free_port(), port, &peer);
    assert!(r.success, "premium from the peer:\n{}", r.log);
    let stranger = attacker(
        "sip:0555123@besip.test",
        "<sip:0555123@besip.test>",
        "",
        403,
        "Relaying Denied",
    );
    let r = sipp.run("stranger", &stranger, free_port(), port, &[]);
    assert!(r.success, "the same call from elsewhere:\n{}", r.log);
    let got = received(&sipp.messages("prov"));
    assert_eq!(
        got.iter().filter(|m| m.starts_with("INVITE ")).count(),
        1,
        "{got:#?}"
    );
    let state = pbx.state();
    let refused = &state["besip-pbx:pbx"]["counters"]["refused"];
    assert_eq!(refused["call-class"], "1", "{state}");
    assert_eq!(refused["relay"], "1", "{state}");
}

/// An inbound call to an extension forwarded to an outside number goes out
/// with that extension's rights (its call classes), whoever called.
#[test]
fn forwarding_outside_uses_the_forwarding_extensions_rights() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(port, "\tlist outbound_default_call_class 'national'\n")
        .replace(
            "\toption password 'pw102'\n",
            "\toption password 'pw102'\n\toption forwarding_unconditional '0555999'\n",
        )
        .replace(
            "\toption password 'pw103'\n",
            "\toption password 'pw103'\n\toption forwarding_unconditional '0900999'\n",
        )
        + &trunk_uci(prov_port)
        + "config outbound_call_class 'national'\n\toption name 'national'\n\tlist prefix '0'\n\n\
config outbound_call_class 'premium'\n\toption name 'premium'\n\tlist prefix '0900'\n\n";
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let provider = sipp.spawn("prov", &provider_answering(), prov_port, port, &[]);
    let r = sipp.run(
        "to-102",
        &caller_without_credentials("+420555123@prov.test", "102"),
        free_port(),
        port,
        &[],
    );
    assert!(r.success, "forwarded call failed:\n{}", r.log);
    let p = sipp.wait(provider);
    assert!(p.success, "provider:\n{}", p.log);
    let premium = attacker(
        "sip:103@besip.test",
        "<sip:103@besip.test>",
        "",
        403,
        "Call Class Not Allowed",
    );
    let r = sipp.run("to-103", &premium, free_port(), port, &[]);
    assert!(r.success, "forwarding to premium:\n{}", r.log);
    let got = received(&sipp.messages("prov"));
    let invites: Vec<&String> = got.iter().filter(|m| m.starts_with("INVITE ")).collect();
    assert_eq!(invites.len(), 1, "{got:#?}");
    assert!(
        invites[0].starts_with("INVITE sip:0555999@"),
        "{}",
        invites[0]
    );
    let state = pbx.state();
    assert_eq!(
        state["besip-pbx:pbx"]["counters"]["refused"]["call-class"], "1",
        "{state}"
    );
}
