//! NAT in B2BUA mode: a caller inside the local network (127.0.0.0/24) calls
//! out through a trunk outside it (127.0.1.5). The provider must see the
//! external address (127.0.0.2) in Contact and SDP, the caller the inside
//! address; media is relayed both ways through ports of the rtp range.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use besip_tests::pbx::*;

const EXTERNAL: &str = "127.0.0.2";
const OUTSIDE: &str = "127.0.1.5";
const RTP_MIN: u16 = 31200;
const RTP_MAX: u16 = 31298;

fn provider(media_port: u16) -> String {
    let sdp = format!(
        "v=0\no=prov 1 1 IN IP4 {OUTSIDE}\ns=-\nc=IN IP4 {OUTSIDE}\nt=0 0\nm=audio {media_port} RTP/AVP 0\na=rtpmap:0 PCMU/8000"
    );
    let answer = uas_reply(
        "200 OK",
        "prov[call_number]",
        &format!("Contact: <sip:prov@{OUTSIDE}:[local_port]>\nContent-Type: application/sdp\n"),
        &sdp,
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

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

/// The received message of a sipp trace that starts with `start`.
fn received(trace: &str, start: &str) -> Option<String> {
    trace
        .split("-----------------------------------------------")
        .filter(|b| b.contains("message received"))
        .filter_map(|b| {
            let from = b.find(start)?;
            Some(b[from..].to_owned())
        })
        .next()
}

/// (address, port) of the c= and m=audio lines of an SDP body.
fn sdp_media(msg: &str) -> (String, u16) {
    let c = msg
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c= in:\n{msg}"));
    let m = msg
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in:\n{msg}"));
    (c.trim().to_owned(), m)
}

/// A call from the inside caller (100) out through the trunk, up and
/// answered; the caller hangs up after `hold_ms`.
struct NatCall {
    pbx: Pbx,
    sipp: Sipp,
    caller: std::process::Child,
    prov: std::process::Child,
    a_media: UdpSocket,
    b_media: UdpSocket,
    /// The 200 the caller got and the INVITE the provider got.
    ok: String,
    invite: String,
}

fn nat_call(hold_ms: u32) -> NatCall {
    let port = free_port();
    let prov_port = free_port();
    // The test plays both media endpoints.
    let a_media = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b_media = UdpSocket::bind((OUTSIDE, 0)).expect("bind 127.0.1.5");
    for s in [&a_media, &b_media] {
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
    }
    let (a_port, b_port) = (
        a_media.local_addr().expect("addr").port(),
        b_media.local_addr().expect("addr").port(),
    );
    let uci = config(port, "")
        .replace("\toption mode 'proxy'\n", "\toption mode 'b2bua'\n")

        .replace(
            "\toption auth_algorithms 'md5'\n",
            &format!("\toption auth_algorithms 'md5'\n\toption nat_external_address '{EXTERNAL}'\n\tlist nat_local_network '127.0.0.0/24'\n\toption rtp_port_min '{RTP_MIN}'\n\toption rtp_port_max '{RTP_MAX}'\n"),
        )
        + &format!("config listen 'listen_ext'\n\toption name 'ext'\n\toption transport 'udp'\n\toption address '{EXTERNAL}'\n\toption port '{port}'\n\n")
        + &format!("config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '{OUTSIDE}'\n\toption port '{prov_port}'\n\n")
        + "config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'prov'\n\n";
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let prov = sipp.spawn("prov", &provider(b_port), prov_port, port, &["-i", OUTSIDE]);
    let caller_scenario = caller_answered("100", "0555")
        .replacen(
            "<pause milliseconds=\"300\"/>",
            &format!("<pause milliseconds=\"{hold_ms}\"/>"),
            1,
        )
        .replace("c=IN IP[media_ip_type] [media_ip]", "c=IN IP4 127.0.0.1")
        .replace("m=audio [media_port]", &format!("m=audio {a_port}"));
    let caller = sipp.spawn(
        "uac",
        &caller_scenario,
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    // The call is up once the caller has its 200 (sipp writes its trace as it goes).
    let deadline = Instant::now() + Duration::from_secs(5);
    let ok = loop {
        if let Some(m) = received(&sipp.messages("uac"), "SIP/2.0 200") {
            if m.contains("m=audio") {
                break m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "caller got no 200:\n{}\n---\n{}",
            sipp.messages("uac"),
            sipp.messages("prov")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let invite = received(&sipp.messages("prov"), "INVITE ").expect("provider got the INVITE");
    NatCall {
        pbx,
        sipp,
        caller,
        prov,
        a_media,
        b_media,
        ok,
        invite,
    }
}

#[test]
fn b2bua_call_to_an_outside_trunk_names_the_external_address_and_relays_media() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let NatCall {
        pbx,
        sipp,
        caller,
        prov,
        a_media,
        b_media,
        ok,
        invite,
    } = nat_call(1500);
    // Outside: the external address in Contact and SDP, a relay port.
    let contact = header(&invite, "Contact").expect("Contact");
    assert!(contact.contains(&format!("@{EXTERNAL}:")), "{contact}");
    let (b_ip, relay_b) = sdp_media(&invite);
    assert_eq!(b_ip, EXTERNAL, "{invite}");
    assert!((RTP_MIN..=RTP_MAX).contains(&relay_b), "{invite}");
    // Inside: our inside address, the other relay port.
    let contact = header(&ok, "Contact").expect("Contact");
    assert!(contact.contains("@127.0.0.1:"), "{contact}");
    let (a_ip, relay_a) = sdp_media(&ok);
    assert_eq!(a_ip, "127.0.0.1", "{ok}");
    assert!((RTP_MIN..=RTP_MAX).contains(&relay_a) && relay_a != relay_b);

    // Media both ways through the relay.
    let mut buf = [0u8; 256];
    a_media
        .send_to(b"rtp-from-caller", ("127.0.0.1", relay_a))
        .expect("send");
    let (n, src) = b_media
        .recv_from(&mut buf)
        .expect("media reached the provider");
    assert_eq!(&buf[..n], b"rtp-from-caller");
    assert_eq!(src.port(), relay_b);
    b_media
        .send_to(b"rtp-from-provider", (EXTERNAL, relay_b))
        .expect("send");
    let (n, src) = a_media
        .recv_from(&mut buf)
        .expect("media reached the caller");
    assert_eq!(&buf[..n], b"rtp-from-provider");
    assert_eq!(src.port(), relay_a);

    let caller = sipp.wait(caller);
    let prov = sipp.wait(prov);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(prov.success, "provider failed:\n{}", prov.log);
    // The relay is gone with the call.
    std::thread::sleep(Duration::from_millis(400));
    a_media
        .send_to(b"late", ("127.0.0.1", relay_a))
        .expect("send");
    b_media
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    assert!(b_media.recv_from(&mut buf).is_err(), "relay still open");
    drop(pbx);
}

/// No audio injection, no RTP bleed: strangers spraying both relay ports
/// during a call (another host, and other ports at each phone's own
/// address once its media flows) reach neither phone and get nothing back;
/// the relay drops and counts their packets while the call's media flows.
#[test]
fn strangers_spraying_the_relay_reach_no_phone_and_hear_nothing() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let call = nat_call(4000);
    let (_, relay_b) = sdp_media(&call.invite);
    let (_, relay_a) = sdp_media(&call.ok);
    let bind = |ip: &str| {
        let s = UdpSocket::bind((ip, 0)).expect("bind stranger");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        s
    };
    let elsewhere = bind("127.0.0.9");
    let near_caller = bind("127.0.0.1");
    let near_provider = bind(OUTSIDE);
    let spray = |s: &UdpSocket| {
        for _ in 0..10 {
            s.send_to(b"injected", ("127.0.0.1", relay_a))
                .expect("send");
            s.send_to(b"injected", (EXTERNAL, relay_b)).expect("send");
        }
    };
    let mut buf = [0u8; 256];
    let mut exchange = |round: &str| {
        let from_caller = format!("caller-{round}");
        call.a_media
            .send_to(from_caller.as_bytes(), ("127.0.0.1", relay_a))
            .expect("send");
        let (n, _) = call
            .b_media
            .recv_from(&mut buf)
            .expect("media reached the provider");
        assert_eq!(
            &buf[..n],
            from_caller.as_bytes(),
            "the provider got another packet first"
        );
        let from_provider = format!("provider-{round}");
        call.b_media
            .send_to(from_provider.as_bytes(), (EXTERNAL, relay_b))
            .expect("send");
        let (n, _) = call
            .a_media
            .recv_from(&mut buf)
            .expect("media reached the caller");
        assert_eq!(
            &buf[..n],
            from_provider.as_bytes(),
            "the caller got another packet first"
        );
    };
    // Before the phones send anything (sources still to be learnt) ...
    spray(&elsewhere);
    exchange("1");
    // ... and once both are heard, from their own addresses too.
    for s in [&elsewhere, &near_caller, &near_provider] {
        spray(s);
    }
    exchange("2");
    for s in [
        &call.a_media,
        &call.b_media,
        &elsewhere,
        &near_caller,
        &near_provider,
    ] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        assert!(
            s.recv_from(&mut buf).is_err(),
            "unexpected packet at {:?}: {:?}",
            s.local_addr(),
            String::from_utf8_lossy(&buf)
        );
    }
    assert!(
        call.pbx.counter("rtp-dropped") >= 80,
        "{}",
        call.pbx.counter("rtp-dropped")
    );
    let caller = call.sipp.wait(call.caller);
    let prov = call.sipp.wait(call.prov);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(prov.success, "provider failed:\n{}", prov.log);
}
