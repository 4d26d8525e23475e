//! Busy-lamp fields with besip-pbxd: an extension subscribes to the dialog
//! event package (RFC 4235) of another and sees it ring, talk and hang up
//! in NOTIFYs of application/dialog-info+xml, in both modes; `<get>` (the
//! daemon's state) shows the lamp. Attacks: a stranger may not watch, the
//! subscriptions of one extension are bounded, a refresh from another
//! address is refused, an expiry is capped.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use besip_tests::pbx::*;

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or("")
}

/// A watching phone on a plain UDP socket (extension `user`).
struct Watcher {
    sock: UdpSocket,
    pbx: u16,
    user: String,
    /// NOTIFYs received (answered 200), in order.
    notifies: Vec<String>,
}

impl Watcher {
    fn new(pbx: u16, user: &str) -> Watcher {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Watcher {
            sock,
            pbx,
            user: user.to_owned(),
            notifies: Vec::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    fn send(&self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.sock
            .send_to(text.as_bytes(), ("127.0.0.1", self.pbx))
            .expect("send");
    }

    /// Reads for up to `ms`; NOTIFYs are answered and kept; the first
    /// response (not 100) is returned.
    fn pump(&mut self, ms: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with("NOTIFY ") {
                let mut ok = String::from("SIP/2.0 200 OK\n");
                for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    ok.push_str(&format!("{name}: {}\n", header(&m, name)));
                }
                ok.push_str("Content-Length: 0\n\n");
                self.send(&ok);
                self.notifies.push(m);
            } else if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 100") {
                return Some(m);
            }
        }
        None
    }

    fn subscribe_raw(&mut self, target: &str, call_id: &str, cseq: u32, extra: &str) -> String {
        let me = self.addr();
        let user = self.user.clone();
        self.send(&format!(
            "SUBSCRIBE sip:{target}@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}{cseq};rport\nFrom: <sip:{user}@besip.test>;tag=w{call_id}\nTo: <sip:{target}@besip.test>\nCall-ID: {call_id}\nCSeq: {cseq} SUBSCRIBE\nContact: <sip:{user}@{me}>\nEvent: dialog\nAccept: application/dialog-info+xml\n{extra}Max-Forwards: 70\nContent-Length: 0\n\n"
        ));
        self.pump(3000).expect("an answer to SUBSCRIBE")
    }

    /// SUBSCRIBE answered 407, then with credentials; the final answer.
    fn subscribe(&mut self, target: &str, call_id: &str, expires: u32) -> String {
        let expires = format!("Expires: {expires}\n");
        let challenge = self.subscribe_raw(target, call_id, 1, &expires);
        assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .expect("nonce");
        let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
        let user = &self.user;
        let ha1 = md5(format!("{user}:besip.test:pw{user}"));
        let ha2 = md5(format!("SUBSCRIBE:sip:{target}@besip.test"));
        let resp = md5(format!("{ha1}:{nonce}:00000001:c0:auth:{ha2}"));
        let auth = format!("Proxy-Authorization: Digest username=\"{user}\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:{target}@besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0\"\n");
        self.subscribe_raw(target, call_id, 2, &format!("{expires}{auth}"))
    }

    /// An in-dialog SUBSCRIBE of subscription `ok` (its 200), from `sock`.
    fn resubscribe(&self, sock: &UdpSocket, ok: &str, cseq: u32, expires: u32) -> String {
        let me = sock.local_addr().expect("addr");
        let user = &self.user;
        let msg = format!(
            "SUBSCRIBE sip:{}@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKre{cseq};rport\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{user}@{me}>\r\nEvent: dialog\r\nExpires: {expires}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            header(ok, "To").split('@').next().unwrap_or("").trim_start_matches("<sip:"),
            header(ok, "From"),
            header(ok, "To"),
            header(ok, "Call-ID"),
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", self.pbx))
            .expect("send");
        String::new()
    }
}

/// The dialog states of a NOTIFY body, in order (empty: idle).
fn states(notify: &str) -> Vec<String> {
    notify
        .split("<state>")
        .skip(1)
        .filter_map(|s| s.split("</state>").next())
        .map(str::to_owned)
        .collect()
}

fn lamp(pbx: &Pbx, ext: &str) -> Option<String> {
    let state = pbx.state();
    state["besip-pbx:pbx"]["presence-state"]["extension"]
        .as_array()?
        .iter()
        .find(|e| e["number"] == ext)
        .and_then(|e| e["state"].as_str().map(str::to_owned))
}

fn watch_a_call(b2bua: bool) {
    let port = free_port();
    let uci = match b2bua {
        true => config(port, "\toption mode 'b2bua'\n").replace("\toption mode 'proxy'\n", ""),
        false => config(port, ""),
    };
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    // Bound before the watcher's socket, which could take the port just freed.
    let callee = sipp.spawn("b", &callee_answers(1500), b_port, pbx.port, &[]);
    let mut w = Watcher::new(pbx.port, "102");
    let ok = w.subscribe("101", "blf-1@test", 600);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(header(&ok, "Expires"), "600", "{ok}");
    w.pump(500);
    assert_eq!(w.notifies.len(), 1, "initial NOTIFY: {:?}", w.notifies);
    let first = &w.notifies[0];
    assert!(first.contains("Event: dialog"), "{first}");
    assert!(first.contains("application/dialog-info+xml"), "{first}");
    assert!(first.contains("entity=\"sip:101@besip.test\""), "{first}");
    assert!(states(first).is_empty(), "101 is idle: {first}");
    assert_eq!(lamp(&pbx, "101").as_deref(), Some("idle"));

    // 100 calls 101: it rings 1.5 s, talks 2 s.
    let caller = caller_answered("100", "101").replace(
        "<pause milliseconds=\"300\"/>",
        "<pause milliseconds=\"2000\"/>",
    );
    let a = sipp.spawn(
        "a",
        &caller,
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let mut lamps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        w.pump(200);
        if let Some(l) = lamp(&pbx, "101") {
            if lamps.last() != Some(&l) {
                lamps.push(l);
            }
        }
        let seen: Vec<Vec<String>> = w.notifies.iter().map(|n| states(n)).collect();
        if seen.iter().any(|s| s.contains(&"confirmed".to_owned()))
            && seen
                .last()
                .is_some_and(|s| s.contains(&"terminated".to_owned()))
        {
            break;
        }
    }
    let a = sipp.wait(a);
    let b = sipp.wait(callee);
    assert!(a.success, "caller failed:\n{}", a.log);
    assert!(b.success, "callee failed:\n{}", b.log);
    let seen: Vec<Vec<String>> = w.notifies.iter().map(|n| states(n)).collect();
    let flat: Vec<&str> = seen
        .iter()
        .map(|s| s.first().map(String::as_str).unwrap_or("idle"))
        .collect();
    // Ringing, talking, over: in this order.
    let pos = |s: &str| flat.iter().position(|x| *x == s);
    let (e, c, t) = (pos("early"), pos("confirmed"), pos("terminated"));
    assert!(
        matches!((e, c, t), (Some(e), Some(c), Some(t)) if e < c && c < t),
        "{flat:?}"
    );
    assert!(
        w.notifies
            .iter()
            .any(|n| n.contains("direction=\"recipient\"")),
        "{:?}",
        w.notifies
    );
    for l in ["ringing", "busy"] {
        assert!(
            lamps.iter().any(|x| x == l),
            "{l} not seen in state: {lamps:?}"
        );
    }
    assert_eq!(lamp(&pbx, "101").as_deref(), Some("idle"));

    // Unsubscribe: a last NOTIFY, terminated; nothing held.
    let sock = w.sock.try_clone().expect("clone");
    w.notifies.clear();
    w.resubscribe(&sock, &ok, 3, 0);
    let bye = w.pump(2000).expect("answer to the unsubscribe");
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    w.pump(500);
    assert!(
        w.notifies
            .last()
            .is_some_and(|n| header(n, "Subscription-State").starts_with("terminated")),
        "{:?}",
        w.notifies
    );
    let state = pbx.state();
    assert_eq!(
        state["besip-pbx:pbx"]["presence-state"]["subscriptions"], 0,
        "{state}"
    );
    assert_state_valid(&pbx, &state);
}

#[test]
fn proxy_busy_lamp_follows_a_call() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    watch_a_call(false);
}

#[test]
fn b2bua_busy_lamp_follows_a_call() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    watch_a_call(true);
}

#[test]
fn presence_attacks_are_refused() {
    let port = free_port();
    let pbx = Pbx::start(
        &config(
            port,
            "\toption presence_max_subscriptions_per_extension '2'\n\toption presence_max_expires '120'\n",
        ),
        port,
    );
    // A stranger (another domain, no credentials) may not watch anybody.
    let mut evil = Watcher::new(pbx.port, "102");
    let me = evil.addr();
    evil.send(&format!(
        "SUBSCRIBE sip:101@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKev1;rport\nFrom: <sip:spy@example.com>;tag=ev\nTo: <sip:101@besip.test>\nCall-ID: evil-1\nCSeq: 1 SUBSCRIBE\nContact: <sip:spy@{me}>\nEvent: dialog\nExpires: 600\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    let refused = evil.pump(2000).expect("an answer");
    assert!(refused.starts_with("SIP/2.0 403"), "{refused}");
    assert!(evil.notifies.is_empty(), "{:?}", evil.notifies);

    // Two subscriptions per extension; the third is refused. Expiry capped.
    let mut w = Watcher::new(pbx.port, "102");
    let ok = w.subscribe("101", "cap-1@test", 99999);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(header(&ok, "Expires"), "120", "{ok}");
    let ok2 = w.subscribe("100", "cap-2@test", 600);
    assert!(ok2.starts_with("SIP/2.0 200"), "{ok2}");
    let third = w.subscribe("103", "cap-3@test", 600);
    assert!(third.starts_with("SIP/2.0 503"), "{third}");

    // A refresh of 102's subscription from elsewhere is refused.
    let other = UdpSocket::bind("127.0.0.1:0").expect("bind");
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    w.resubscribe(&other, &ok, 3, 0);
    let mut buf = vec![0u8; 65536];
    let answer = loop {
        let n = other.recv(&mut buf).expect("an answer");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !m.starts_with("SIP/2.0 100") {
            break m;
        }
    };
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    let state = pbx.state();
    assert_eq!(
        state["besip-pbx:pbx"]["presence-state"]["subscriptions"], 2,
        "{state}"
    );
}

/// The caller whose call is ended by the other side: ACK, then the BYE answered.
fn caller_hung_up(user: &str, callee: &str) -> String {
    let s = caller_answered(user, callee);
    let pause = "  <pause milliseconds=\"300\"/>\n";
    let head = s.split_once(pause).expect("scenario shape").0;
    format!(
        "{head}  <recv request=\"BYE\"/>\n{}</scenario>\n",
        uas_reply("200 OK", "", "", "", false)
    )
}

fn wait_ringing(pbx: &Pbx) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = pbx.state();
        let ringing = state["besip-pbx:pbx"]["calls"]["call"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["state"] == "ringing"));
        if ringing {
            return;
        }
        assert!(Instant::now() < deadline, "nothing rings: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 100 calls 101, which rings; `picker` dials `code` and takes the call.
fn pick_up(extra_uci: &str, picker: &str, code: &str, refused: &[(&str, &str, u16)]) {
    let port = free_port();
    let uci = config(port, "\toption mode 'b2bua'\n")
        .replace("\toption mode 'proxy'\n", "")
        .replace(
            "config extension 'extension_101'\n",
            &format!("config extension 'extension_101'\n{extra_uci}"),
        )
        .replace(
            "config extension 'extension_102'\n",
            &format!("config extension 'extension_102'\n{extra_uci}"),
        );
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    // Nothing rings yet.
    for (who, dial, _) in refused {
        let r = sipp.run(
            &format!("early-{who}"),
            &caller_rejected(who, dial, 404),
            free_port(),
            pbx.port,
            &["-au", who, "-ap", &format!("pw{who}")],
        );
        assert!(
            r.success,
            "{who} dialling {dial} with nothing ringing:\n{}",
            r.log
        );
    }
    let callee = sipp.spawn("b", &callee_cancelled(), b_port, pbx.port, &[]);
    let a = sipp.spawn(
        "a",
        &caller_hung_up("100", "101"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    wait_ringing(&pbx);
    for (who, dial, code) in refused {
        let r = sipp.run(
            &format!("refused-{who}"),
            &caller_rejected(who, dial, *code),
            free_port(),
            pbx.port,
            &["-au", who, "-ap", &format!("pw{who}")],
        );
        assert!(
            r.success,
            "{who} dialling {dial} not refused {code}:\n{}",
            r.log
        );
    }
    let p = sipp.run(
        "p",
        &caller_answered(picker, code),
        free_port(),
        pbx.port,
        &["-au", picker, "-ap", &format!("pw{picker}")],
    );
    let a = sipp.wait(a);
    let callee = sipp.wait(callee);
    assert!(p.success, "picker failed:\n{}", p.log);
    assert!(a.success, "caller failed:\n{}", a.log);
    assert!(
        callee.success,
        "ringing phone not cancelled:\n{}",
        callee.log
    );
    // The caller's answer carries the picker's SDP and the picker's the caller's.
    let state = pbx.state();
    let cdrs = state["besip-pbx:pbx"]["accounting-state"]["cdr"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let picked: Vec<&serde_json::Value> = cdrs
        .iter()
        .filter(|c| c["caller"] == "sip:100@besip.test")
        .collect();
    assert_eq!(picked.len(), 1, "{state}");
    assert_eq!(
        picked[0]["callee"],
        format!("sip:{picker}@besip.test"),
        "{state}"
    );
    assert_eq!(picked[0]["disposition"], "answered", "{state}");
    assert_eq!(
        state["besip-pbx:pbx"]["calls"]["call"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{state}"
    );
}

#[test]
fn b2bua_directed_pickup_answers_a_ringing_call() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    pick_up("", "102", "*8101", &[("102", "*8103", 404)]);
}

#[test]
fn b2bua_group_pickup_takes_a_call_of_the_group_only() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    // 103 is in no pickup group: nothing for it to pick up.
    pick_up(
        "\tlist pickup_group 'sales'\n",
        "102",
        "*8",
        &[("103", "*8", 404), ("102", "*8102", 404)],
    );
}

#[test]
fn pickup_refused_to_strangers_and_in_proxy_mode() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let mut w = Watcher::new(pbx.port, "102");
    let me = w.addr();
    w.send(&format!(
        "INVITE sip:*8101@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpk1;rport\nFrom: <sip:spy@example.com>;tag=ev\nTo: <sip:*8101@besip.test>\nCall-ID: pick-evil\nCSeq: 1 INVITE\nContact: <sip:spy@{me}>\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    let r = w.pump(2000).expect("an answer");
    assert!(r.starts_with("SIP/2.0 403"), "{r}");
    if !have_sipp() {
        return;
    }
    let sipp = Sipp::new();
    let r = sipp.run(
        "proxy",
        &caller_rejected("102", "*8101", 501),
        free_port(),
        pbx.port,
        &["-au", "102", "-ap", "pw102"],
    );
    assert!(r.success, "pickup in proxy mode:\n{}", r.log);
}

/// The attribute `name` of the first `<dialog` element of `body` that has it.
fn dialog_attr(body: &str, name: &str) -> Option<String> {
    body.split("<dialog ")
        .skip(1)
        .find_map(|d| d.split(&format!("{name}=\"")).nth(1))
        .and_then(|v| v.split('"').next())
        .map(str::to_owned)
}

/// A phone sees 101 ring on its busy-lamp field and picks the call up as
/// phones do: an INVITE with Replaces built from the NOTIFY's dialog info.
#[test]
fn b2bua_phone_picks_up_from_its_busy_lamp_with_replaces() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let uci = config(port, "\toption mode 'b2bua'\n").replace("\toption mode 'proxy'\n", "");
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let b_port = free_port();
    register(&sipp, "101", b_port, pbx.port);
    let callee = sipp.spawn("b", &callee_cancelled(), b_port, pbx.port, &[]);
    let mut w = Watcher::new(pbx.port, "102");
    let ok = w.subscribe("101", "blf-pick@test", 600);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let a = sipp.spawn(
        "a",
        &caller_hung_up("100", "101"),
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (call_id, tag) = loop {
        w.pump(200);
        let found = w.notifies.iter().rev().find_map(|n| {
            let body = n.split("\r\n\r\n").nth(1)?;
            Some((
                dialog_attr(body, "call-id")?,
                dialog_attr(body, "remote-tag")?,
            ))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no ringing dialog: {:?}",
            w.notifies
        );
    };
    let me = w.addr();
    let sdp = "v=0\r\no=w 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\n";
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE sip:101@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpu{cseq};rport\nFrom: <sip:102@besip.test>;tag=pu1\nTo: <sip:101@besip.test>\nCall-ID: pickup-replaces@test\nCSeq: {cseq} INVITE\nContact: <sip:102@{me}>\nReplaces: {call_id};to-tag=;from-tag={tag};early-only\n{auth}Max-Forwards: 70\nContent-Type: application/sdp\nContent-Length: {}\n\n{sdp}",
            sdp.len()
        )
    };
    w.send(&invite(1, ""));
    let challenge = w.pump(3000).expect("407");
    assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
    w.send(&format!(
        "ACK sip:101@besip.test SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpu1;rport\nFrom: <sip:102@besip.test>;tag=pu1\nTo: {}\nCall-ID: pickup-replaces@test\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
        header(&challenge, "To")
    ));
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("nonce");
    let md5 = |s: String| format!("{:032x}", md5_digest(s.as_bytes()));
    let ha1 = md5("102:besip.test:pw102".into());
    let ha2 = md5("INVITE:sip:101@besip.test".into());
    let resp = md5(format!("{ha1}:{nonce}:00000001:c0:auth:{ha2}"));
    w.send(&invite(2, &format!("Proxy-Authorization: Digest username=\"102\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:101@besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0\"\n")));
    let answer = w.pump(3000).expect("an answer to the pickup");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert!(answer.contains("m=audio"), "no SDP of the caller: {answer}");
    let contact = header(&answer, "Contact")
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_owned();
    let to = header(&answer, "To").to_owned();
    w.send(&format!(
        "ACK {contact} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpua;rport\nFrom: <sip:102@besip.test>;tag=pu1\nTo: {to}\nCall-ID: pickup-replaces@test\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    std::thread::sleep(Duration::from_millis(300));
    w.send(&format!(
        "BYE {contact} SIP/2.0\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpub;rport\nFrom: <sip:102@besip.test>;tag=pu1\nTo: {to}\nCall-ID: pickup-replaces@test\nCSeq: 3 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    let bye_ok = w.pump(3000).expect("an answer to BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    let a = sipp.wait(a);
    let callee = sipp.wait(callee);
    assert!(a.success, "caller failed:\n{}", a.log);
    assert!(
        callee.success,
        "ringing phone not cancelled:\n{}",
        callee.log
    );
    let state = pbx.state();
    let picked = state["besip-pbx:pbx"]["accounting-state"]["cdr"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|c| c["caller"] == "sip:100@besip.test")
                .cloned()
        })
        .unwrap_or_default();
    assert_eq!(picked["callee"], "sip:102@besip.test", "{state}");
    assert_eq!(picked["disposition"], "answered", "{state}");
}
