//! Call transfer and hold with sipp against besip-pbxd: in B2BUA mode the
//! PBX executes a REFER itself (202, NOTIFY sipfrag progress, the new
//! party invited, the remaining party bridged by re-INVITE, the transferor
//! hung up; a CDR per leg); in proxy mode the REFER passes in-dialog to the
//! other phone along the record-routed path. Attacks: REFER outside a
//! dialog, for a dialog that is not ours, malformed Refer-To, a transfer to
//! a number the transferor may not dial, a Replaces of someone else's call.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use besip_tests::pbx::office::{assert_cdr_pairs, b2bua_config, cdrs, no_calls_left, received};
use besip_tests::pbx::*;

/// The answered call's INVITE, captured: From (`peer`) and To (`me`) for
/// requests the callee sends in the dialog.
const UAS_INVITE_CAPTURED: &str = r#"  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="me"/>
    </action>
  </recv>
"#;

/// The callee answers (180, 200 with SDP) and takes the ACK; `capture`:
/// keep From and To for requests of its own (sipp refuses variables unused).
fn uas_answer() -> String {
    uas_answer_with(true)
}

fn uas_answer_with(capture: bool) -> String {
    let recv = match capture {
        true => UAS_INVITE_CAPTURED,
        false => "  <recv request=\"INVITE\" rrs=\"true\"/>\n",
    };
    format!(
        "{recv}{}{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "180 Ringing",
            "[pid]uas[call_number]",
            "[last_Record-Route:]\n",
            "",
            false
        ),
        uas_reply(
            "200 OK",
            "[pid]uas[call_number]",
            &format!("[last_Record-Route:]\n{UAS_CONTACT}Content-Type: application/sdp\n"),
            SDP,
            true
        ),
    )
}

/// A request the callee sends in the dialog (CSeq `cseq`), with `headers`.
fn uas_request(method: &str, cseq: u32, headers: &str) -> String {
    format!(
        r#"  <send retrans="500"><![CDATA[
{method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From:[$me];tag=[pid]uas[call_number]
To:[$peer]
[routes]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
{headers}Max-Forwards: 70
Content-Length: 0

]]></send>
"#
    )
}

fn ok() -> String {
    uas_reply("200 OK", "", "", "", false)
}

/// The caller's answered call, with `middle` between its ACK and its BYE
/// (the BYE addressed with the To of the 200, captured).
fn caller_with(middle: &str) -> String {
    let s = caller_answered("100", "101");
    let s = s.replace(
        r#"<recv response="200" rrs="true"/>"#,
        r#"<recv response="200" rrs="true"><action><ereg regexp=".*" search_in="hdr" header="To:" assign_to="callee"/></action></recv>"#,
    );
    let pause = "  <pause milliseconds=\"300\"/>\n";
    let (head, tail) = s.split_once(pause).expect("scenario shape");
    let tail = tail.replacen("[last_To:]", "To:[$callee]", 1);
    format!("{head}{middle}{pause}{tail}")
}

/// The caller whose call is ended by the callee: ACK, then the BYE answered.
fn caller_hung_up() -> String {
    let s = caller_answered("100", "101");
    let pause = "  <pause milliseconds=\"300\"/>\n";
    let head = s.split_once(pause).expect("scenario shape").0;
    format!("{head}  <recv request=\"BYE\"/>\n{}</scenario>\n", ok())
}

#[test]
fn b2bua_blind_transfer_bridges_the_caller_to_the_new_party() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&b2bua_config(port, ""), port);
    let sipp = Sipp::new();
    let (b_port, c_port) = (free_port(), free_port());
    register(&sipp, "101", b_port, pbx.port);
    register(&sipp, "102", c_port, pbx.port);
    // B (101) answers and transfers the caller to 102.
    let b_scenario = scenario(
        "transferor",
        &format!(
            "{}  <pause milliseconds=\"200\"/>\n{}  <recv response=\"202\"/>\n  <recv request=\"NOTIFY\"/>\n{ok}  <recv request=\"NOTIFY\"/>\n{ok}  <recv request=\"NOTIFY\"/>\n{ok}  <recv request=\"BYE\"/>\n{ok}",
            uas_answer(),
            uas_request(
                "REFER",
                10,
                "Refer-To: <sip:102@besip.test>\nReferred-By: <sip:101@besip.test>\n"
            ),
            ok = ok()
        ),
    );
    let b = sipp.spawn("b", &b_scenario, b_port, pbx.port, &[]);
    let c = sipp.spawn("c", &callee_answers(200), c_port, pbx.port, &[]);
    // A (100) is re-INVITEd with C's offer, answers, talks, hangs up.
    let reinvited = format!(
        "  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "200 OK",
            "",
            &format!("{UAS_CONTACT}Content-Type: application/sdp\n"),
            SDP,
            true
        )
    );
    let a = sipp.run(
        "a",
        &caller_with(&reinvited),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let b = sipp.wait(b);
    let c = sipp.wait(c);
    assert!(a.success, "transferee failed:\n{}", a.log);
    assert!(b.success, "transferor failed:\n{}", b.log);
    assert!(c.success, "transfer target failed:\n{}", c.log);

    // The transferor heard the progress, ending in 200.
    let b_in = received(&sipp.messages("b"));
    let frags: Vec<&String> = b_in.iter().filter(|m| m.contains("NOTIFY sip:")).collect();
    assert_eq!(frags.len(), 3, "{b_in:?}");
    for (m, frag) in frags
        .iter()
        .zip(["SIP/2.0 100", "SIP/2.0 180", "SIP/2.0 200"])
    {
        assert!(m.contains(frag), "{frag} expected:\n{m}");
        assert!(m.contains("Event: refer"), "{m}");
        assert!(m.contains("message/sipfrag"), "{m}");
    }
    assert!(frags[2].contains("terminated"), "{}", frags[2]);
    // The new party was invited without an offer; our ACK carries the
    // transferee's answer.
    let c_in = received(&sipp.messages("c"));
    let invite = c_in
        .iter()
        .find(|m| m.contains("INVITE sip:"))
        .expect("INVITE to 102");
    assert!(
        !invite.contains("m=audio"),
        "offer in the INVITE:\n{invite}"
    );
    assert!(
        invite.contains("Referred-By: <sip:101@besip.test>"),
        "{invite}"
    );
    let ack = c_in
        .iter()
        .find(|m| m.contains("ACK sip:"))
        .expect("ACK to 102");
    assert!(ack.contains("m=audio"), "no answer in the ACK:\n{ack}");
    // The transferee got the new party's offer.
    let a_in = received(&sipp.messages("a"));
    let reinvite = a_in
        .iter()
        .find(|m| m.contains("INVITE sip:"))
        .expect("re-INVITE");
    assert!(reinvite.contains("m=audio"), "{reinvite}");

    // A CDR for the original leg and one for the transferred leg.
    let list = cdrs(&pbx, 2);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["caller"], "sip:100@besip.test", "{list:?}");
    assert_eq!(list[0]["callee"], "sip:101@besip.test", "{list:?}");
    assert_eq!(list[0]["disposition"], "answered", "{list:?}");
    assert_eq!(list[1]["caller"], "sip:100@besip.test", "{list:?}");
    assert_eq!(list[1]["callee"], "sip:102@besip.test", "{list:?}");
    assert_eq!(list[1]["disposition"], "answered", "{list:?}");
    no_calls_left(&pbx);
}

#[test]
fn b2bua_transfer_attacks_are_refused() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let trunk_port = free_port();
    let extra = format!(
        "\nconfig trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.1'\n\toption port '{trunk_port}'\n\n\
config route 'route_intl'\n\toption name 'intl'\n\toption match '00'\n\toption trunk 'prov'\n\toption required_group 'intl'\n"
    );
    let pbx = Pbx::start(&(b2bua_config(port, "") + &extra), port);

    // Outside any dialog, from a stranger: refused before anything.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let local = sock.local_addr().expect("addr");
    let raw = |to_tag: &str, call_id: &str| {
        let msg = format!(
            "REFER sip:101@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\n\
From: <sip:evil@example.com>;tag=ev1\r\nTo: <sip:101@besip.test>{to_tag}\r\nCall-ID: {call_id}\r\n\
CSeq: 1 REFER\r\nContact: <sip:evil@{local}>\r\nRefer-To: <sip:00900123@besip.test>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port))
            .expect("send");
        let mut buf = [0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).expect("an answer");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 100") {
                return text;
            }
        }
    };
    let out_of_dialog = raw("", "ood-1");
    assert!(out_of_dialog.starts_with("SIP/2.0 403"), "{out_of_dialog}");
    let unknown = raw(";tag=nosuch", "nosuch-1");
    assert!(
        unknown.starts_with("SIP/2.0 481") || unknown.starts_with("SIP/2.0 403"),
        "{unknown}"
    );

    // In a call: a malformed Refer-To, a number 101 may not dial, a
    // Replaces of a dialog that is not 101's: each refused, the call goes on.
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    let b_scenario = scenario(
        "transferor",
        &format!(
            "{}  <pause milliseconds=\"200\"/>\n{}  <recv response=\"400\"/>\n{}  <recv response=\"403\"/>\n{}  <recv response=\"403\"/>\n{}  <recv response=\"400\"/>\n{}  <recv response=\"200\"/>\n",
            uas_answer(),
            uas_request("REFER", 10, "Refer-To: <tel:+1-900-123>\n"),
            uas_request("REFER", 11, "Refer-To: <sip:00900123@besip.test>\n"),
            uas_request(
                "REFER",
                12,
                "Refer-To: <sip:102@besip.test?Replaces=someone-else%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>\n"
            ),
            uas_request("REFER", 13, "Refer-To: <sip:102@besip.test?Replaces=x%3Bto-tag%3Dt1>\n"),
            uas_request("BYE", 14, ""),
        ),
    );
    let b = sipp.spawn("b", &b_scenario, b_port, pbx.port, &[]);
    let a = sipp.run(
        "a",
        &caller_hung_up(),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let b = sipp.wait(b);
    assert!(a.success, "caller failed:\n{}", a.log);
    assert!(b.success, "transferor failed:\n{}", b.log);
    let b_in = received(&sipp.messages("b"));
    assert!(
        b_in.iter()
            .any(|m| m.contains("403 Forbidden: Route Not Allowed")),
        "{b_in:?}"
    );
    assert!(
        b_in.iter()
            .any(|m| m.contains("403 Forbidden: Replaced Dialog Not Yours")),
        "{b_in:?}"
    );
    // Nothing reached the trunk, no CDR but the call's own.
    let list = cdrs(&pbx, 1);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["callee"], "sip:101@besip.test", "{list:?}");
    no_calls_left(&pbx);
}

#[test]
fn proxy_relays_refer_in_dialog_along_the_route() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let sipp = Sipp::new();
    let (a_port, b_port) = (free_port(), free_port());
    register(&sipp, "101", b_port, pbx.port);
    let b_scenario = scenario(
        "transferor",
        &format!(
            "{}  <pause milliseconds=\"200\"/>\n{}  <recv response=\"202\"/>\n  <recv request=\"BYE\"/>\n{}",
            uas_answer(),
            uas_request("REFER", 10, "Refer-To: <sip:102@besip.test>\n"),
            ok()
        ),
    );
    let b = sipp.spawn("b", &b_scenario, b_port, pbx.port, &[]);
    let refer = format!(
        "  <recv request=\"REFER\"/>\n{}",
        uas_reply("202 Accepted", "", "", "", false)
    );
    let a = sipp.run(
        "a",
        &caller_with(&refer),
        a_port,
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let b = sipp.wait(b);
    assert!(a.success, "caller failed:\n{}", a.log);
    assert!(b.success, "transferor failed:\n{}", b.log);
    let a_in = received(&sipp.messages("a"));
    let refer = a_in
        .iter()
        .find(|m| m.contains("REFER sip:"))
        .expect("REFER relayed");
    // Sent to the caller's Contact, through the proxy (its Via on top of B's).
    assert!(
        refer.contains(&format!("REFER sip:100@127.0.0.1:{a_port}")),
        "{refer}"
    );
    let vias: Vec<&str> = refer.lines().filter(|l| l.starts_with("Via:")).collect();
    assert_eq!(vias.len(), 2, "{refer}");
    assert!(vias[0].contains(&format!("127.0.0.1:{port}")), "{refer}");
    assert!(refer.contains("Refer-To: <sip:102@besip.test>"), "{refer}");
    no_calls_left(&pbx);
}

/// A call put on hold (sendonly) and resumed (sendrecv) by the caller: each
/// re-INVITE reaches the callee with its direction and the answer comes back.
fn hold_and_resume(b2bua: bool) {
    let port = free_port();
    let uci = match b2bua {
        true => b2bua_config(port, ""),
        false => config(port, ""),
    };
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    let answer = |dir: &str| {
        uas_reply(
            "200 OK",
            "",
            &format!("[last_Record-Route:]\n{UAS_CONTACT}Content-Type: application/sdp\n"),
            &format!("{SDP}\na={dir}"),
            true,
        )
    };
    let b_scenario = scenario(
        "held",
        &format!(
            "{}  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n  <recv request=\"BYE\"/>\n{}",
            uas_answer_with(false),
            answer("recvonly"),
            answer("sendrecv"),
            ok()
        ),
    );
    let b = sipp.spawn("b", &b_scenario, b_port, pbx.port, &[]);
    let reinvite = |cseq: u32, dir: &str| {
        format!(
            r#"  <send retrans="500"><![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]call[call_number]
To:[$callee]
[routes]
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:100@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
a={dir}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:100@besip.test>;tag=[pid]call[call_number]
To:[$callee]
[routes]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"#
        )
    };
    let middle = format!("{}{}", reinvite(10, "sendonly"), reinvite(11, "sendrecv"));
    // The BYE after the re-INVITEs needs a higher CSeq than theirs.
    let a_scenario = caller_with(&middle).replace("CSeq: 3 BYE", "CSeq: 12 BYE");
    let a = sipp.run(
        "a",
        &a_scenario,
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let b = sipp.wait(b);
    assert!(a.success, "caller failed:\n{}", a.log);
    assert!(b.success, "held callee failed:\n{}", b.log);
    let b_in = received(&sipp.messages("b"));
    let invites: Vec<&String> = b_in.iter().filter(|m| m.contains("INVITE sip:")).collect();
    assert_eq!(invites.len(), 3, "{b_in:?}");
    assert!(invites[1].contains("a=sendonly"), "{}", invites[1]);
    assert!(invites[2].contains("a=sendrecv"), "{}", invites[2]);
    let a_in = received(&sipp.messages("a"));
    assert!(a_in.iter().any(|m| m.contains("a=recvonly")), "{a_in:?}");
    let list = cdrs(&pbx, 1);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["disposition"], "answered", "{list:?}");
    no_calls_left(&pbx);
}

#[test]
fn b2bua_hold_and_resume_are_bridged() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    hold_and_resume(true);
}

#[test]
fn proxy_hold_and_resume_pass_through() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    hold_and_resume(false);
}

/// A phone on a plain UDP socket, scripted by the test: it keeps two calls
/// at once (which one sipp scenario cannot).
struct RawPhone {
    sock: UdpSocket,
    pbx: u16,
    /// Requests answered 200 on the way (NOTIFY, BYE), as received.
    answered: Vec<String>,
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or("")
}

fn tag_of(value: &str) -> &str {
    value
        .split(";tag=")
        .nth(1)
        .map(|t| t.split(';').next().unwrap_or(t))
        .unwrap_or("")
}

impl RawPhone {
    fn send(&self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.sock
            .send_to(text.as_bytes(), ("127.0.0.1", self.pbx))
            .expect("send");
    }

    /// The response to `req` with `code reason`, `extra` lines and SDP when `sdp`.
    fn respond(&self, req: &str, code: &str, to_tag: &str, sdp: bool) {
        let mut out = format!("SIP/2.0 {code}\n");
        for l in req.lines() {
            let name = l.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("Via")
                || name.eq_ignore_ascii_case("From")
                || name.eq_ignore_ascii_case("Call-ID")
                || name.eq_ignore_ascii_case("CSeq")
            {
                out.push_str(l.trim_end());
                out.push('\n');
            }
        }
        let to = header(req, "To");
        match (to.contains(";tag="), to_tag) {
            (false, t) if !t.is_empty() => out.push_str(&format!("To: {to};tag={t}\n")),
            _ => out.push_str(&format!("To: {to}\n")),
        }
        let me = self.sock.local_addr().expect("addr");
        out.push_str(&format!("Contact: <sip:101@{me}>\n"));
        if sdp {
            let body = self.sdp();
            out.push_str(&format!(
                "Content-Type: application/sdp\nContent-Length: {}\n\n{body}",
                body.len()
            ));
        } else {
            out.push_str("Content-Length: 0\n\n");
        }
        self.send(&out);
    }

    fn sdp(&self) -> String {
        "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n".into()
    }

    /// Answers what arrives within 200 ms (NOTIFY, BYE: 200, kept).
    fn pump(&mut self) {
        let mut buf = vec![0u8; 65536];
        if let Ok(n) = self.sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with("NOTIFY ") || m.starts_with("BYE ") {
                self.respond(&m, "200 OK", "", false);
                self.answered.push(m);
            }
        }
    }

    /// The next message that `want` accepts; NOTIFY and BYE on the way are
    /// answered 200 and kept, 100 Trying skipped.
    fn wait_for(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        loop {
            assert!(
                Instant::now() < deadline,
                "no {what}; had {:?}",
                self.answered
            );
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if want(&m) {
                return m;
            }
            if m.starts_with("NOTIFY ") || m.starts_with("BYE ") {
                self.respond(&m, "200 OK", "", false);
                self.answered.push(m);
            }
        }
    }
}

#[test]
fn b2bua_attended_transfer_joins_the_two_far_parties() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let pbx = Pbx::start(&b2bua_config(port, ""), port);
    let sipp = Sipp::new();
    let c_port = free_port();
    register(&sipp, "102", c_port, pbx.port);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let reg = raw_register(
        &sock,
        pbx.port,
        "101",
        "pw101",
        &format!("Contact: <sip:101@{me}>\r\nExpires: 3600\r\n"),
        "breg",
    );
    assert!(reg.starts_with("SIP/2.0 200"), "{reg}");
    let mut b = RawPhone {
        sock,
        pbx: pbx.port,
        answered: Vec::new(),
    };
    // C (102) answers B's consultation call, then is re-INVITEd without
    // SDP by the PBX and offers in its 200.
    let c_scenario = scenario(
        "target",
        &format!(
            "{}  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n  <recv request=\"BYE\"/>\n{}",
            uas_answer_with(false),
            uas_reply(
                "200 OK",
                "",
                &format!("{UAS_CONTACT}Content-Type: application/sdp\n"),
                SDP,
                true
            ),
            ok()
        ),
    );
    let c = sipp.spawn("c", &c_scenario, c_port, pbx.port, &[]);
    let reinvited = format!(
        "  <recv request=\"INVITE\"/>\n{}  <recv request=\"ACK\"/>\n",
        uas_reply(
            "200 OK",
            "",
            &format!("{UAS_CONTACT}Content-Type: application/sdp\n"),
            SDP,
            true
        )
    );
    let a = sipp.spawn(
        "a",
        &caller_with(&reinvited),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );

    // Call 1: A calls B, B answers.
    let inv1 = b.wait_for("INVITE from A", |m| m.starts_with("INVITE "));
    b.respond(&inv1, "200 OK", "b1tag", true);
    b.wait_for("ACK of call 1", |m| m.starts_with("ACK "));

    // Call 2: B calls C (authenticating as 101).
    let call2 = "call2-attended@test";
    let sdp = b.sdp();
    let invite2 = |cseq: u32, auth: &str| {
        let body = &sdp;
        format!(
            "INVITE sip:102@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKc2{cseq};rport\nFrom: <sip:101@besip.test>;tag=b2tag\nTo: <sip:102@besip.test>\nCall-ID: {call2}\nCSeq: {cseq} INVITE\nContact: <sip:101@{me}>\n{auth}Max-Forwards: 70\nContent-Type: application/sdp\nContent-Length: {}\n\n{body}",
            body.len()
        )
    };
    b.send(&invite2(1, ""));
    let challenge = b.wait_for("407", |m| m.starts_with("SIP/2.0 407"));
    b.send(&format!(
        "ACK sip:102@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKc21;rport\nFrom: <sip:101@besip.test>;tag=b2tag\nTo: {}\nCall-ID: {call2}\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
        header(&challenge, "To")
    ));
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("nonce");
    let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
    let ha1 = md5("101:besip.test:pw101".into());
    let ha2 = md5("INVITE:sip:102@besip.test".into());
    let resp = md5(format!("{ha1}:{nonce}:00000001:c0:auth:{ha2}"));
    b.send(&invite2(
        2,
        &format!("Proxy-Authorization: Digest username=\"101\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:102@besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0\"\n"),
    ));
    let ok2 = b.wait_for("200 of call 2", |m| {
        m.starts_with("SIP/2.0 200") && m.contains(call2)
    });
    let pbx_tag2 = tag_of(header(&ok2, "To")).to_owned();
    let target2 = crate_uri(header(&ok2, "Contact"));
    b.send(&format!(
        "ACK {target2} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKc2a;rport\nFrom: <sip:101@besip.test>;tag=b2tag\nTo: {}\nCall-ID: {call2}\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
        header(&ok2, "To")
    ));
    std::thread::sleep(Duration::from_millis(200));

    // B transfers A to C, replacing its call with C.
    let call1 = header(&inv1, "Call-ID").to_owned();
    let target1 = crate_uri(header(&inv1, "Contact"));
    // The same REFER from another address (someone who learnt the
    // dialog's identifiers) is refused, and changes nothing.
    let spy = UdpSocket::bind("127.0.0.1:0").expect("bind");
    spy.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let spy_addr = spy.local_addr().expect("addr");
    let forged = format!(
        "REFER {target1} SIP/2.0\r\nVia: SIP/2.0/UDP {spy_addr};branch=z9hG4bKspy1;rport\r\nFrom: {};tag=b1tag\r\nTo: {}\r\nCall-ID: {call1}\r\nCSeq: 1 REFER\r\nContact: <sip:101@{spy_addr}>\r\nRefer-To: <sip:102@besip.test?Replaces={call2}%3Bto-tag%3D{pbx_tag2}%3Bfrom-tag%3Db2tag>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        header(&inv1, "To"),
        header(&inv1, "From"),
    );
    spy.send_to(forged.as_bytes(), ("127.0.0.1", pbx.port))
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let refused = loop {
        let n = spy.recv(&mut buf).expect("an answer to the forged REFER");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !m.starts_with("SIP/2.0 100") {
            break m;
        }
    };
    assert!(refused.starts_with("SIP/2.0 403"), "{refused}");
    b.send(&format!(
        "REFER {target1} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKr1;rport\nFrom: {};tag=b1tag\nTo: {}\nCall-ID: {call1}\nCSeq: 1 REFER\nContact: <sip:101@{me}>\nRefer-To: <sip:102@besip.test?Replaces={call2}%3Bto-tag%3D{pbx_tag2}%3Bfrom-tag%3Db2tag>\nReferred-By: <sip:101@besip.test>\nMax-Forwards: 70\nContent-Length: 0\n\n",
        header(&inv1, "To"),
        header(&inv1, "From"),
    ));
    let accepted = b.wait_for("202", |m| m.starts_with("SIP/2.0 "));
    assert!(accepted.starts_with("SIP/2.0 202"), "{accepted}");
    // Both of B's calls are hung up by the PBX, after the final NOTIFY.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(b
        .answered
        .iter()
        .any(|m| m.starts_with("BYE ") && m.contains(&call1))
        && b.answered
            .iter()
            .any(|m| m.starts_with("BYE ") && m.contains(call2)))
    {
        assert!(Instant::now() < deadline, "B not hung up: {:?}", b.answered);
        b.pump();
    }
    let a = sipp.wait(a);
    let c = sipp.wait(c);
    assert!(a.success, "transferee failed:\n{}", a.log);
    assert!(c.success, "transfer target failed:\n{}", c.log);
    let notifies: Vec<&String> = b
        .answered
        .iter()
        .filter(|m| m.starts_with("NOTIFY "))
        .collect();
    assert!(
        notifies.last().is_some_and(|m| m.contains("SIP/2.0 200")),
        "{notifies:?}"
    );
    // C's re-INVITE had no offer; its ACK carries A's answer.
    let c_in = received(&sipp.messages("c"));
    let invites: Vec<&String> = c_in.iter().filter(|m| m.contains("INVITE sip:")).collect();
    assert_eq!(invites.len(), 2, "{c_in:?}");
    assert!(!invites[1].contains("m=audio"), "{}", invites[1]);
    let acks: Vec<&String> = c_in.iter().filter(|m| m.contains("ACK sip:")).collect();
    assert!(
        acks.last().is_some_and(|m| m.contains("m=audio")),
        "{acks:?}"
    );
    // CDRs: call 1, call 2, then A with C.
    let list = cdrs(&pbx, 3);
    assert_cdr_pairs(
        &list,
        &[
            ("sip:100@besip.test", "sip:101@besip.test"),
            ("sip:101@besip.test", "sip:102@besip.test"),
            ("sip:100@besip.test", "sip:102@besip.test"),
        ],
    );
    assert!(
        list.iter().all(|c| c["disposition"] == "answered"),
        "{list:?}"
    );
    no_calls_left(&pbx);
}

/// The URI inside a name-addr.
fn crate_uri(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).to_owned(),
    }
}

/// Real phones (baresip): 100 calls 101, 101 transfers the call to 102
/// (baresip's `transfer`, a blind REFER); 100 and 102 end up talking and
/// 101 is out of the call. In B2BUA mode the PBX executes the REFER; in
/// proxy mode it reaches 100, which calls 102 itself.
fn baresip_blind_transfer(b2bua: bool) {
    use besip_tests::baresip::{Baresip, PhoneConfig};
    let port = free_port();
    let uci = match b2bua {
        true => b2bua_config(port, ""),
        false => config(port, ""),
    };
    let pbx = Pbx::start(&uci, port);
    let phone = |user: u16| {
        let control = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port");
        let account = format!(
            "<sip:{user}@besip.test>;auth_pass=pw{user};outbound=\"sip:127.0.0.1:{port}\";regint=300;audio_codecs=PCMU"
        );
        Baresip::start(&PhoneConfig::new(account, control))
    };
    let (a, b, c) = (phone(100), phone(101), phone(102));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pbx.registrations().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "phones not registered: {:?}\n{}",
            pbx.registrations(),
            a.trace()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut ctl_a, mut ctl_b, mut ctl_c) = (a.control(), b.control(), c.control());
    let wait = Duration::from_secs(8);
    assert_eq!(ctl_a.command("dial", "sip:101@besip.test")["ok"], true);
    ctl_b
        .wait_event("CALL_INCOMING", wait)
        .unwrap_or_else(|| panic!("B not called:\n{}", b.trace()));
    assert_eq!(ctl_b.command("accept", "")["ok"], true);
    for (ctl, who) in [(&mut ctl_a, "A"), (&mut ctl_b, "B")] {
        ctl.wait_event("CALL_ESTABLISHED", wait)
            .unwrap_or_else(|| panic!("{who}: no CALL_ESTABLISHED: {:?}", ctl.events));
    }
    let t = ctl_b.command("transfer", "sip:102@besip.test");
    assert_eq!(t["ok"], true, "{t}");
    ctl_c
        .wait_event("CALL_INCOMING", wait)
        .unwrap_or_else(|| panic!("C not called:\nB:\n{}\nC:\n{}", b.trace(), c.trace()));
    assert_eq!(ctl_c.command("accept", "")["ok"], true);
    ctl_c
        .wait_event("CALL_ESTABLISHED", wait)
        .unwrap_or_else(|| panic!("C: no CALL_ESTABLISHED:\n{}", c.trace()));
    ctl_b
        .wait_event("CALL_CLOSED", wait)
        .unwrap_or_else(|| panic!("B still in the call:\n{}", b.trace()));
    std::thread::sleep(Duration::from_millis(500));
    if b2bua {
        // The PBX invited C on B's behalf.
        assert!(
            c.trace().contains("Referred-By: <sip:101@besip.test>"),
            "{}",
            c.trace()
        );
    } else {
        // The REFER reached A, which called C itself.
        assert!(
            a.trace().contains("Refer-To: sip:102@besip.test"),
            "{}",
            a.trace()
        );
    }
    // A hangs up: C's call ends.
    assert_eq!(ctl_a.command("hangup", "")["ok"], true);
    ctl_c
        .wait_event("CALL_CLOSED", wait)
        .unwrap_or_else(|| panic!("C not hung up:\nA:\n{}\nC:\n{}", a.trace(), c.trace()));
    let list = cdrs(&pbx, 2);
    assert_cdr_pairs(
        &list,
        &[
            ("sip:100@besip.test", "sip:101@besip.test"),
            ("sip:100@besip.test", "sip:102@besip.test"),
        ],
    );
    no_calls_left(&pbx);
}

#[test]
fn b2bua_baresip_blind_transfer() {
    if !besip_tests::baresip::have_baresip() {
        eprintln!("SKIP: baresip not installed");
        return;
    }
    baresip_blind_transfer(true);
}

#[test]
fn proxy_baresip_blind_transfer() {
    if !besip_tests::baresip::have_baresip() {
        eprintln!("SKIP: baresip not installed");
        return;
    }
    baresip_blind_transfer(false);
}
