//! sipp scenarios for the pbx tests: registration with digest, callers and
//! callees, and the pieces other tests build their own scenarios from.

/// A whole scenario: the XML head, `steps`, the end.
pub fn scenario(name: &str, steps: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n{steps}</scenario>\n")
}

/// A UAS's response to the last request: `status` ("200 OK"), `to_tag`
/// appended to the request's To (empty: none), `headers` (each ending in a
/// newline) before the body, `body` ("" for none; else sent with
/// `Content-Length: [len]`). `retrans`: resent every 500 ms until the ACK.
pub fn uas_reply(status: &str, to_tag: &str, headers: &str, body: &str, retrans: bool) -> String {
    let send = if retrans {
        r#"<send retrans="500">"#
    } else {
        "<send>"
    };
    let tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let tail = if body.is_empty() {
        "Content-Length: 0\n\n".to_owned()
    } else {
        format!("Content-Length: [len]\n\n{body}\n")
    };
    format!(
        "  {send}<![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:]{tag}\n[last_Call-ID:]\n[last_CSeq:]\n{headers}{tail}]]></send>\n"
    )
}

/// The callee's end of an answered call: the ACK, then the BYE answered 200.
pub fn ack_then_bye_answered() -> String {
    format!(
        "  <recv request=\"ACK\"/>\n  <recv request=\"BYE\"/>\n{}",
        uas_reply("200 OK", "", "", "", false)
    )
}

/// The Contact a UAS puts in its answers.
pub const UAS_CONTACT: &str = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n";

/// REGISTER, answered 401, then again with credentials (-au/-ap); expects `final_code`.
pub fn register_scenario(user: &str, expires: u32, final_code: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]reg[call_number]
To: <sip:{user}@besip.test>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
Expires: {expires}
Max-Forwards: 70
User-Agent: sipp-test
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]reg[call_number]
To: <sip:{user}@besip.test>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
Expires: {expires}
[authentication]
Max-Forwards: 70
User-Agent: sipp-test
Content-Length: 0

]]></send>
  <recv response="{final_code}"/>
</scenario>
"#
    )
}

pub const SDP: &str = "v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000";

fn invite(user: &str, callee: &str, cseq: u32, auth: bool) -> String {
    format!(
        "INVITE sip:{callee}@besip.test SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]call[call_number]
To: <sip:{callee}@besip.test>
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
{}Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
",
        if auth { "[authentication]\n" } else { "" }
    )
}

/// Caller side: INVITE, 407, ACK, INVITE with credentials, then what `after` holds.
fn caller_prefix(user: &str, callee: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller">
  <send retrans="500"><![CDATA[
{}]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
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
  <send retrans="500"><![CDATA[
{}]]></send>
  <recv response="100" optional="true"/>
"#,
        invite(user, callee, 1, false),
        invite(user, callee, 2, true)
    )
}

/// Caller: authenticated call that is answered, then hung up with BYE.
pub fn caller_answered(user: &str, callee: &str) -> String {
    format!(
        r#"{}  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]call[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@besip.test>;tag=[pid]call[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#,
        caller_prefix(user, callee)
    )
}

/// Caller: expects a final failure `code` (e.g. 486) for the authenticated INVITE and ACKs it.
pub fn caller_rejected(user: &str, callee: &str, code: u16) -> String {
    format!(
        r#"{}  <recv response="180" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:{callee}@besip.test SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"#,
        caller_prefix(user, callee)
    )
}

/// Caller: cancels while the callee rings.
pub fn caller_cancels(user: &str, callee: &str) -> String {
    format!(
        r#"{}  <recv response="180"/>
  <pause milliseconds="300"/>
  <send><![CDATA[
CANCEL sip:{callee}@besip.test SIP/2.0
[last_Via:]
From: <sip:{user}@besip.test>;tag=[pid]call[call_number]
To: <sip:{callee}@besip.test>
Call-ID: [call_id]
CSeq: 2 CANCEL
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
ACK sip:{callee}@besip.test SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"#,
        caller_prefix(user, callee)
    )
}

const UAS_HEAD: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee">
  <recv request="INVITE" rrs="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
"#;

/// Callee: rings, answers after `ring_ms`, waits for ACK and BYE.
pub fn callee_answers(ring_ms: u32) -> String {
    let answer = uas_reply(
        "200 OK",
        "[pid]uas[call_number]",
        &format!("[last_Record-Route:]\n{UAS_CONTACT}Content-Type: application/sdp\n"),
        SDP,
        true,
    );
    format!(
        "{UAS_HEAD}  <pause milliseconds=\"{ring_ms}\"/>\n{answer}{}</scenario>\n",
        ack_then_bye_answered()
    )
}

/// Callee: rings and answers `code` (486 busy), then takes the ACK.
pub fn callee_rejects(code: u16, reason: &str) -> String {
    format!(
        r#"{UAS_HEAD}  <send><![CDATA[
SIP/2.0 {code} {reason}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"#
    )
}

/// Callee: rings until a CANCEL comes, answers it and 487, takes the ACK.
pub fn callee_cancelled() -> String {
    // The INVITE's CSeq number is captured for the 487 (a B2BUA numbers its own leg).
    let head = UAS_HEAD.replace(
        r#"<recv request="INVITE" rrs="true"/>"#,
        r#"<recv request="INVITE" rrs="true"><action><ereg regexp="([0-9]+)" search_in="hdr" header="CSeq:" check_it="true" assign_to="cseq_all,cseq_num"/></action></recv>
  <Reference variables="cseq_all"/>"#,
    );
    format!(
        r#"{head}  <recv request="CANCEL"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
CSeq: [$cseq_num] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"#
    )
}
