//! Call forwarding and do-not-disturb of besip-pbxd with sipp on 127.0.0.1,
//! in proxy and B2BUA mode: forward on busy, on no answer (the ringing
//! phone is cancelled after no-answer-timeout), when unavailable (to an
//! outside number through a trunk), do-not-disturb, feature codes dialled
//! from the phone (kept across a restart, overruled by a later change of
//! the configuration), and strangers who try to change someone's
//! forwarding. Each forwarded call's CDR names the extension dialled and
//! the forward target.

use std::time::{Duration, Instant};

use besip_tests::pbx::office::{base, cdrs, ext_state, with_ext, MODES};
use besip_tests::pbx::*;
use serde_json::Value;

fn trunk_and_route(prov_port: u16) -> String {
    format!(
        "config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.1'\n\toption port '{prov_port}'\n\n\
config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'prov'\n\n"
    )
}

/// A caller whose call is answered after the first callee rang (and
/// failed): a second 180 may come from the forward target.
fn caller_forwarded(user: &str, callee: &str) -> String {
    let one = "<recv response=\"180\" optional=\"true\"/>";
    caller_answered(user, callee).replacen(one, &format!("{one}\n  {one}"), 1)
}

fn assert_forwarded(cdr: &Value, by: &str, to: &str, reason: &str) {
    assert!(
        cdr["callee"].as_str().unwrap_or("").contains(by),
        "callee is the number dialled: {cdr}"
    );
    assert_eq!(cdr["forwarded-by"], by, "{cdr}");
    assert_eq!(cdr["forwarded-to"], to, "{cdr}");
    assert_eq!(cdr["forward-reason"], reason, "{cdr}");
}

fn start(uci: &str, port: u16) -> (Pbx, Sipp) {
    (Pbx::start(uci, port), Sipp::new())
}

/// 101 is busy (486): the call goes to 102, who answers.
#[test]
fn busy_extension_forwards_to_another_extension() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let uci = with_ext(
            &base(port, mode, ""),
            "101",
            "\toption forwarding_busy '102'\n",
        );
        let (pbx, sipp) = start(&uci, port);
        let (busy_port, target_port) = (free_port(), free_port());
        register(&sipp, "101", busy_port, port);
        register(&sipp, "102", target_port, port);
        let busy = sipp.spawn(
            "busy",
            &callee_rejects(486, "Busy Here"),
            busy_port,
            port,
            &[],
        );
        let target = sipp.spawn("target", &callee_answers(100), target_port, port, &[]);
        let caller = sipp.run(
            "caller",
            &caller_forwarded("100", "101"),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(caller.success, "{mode}: caller failed:\n{}", caller.log);
        let busy = sipp.wait(busy);
        assert!(busy.success, "{mode}: busy phone:\n{}", busy.log);
        let target = sipp.wait(target);
        assert!(target.success, "{mode}: forward target:\n{}", target.log);
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("a CDR");
        assert_eq!(cdr["disposition"], "answered", "{mode}: {cdr}");
        assert_forwarded(cdr, "101", "102", "busy");
        let s = ext_state(&pbx, "101");
        assert_eq!(s["forwarded-calls"], "1", "{mode}: {s}");
        assert_eq!(s["busy"]["value"], "102", "{s}");
        assert_eq!(s["busy"]["source"], "configuration", "{s}");
    }
}

/// 101 rings past its no-answer-timeout (5 s): it is cancelled and the
/// call goes to 102.
#[test]
fn unanswered_extension_forwards_after_the_timeout() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let uci = with_ext(
            &base(port, mode, ""),
            "101",
            "\toption forwarding_no_answer '102'\n\toption forwarding_no_answer_timeout '5'\n",
        );
        let (pbx, sipp) = start(&uci, port);
        let (ringing_port, target_port) = (free_port(), free_port());
        register(&sipp, "101", ringing_port, port);
        register(&sipp, "102", target_port, port);
        let ringing = sipp.spawn("ringing", &callee_cancelled(), ringing_port, port, &[]);
        let target = sipp.spawn("target", &callee_answers(100), target_port, port, &[]);
        let started = Instant::now();
        let caller = sipp.run(
            "caller",
            &caller_forwarded("100", "101"),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(caller.success, "{mode}: caller failed:\n{}", caller.log);
        assert!(
            started.elapsed() >= Duration::from_secs(5),
            "{mode}: forwarded before the timeout"
        );
        let ringing = sipp.wait(ringing);
        assert!(ringing.success, "{mode}: not cancelled:\n{}", ringing.log);
        let target = sipp.wait(target);
        assert!(target.success, "{mode}: forward target:\n{}", target.log);
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("a CDR");
        assert_eq!(cdr["disposition"], "answered", "{mode}: {cdr}");
        assert_forwarded(cdr, "101", "102", "no-answer");
    }
}

/// 101 is unreachable: first with no registration at all, then with a
/// phone that fails (503). Each time the call goes out through the trunk
/// to the outside number 0555123 (with 101's rights), and the CDR names
/// the trunk.
#[test]
fn unavailable_extension_forwards_outside_through_a_trunk() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let prov_port = free_port();
        let uci = with_ext(
            &base(port, mode, ""),
            "101",
            "\toption forwarding_unavailable '0555123'\n\toption caller_id_number '0301101'\n",
        ) + &trunk_and_route(prov_port);
        let (pbx, sipp) = start(&uci, port);
        for (round, registered) in [(1, false), (2, true)] {
            let phone = registered.then(|| {
                let phone_port = free_port();
                register(&sipp, "101", phone_port, port);
                sipp.spawn(
                    &format!("failing{round}"),
                    &callee_rejects(503, "Service Unavailable"),
                    phone_port,
                    port,
                    &[],
                )
            });
            let prov_name = format!("prov{round}");
            let prov = sipp.spawn(&prov_name, &callee_answers(100), prov_port, port, &[]);
            let caller = sipp.run(
                &format!("caller{round}"),
                &caller_forwarded("100", "101"),
                free_port(),
                port,
                &["-au", "100", "-ap", "pw100"],
            );
            assert!(caller.success, "{mode}/{round}: caller:\n{}", caller.log);
            if let Some(phone) = phone {
                let phone = sipp.wait(phone);
                assert!(phone.success, "{mode}: failing phone:\n{}", phone.log);
            }
            let prov = sipp.wait(prov);
            assert!(prov.success, "{mode}/{round}: provider:\n{}", prov.log);
            let got = sipp.messages(&prov_name);
            assert!(
                got.contains("INVITE sip:0555123@"),
                "{mode}/{round}: the trunk got another number"
            );
            // The provider sees 101's caller ID (the caller as its name)
            // and 101 as the diverting party (RFC 5806).
            let invite = got.split("INVITE sip:").nth(1).unwrap_or("");
            let from = invite
                .lines()
                .find(|l| l.starts_with("From:"))
                .unwrap_or("");
            assert!(
                from.contains("\"100\" <sip:0301101@"),
                "{mode}/{round}: {from}"
            );
            assert!(
                invite.contains("Diversion: <sip:0301101@") && invite.contains(";counter=1"),
                "{mode}/{round}: no Diversion:\n{invite}"
            );
            let list = cdrs(&pbx, round);
            let cdr = list.last().expect("a CDR");
            assert_eq!(cdr["disposition"], "answered", "{mode}: {cdr}");
            assert_eq!(cdr["trunk"], "prov", "{mode}/{round}: {cdr}");
            assert_forwarded(cdr, "101", "0555123", "unavailable");
        }
        assert_eq!(ext_state(&pbx, "101")["forwarded-calls"], "2");
    }
}

/// Do-not-disturb: 486 to the caller; with busy forwarding set, the call
/// goes there instead (as Asterisk does).
#[test]
fn do_not_disturb_answers_busy_or_forwards_on_busy() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let uci = with_ext(
            &with_ext(
                &base(port, mode, ""),
                "101",
                "\toption do_not_disturb '1'\n",
            ),
            "103",
            "\toption do_not_disturb '1'\n\toption forwarding_busy '102'\n",
        );
        let (pbx, sipp) = start(&uci, port);
        let phone_port = free_port();
        register(&sipp, "101", phone_port, port);
        let r = sipp.run(
            "dnd",
            &caller_rejected("100", "101", 486),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(r.success, "{mode}: expected 486:\n{}", r.log);
        assert!(
            sipp.messages("dnd").contains("SIP/2.0 486 Busy Here"),
            "{mode}"
        );
        let target_port = free_port();
        register(&sipp, "102", target_port, port);
        let target = sipp.spawn("target", &callee_answers(100), target_port, port, &[]);
        let caller = sipp.run(
            "caller",
            &caller_answered("100", "103"),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(caller.success, "{mode}: caller:\n{}", caller.log);
        assert!(sipp.wait(target).success, "{mode}: target");
        let list = cdrs(&pbx, 1);
        assert_forwarded(list.last().expect("CDR"), "103", "102", "busy");
        let s = ext_state(&pbx, "101");
        assert_eq!(s["do-not-disturb"]["value"], true, "{s}");
    }
}

/// The final answer to a feature code dialled by `user`.
fn dial_code(sipp: &Sipp, port: u16, user: &str, code: &str, expect: u16) {
    let name = format!("code-{user}-{}", code.replace(['*', '#'], "s"));
    let r = sipp.run(
        &name,
        &caller_rejected(user, code, expect),
        free_port(),
        port,
        &["-au", user, "-ap", &format!("pw{user}")],
    );
    assert!(r.success, "{code} by {user}: expected {expect}:\n{}", r.log);
}

/// 100 sets busy forwarding to 102 and do-not-disturb from its phone; a
/// call to 100 then goes to 102; the settings survive a restart; *79/*91
/// clear them; a later change of the configuration overrules the phone.
#[test]
fn feature_codes_set_and_clear_forwarding_and_persist() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let uci = base(port, mode, "");
        let (mut pbx, sipp) = start(&uci, port);
        dial_code(&sipp, port, "100", "*90102", 480);
        dial_code(&sipp, port, "100", "*78", 480);
        dial_code(&sipp, port, "100", "*90", 484); // no number
        dial_code(&sipp, port, "100", "*90999", 404); // nobody
        let s = ext_state(&pbx, "100");
        assert_eq!(s["busy"]["value"], "102", "{mode}: {s}");
        assert_eq!(s["busy"]["source"], "phone", "{s}");
        assert_eq!(s["do-not-disturb"]["value"], true, "{s}");
        assert_eq!(s["do-not-disturb"]["source"], "phone", "{s}");
        // Nobody else's settings changed.
        let other = ext_state(&pbx, "101");
        assert!(other["busy"].get("value").is_none(), "{other}");

        // Kept across a restart.
        pbx.stop();
        pbx.spawn();
        let s = ext_state(&pbx, "100");
        assert_eq!(s["busy"]["value"], "102", "{mode}: after restart {s}");
        assert_eq!(s["do-not-disturb"]["value"], true, "{s}");
        let target_port = free_port();
        register(&sipp, "102", target_port, port);
        let target = sipp.spawn("target", &callee_answers(100), target_port, port, &[]);
        let caller = sipp.run(
            "caller",
            &caller_answered("103", "100"),
            free_port(),
            port,
            &["-au", "103", "-ap", "pw103"],
        );
        assert!(caller.success, "{mode}: caller:\n{}", caller.log);
        assert!(sipp.wait(target).success, "{mode}: target");
        assert_forwarded(cdrs(&pbx, 1).last().expect("CDR"), "100", "102", "busy");

        dial_code(&sipp, port, "100", "*79", 480);
        dial_code(&sipp, port, "100", "*91", 480);
        let s = ext_state(&pbx, "100");
        assert_eq!(s["do-not-disturb"]["value"], false, "{s}");
        assert!(s["busy"].get("value").is_none(), "{s}");
        assert_eq!(s["busy"]["source"], "phone", "{s}");

        // The phone sets no-answer forwarding; then the administrator
        // configures another one: the configuration wins from then on.
        dial_code(&sipp, port, "100", "*92101", 480);
        assert_eq!(ext_state(&pbx, "100")["no-answer"]["value"], "101");
        pbx.stop();
        std::fs::write(
            pbx.root.path().join("etc/config/besip_pbx"),
            with_ext(&uci, "100", "\toption forwarding_no_answer '103'\n"),
        )
        .expect("write config");
        pbx.spawn();
        let s = ext_state(&pbx, "100");
        assert_eq!(s["no-answer"]["value"], "103", "{mode}: {s}");
        assert_eq!(s["no-answer"]["source"], "configuration", "{s}");
        // Unchanged in the configuration: the phone's clearing still applies.
        assert_eq!(s["busy"]["source"], "phone", "{s}");
    }
}

/// Nobody but 100 changes 100's forwarding: a stranger's feature code is
/// refused, and 101 using its own credentials with 100's From is refused.
#[test]
fn others_cannot_change_an_extensions_forwarding() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let (pbx, sipp) = start(&base(port, "proxy", ""), port);
    let stranger = scenario(
        "stranger",
        "  <send retrans=\"500\"><![CDATA[\nINVITE sip:*72999@besip.test SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\nFrom: <sip:100@evil.test>;tag=[pid]x\nTo: <sip:*72999@besip.test>\nCall-ID: [call_id]\nCSeq: 1 INVITE\nContact: <sip:100@[local_ip]:[local_port]>\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n  <recv response=\"100\" optional=\"true\"/>\n  <recv response=\"403\"/>\n  <send><![CDATA[\nACK sip:*72999@besip.test SIP/2.0\n[last_Via:]\n[last_From:]\n[last_To:]\nCall-ID: [call_id]\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n",
    );
    let r = sipp.run("stranger", &stranger, free_port(), port, &[]);
    assert!(r.success, "stranger not refused:\n{}", r.log);
    // 101's credentials, 100's From.
    let r = sipp.run(
        "impostor",
        &caller_rejected("100", "*72101", 403),
        free_port(),
        port,
        &["-au", "101", "-ap", "pw101"],
    );
    assert!(r.success, "impostor not refused:\n{}", r.log);
    // A wrong password is challenged again, never accepted.
    let r = sipp.run(
        "guess",
        &caller_rejected("100", "*72101", 407),
        free_port(),
        port,
        &["-au", "100", "-ap", "guess"],
    );
    assert!(r.success, "wrong password not challenged:\n{}", r.log);
    let s = ext_state(&pbx, "100");
    assert!(s["unconditional"].get("value").is_none(), "{s}");
    assert_eq!(s["unconditional"]["source"], "configuration", "{s}");
}

/// The caller hangs up while 101 rings: nothing is forwarded, the caller
/// gets 487 (a CANCEL is no failure of the extension).
#[test]
fn a_cancelled_call_is_not_forwarded() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let uci = with_ext(
            &base(port, mode, ""),
            "101",
            "\toption forwarding_no_answer '102'\n\toption forwarding_busy '102'\n",
        );
        let (pbx, sipp) = start(&uci, port);
        let phone_port = free_port();
        register(&sipp, "101", phone_port, port);
        let phone = sipp.spawn("phone", &callee_cancelled(), phone_port, port, &[]);
        let caller = sipp.run(
            "caller",
            &caller_cancels("100", "101"),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(caller.success, "{mode}: caller:\n{}", caller.log);
        assert!(sipp.wait(phone).success, "{mode}: phone not cancelled");
        let list = cdrs(&pbx, 1);
        let cdr = list.last().expect("CDR");
        assert_eq!(cdr["disposition"], "cancelled", "{mode}: {cdr}");
        assert!(cdr.get("forwarded-by").is_none(), "{mode}: {cdr}");
        assert_eq!(ext_state(&pbx, "101")["forwarded-calls"], "0");
    }
}

/// The CLI, generated from the YANG module, sets forwarding and
/// do-not-disturb like any other leaf, and they reach the PBX's package.
#[test]
fn cli_sets_forwarding_and_do_not_disturb() {
    use besip_tests::cli::{admin, uci_files};
    use besip_tests::netconf::NetconfServer;
    let server = NetconfServer::start();
    admin(
        server.port,
        &[
            "set pbx extension 100 password s3cret",
            "set pbx extension 100 forwarding busy 200",
            "set pbx extension 100 forwarding no-answer-timeout 15",
            "set pbx extension 100 forwarding unavailable 0555123",
            "set pbx extension 100 do-not-disturb true",
            "set pbx feature-codes forward-busy-on *21",
            "commit",
        ],
    );
    let shown = admin(server.port, &["show configuration running pbx extension"]);
    assert!(
        shown.contains("set pbx extension 100 forwarding busy 200"),
        "{shown}"
    );
    let uci = uci_files(server.root_path());
    let pbx = &uci
        .iter()
        .find(|(n, _)| n == "besip_pbx")
        .expect("besip_pbx")
        .1;
    for option in [
        "option forwarding_busy '200'",
        "option forwarding_no_answer_timeout '15'",
        "option forwarding_unavailable '0555123'",
        "option do_not_disturb '1'",
        "'*21'",
    ] {
        assert!(pbx.contains(option), "{option} missing:\n{pbx}");
    }
}

/// 101 and 102 forward to each other on busy and both are busy: the
/// forwards stop after a bounded number (each phone rings twice) and the
/// caller gets 486.
#[test]
fn forwarding_loops_are_bounded() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    // One sipp call takes both INVITEs: a forward keeps the Call-ID.
    let once = callee_rejects(486, "Busy Here");
    let start_tag = "<scenario name=\"callee\">\n";
    let body = &once[once.find(start_tag).expect("shape") + start_tag.len()
        ..once.find("</scenario>").expect("shape")];
    let twice = scenario("callee", &format!("{body}{body}"));
    for mode in MODES {
        let port = free_port();
        let uci = with_ext(
            &with_ext(
                &base(port, mode, ""),
                "101",
                "\toption forwarding_busy '102'\n",
            ),
            "102",
            "\toption forwarding_busy '101'\n",
        );
        let (pbx, sipp) = start(&uci, port);
        let (p101, p102) = (free_port(), free_port());
        register(&sipp, "101", p101, port);
        register(&sipp, "102", p102, port);
        let a = sipp.spawn("a", &twice, p101, port, &[]);
        let b = sipp.spawn("b", &twice, p102, port, &[]);
        let r = sipp.run(
            "caller",
            &caller_rejected("100", "101", 486).replacen(
                "<recv response=\"180\" optional=\"true\"/>",
                "<recv response=\"180\" optional=\"true\"/>\n  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"180\" optional=\"true\"/>",
                1,
            ),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(r.success, "{mode}: expected 486:\n{}", r.log);
        assert!(sipp.wait(a).success, "{mode}: 101 not rung twice");
        assert!(sipp.wait(b).success, "{mode}: 102 not rung twice");
        let cdr = cdrs(&pbx, 1).last().cloned().expect("CDR");
        assert_eq!(cdr["disposition"], "busy", "{mode}: {cdr}");
        assert_eq!(cdr["forwarded-by"], "101", "{cdr}");
    }
}

/// The whole way over NETCONF: forwarding committed with ncclient, the
/// phone's feature code shown in <get> as the phone's, the RPC
/// reset-forwarding bringing the configured value back.
#[test]
fn netconf_shows_the_phones_settings_and_resets_them() {
    use besip_tests::harness::bin_path;
    use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let server = NetconfServer::start();
    let sip_port = free_port();
    let config = format!(
        "<config><pbx xmlns=\"urn:besip:pbx\"><domain>besip.test</domain>\
<auth><realm>besip.test</realm><algorithms>md5</algorithms></auth>\
<listen><name>t</name><address>127.0.0.1</address><port>{sip_port}</port></listen>\
<extension><number>100</number><password>pw100</password><forwarding><busy>101</busy></forwarding></extension>\
<extension><number>101</number><password>pw101</password></extension>\
</pbx></config>"
    );
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='{config}'); m.commit()"),
    );
    assert!(ok, "commit failed: {out}");
    let mut pbx = std::process::Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(server.root_path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start besip-pbxd");
    let socket = server.root_path().join("run/pbx.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "besip-pbxd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sipp = Sipp::new();
    dial_code(&sipp, sip_port, "100", "*78", 480);
    dial_code(&sipp, sip_port, "100", "*91", 480);
    let get = "m = connect()\n\
print(m.get(filter=('subtree', '<pbx xmlns=\"urn:besip:pbx\"><extension-state/></pbx>')).data_xml)\n";
    let (ok, phone) = python(server.port, ADMIN_PASSWORD, get);
    assert!(ok, "{phone}");
    let reset = "from ncclient.xml_ import to_ele\nm = connect()\n\
print(m.dispatch(to_ele('<reset-forwarding xmlns=\"urn:besip:pbx\"><extension>100</extension></reset-forwarding>')).xml)\n";
    let (ok, reply) = python(server.port, ADMIN_PASSWORD, reset);
    let (_, configured) = python(server.port, ADMIN_PASSWORD, get);
    let _ = pbx.kill();
    let _ = pbx.wait();
    assert!(ok, "{reply}");
    assert!(reply.contains(">2</cleared>"), "{reply}");
    let compact = |s: &str| s.split_whitespace().collect::<String>();
    let phone = compact(&phone);
    assert!(
        phone
            .contains("<do-not-disturb><value>true</value><source>phone</source></do-not-disturb>"),
        "{phone}"
    );
    assert!(
        phone.contains("<busy><source>phone</source></busy>"),
        "{phone}"
    );
    let configured = compact(&configured);
    assert!(
        configured.contains(
            "<do-not-disturb><value>false</value><source>configuration</source></do-not-disturb>"
        ),
        "{configured}"
    );
    assert!(
        configured.contains("<busy><value>101</value><source>configuration</source></busy>"),
        "{configured}"
    );
}
