//! Issue 16's NAT demo with real user agents, in proxy and in B2BUA mode:
//! in a network namespace of its own (deleted on drop) the PBX listens on
//! 127.0.0.1; phone A (baresip, extension 100) knows only its private
//! address 127.0.0.10, which iptables SNATs to 127.0.0.20 (other ports),
//! and the NAT lets in nothing A did not start; phone B (baresip, 101) on
//! the box's side at 127.0.0.30 is not NATed. Both register with digest
//! auth, A calls B, each plays its own tone (A 440 Hz, B 1000 Hz): each
//! decodes the other's tone (its recording), and the RTP reaching each
//! phone comes from the relay named in the SDP and carries that tone (a
//! tap on lo); /pbx/nat-state shows the call anchored, each end latched
//! where its packets come from, packets relayed. A holds (re-INVITE
//! sendonly) and resumes: the tones flow again and the counters grow. A
//! hangs up: both phones see the call closed, the PBX has no call or relay
//! left.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use besip_tests::baresip::{
    dominant_frequency, have_baresip, messages, rms, write_tone_wav, Baresip, PhoneConfig,
};
use besip_tests::harness::wait_for;
use besip_tests::pbx::office::assert_cdr_pairs;
use besip_tests::pbx::*;
use besip_tests::rtp_tap::{pcmu_samples, RtpPacket, RtpTap};
use besip_tests::security::{tools_present, Netns};

const RELAY_MIN: u16 = 32400;
const RELAY_MAX: u16 = 32419;
/// baresip binds RTP to the wildcard address: the NAT tells A's media (and
/// B's, pinned to B's address) by these source ports.
const A_RTP: (u16, u16) = (20000, 20009);
const B_RTP: (u16, u16) = (20100, 20109);
const C_RTP: (u16, u16) = (20200, 20209);
const A_PRIVATE: &str = "127.0.0.10";
const A_PUBLIC: &str = "127.0.0.20";
const B_ADDRESS: &str = "127.0.0.30";
/// Phone C (102), inside like B: the transfer target.
const C_ADDRESS: &str = "127.0.0.40";
const A_TONE: f64 = 440.0;
const B_TONE: f64 = 1000.0;
const C_TONE: f64 = 700.0;
const RATE: u32 = 8000;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Proxy,
    B2bua,
}

#[test]
fn natted_baresip_calls_through_the_proxy() {
    call_hold_resume_hangup(Mode::Proxy);
}

#[test]
fn natted_baresip_calls_through_the_b2bua() {
    call_hold_resume_hangup(Mode::B2bua);
}

#[test]
fn natted_baresip_call_is_transferred_by_the_b2bua_with_its_media_relayed() {
    transfer_of_a_relayed_call();
}

/// The namespace with the NAT, entered by this thread (the PBX and the
/// phones it starts live there); None (after a SKIP line) when not possible.
fn natted_namespace(tag: &str) -> Option<Netns> {
    if !tools_present(&["ip", "iptables"]) || !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP: needs root, ip and iptables");
        return None;
    }
    if !have_baresip() {
        eprintln!("SKIP: baresip not installed (scripts/install-deps installs baresip-core)");
        return None;
    }
    let ns = Netns::new(tag);
    let (a_rtp, b_rtp) = (
        format!("{}:{}", A_RTP.0, A_RTP.1),
        format!("{}:{}", B_RTP.0, B_RTP.1),
    );
    let c_rtp = format!("{}:{}", C_RTP.0, C_RTP.1);
    let a_public = format!("{A_PUBLIC}:41000-41999");
    let rules = [
        // A's signalling and media leave from its public address.
        format!("-t nat -A POSTROUTING -p udp -s {A_PRIVATE} -j SNAT --to-source {a_public}"),
        format!("-t nat -A POSTROUTING -p udp --sport {a_rtp} -j SNAT --to-source {a_public}"),
        // B's media leaves from B's address, as from a host with one
        // address; what is sent to it is not tracked, so an early packet of
        // the relay cannot make the SNAT pick another port.
        format!("-t nat -A POSTROUTING -p udp --sport {b_rtp} -j SNAT --to-source {B_ADDRESS}"),
        format!("-t raw -A OUTPUT -p udp -d {B_ADDRESS} --dport {b_rtp} -j NOTRACK"),
        // C likewise.
        format!("-t nat -A POSTROUTING -p udp --sport {c_rtp} -j SNAT --to-source {C_ADDRESS}"),
        format!("-t raw -A OUTPUT -p udp -d {C_ADDRESS} --dport {c_rtp} -j NOTRACK"),
        // Nothing reaches A that A did not start (answers through the NAT pass).
        format!(
            "-A INPUT -p udp -d {A_PRIVATE} ! -s {A_PRIVATE} -m conntrack --ctstate NEW -j DROP"
        ),
        format!("-A INPUT -p udp --dport {a_rtp} -m conntrack --ctstate NEW -j DROP"),
    ];
    for rule in &rules {
        let args: Vec<&str> = std::iter::once("iptables")
            .chain(rule.split_whitespace())
            .collect();
        let out = ns.run(&args);
        assert!(out.status.success(), "iptables {rule}: {out:?}");
    }
    ns.enter_thread();
    Some(ns)
}

fn pbx_config(mode: Mode, port: u16) -> String {
    let relay =
        format!("\toption rtp_port_min '{RELAY_MIN}'\n\toption rtp_port_max '{RELAY_MAX}'\n");
    match mode {
        Mode::Proxy => config(port, &relay),
        // The box and B are inside; A's public address is outside.
        Mode::B2bua => config(
            port,
            &format!("{relay}\toption nat_external_address '127.0.0.1'\n\tlist nat_local_network '127.0.0.1/32'\n\tlist nat_local_network '{B_ADDRESS}/32'\n\tlist nat_local_network '{C_ADDRESS}/32'\n"),
        )
        .replace("\toption mode 'proxy'\n", "\toption mode 'b2bua'\n"),
    }
}

/// A phone registering `user` to the PBX from `address`, playing `tone`.
fn phone(user: u16, address: &str, rtp: (u16, u16), tone: &Path, pbx_port: u16) -> Baresip {
    let mut config = PhoneConfig::new(
        format!("<sip:{user}@besip.test>;auth_pass=pw{user};outbound=\"sip:127.0.0.1:{pbx_port}\";regint=300;audio_codecs=PCMU"),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    config.sip_listen = format!("{address}:5070");
    config.address = Some(address.into());
    config.rtp_ports = Some(rtp);
    config.audio_source = format!("aufile,{}", tone.display());
    config.audio_format = (RATE, 1);
    config.record = true;
    Baresip::start(&config)
}

fn nat_state(pbx: &Pbx) -> serde_json::Value {
    pbx.state()["besip-pbx:pbx"]["nat-state"].clone()
}

/// The SDP bodies of the INVITEs and 200s `phone` received from the PBX at `pbx`.
fn sdp_received(phone: &Baresip, pbx: &str) -> Vec<String> {
    messages(&phone.trace())
        .into_iter()
        .filter(|m| m.from == pbx && m.text.contains("\nm=audio "))
        .filter(|m| m.text.starts_with("INVITE ") || m.text.starts_with("SIP/2.0 200"))
        .map(|m| m.text)
        .collect()
}

/// Asserts the last SDP `phone` received names the relay (127.0.0.1, a port
/// of the relay range) and has `direction`.
fn assert_media_on_relay(phone: &Baresip, pbx: &str, direction: &str, who: &str) {
    let bodies = sdp_received(phone, pbx);
    let last = bodies.last().map(String::as_str).unwrap_or("");
    let port: u16 = last
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        last.contains("\nc=IN IP4 127.0.0.1\n") && (RELAY_MIN..=RELAY_MAX).contains(&port),
        "{who} is sent to the relay: {last}"
    );
    assert!(last.contains(direction), "{who} got {direction}: {last}");
}

/// Asserts `phone` decoded `tone` (not silence, not its own) in its first
/// second of audio (sndfile's recording of what it heard).
fn assert_hears(phone: &Baresip, tone: f64, who: &str) {
    let want = RATE as usize;
    let heard = wait_for(
        10,
        || {
            format!(
                "{who} heard {} samples, not {want}:\n{}",
                phone.heard().len(),
                phone.trace()
            )
        },
        || {
            let h = phone.heard();
            (h.len() >= want).then_some(h)
        },
    );
    // The last 200 ms of that second: past the start of the stream.
    assert_tone(&heard[want - 1600..want], tone, who);
}

fn assert_tone(samples: &[i16], tone: f64, who: &str) {
    let freq = dominant_frequency(samples, RATE);
    assert!(
        (freq - tone).abs() <= 10.0 && rms(samples) > 1000.0,
        "{who} gets {tone} Hz: dominant {freq} Hz, rms {}",
        rms(samples)
    );
}

/// Waits until a second of RTP (50 packets) reached the phone on `ports`
/// after the first `after` packets the tap saw, and asserts all came from
/// the relay and the last 200 ms carry `tone`. (The tap sees packets before
/// the firewall: those to A's private address, which the NAT drops, are
/// not counted; what passes the NAT arrives at the address A sent from.)
fn assert_wire_carries(tap: &RtpTap, after: usize, ports: (u16, u16), tone: f64, who: &str) {
    let to_phone = |p: &RtpPacket| {
        (ports.0..=ports.1).contains(&p.to.port()) && p.to.ip().to_string() != A_PRIVATE
    };
    let packets = wait_for(
        10,
        || {
            format!(
                "RTP to {who}: {} packets",
                tap.packets()
                    .iter()
                    .skip(after)
                    .filter(|p| to_phone(p))
                    .count()
            )
        },
        || {
            let p: Vec<RtpPacket> = tap
                .packets()
                .into_iter()
                .skip(after)
                .filter(to_phone)
                .collect();
            (p.len() >= 50).then_some(p)
        },
    );
    for p in &packets {
        assert!(
            p.from.ip().octets() == [127, 0, 0, 1]
                && (RELAY_MIN..=RELAY_MAX).contains(&p.from.port()),
            "RTP to {who} from {} (not the relay)",
            p.from
        );
    }
    assert_tone(&pcmu_samples(&packets[packets.len() - 10..]), tone, who);
}

fn call_hold_resume_hangup(mode: Mode) {
    let tag = if mode == Mode::Proxy {
        "uaproxy"
    } else {
        "uab2b"
    };
    let Some(_ns) = natted_namespace(tag) else {
        return;
    };
    let tones = tempfile::tempdir().expect("tempdir");
    let (a_tone, b_tone) = (tones.path().join("a.wav"), tones.path().join("b.wav"));
    write_tone_wav(&a_tone, A_TONE, 30, RATE);
    write_tone_wav(&b_tone, B_TONE, 30, RATE);

    let port = free_port();
    let pbx_addr = format!("127.0.0.1:{port}");
    let pbx = Pbx::start(&pbx_config(mode, port), port);
    let tap = RtpTap::start(A_RTP.0..=B_RTP.1);
    let a = phone(100, A_PRIVATE, A_RTP, &a_tone, port);
    let b = phone(101, B_ADDRESS, B_RTP, &b_tone, port);
    let regs = wait_for(
        10,
        || {
            format!(
                "registrations: {:?}\nA:\n{}\nB:\n{}",
                pbx.registrations(),
                a.trace(),
                b.trace()
            )
        },
        || {
            let state = pbx.state();
            let regs = state["besip-pbx:pbx"]["registrations"]["registration"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (regs.len() == 2).then_some(regs)
        },
    );
    // A registered from behind the NAT, naming its private address.
    let reg_a = regs
        .iter()
        .find(|r| r["aor"] == "100@besip.test")
        .expect("A's binding");
    assert!(
        reg_a["contact"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("@{A_PRIVATE}:5070"))
            && reg_a["source"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("udp:{A_PUBLIC}:41")),
        "{reg_a}"
    );
    if mode == Mode::Proxy {
        assert_eq!(nat_state(&pbx)["nated-registrations"], 1);
    }

    // A calls B, B answers.
    let (mut ctl_a, mut ctl_b) = (a.control(), b.control());
    let dial = ctl_a.command("dial", "sip:101@besip.test");
    assert_eq!(dial["ok"], true, "{dial}");
    let ring = Duration::from_secs(5);
    ctl_b
        .wait_event("CALL_INCOMING", ring)
        .unwrap_or_else(|| panic!("B is not called:\n{}\nB:\n{}", a.trace(), b.trace()));
    assert_eq!(ctl_b.command("accept", "")["ok"], true);
    for (ctl, who) in [(&mut ctl_a, "A"), (&mut ctl_b, "B")] {
        ctl.wait_event("CALL_ESTABLISHED", ring)
            .unwrap_or_else(|| panic!("{who}: no CALL_ESTABLISHED: {:?}", ctl.events));
    }
    // Each is pointed at the relay, never at the other phone.
    assert_media_on_relay(&a, &pbx_addr, "a=sendrecv", "A");
    assert_media_on_relay(&b, &pbx_addr, "a=sendrecv", "B");
    let private_media = |sdp: &String| {
        sdp.lines()
            .any(|l| (l.starts_with("c=") || l.starts_with("a=rtcp:")) && l.contains(A_PRIVATE))
    };
    assert!(
        !sdp_received(&b, &pbx_addr).iter().any(private_media),
        "A's private media address reached B"
    );

    // Audio both ways: each hears the other's tone.
    assert_hears(&a, B_TONE, "A");
    assert_hears(&b, A_TONE, "B");
    assert_wire_carries(&tap, 0, A_RTP, B_TONE, "A");
    assert_wire_carries(&tap, 0, B_RTP, A_TONE, "B");
    // nat-state: the call anchored, each phone latched at the address its
    // packets come from, packets relayed.
    let ns = nat_state(&pbx);
    let relays = ns["relay"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        (ns["relays-open"].as_u64(), relays.len()),
        (Some(1), 1),
        "{ns}"
    );
    let r = &relays[0];
    assert_eq!(r["nated"], true, "{r}");
    let latched = |side: &str| r[side].as_str().unwrap_or("").to_owned();
    assert!(
        latched("caller-latched").starts_with(&format!("{A_PUBLIC}:41")),
        "A latched at its public address: {r}"
    );
    assert!(
        latched("callee-latched").starts_with(&format!("{B_ADDRESS}:201")),
        "B latched at its address: {r}"
    );
    // Both phones at 50 packets/s for over a second each.
    let relayed_before_hold = counter(r, "packets-relayed");
    assert!(relayed_before_hold >= 100, "{r}");
    assert_state_valid(&pbx, &pbx.state());

    // Hold: A's re-INVITE with sendonly reaches B, B's recvonly reaches A.
    assert_eq!(ctl_a.command("hold", "")["ok"], true);
    wait_for(
        5,
        || format!("no hold answer at A:\n{}", a.trace()),
        || {
            sdp_received(&a, &pbx_addr)
                .last()?
                .contains("a=recvonly")
                .then_some(())
        },
    );
    assert_media_on_relay(&b, &pbx_addr, "a=sendonly", "B on hold");
    assert_media_on_relay(&a, &pbx_addr, "a=recvonly", "A on hold");
    if mode == Mode::Proxy {
        let ns = nat_state(&pbx);
        assert_eq!(ns["relay"][0]["on-hold"], true, "{ns}");
    }

    // Resume: sendrecv again, and the audio comes back both ways.
    assert_eq!(ctl_a.command("resume", "")["ok"], true);
    wait_for(
        5,
        || format!("no resume answer at A:\n{}", a.trace()),
        || {
            sdp_received(&a, &pbx_addr)
                .last()?
                .contains("a=sendrecv")
                .then_some(())
        },
    );
    assert_media_on_relay(&b, &pbx_addr, "a=sendrecv", "B resumed");
    // (baresip 1.0 records nothing after a hold: its decoder's filters
    // are dropped then; the tap shows what reaches the phones.)
    let resumed = tap.packets().len();
    assert_wire_carries(&tap, resumed, A_RTP, B_TONE, "A after resume");
    assert_wire_carries(&tap, resumed, B_RTP, A_TONE, "B after resume");
    let ns = nat_state(&pbx);
    let r = &ns["relay"][0];
    assert!(
        counter(r, "packets-relayed") >= relayed_before_hold + 100,
        "{r}"
    );
    if mode == Mode::Proxy {
        assert_eq!(r["on-hold"], false, "{ns}");
    }

    // A hangs up: both phones see the call closed, the PBX keeps nothing.
    assert_eq!(ctl_a.command("hangup", "")["ok"], true);
    for (ctl, who) in [(&mut ctl_a, "A"), (&mut ctl_b, "B")] {
        ctl.wait_event("CALL_CLOSED", ring)
            .unwrap_or_else(|| panic!("{who}: no CALL_CLOSED: {:?}", ctl.events));
    }
    let state = nothing_left(&pbx);
    assert_state_valid(&pbx, &state);
}

/// The state once the PBX has no call and no relay left.
fn nothing_left(pbx: &Pbx) -> serde_json::Value {
    wait_for(
        5,
        || format!("call or relay left: {}", pbx.state()),
        || {
            let state = pbx.state();
            let pbx_state = &state["besip-pbx:pbx"];
            let calls = pbx_state["calls"]["call"].as_array().map_or(0, Vec::len);
            let relays = pbx_state["nat-state"]["relays-open"].as_u64();
            (calls == 0 && relays == Some(0)).then_some(state)
        },
    )
}

/// A 64-bit counter of the state (an RFC 7951 string).
fn counter(v: &serde_json::Value, name: &str) -> u64 {
    v[name].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Issue 17 on the NAT edge: A (NATed) calls B, B transfers A to C (both
/// inside; baresip's blind REFER). The B2BUA keeps the call on its relay:
/// C takes B's side, A is re-INVITEd to the relay port it already sends to,
/// C hears A's tone and A's phone is sent C's tone, all from the relay; B
/// is out of the call; hangup leaves no call and no relay.
fn transfer_of_a_relayed_call() {
    let Some(_ns) = natted_namespace("uaxfer") else {
        return;
    };
    let tones = tempfile::tempdir().expect("tempdir");
    let wav = |name: &str, tone: f64| {
        let p = tones.path().join(name);
        write_tone_wav(&p, tone, 30, RATE);
        p
    };
    let (a_tone, b_tone, c_tone) = (
        wav("a.wav", A_TONE),
        wav("b.wav", B_TONE),
        wav("c.wav", C_TONE),
    );
    let port = free_port();
    let pbx_addr = format!("127.0.0.1:{port}");
    let pbx = Pbx::start(&pbx_config(Mode::B2bua, port), port);
    let tap = RtpTap::start(A_RTP.0..=C_RTP.1);
    let a = phone(100, A_PRIVATE, A_RTP, &a_tone, port);
    let b = phone(101, B_ADDRESS, B_RTP, &b_tone, port);
    let c = phone(102, C_ADDRESS, C_RTP, &c_tone, port);
    wait_for(
        10,
        || format!("registrations: {:?}", pbx.registrations()),
        || (pbx.registrations().len() == 3).then_some(()),
    );
    let (mut ctl_a, mut ctl_b, mut ctl_c) = (a.control(), b.control(), c.control());
    let ring = Duration::from_secs(5);
    assert_eq!(ctl_a.command("dial", "sip:101@besip.test")["ok"], true);
    ctl_b
        .wait_event("CALL_INCOMING", ring)
        .unwrap_or_else(|| panic!("B is not called:\n{}", b.trace()));
    assert_eq!(ctl_b.command("accept", "")["ok"], true);
    for (ctl, who) in [(&mut ctl_a, "A"), (&mut ctl_b, "B")] {
        ctl.wait_event("CALL_ESTABLISHED", ring)
            .unwrap_or_else(|| panic!("{who}: no CALL_ESTABLISHED: {:?}", ctl.events));
    }
    assert_hears(&b, A_TONE, "B");
    let relay_port = |phone: &Baresip| {
        sdp_received(phone, &pbx_addr)
            .last()
            .and_then(|sdp| {
                sdp.lines()
                    .find_map(|l| l.strip_prefix("m=audio "))
                    .and_then(|m| m.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
            })
            .unwrap_or(0)
    };
    let a_port_before = relay_port(&a);

    // B transfers A to C.
    let t = ctl_b.command("transfer", "sip:102@besip.test");
    assert_eq!(t["ok"], true, "{t}");
    ctl_c
        .wait_event("CALL_INCOMING", ring)
        .unwrap_or_else(|| panic!("C is not called:\nB:\n{}\nC:\n{}", b.trace(), c.trace()));
    assert_eq!(ctl_c.command("accept", "")["ok"], true);
    ctl_c
        .wait_event("CALL_ESTABLISHED", ring)
        .unwrap_or_else(|| panic!("C: no CALL_ESTABLISHED:\n{}", c.trace()));
    ctl_b
        .wait_event("CALL_CLOSED", ring)
        .unwrap_or_else(|| panic!("B still in the call:\n{}", b.trace()));
    // A was re-INVITEd, still to the relay port it sends to.
    wait_for(
        5,
        || format!("A not re-INVITEd:\n{}", a.trace()),
        || (sdp_received(&a, &pbx_addr).len() >= 2).then_some(()),
    );
    assert_media_on_relay(&a, &pbx_addr, "a=sendrecv", "A after the transfer");
    assert_eq!(relay_port(&a), a_port_before, "A's relay port moved");
    // C's answer came in our ACK: the relay, never A's private address.
    let c_in: Vec<String> = messages(&c.trace())
        .into_iter()
        .filter(|m| m.from == pbx_addr && m.text.starts_with("ACK ") && m.text.contains("m=audio"))
        .map(|m| m.text)
        .collect();
    let ack = c_in.last().expect("an ACK with SDP at C");
    assert!(ack.contains("\nc=IN IP4 127.0.0.1\n"), "{ack}");
    assert!(!ack.contains(A_PRIVATE), "{ack}");

    // Audio: C hears A; what reaches each phone comes from the relay.
    assert_hears(&c, A_TONE, "C");
    let after = tap.packets().len();
    assert_wire_carries(&tap, after, A_RTP, C_TONE, "A after the transfer");
    assert_wire_carries(&tap, after, C_RTP, A_TONE, "C");
    let ns = nat_state(&pbx);
    let relays = ns["relay"].as_array().cloned().unwrap_or_default();
    assert_eq!(relays.len(), 1, "{ns}");
    let r = &relays[0];
    let latched = |side: &str| r[side].as_str().unwrap_or("").to_owned();
    assert!(
        latched("caller-latched").starts_with(&format!("{A_PUBLIC}:41")),
        "A latched at its public address: {r}"
    );
    assert!(
        latched("callee-latched").starts_with(&format!("{C_ADDRESS}:202")),
        "C latched at its address: {r}"
    );

    // A hangs up: C's call ends, nothing is left.
    assert_eq!(ctl_a.command("hangup", "")["ok"], true);
    ctl_c
        .wait_event("CALL_CLOSED", ring)
        .unwrap_or_else(|| panic!("C: no CALL_CLOSED: {:?}", ctl_c.events));
    let state = nothing_left(&pbx);
    let list = state["besip-pbx:pbx"]["accounting-state"]["cdr"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_cdr_pairs(
        &list,
        &[
            ("sip:100@besip.test", "sip:101@besip.test"),
            ("sip:100@besip.test", "sip:102@besip.test"),
        ],
    );
    assert_state_valid(&pbx, &state);
}
