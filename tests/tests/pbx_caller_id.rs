//! Caller ID, phonebook and speed dials of besip-pbxd with sipp on
//! 127.0.0.1, in proxy and B2BUA mode: calls out through a trunk (a sipp
//! UAS) show the extension's caller ID, else the trunk's, in From and, for
//! a trunk with send-pai, in P-Asserted-Identity; *67 makes From anonymous
//! with Privacy: id; an inbound call from a phonebook number reaches the
//! phone with the phonebook name; a speed dial reaches its number with the
//! caller's rights (strangers are refused as relays, call classes apply).

use besip_tests::pbx::office::{base, with_ext, MODES};
use besip_tests::pbx::*;

fn trunk_and_route(prov_port: u16, trunk_options: &str) -> String {
    format!(
        "config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.1'\n\toption port '{prov_port}'\n{trunk_options}\n\
config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'prov'\n\n"
    )
}

/// The value of header `name` in the first message of `trace` that has it.
fn header_of(trace: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    trace
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[name.len() + 1..].trim().to_owned())
}

/// One call of extension `user` dialling `dialled`, answered by the
/// provider; returns what the provider received.
fn call_out(
    sipp: &Sipp,
    port: u16,
    prov_port: u16,
    name: &str,
    user: &str,
    dialled: &str,
) -> String {
    let prov_name = format!("prov-{name}");
    let prov = sipp.spawn(&prov_name, &callee_answers(50), prov_port, port, &[]);
    let pw = format!("pw{user}");
    let caller = sipp.run(
        &format!("caller-{name}"),
        &caller_answered(user, dialled),
        free_port(),
        port,
        &["-au", user, "-ap", &pw],
    );
    assert!(caller.success, "{name}: caller:\n{}", caller.log);
    let prov = sipp.wait(prov);
    assert!(prov.success, "{name}: provider:\n{}", prov.log);
    sipp.messages(&prov_name)
}

#[test]
fn outbound_calls_show_the_caller_id_and_star67_hides_it() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let prov_port = free_port();
        let uci = with_ext(
            &base(port, mode, ""),
            "100",
            "\toption caller_id_number '0301100'\n\toption caller_id_name 'Alice Office'\n",
        ) + &trunk_and_route(
            prov_port,
            "\toption caller_id_number '0301000'\n\toption send_pai '1'\n",
        );
        let _pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();

        let own = call_out(&sipp, port, prov_port, "own", "100", "0555123");
        let from = header_of(&own, "From").expect("From");
        assert!(
            from.starts_with("\"Alice Office\" <sip:0301100@"),
            "{mode}: {from}"
        );
        let pai = header_of(&own, "P-Asserted-Identity").expect("PAI");
        assert!(
            pai.starts_with("\"Alice Office\" <sip:0301100@"),
            "{mode}: {pai}"
        );
        assert!(header_of(&own, "Privacy").is_none(), "{mode}:\n{own}");

        let default = call_out(&sipp, port, prov_port, "default", "101", "0555123");
        let from = header_of(&default, "From").expect("From");
        assert!(from.starts_with("<sip:0301000@"), "{mode}: {from}");

        let hidden = call_out(&sipp, port, prov_port, "hidden", "100", "*670555123");
        assert!(
            hidden.contains("INVITE sip:0555123@"),
            "{mode}: the prefix reached the trunk:\n{hidden}"
        );
        let from = header_of(&hidden, "From").expect("From");
        assert!(
            from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
            "{mode}: {from}"
        );
        assert_eq!(
            header_of(&hidden, "Privacy").as_deref(),
            Some("id"),
            "{mode}"
        );
        let pai = header_of(&hidden, "P-Asserted-Identity").expect("PAI to a trusted trunk");
        assert!(pai.contains("<sip:0301100@"), "{mode}: {pai}");
        let to = header_of(&hidden, "To").expect("To");
        assert!(to.contains("<sip:0555123@"), "{mode}: {to}");
    }
}

#[test]
fn without_send_pai_no_identity_leaves_with_star67() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let prov_port = free_port();
        let uci = with_ext(
            &base(port, mode, ""),
            "100",
            "\toption caller_id_number '0301100'\n",
        ) + &trunk_and_route(prov_port, "");
        let _pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let hidden = call_out(&sipp, port, prov_port, "hidden", "100", "*670555123");
        let from = header_of(&hidden, "From").expect("From");
        assert!(
            from.contains("anonymous@anonymous.invalid"),
            "{mode}: {from}"
        );
        assert!(
            header_of(&hidden, "P-Asserted-Identity").is_none(),
            "{mode}:\n{hidden}"
        );
        assert!(
            !hidden.contains("0301100"),
            "{mode}: identity leaked:\n{hidden}"
        );
    }
}

/// (A speed dial with the code of the DID does not take the call: inbound
/// routes come first.)
#[test]
fn inbound_call_from_a_phonebook_number_shows_its_name() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let prov_port = free_port();
        let uci = base(port, mode, "")
            + &trunk_and_route(prov_port, "")
            + "config inbound_route 'ir_main'\n\toption name 'main'\n\toption did '0301000'\n\toption trunk 'prov'\n\toption destination_extension '101'\n\n\
config phonebook 'phonebook_1'\n\toption number '0555777'\n\toption name 'Bob Supplier'\n\n\
config speed_dial 'speed_dial_did'\n\toption code '0301000'\n\toption number '0555123'\n\n";
        let _pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();
        let phone_port = free_port();
        register(&sipp, "101", phone_port, port);
        let phone = sipp.spawn("phone", &callee_answers(50), phone_port, port, &[]);
        let r = sipp.run(
            "trunk",
            &caller_without_credentials("0555777@prov.test", "0301000"),
            prov_port,
            port,
            &[],
        );
        assert!(r.success, "{mode}: inbound call:\n{}", r.log);
        let phone = sipp.wait(phone);
        assert!(phone.success, "{mode}: phone:\n{}", phone.log);
        let got = sipp.messages("phone");
        let from = header_of(&got, "From").expect("From");
        assert!(
            from.starts_with("\"Bob Supplier\" <sip:0555777@"),
            "{mode}: {from}"
        );
    }
}

#[test]
fn speed_dials_reach_their_number_with_the_callers_rights() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    for mode in MODES {
        let port = free_port();
        let prov_port = free_port();
        let uci = base(port, mode, "\tlist outbound_default_call_class 'national'\n")
            + &trunk_and_route(prov_port, "")
            + "config outbound_call_class 'national'\n\toption name 'national'\n\tlist prefix '0'\n\n\
config outbound_call_class 'premium'\n\toption name 'premium'\n\tlist prefix '0900'\n\n\
config speed_dial 'speed_dial_11'\n\toption code '*11'\n\toption number '0555123'\n\n\
config speed_dial 'speed_dial_12'\n\toption code '12'\n\toption number '0900123'\n\n\
config speed_dial 'speed_dial_13'\n\toption code '*13'\n\toption number '102'\n\n";
        let _pbx = Pbx::start(&uci, port);
        let sipp = Sipp::new();

        let got = call_out(&sipp, port, prov_port, "speed", "100", "*11");
        assert!(got.contains("INVITE sip:0555123@"), "{mode}:\n{got}");

        // Premium numbers are beyond 100's call classes, speed dial or not.
        let r = sipp.run(
            "premium",
            &caller_rejected("100", "12", 403),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(
            r.success,
            "{mode}: premium speed dial not refused:\n{}",
            r.log
        );

        // A speed dial to an extension rings it.
        let phone_port = free_port();
        register(&sipp, "102", phone_port, port);
        let phone = sipp.spawn("phone", &callee_answers(50), phone_port, port, &[]);
        let r = sipp.run(
            "internal",
            &caller_answered("100", "*13"),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(r.success, "{mode}: speed dial to 102:\n{}", r.log);
        assert!(sipp.wait(phone).success, "{mode}: phone 102");

        // *67 hides the caller from our own phones too.
        let phone = sipp.spawn("hidden-phone", &callee_answers(50), phone_port, port, &[]);
        let r = sipp.run(
            "hidden-internal",
            &caller_answered("100", "*67102"),
            free_port(),
            port,
            &["-au", "100", "-ap", "pw100"],
        );
        assert!(r.success, "{mode}: *67 to 102:\n{}", r.log);
        assert!(sipp.wait(phone).success, "{mode}: phone 102");
        let got = sipp.messages("hidden-phone");
        let from = header_of(&got, "From").expect("From");
        assert!(
            from.contains("<sip:anonymous@anonymous.invalid>"),
            "{mode}: {from}"
        );
        // A proxy passes the caller's Contact and its later requests
        // unchanged; the B2BUA shows nothing of the caller.
        if mode == "b2bua" {
            assert!(!got.contains("sip:100@"), "{mode}: caller shown:\n{got}");
        }

        // A stranger dialling the code is a relay attempt.
        let r = sipp.run(
            "stranger",
            &stranger_refused("*11", 403),
            free_port(),
            port,
            &["-i", "127.0.0.2"],
        );
        assert!(r.success, "{mode}: stranger not refused:\n{}", r.log);
        assert!(
            sipp.messages("stranger").contains("Relaying Denied"),
            "{mode}: not refused as relay"
        );
    }
}

/// A call without credentials from a foreign domain, expecting `code`.
fn stranger_refused(callee: &str, code: u16) -> String {
    scenario(
        "stranger",
        &format!(
            r#"  <send retrans="500"><![CDATA[
INVITE sip:{callee}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:mallory@evil.example>;tag=[pid]call[call_number]
To: <sip:{callee}@besip.test>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:mallory@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="100" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:{callee}@besip.test SIP/2.0
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

/// A call without credentials from `from` (user@domain) to `callee` at
/// our domain, answered, then hung up (as a trunk sends it).
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
