//! NAT traversal in proxy mode, with a real NAT: the test makes a network
//! namespace of its own (deleted on drop) and runs the PBX in it; inside,
//! iptables SNATs the phone's private side (127.0.0.10) to a public one
//! (127.0.0.20, other ports). Phone 100 registers with a private Via and
//! Contact (192.168.1.10); a caller (127.0.0.1) calls it through the proxy:
//! the INVITE reaches its public address, media and RTCP flow both ways
//! through the relay, strangers spraying the relay ports get nothing,
//! nat-state shows the call, keepalives reach the phone, BYE closes it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use besip_tests::harness::{self, TempRoot};
use besip_tests::pbx::*;
use besip_tests::security::{register, tools_present, write_config, Netns, SecDaemon};

const RTP_MIN: u16 = 32400;
const RTP_MAX: u16 = 32415; // four calls of four ports

fn sock(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s
}

/// The next SIP message on `s` starting with `start` (others skipped and
/// kept in `seen`), within 5 s.
fn next_sip(s: &UdpSocket, start: &str, seen: &mut Vec<String>) -> (String, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with(start) {
                return (m, from);
            }
            seen.push(m);
        }
    }
    panic!("no '{start}' within 5 s; seen: {seen:#?}");
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in:\n{msg}"))
}

fn sdp(ip: &str, port: u16, rtcp: Option<u16>, extra: &str) -> String {
    let rtcp = rtcp.map(|p| format!("a=rtcp:{p}\r\n")).unwrap_or_default();
    let family = if ip.contains(':') { "IP6" } else { "IP4" };
    format!("v=0\r\no=t 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n{rtcp}a=rtpmap:0 PCMU/8000\r\n{extra}")
}

/// The box's loopback address of `s`'s family (the PBX listens on both).
fn box_ip(s: &UdpSocket) -> IpAddr {
    match s.local_addr().expect("addr") {
        SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    }
}

/// REGISTER of 100 from a phone that believes it is 192.168.1.10:5060.
fn register_behind_nat(phone: &UdpSocket, pbx_port: u16) -> String {
    register_as(phone, pbx_port, "192.168.1.10:5060")
}

/// REGISTER of 100 naming `me` in Via and Contact.
fn register_as(phone: &UdpSocket, pbx_port: u16, me: &str) -> String {
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKnatreg{cseq};rport\r\nFrom: <sip:100@besip.test>;tag=nr\r\nTo: <sip:100@besip.test>\r\nCall-ID: natreg@{me}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@{me}>\r\nExpires: 300\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut seen = Vec::new();
    let pbx = (box_ip(phone), pbx_port);
    phone.send_to(request(1, "").as_bytes(), pbx).expect("send");
    let (r, _) = next_sip(phone, "SIP/2.0 401", &mut seen);
    let auth = register_authorization(&r, "100", "pw100");
    phone
        .send_to(request(2, &auth).as_bytes(), pbx)
        .expect("send");
    next_sip(phone, "SIP/2.0 ", &mut seen).0
}

fn invite(call: &str, caller: &UdpSocket, body: &str) -> String {
    let me = caller.local_addr().expect("addr");
    format!(
        "INVITE sip:100@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call}i;rport\r\nFrom: <sip:alice@outside.test>;tag={call}a\r\nTo: <sip:100@besip.test>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The phone's answer to a request it got (Via, Record-Route, From, To,
/// Call-ID, CSeq copied), with `body` as SDP when not empty.
fn answer(req: &str, status: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in header(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for v in header(req, "Record-Route") {
        out.push_str(&format!("Record-Route: {v}\r\n"));
    }
    let to = header(req, "To")[0];
    let to = if to.contains("tag=") {
        to.to_owned()
    } else {
        format!("{to};tag=phone")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:100@192.168.1.10:5060>\r\n",
        header(req, "From")[0],
        header(req, "Call-ID")[0],
        header(req, "CSeq")[0]
    ));
    if body.is_empty() {
        out.push_str("Content-Length: 0\r\n\r\n");
    } else {
        out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    out
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0x55; 160]);
    p
}

/// A stranger (127.0.0.3) sends five RTP packets to each of `ports`: it is
/// not answered, and neither phone gets them.
fn stranger_gets_nothing(ports: &[u16], caller_rtp: &UdpSocket, phone_rtp: &UdpSocket) {
    let stranger = sock("127.0.0.3:0");
    for &p in ports {
        for seq in 0..5u16 {
            stranger
                .send_to(&rtp(100 + seq), ("127.0.0.1", p))
                .expect("send");
        }
    }
    let mut buf = [0u8; 512];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "the stranger was answered"
    );
    assert!(
        caller_rtp.recv_from(&mut buf).is_err(),
        "stranger's RTP relayed to the caller"
    );
    assert!(
        phone_rtp.recv_from(&mut buf).is_err(),
        "stranger's RTP relayed to the phone"
    );
}

fn nat_state(pbx: &Pbx) -> serde_json::Value {
    pbx.state()["besip-pbx:pbx"]["nat-state"].clone()
}

/// The namespace with the NAT rule, entered by this thread (the PBX it
/// starts and the sockets it opens live there); None when not possible.
fn natted_namespace(tag: &str) -> Option<Netns> {
    if !tools_present(&["ip", "iptables"]) || !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP: needs root, ip and iptables");
        return None;
    }
    let ns = Netns::new(tag);
    let out = ns.run(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "127.0.0.10",
        "-p",
        "udp",
        "-j",
        "SNAT",
        "--to-source",
        "127.0.0.20:41000-41999",
    ]);
    assert!(out.status.success(), "iptables: {out:?}");
    ns.enter_thread();
    Some(ns)
}

fn pbx_config(port: u16, nat: &str) -> String {
    config(
        port,
        &format!("\toption rtp_port_min '{RTP_MIN}'\n\toption rtp_port_max '{RTP_MAX}'\n{nat}"),
    )
}

#[test]
fn phone_behind_nat_is_reached_and_its_media_relayed_with_rtcp() {
    let Some(_ns) = natted_namespace("call") else {
        return;
    };
    let port = free_port();
    let pbx = Pbx::start(
        &pbx_config(
            port,
            "\toption nat_keepalive_method 'options'\n\toption nat_keepalive_interval '5'\n",
        ),
        port,
    );
    let phone = sock("127.0.0.10:0");
    let ok = register_behind_nat(&phone, port);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    // The binding is fixed: the phone is reached at its public address.
    let state = pbx.state();
    let reg = &state["besip-pbx:pbx"]["registrations"]["registration"][0];
    let source = reg["source"].as_str().expect("source");
    assert!(source.starts_with("udp:127.0.0.20:41"), "{reg}");
    assert_eq!(nat_state(&pbx)["nated-registrations"], 1);

    let mut seen = Vec::new();
    let caller = sock("127.0.0.1:0");
    let caller_rtp = sock("127.0.0.1:0");
    let caller_rtcp = sock("127.0.0.1:0");
    let (c_rtp, c_rtcp) = (
        caller_rtp.local_addr().unwrap().port(),
        caller_rtcp.local_addr().unwrap().port(),
    );
    let offer = sdp("127.0.0.1", c_rtp, Some(c_rtcp), "");
    caller
        .send_to(
            invite("natcall1", &caller, &offer).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (inv, from) = next_sip(&phone, "INVITE ", &mut seen);
    assert_eq!(from.port(), port, "the INVITE came from the PBX");
    assert!(
        inv.starts_with("INVITE sip:100@192.168.1.10:5060 "),
        "{inv}"
    );
    let relay_b = sdp_port(&inv);
    assert!((RTP_MIN..=RTP_MAX).contains(&relay_b), "{inv}");
    assert!(inv.contains("c=IN IP4 127.0.0.1\r\n"), "{inv}");
    assert!(
        inv.contains(&format!("a=rtcp:{} IN IP4 127.0.0.1", relay_b + 1)),
        "{inv}"
    );

    // The phone answers with its private media address.
    let phone_rtp = sock("127.0.0.10:0");
    let phone_rtcp = sock("127.0.0.10:0");
    let body = sdp("192.168.1.10", 4000, Some(4001), "");
    phone
        .send_to(
            answer(&inv, "200 OK", &body).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (ok, _) = next_sip(&caller, "SIP/2.0 200", &mut seen);
    let relay_a = sdp_port(&ok);
    assert!(
        (RTP_MIN..=RTP_MAX).contains(&relay_a) && relay_a != relay_b,
        "{ok}"
    );
    assert!(
        ok.contains(&format!("a=rtcp:{} IN IP4 127.0.0.1", relay_a + 1)),
        "{ok}"
    );
    let contact = header(&ok, "Contact")[0].to_owned();
    assert!(contact.contains(";alias=127.0.0.20~41"), "{contact}");
    // A retransmitted 200 names the relay as the first did.
    std::thread::sleep(Duration::from_millis(200));
    phone
        .send_to(
            answer(&inv, "200 OK", &body).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (again, _) = next_sip(&caller, "SIP/2.0 200", &mut seen);
    assert_eq!(sdp_port(&again), relay_a, "{again}");

    // ACK by the dialog's route reaches the phone at its public address.
    let uri = contact.trim_start_matches('<').split('>').next().unwrap();
    let rr = header(&ok, "Record-Route")[0].to_owned();
    let to = header(&ok, "To")[0].to_owned();
    let me = caller.local_addr().unwrap();
    let ack = format!("ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKnatack;rport\r\nRoute: {rr}\r\nFrom: <sip:alice@outside.test>;tag=natcall1a\r\nTo: {to}\r\nCall-ID: natcall1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    caller
        .send_to(ack.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (got, _) = next_sip(&phone, "ACK ", &mut seen);
    assert!(got.starts_with("ACK sip:100@192.168.1.10:5060 "), "{got}");
    assert!(!got.contains("alias="), "{got}");

    // Media: the phone speaks first (its NAT mapping is learnt), then both ways.
    let mut buf = [0u8; 512];
    for seq in [1u16, 2, 4] {
        phone_rtp
            .send_to(&rtp(seq), ("127.0.0.1", relay_b))
            .expect("send");
        let (n, src) = caller_rtp
            .recv_from(&mut buf)
            .expect("phone's RTP reached the caller");
        assert_eq!((n, src.port()), (172, relay_a));
    }
    caller_rtp
        .send_to(&rtp(1), ("127.0.0.1", relay_a))
        .expect("send");
    let (n, src) = phone_rtp
        .recv_from(&mut buf)
        .expect("caller's RTP reached the phone");
    assert_eq!((n, src.port()), (172, relay_b));
    // RTCP beside RTP.
    let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 7];
    phone_rtcp
        .send_to(&rtcp, ("127.0.0.1", relay_b + 1))
        .expect("send");
    let (n, src) = caller_rtcp
        .recv_from(&mut buf)
        .expect("RTCP reached the caller");
    assert_eq!((n, src.port()), (8, relay_a + 1));
    caller_rtcp
        .send_to(&rtcp, ("127.0.0.1", relay_a + 1))
        .expect("send");
    let (n, _) = phone_rtcp
        .recv_from(&mut buf)
        .expect("RTCP reached the phone");
    assert_eq!(n, 8);

    // A stranger spraying the relay ports is neither relayed nor answered.
    stranger_gets_nothing(
        &[relay_a, relay_b, relay_a + 1, relay_b + 1],
        &caller_rtp,
        &phone_rtp,
    );

    // nat-state shows the call's relay.
    let ns = nat_state(&pbx);
    let relay = ns["relay"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["call-id"] == "natcall1"))
        .unwrap_or_else(|| panic!("no relay in {ns}"))
        .clone();
    assert_eq!(relay["caller-rtp-port"], relay_a);
    assert_eq!(relay["callee-rtp-port"], relay_b);
    assert_eq!(relay["caller-rtcp-port"], relay_a + 1);
    assert_eq!(relay["nated"], true);
    assert_eq!(relay["rtcp-mux"], false);
    assert_eq!(relay["caller-latched"], format!("127.0.0.1:{c_rtp}"));
    assert!(
        relay["callee-latched"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.20:41"),
        "{relay}"
    );
    assert_eq!(relay["packets-relayed"], "6");
    assert_eq!(relay["packets-lost"], "1");
    assert_eq!(relay["packets-dropped"], "20");
    assert!(pbx.counter("rtp-dropped") >= 20);
    assert_state_valid(&pbx, &pbx.state());

    // Keepalives reach the NATed phone at its public address, every 5 s.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut keepalives = seen
        .iter()
        .filter(|m| m.starts_with("OPTIONS ") && m.contains("besip-nat-keepalive"))
        .count();
    while keepalives < 2 && Instant::now() < deadline {
        if let Ok((n, _)) = phone.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]);
            if m.starts_with("OPTIONS sip:100@192.168.1.10:5060 ") {
                keepalives += 1;
            }
        }
    }
    assert!(keepalives >= 2, "keepalives seen: {keepalives}");
    assert!(
        nat_state(&pbx)["keepalives-sent"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            >= 2
    );

    // BYE closes the relay.
    let bye = format!("BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKnatbye;rport\r\nRoute: {rr}\r\nFrom: <sip:alice@outside.test>;tag=natcall1a\r\nTo: {to}\r\nCall-ID: natcall1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    caller
        .send_to(bye.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (got, _) = next_sip(&phone, "BYE ", &mut seen);
    phone
        .send_to(answer(&got, "200 OK", "").as_bytes(), ("127.0.0.1", port))
        .expect("send");
    assert_eq!(nat_state(&pbx)["relays-open"], 0);
    caller_rtp
        .send_to(&rtp(9), ("127.0.0.1", relay_a))
        .expect("send");
    assert!(phone_rtp.recv_from(&mut buf).is_err(), "relayed after BYE");
}

/// A request of the caller inside dialog `call` (by its route), with SDP when `body` is not empty.
fn in_dialog(method: &str, cseq: u32, dialog: &Dialog, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call}{method}{cseq};rport\r\nRoute: {rr}\r\nFrom: <sip:alice@outside.test>;tag={call}a\r\nTo: {to}\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{me}>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        uri = dialog.uri,
        me = dialog.me,
        rr = dialog.rr,
        to = dialog.to,
        call = dialog.call,
    )
}

/// What the caller keeps of a dialog from the 200.
struct Dialog {
    call: String,
    uri: String,
    rr: String,
    to: String,
    me: SocketAddr,
}

fn dialog_of(call: &str, ok: &str, caller: &UdpSocket) -> Dialog {
    let contact = header(ok, "Contact")[0];
    Dialog {
        call: call.into(),
        uri: contact
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_owned(),
        rr: header(ok, "Record-Route")[0].to_owned(),
        to: header(ok, "To")[0].to_owned(),
        me: caller.local_addr().unwrap(),
    }
}

fn relay_of(pbx: &Pbx, call: &str) -> serde_json::Value {
    let ns = nat_state(pbx);
    ns["relay"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["call-id"] == call))
        .unwrap_or_else(|| panic!("no relay of {call} in {ns}"))
        .clone()
}

#[test]
fn late_offer_hold_rtcp_mux_and_crlf_keepalives() {
    let Some(_ns) = natted_namespace("late") else {
        return;
    };
    let port = free_port();
    let pbx = Pbx::start(
        &pbx_config(
            port,
            "\toption nat_keepalive_method 'crlf'\n\toption nat_keepalive_interval '5'\n",
        ),
        port,
    );
    let phone = sock("127.0.0.10:0");
    assert!(register_behind_nat(&phone, port).starts_with("SIP/2.0 200 "));
    let mut seen = Vec::new();
    let caller = sock("127.0.0.1:0");
    let caller_rtp = sock("127.0.0.1:0");
    let phone_rtp = sock("127.0.0.10:0");
    let c_rtp = caller_rtp.local_addr().unwrap().port();

    // Late offer: no SDP in the INVITE; the offer in the 200, the answer in the ACK.
    caller
        .send_to(
            invite("natlate", &caller, "").as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (inv, _) = next_sip(&phone, "INVITE ", &mut seen);
    assert!(!inv.contains("m=audio"), "{inv}");
    let offer = sdp("192.168.1.10", 4000, None, "");
    phone
        .send_to(
            answer(&inv, "200 OK", &offer).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (ok, _) = next_sip(&caller, "SIP/2.0 200", &mut seen);
    let relay_a = sdp_port(&ok);
    assert!((RTP_MIN..=RTP_MAX).contains(&relay_a), "{ok}");
    assert!(ok.contains("c=IN IP4 127.0.0.1\r\n"), "{ok}");
    let d = dialog_of("natlate", &ok, &caller);
    let ack = in_dialog("ACK", 1, &d, &sdp("127.0.0.1", c_rtp, None, ""));
    caller
        .send_to(ack.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (ack, _) = next_sip(&phone, "ACK ", &mut seen);
    let relay_b = sdp_port(&ack);
    assert!(
        (RTP_MIN..=RTP_MAX).contains(&relay_b) && relay_b != relay_a,
        "{ack}"
    );
    let mut buf = [0u8; 512];
    phone_rtp
        .send_to(&rtp(1), ("127.0.0.1", relay_b))
        .expect("send");
    caller_rtp.recv_from(&mut buf).expect("phone's RTP relayed");
    caller_rtp
        .send_to(&rtp(1), ("127.0.0.1", relay_a))
        .expect("send");
    phone_rtp.recv_from(&mut buf).expect("caller's RTP relayed");

    // Hold and back by re-INVITE: the relay stays, the state says so.
    for (cseq, dir, held) in [(2, "a=sendonly\r\n", true), (3, "a=sendrecv\r\n", false)] {
        let reinvite = in_dialog("INVITE", cseq, &d, &sdp("127.0.0.1", c_rtp, None, dir));
        caller
            .send_to(reinvite.as_bytes(), ("127.0.0.1", port))
            .expect("send");
        let (got, _) = next_sip(&phone, "INVITE ", &mut seen);
        assert_eq!(sdp_port(&got), relay_b, "{got}");
        assert!(got.contains(dir), "{got}");
        let back = if held {
            "a=recvonly\r\n"
        } else {
            "a=sendrecv\r\n"
        };
        phone
            .send_to(
                answer(&got, "200 OK", &sdp("192.168.1.10", 4000, None, back)).as_bytes(),
                ("127.0.0.1", port),
            )
            .expect("send");
        let (ok, _) = next_sip(&caller, "SIP/2.0 200", &mut seen);
        assert_eq!(sdp_port(&ok), relay_a, "{ok}");
        caller
            .send_to(
                in_dialog("ACK", cseq, &d, "").as_bytes(),
                ("127.0.0.1", port),
            )
            .expect("send");
        assert_eq!(relay_of(&pbx, "natlate")["on-hold"], held);
    }
    caller_rtp
        .send_to(&rtp(2), ("127.0.0.1", relay_a))
        .expect("send");
    phone_rtp.recv_from(&mut buf).expect("media after the hold");

    // A second call with rtcp-mux: no RTCP ports, RTCP on the RTP port.
    let caller2 = sock("127.0.0.1:0");
    let mux = sdp("127.0.0.1", c_rtp, None, "a=rtcp-mux\r\n");
    caller2
        .send_to(
            invite("natmux", &caller2, &mux).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (inv, _) = next_sip(&phone, "INVITE ", &mut seen);
    assert!(
        inv.contains("a=rtcp-mux") && !inv.contains("a=rtcp:"),
        "{inv}"
    );
    let r = relay_of(&pbx, "natmux");
    assert_eq!(r["rtcp-mux"], true);
    assert!(r.get("caller-rtcp-port").is_none(), "{r}");
    assert_state_valid(&pbx, &pbx.state());

    // CRLF keepalives reach the phone every 5 s.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut crlf = seen.iter().filter(|m| m.as_str() == "\r\n\r\n").count();
    while crlf < 2 && Instant::now() < deadline {
        if let Ok((n, _)) = phone.recv_from(&mut buf) {
            crlf += usize::from(&buf[..n] == b"\r\n\r\n");
        }
    }
    assert!(crlf >= 2, "CRLF keepalives seen: {crlf}");
}

#[test]
fn policies_bounds_and_bad_input() {
    // Plain loopback: "NATed" is told from a Via that is not the source.
    let port = free_port();
    let pbx = Pbx::start(
        &pbx_config(port, "\toption nat_media_relay 'always'\n"),
        port,
    );
    let phone = sock("127.0.0.1:0");
    let me = phone.local_addr().unwrap().to_string();
    assert!(register_as(&phone, port, &me).starts_with("SIP/2.0 200 "));
    assert_eq!(nat_state(&pbx)["nated-registrations"], 0);
    let mut seen = Vec::new();
    let caller = sock("127.0.0.1:0");
    let mut buf = [0u8; 2048];

    // Malformed SDP: a clear 488, nothing opened, nothing forwarded.
    let bad = "v=0\r\nc=IN IP4 nowhere\r\nm=audio x RTP/AVP 0\r\n";
    caller
        .send_to(
            invite("natbad", &caller, bad).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (r, _) = next_sip(&caller, "SIP/2.0 488", &mut seen);
    assert!(r.contains("Malformed SDP"), "{r}");
    assert_eq!(nat_state(&pbx)["relays-open"], 0);
    assert!(
        phone.recv_from(&mut buf).is_err(),
        "the phone got the bad INVITE"
    );

    // always: a call between phones not behind a NAT is anchored too.
    let offer = sdp("127.0.0.1", 4000, None, "");
    caller
        .send_to(
            invite("natalways", &caller, &offer).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (inv, _) = next_sip(&phone, "INVITE ", &mut seen);
    assert!((RTP_MIN..=RTP_MAX).contains(&sdp_port(&inv)), "{inv}");
    assert_eq!(relay_of(&pbx, "natalways")["nated"], false);

    // A flood of INVITEs cannot open more relays than the range holds (4).
    let mut refused = 0;
    for i in 0..8 {
        let c = sock("127.0.0.1:0");
        c.send_to(
            invite(&format!("natflood{i}"), &c, &offer).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let Ok((n, _)) = c.recv_from(&mut buf) else {
                continue;
            };
            let m = String::from_utf8_lossy(&buf[..n]);
            if m.starts_with("SIP/2.0 503") {
                assert!(m.contains("Media Relay Full"), "{m}");
                refused += 1;
                break;
            }
            if m.starts_with("SIP/2.0 100") {
                // Forwarded: the phone rings (it never answers).
                continue;
            }
        }
    }
    assert_eq!(
        refused, 5,
        "one call up and three flooded ones fill the four relays"
    );
    let ns = nat_state(&pbx);
    assert_eq!(ns["relays-open"], 4, "{ns}");
    assert_eq!(ns["relays-refused"], "5", "{ns}");
    assert!(options_answered(port), "the daemon stopped answering");

    // A forged REGISTER (no credentials, Via and Contact of a stranger) changes no binding.
    let stranger = sock("127.0.0.3:0");
    let forged = "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.66:5060;branch=z9hG4bKforged;rport\r\nFrom: <sip:100@besip.test>;tag=f\r\nTo: <sip:100@besip.test>\r\nCall-ID: forged@x\r\nCSeq: 1 REGISTER\r\nContact: <sip:100@127.0.0.3:5060>\r\nExpires: 300\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    stranger
        .send_to(forged.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (r, _) = next_sip(&stranger, "SIP/2.0 ", &mut seen);
    assert!(r.starts_with("SIP/2.0 401 "), "{r}");
    let regs = pbx.registrations();
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert!(regs[0].1.contains(&me), "{regs:?}");
    assert_eq!(nat_state(&pbx)["nated-registrations"], 0);
    assert_state_valid(&pbx, &pbx.state());
}

#[test]
fn policy_never_leaves_sdp_alone() {
    let port = free_port();
    let pbx = Pbx::start(
        &pbx_config(port, "\toption nat_media_relay 'never'\n"),
        port,
    );
    let phone = sock("127.0.0.1:0");
    // A NATed-looking phone (its Via names another address than the source).
    assert!(register_behind_nat(&phone, port).starts_with("SIP/2.0 200 "));
    assert_eq!(nat_state(&pbx)["nated-registrations"], 1);
    let mut seen = Vec::new();
    let caller = sock("127.0.0.1:0");
    let offer = sdp("127.0.0.1", 4000, None, "");
    caller
        .send_to(
            invite("natnever", &caller, &offer).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    let (inv, _) = next_sip(&phone, "INVITE ", &mut seen);
    assert_eq!(sdp_port(&inv), 4000, "{inv}");
    assert_eq!(nat_state(&pbx)["relays-open"], 0);
}

/// Polls nat-state until `relays-open` is `want` (at most `secs` seconds).
fn wait_relays_open(pbx: &Pbx, want: u64, secs: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let ns = nat_state(pbx);
        if ns["relays-open"] == want || Instant::now() > deadline {
            return ns;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cancel_and_media_timeout_close_relays_but_hold_is_exempt() {
    let port = free_port();
    let pbx = Pbx::start(
        &pbx_config(
            port,
            "\toption nat_media_relay 'always'\n\toption nat_media_timeout '2'\n",
        ),
        port,
    );
    let phone = sock("127.0.0.1:0");
    let me = phone.local_addr().unwrap().to_string();
    assert!(register_as(&phone, port, &me).starts_with("SIP/2.0 200 "));
    let mut seen = Vec::new();

    // CANCEL of a ringing call: the 487 closes its relay.
    let caller = sock("127.0.0.1:0");
    let offer = sdp("127.0.0.1", 4000, None, "");
    let inv_text = invite("natcancel", &caller, &offer);
    caller
        .send_to(inv_text.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (inv, _) = next_sip(&phone, "INVITE ", &mut seen);
    phone
        .send_to(
            answer(&inv, "180 Ringing", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    next_sip(&caller, "SIP/2.0 180", &mut seen);
    assert_eq!(nat_state(&pbx)["relays-open"], 1);
    let cancel = inv_text
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = format!("{}\r\n\r\n", cancel.split("\r\n\r\n").next().unwrap())
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}", offer.len()),
            "Content-Length: 0",
        );
    caller
        .send_to(cancel.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (c, _) = next_sip(&phone, "CANCEL ", &mut seen);
    phone
        .send_to(answer(&c, "200 OK", "").as_bytes(), ("127.0.0.1", port))
        .expect("send");
    phone
        .send_to(
            answer(&inv, "487 Request Terminated", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    next_sip(&caller, "SIP/2.0 487", &mut seen);
    let ns = wait_relays_open(&pbx, 0, 2);
    assert_eq!(ns["relays-open"], 0, "{ns}");

    // Two answered calls without media, one of them on hold: only the
    // silent active one is closed by the media timeout.
    for (call, extra) in [("natdead", ""), ("natheld", "a=sendonly\r\n")] {
        let c = sock("127.0.0.1:0");
        let offer = sdp("127.0.0.1", 4000, None, extra);
        c.send_to(invite(call, &c, &offer).as_bytes(), ("127.0.0.1", port))
            .expect("send");
        let (inv, _) = next_sip(&phone, "INVITE ", &mut seen);
        let back = if extra.is_empty() {
            ""
        } else {
            "a=recvonly\r\n"
        };
        phone
            .send_to(
                answer(&inv, "200 OK", &sdp("127.0.0.1", 4002, None, back)).as_bytes(),
                ("127.0.0.1", port),
            )
            .expect("send");
        next_sip(&c, "SIP/2.0 200", &mut seen);
    }
    assert_eq!(nat_state(&pbx)["relays-open"], 2);
    let ns = wait_relays_open(&pbx, 1, 6);
    assert_eq!(ns["relays-open"], 1, "{ns}");
    assert_eq!(ns["media-timeouts"], "1", "{ns}");
    assert_eq!(relay_of(&pbx, "natheld")["on-hold"], true);
}

/// Packets the kernel forwarded for besip-pbxd (its table's counters) and
/// the flow directions in its map; (0, 0) when it has no table.
fn kernel_table(ns: &Netns) -> (u64, usize) {
    let items = nft_list(ns, &["table", "netdev", "besip_relay"]);
    let packets = items
        .iter()
        .filter_map(|i| i.get("counter"))
        .filter_map(|c| c["packets"].as_u64())
        .sum();
    let flows = items
        .iter()
        .filter_map(|i| i.get("map"))
        .map(|m| m["elem"].as_array().map_or(0, Vec::len))
        .sum();
    (packets, flows)
}

/// The items of `nft -j list <what>` in `ns`; none when nft lists nothing
/// (no such table, chain or map).
fn nft_list(ns: &Netns, what: &[&str]) -> Vec<serde_json::Value> {
    let out = ns.run(&[&["nft", "-j", "list"], what].concat());
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|json| json["nftables"].as_array().cloned())
        .unwrap_or_default()
}

/// Sends RTP packets `seqs` each way, phone first, each one received at
/// the other end from the relay's port facing it (on the box's loopback
/// address of the phones' family).
fn exchange(
    phone_rtp: &UdpSocket,
    caller_rtp: &UdpSocket,
    relay: (u16, u16),
    seqs: std::ops::Range<u16>,
) {
    let (relay_a, relay_b) = relay;
    let host = box_ip(phone_rtp);
    let mut buf = [0u8; 512];
    for seq in seqs {
        phone_rtp.send_to(&rtp(seq), (host, relay_b)).expect("send");
        let (n, src) = caller_rtp
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("phone's packet {seq} not relayed: {e}"));
        assert_eq!((n, src), (172, SocketAddr::new(host, relay_a)));
        caller_rtp
            .send_to(&rtp(seq), (host, relay_a))
            .expect("send");
        let (n, src) = phone_rtp
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("caller's packet {seq} not relayed: {e}"));
        assert_eq!((n, src.port()), (172, relay_b));
    }
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Exchanges audio from sequence number `next` until the relay says the
/// call "kfwd" is in the kernel's hands; returns the next sequence number.
fn into_kernel(
    pbx: &Pbx,
    phone_rtp: &UdpSocket,
    caller_rtp: &UdpSocket,
    relay: (u16, u16),
    mut next: u16,
) -> u16 {
    wait_for("the call in the kernel", 10, || {
        exchange(phone_rtp, caller_rtp, relay, next..next + 10);
        next += 10;
        relay_of(pbx, "kfwd")["kernel-forwarded"] == true
    });
    next
}

/// Exchanges 50 packets each way from `next`, every one forwarded by the
/// kernel (its counters grow by exactly 100), and waits until the state's
/// packets-relayed counts all sent since 1 (the kernel's counters are read
/// every 10 s); returns the next sequence number.
fn fifty_through_the_kernel(
    ns: &Netns,
    pbx: &Pbx,
    phone_rtp: &UdpSocket,
    caller_rtp: &UdpSocket,
    relay: (u16, u16),
    next: u16,
) -> u16 {
    let (before, _) = kernel_table(ns);
    exchange(phone_rtp, caller_rtp, relay, next..next + 50);
    assert_eq!(
        kernel_table(ns).0,
        before + 100,
        "the kernel forwarded both directions"
    );
    let sent = 2 * u64::from(next + 49);
    wait_for("packets-relayed with the kernel's", 15, || {
        relay_of(pbx, "kfwd")["packets-relayed"] == sent.to_string()
    });
    next + 50
}

/// A call "kfwd" through the proxy with kernel forwarding on, in a
/// namespace of its own entered by this thread: a phone seen as NATed
/// (private Contact and SDP) called by 127.0.0.1; None (skipped) without
/// root or nft.
struct KernelCall {
    ns: Netns,
    pbx: Pbx,
    phone: UdpSocket,
    caller: UdpSocket,
    caller_rtp: UdpSocket,
    phone_rtp: UdpSocket,
    c_rtp: u16,
    relay: (u16, u16),
    d: Dialog,
    seen: Vec<String>,
}

/// A namespace of its own, entered by this thread, for a kernel
/// forwarding test; None (skipped) without root or nft.
fn kernel_namespace(tag: &str) -> Option<Netns> {
    if !tools_present(&["ip", "nft"]) || !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP: needs root, ip and nft");
        return None;
    }
    let ns = Netns::new(tag);
    ns.enter_thread();
    Some(ns)
}

/// `caller` calls 100 (call "kfwd") through the PBX at `port` on its
/// loopback address, offering `offer`; the phone answers with `answer_sdp`
/// and the caller ACKs. The relay's ports (facing the caller, facing the
/// phone) and the caller's dialog.
fn call_100(
    port: u16,
    caller: &UdpSocket,
    offer: &str,
    phone: &UdpSocket,
    answer_sdp: &str,
    seen: &mut Vec<String>,
) -> ((u16, u16), Dialog) {
    let pbx = (box_ip(caller), port);
    caller
        .send_to(invite("kfwd", caller, offer).as_bytes(), pbx)
        .expect("send");
    let (inv, _) = next_sip(phone, "INVITE ", seen);
    let relay_b = sdp_port(&inv);
    phone
        .send_to(answer(&inv, "200 OK", answer_sdp).as_bytes(), pbx)
        .expect("send");
    let (ok, _) = next_sip(caller, "SIP/2.0 200", seen);
    let relay_a = sdp_port(&ok);
    let d = dialog_of("kfwd", &ok, caller);
    caller
        .send_to(in_dialog("ACK", 1, &d, "").as_bytes(), pbx)
        .expect("send");
    ((relay_a, relay_b), d)
}

fn kernel_call(tag: &str, extra: &str) -> Option<KernelCall> {
    let ns = kernel_namespace(tag)?;
    let port = free_port();
    let pbx = Pbx::start(
        &pbx_config(
            port,
            &format!("\toption rtp_kernel_forwarding '1'\n{extra}"),
        ),
        port,
    );
    let phone = sock("127.0.0.10:0");
    assert!(register_behind_nat(&phone, port).starts_with("SIP/2.0 200 "));
    let mut seen = Vec::new();
    let caller = sock("127.0.0.1:0");
    let caller_rtp = sock("127.0.0.1:0");
    let phone_rtp = sock("127.0.0.10:0");
    let c_rtp = caller_rtp.local_addr().unwrap().port();
    let (relay, d) = call_100(
        port,
        &caller,
        &sdp("127.0.0.1", c_rtp, None, ""),
        &phone,
        &sdp("192.168.1.10", 4000, None, ""),
        &mut seen,
    );
    Some(KernelCall {
        ns,
        pbx,
        phone,
        caller,
        caller_rtp,
        phone_rtp,
        c_rtp,
        relay,
        d,
        seen,
    })
}

/// /pbx/rtp/kernel-forwarding, in a namespace of its own, for a phone seen
/// as NATed (private Contact and SDP, its media source learnt): once both
/// phones are latched, the call's RTP goes to the kernel (the table's
/// counters grow, audio still flows both ways from the relay's ports), a
/// stranger still gets nothing, a re-INVITE takes the call back to the
/// relay's sockets (audio goes on), and BYE leaves no rule behind: nothing
/// is relayed after it. (No iptables NAT here, unlike the tests above: on
/// lo a packet keeps the conntrack entry of its first pass, and a NAT on
/// the box itself would rewrite the forwarded packet again.)
#[test]
fn kernel_forwarding_takes_latched_media_off_the_relay_and_gives_it_back() {
    let Some(KernelCall {
        ns,
        pbx,
        phone,
        caller,
        caller_rtp,
        phone_rtp,
        c_rtp,
        relay,
        d,
        mut seen,
    }) = kernel_call("kfwd", "")
    else {
        return;
    };
    let (relay_a, relay_b) = relay;
    let port = pbx.port;

    // The first packets pass the relay's sockets; then the kernel takes the
    // call (once forwarding is on: the daemon sets its table up as it starts).
    let mut next = into_kernel(&pbx, &phone_rtp, &caller_rtp, relay, 1);
    assert_eq!(
        kernel_table(&ns).1,
        2,
        "both directions in the kernel's map"
    );
    next = fifty_through_the_kernel(&ns, &pbx, &phone_rtp, &caller_rtp, relay, next);
    let (forwarded, _) = kernel_table(&ns);

    // A stranger spraying the ports is still neither relayed nor answered.
    stranger_gets_nothing(&[relay_a, relay_b], &caller_rtp, &phone_rtp);
    let mut buf = [0u8; 512];
    assert_eq!(relay_of(&pbx, "kfwd")["packets-dropped"], "10");
    assert_eq!(
        kernel_table(&ns).0,
        forwarded,
        "the kernel forwarded no stranger"
    );

    // A re-INVITE (hold) takes the call back; audio goes on through the sockets.
    let reinvite = in_dialog(
        "INVITE",
        2,
        &d,
        &sdp("127.0.0.1", c_rtp, None, "a=sendonly\r\n"),
    );
    caller
        .send_to(reinvite.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (got, _) = next_sip(&phone, "INVITE ", &mut seen);
    phone
        .send_to(
            answer(
                &got,
                "200 OK",
                &sdp("192.168.1.10", 4000, None, "a=recvonly\r\n"),
            )
            .as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    next_sip(&caller, "SIP/2.0 200", &mut seen);
    caller
        .send_to(in_dialog("ACK", 2, &d, "").as_bytes(), ("127.0.0.1", port))
        .expect("send");
    wait_for("the call back from the kernel", 5, || {
        kernel_table(&ns).1 == 0 && relay_of(&pbx, "kfwd")["kernel-forwarded"] == false
    });
    exchange(&phone_rtp, &caller_rtp, relay, next..next + 10);
    next += 10;
    assert_eq!(kernel_table(&ns), (0, 0), "nothing in the kernel's hands");
    assert_state_valid(&pbx, &pbx.state());

    // Handed over again, then BYE: no rule is left, nothing is relayed.
    wait_for("the call in the kernel again", 10, || {
        exchange(&phone_rtp, &caller_rtp, relay, next..next + 10);
        next += 10;
        kernel_table(&ns).1 == 2
    });
    let bye = in_dialog("BYE", 3, &d, "");
    caller
        .send_to(bye.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let (got, _) = next_sip(&phone, "BYE ", &mut seen);
    phone
        .send_to(answer(&got, "200 OK", "").as_bytes(), ("127.0.0.1", port))
        .expect("send");
    wait_for("no flow left in the kernel", 5, || kernel_table(&ns).1 == 0);
    phone_rtp
        .send_to(&rtp(300), ("127.0.0.1", relay_b))
        .expect("send");
    caller_rtp
        .send_to(&rtp(300), ("127.0.0.1", relay_a))
        .expect("send");
    assert!(
        caller_rtp.recv_from(&mut buf).is_err(),
        "relayed to the caller after BYE"
    );
    assert!(
        phone_rtp.recv_from(&mut buf).is_err(),
        "relayed to the phone after BYE"
    );
}

/// The leaf switched mid-call: off takes the call's flows back to the
/// relay's sockets (the table goes, and what the kernel forwarded up to then
/// still counts in packets-relayed), on hands them to the kernel anew.
#[test]
fn kernel_forwarding_follows_the_leaf_switched_off_and_on_mid_call() {
    let Some(KernelCall {
        ns,
        pbx,
        caller_rtp,
        phone_rtp,
        relay,
        ..
    }) = kernel_call("kleaf", "")
    else {
        return;
    };
    let port = pbx.port;
    let relayed = || relay_of(&pbx, "kfwd")["packets-relayed"].clone();
    let mut next = into_kernel(&pbx, &phone_rtp, &caller_rtp, relay, 1);
    exchange(&phone_rtp, &caller_rtp, relay, next..next + 50);
    next += 50;
    assert!(kernel_table(&ns).0 >= 100, "the kernel forwarded the call");

    pbx.reload(&pbx_config(port, ""))
        .expect("reload: forwarding off");
    wait_for("the table gone", 5, || kernel_table(&ns) == (0, 0));
    assert_eq!(relay_of(&pbx, "kfwd")["kernel-forwarded"], false);
    exchange(&phone_rtp, &caller_rtp, relay, next..next + 50);
    next += 50;
    assert_eq!(relayed(), (2 * u64::from(next - 1)).to_string());

    pbx.reload(&pbx_config(port, "\toption rtp_kernel_forwarding '1'\n"))
        .expect("reload: forwarding on");
    wait_for("the call in the kernel again", 10, || {
        exchange(&phone_rtp, &caller_rtp, relay, next..next + 10);
        next += 10;
        kernel_table(&ns).1 == 2 && relay_of(&pbx, "kfwd")["kernel-forwarded"] == true
    });
    fifty_through_the_kernel(&ns, &pbx, &phone_rtp, &caller_rtp, relay, next);
}

/// The media timeout (5 s here) sees the kernel's counters: a call the
/// kernel forwards lives on past it while media flows (the counters are read
/// only every 10 s), and is closed once media stops (within the timeout and
/// one reading), its rules with it.
#[test]
fn media_timeout_sees_kernel_forwarded_media() {
    let Some(KernelCall {
        ns,
        pbx,
        caller_rtp,
        phone_rtp,
        relay,
        ..
    }) = kernel_call("kfwdtimeout", "\toption nat_media_timeout '5'\n")
    else {
        return;
    };
    let next = into_kernel(&pbx, &phone_rtp, &caller_rtp, relay, 1);
    // 14 s of media at 50 packets/s each way, all through the kernel.
    let (before, _) = kernel_table(&ns);
    let start = Instant::now();
    for seq in next.. {
        if start.elapsed() >= Duration::from_secs(14) {
            break;
        }
        exchange(&phone_rtp, &caller_rtp, relay, seq..seq + 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        kernel_table(&ns).0 >= before + 1000,
        "media went through the kernel"
    );
    assert_eq!(
        nat_state(&pbx)["relays-open"],
        1,
        "a live call was timed out"
    );
    // Silence: closed within the timeout and one reading, rules gone.
    wait_for("the silent call closed", 25, || {
        nat_state(&pbx)["relays-open"] == 0
    });
    assert_eq!(nat_state(&pbx)["media-timeouts"], "1");
    wait_for("no flow left in the kernel", 5, || kernel_table(&ns).1 == 0);
}

/// Elements of the kernel table's map `map` (`flows`: IPv4, `flows6`: IPv6).
fn map_elements(ns: &Netns, map: &str) -> usize {
    nft_list(ns, &["map", "netdev", "besip_relay", map])
        .iter()
        .filter_map(|i| i["map"]["elem"].as_array())
        .map(Vec::len)
        .sum()
}

/// An IPv6 call goes to the kernel too, through its own map: phone 100
/// registered from [::1] is called from [::1] with media always relayed
/// (nothing is NATed on IPv6); once both are latched the kernel forwards
/// both directions (the flows6 map, its counters), and BYE leaves no rule.
#[test]
fn kernel_forwarding_of_an_ipv6_call() {
    let Some(ns) = kernel_namespace("kfwd6") else {
        return;
    };
    let port = free_port();
    let uci = pbx_config(
        port,
        "\toption rtp_kernel_forwarding '1'\n\toption nat_media_relay 'always'\n",
    ) + &format!(
        "config listen 'listen_udp6'\n\toption name 'udp6'\n\toption transport 'udp'\n\toption address '::1'\n\toption port '{port}'\n\n"
    );
    let pbx = Pbx::start(&uci, port);
    let phone = sock("[::1]:0");
    let me = phone.local_addr().expect("addr").to_string();
    let registered = register_as(&phone, port, &me);
    assert!(registered.starts_with("SIP/2.0 200 "), "{registered}");

    let mut seen = Vec::new();
    let caller = sock("[::1]:0");
    let caller_rtp = sock("[::1]:0");
    let phone_rtp = sock("[::1]:0");
    let rtp_port = |s: &UdpSocket| s.local_addr().expect("addr").port();
    let (relay, d) = call_100(
        port,
        &caller,
        &sdp("::1", rtp_port(&caller_rtp), None, ""),
        &phone,
        &sdp("::1", rtp_port(&phone_rtp), None, ""),
        &mut seen,
    );

    let next = into_kernel(&pbx, &phone_rtp, &caller_rtp, relay, 1);
    assert_eq!(
        (map_elements(&ns, "flows6"), map_elements(&ns, "flows")),
        (2, 0),
        "both directions in the IPv6 map"
    );
    fifty_through_the_kernel(&ns, &pbx, &phone_rtp, &caller_rtp, relay, next);

    caller
        .send_to(in_dialog("BYE", 2, &d, "").as_bytes(), ("::1", port))
        .expect("send");
    let (got, _) = next_sip(&phone, "BYE ", &mut seen);
    phone
        .send_to(answer(&got, "200 OK", "").as_bytes(), ("::1", port))
        .expect("send");
    wait_for("no flow left in the kernel", 5, || kernel_table(&ns).1 == 0);
}

/// Waits until the phone (127.0.0.10) is in the guard's ingress set.
fn wait_banned_at_ingress(ns: &Netns, guard: &SecDaemon, set: &str) {
    harness::wait_for(
        10,
        || {
            format!(
                "the phone not banned at ingress; besip-secd:\n{}\n{:?}",
                guard.log(),
                guard.call("state", serde_json::json!({}))
            )
        },
        || banned_at_ingress(ns, set, "127.0.0.10").then_some(()),
    );
}

/// REGISTERs numbered `seqs` from `flooder` to the guard's SIP port, 20 ms
/// apart (as a flood tool paces them; its "register" rule: 50 in 5 s).
fn flood_from(flooder: &UdpSocket, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        let msg = register("flood", "127.0.0.10:5999", seq, "flooder");
        flooder
            .send_to(msg.as_bytes(), ("127.0.0.1", 5060))
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Packets the guard's ingress chains of table `set` dropped so far.
fn dropped_by_guard(ns: &Netns, set: &str) -> u64 {
    nft_list(ns, &["chain", "netdev", set, "banned"])
        .iter()
        .filter_map(|i| i["rule"]["expr"].as_array())
        .flatten()
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum()
}

/// The phone's address is in the guard's ingress set `set` (v4).
fn banned_at_ingress(ns: &Netns, set: &str, address: &str) -> bool {
    ns.run_text(&["nft", "list", "set", "netdev", set, "v4"])
        .contains(address)
}

/// A party besip-secd bans mid-call loses its kernel-forwarded media as it
/// would in userspace. With the PBX's kernel forwarding on, the guard
/// (nftables, reading besip_pbx) keeps its bans at netdev ingress too,
/// ahead of the PBX's chains: the banned phone's RTP is dropped there (the
/// kernel's flow counters stand still, the caller hears nothing), what the
/// caller sends still reaches the phone (a `sip` ban drops only what comes
/// from the banned source), and once the ban is lifted the phone's RTP is
/// forwarded again.
#[test]
fn a_ban_stops_the_kernel_forwarded_media_of_the_banned_party() {
    let Some(KernelCall {
        ns,
        pbx,
        caller_rtp,
        phone_rtp,
        relay,
        ..
    }) = kernel_call("kban", "")
    else {
        return;
    };
    let set = "besipkban";
    let guard_root = TempRoot::new();
    write_config(&guard_root, "nftables", set, "");
    std::fs::write(
        guard_root.path().join("etc/config/besip_pbx"),
        pbx_config(pbx.port, "\toption rtp_kernel_forwarding '1'\n"),
    )
    .expect("write besip_pbx");
    let guard = SecDaemon::start(&ns, &guard_root);
    let mut next = into_kernel(&pbx, &phone_rtp, &caller_rtp, relay, 1);
    next = fifty_through_the_kernel(&ns, &pbx, &phone_rtp, &caller_rtp, relay, next);

    // The phone's address floods REGISTERs: the guard's rule bans it.
    let flooder = sock("127.0.0.10:0");
    flood_from(&flooder, 0..60);
    wait_banned_at_ingress(&ns, &guard, set);
    let host = box_ip(&phone_rtp);
    let (relay_a, relay_b) = relay;
    let (forwarded, flows) = kernel_table(&ns);
    assert_eq!(flows, 2, "the call is still the kernel's");
    let mut buf = [0u8; 512];
    let dropped_before = dropped_by_guard(&ns, set);
    for seq in next..next + 20 {
        phone_rtp.send_to(&rtp(seq), (host, relay_b)).expect("send");
    }
    assert!(
        caller_rtp.recv_from(&mut buf).is_err(),
        "the banned phone's RTP reached the caller"
    );
    assert_eq!(
        kernel_table(&ns).0,
        forwarded,
        "the kernel forwarded the banned phone's RTP"
    );
    assert_eq!(
        dropped_by_guard(&ns, set),
        dropped_before + 20,
        "dropped by the guard's ingress chain"
    );
    // Towards the banned phone the call goes on.
    for seq in next..next + 10 {
        caller_rtp
            .send_to(&rtp(seq), (host, relay_a))
            .expect("send");
        phone_rtp
            .recv_from(&mut buf)
            .expect("the caller's RTP reaches the phone");
    }
    next += 20;

    // Lifted: the phone's RTP is forwarded again.
    guard
        .call(
            "rpc",
            serde_json::json!({"name": "besip-security:unban", "input": {"address": "127.0.0.10"}}),
        )
        .expect("unban");
    assert!(
        !banned_at_ingress(&ns, set, "127.0.0.10"),
        "{}",
        guard.log()
    );
    let (before, _) = kernel_table(&ns);
    exchange(&phone_rtp, &caller_rtp, relay, next..next + 50);
    assert_eq!(kernel_table(&ns).0, before + 100, "forwarded again");

    // Banned again; the PBX's forwarding switched off: the guard's
    // ingress table goes (within its 5 s re-reading of besip_pbx). On
    // again: the table is back, holding the ban made meanwhile.
    flood_from(&flooder, 100..160);
    wait_banned_at_ingress(&ns, &guard, set);
    let besip_pbx = guard_root.path().join("etc/config/besip_pbx");
    std::fs::write(&besip_pbx, pbx_config(pbx.port, "")).expect("write besip_pbx");
    wait_for("the ingress table gone", 15, || {
        !ns.run(&["nft", "list", "table", "netdev", set])
            .status
            .success()
    });
    std::fs::write(
        &besip_pbx,
        pbx_config(pbx.port, "\toption rtp_kernel_forwarding '1'\n"),
    )
    .expect("write besip_pbx");
    wait_for("the ban kept at ingress again", 15, || {
        banned_at_ingress(&ns, set, "127.0.0.10")
    });
}
