//! Unit tests of the daemon (frames in, bans out; log-only backend).

use super::*;

fn udp_frame(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[10, 0, 0, 1]);
    let ulen = (8 + payload.len()) as u16;
    f.extend_from_slice(&[0x13, 0xc4, 0x13, 0xc4, (ulen >> 8) as u8, ulen as u8, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn tcp_frame(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[
        0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0,
    ]);
    f.extend_from_slice(payload);
    f
}

fn daemon() -> (tempfile::TempDir, Arc<Daemon>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("etc/config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("besip_security"),
        "package besip_security\n\nconfig security 'main'\n\toption firewall_backend 'log-only'\n\toption escalation_factor '3'\n\toption escalation_max_ban_time '50'\n\toption max_tracked_sources '1000'\n\toption max_bans '100'\n\nconfig rule 'rule_o'\n\toption name 'o'\n\toption method 'OPTIONS'\n\toption count '2'\n\toption window '5'\n\toption ban_time '10'\n",
    )
    .unwrap();
    let d = Daemon::start(Layout::new(dir.path())).unwrap();
    (dir, d)
}

fn ban_secs(d: &Daemon, a: &str) -> Option<u64> {
    let e = d.engine.lock();
    e.bans
        .get(&IpNet::from(a.parse::<IpAddr>().unwrap()))
        .map(|b| (b.expires_ms - b.since_ms) / 1000)
}

#[test]
fn udp_and_tcp_frames_ban_and_repeat_offenders_escalate() {
    let (_dir, d) = daemon();
    let opt = b"OPTIONS sip:x SIP/2.0\r\nUser-Agent: t\r\n\r\n";
    for _ in 0..2 {
        d.frame(1, &udp_frame([198, 51, 100, 1], opt));
    }
    assert_eq!(ban_secs(&d, "198.51.100.1"), Some(10));
    // TCP carries SIP too.
    for _ in 0..2 {
        d.frame(1, &tcp_frame([198, 51, 100, 2], opt));
    }
    assert_eq!(ban_secs(&d, "198.51.100.2"), Some(10), "{}", d.state_json());
    // Two requests pipelined in one TCP segment count twice.
    let mut two = opt.to_vec();
    two.extend_from_slice(opt);
    d.frame(1, &tcp_frame([198, 51, 100, 3], &two));
    assert_eq!(ban_secs(&d, "198.51.100.3"), Some(10), "{}", d.state_json());
    // Repeat offence: 10 s * 3 = 30 s, then capped at 50 s.
    d.unban("198.51.100.1".parse().unwrap()).unwrap();
    for _ in 0..2 {
        d.frame(1, &udp_frame([198, 51, 100, 1], opt));
    }
    assert_eq!(ban_secs(&d, "198.51.100.1"), Some(30));
    d.unban("198.51.100.1".parse().unwrap()).unwrap();
    for _ in 0..2 {
        d.frame(1, &udp_frame([198, 51, 100, 1], opt));
    }
    assert_eq!(ban_secs(&d, "198.51.100.1"), Some(50));
    assert!(d.unban("198.51.100.9".parse().unwrap()).is_err());
}

#[test]
fn garbage_is_counted_and_skipped() {
    let (_dir, d) = daemon();
    d.frame(1, &udp_frame([198, 51, 100, 1], b"\x00\x01garbage"));
    d.frame(1, &[0u8; 7]);
    d.frame(999, &[1, 2, 3]);
    let s = d.state_json();
    assert_eq!(s["besip-security:security"]["statistics"]["malformed"], "3");
    assert_eq!(s["besip-security:security"]["bans"]["ban"], json!([]));
}

#[test]
fn bans_survive_a_restart_through_sqlite() {
    let (dir, d) = daemon();
    let opt = b"OPTIONS sip:x SIP/2.0\r\n\r\n";
    d.frame(1, &udp_frame([198, 51, 100, 3], opt));
    d.frame(1, &udp_frame([198, 51, 100, 3], opt));
    drop(d);
    let again = Daemon::start(Layout::new(dir.path())).unwrap();
    assert!(ban_secs(&again, "198.51.100.3").is_some());
}

#[test]
fn a_full_ban_table_bans_prefixes_but_never_a_protected_one() {
    let (_dir, d) = daemon();
    let scan = b"OPTIONS sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n";
    let spoofed = |i: u32| (0xc612_0000 + i).to_be_bytes();
    // 1100 spoofed scanners over five /24s, max-bans 100.
    for i in 0..1100u32 {
        d.frame(1, &udp_frame(spoofed(i), scan));
    }
    {
        let e = d.engine.lock();
        for i in 0..1100u32 {
            let a = IpAddr::from(spoofed(i));
            assert!(e.bans.covering(a).is_some(), "{a} not banned");
        }
        // 198.18.0-3.0/24 absorbed their singles; 198.18.4.0-75 are singles.
        assert_eq!((e.bans.prefixes(), e.bans.singles()), (4, 76));
        assert_eq!(e.counters.bans_refused, 0);
    }
    let state = d.state_json();
    let bans = state["besip-security:security"]["bans"]["ban"]
        .as_array()
        .unwrap()
        .clone();
    assert!(bans
        .iter()
        .any(|b| b["address"] == "198.18.0.0" && b["prefix-length"] == 24));
    // A session from 198.18.5.1: the table fills up at 198.18.5.25, and 198.18.5.0/24
    // is not banned because it holds the session's source.
    d.protect("198.18.5.1".parse().unwrap(), 60);
    for i in 0x502..0x541u32 {
        d.frame(1, &udp_frame(spoofed(i), scan));
    }
    let e = d.engine.lock();
    assert_eq!(e.bans.singles(), 100);
    assert!(e.counters.bans_refused > 0);
    assert!(e.bans.covering("198.18.5.1".parse().unwrap()).is_none());
    assert!(e.bans.covering("198.18.5.60".parse().unwrap()).is_none());
}

#[test]
fn protect_lifts_bans_and_keeps_forged_packets_from_banning() {
    let (_dir, d) = daemon();
    let scan = b"OPTIONS sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n";
    d.frame(1, &udp_frame([198, 51, 100, 40], scan));
    assert!(ban_secs(&d, "198.51.100.40").is_some());
    d.protect("198.51.100.40".parse().unwrap(), 60);
    assert!(
        ban_secs(&d, "198.51.100.40").is_none(),
        "protect did not lift the ban"
    );
    d.frame(1, &udp_frame([198, 51, 100, 40], scan));
    assert!(
        ban_secs(&d, "198.51.100.40").is_none(),
        "protected source banned"
    );
    let s = d.state_json();
    assert_eq!(
        s["besip-security:security"]["statistics"]["protected-sessions"],
        1
    );
}

#[test]
fn trunks_and_destinations_of_the_pbx_are_never_banned() {
    let (dir, d) = daemon();
    std::fs::write(
        dir.path().join("etc/config/besip_pbx"),
        "package besip_pbx\n\nconfig trunk 'trunk_p'\n\toption name 'p'\n\toption host '192.0.2.50'\n\nconfig dispatcher_set 'dispatcher_set_s'\n\toption name 's'\n\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 's'\n\toption uri 'sip:192.0.2.51:5060'\n",
    )
    .unwrap();
    d.housekeeping();
    let scan = b"OPTIONS sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n";
    for src in [[192, 0, 2, 50], [192, 0, 2, 51], [192, 0, 2, 52]] {
        d.frame(1, &udp_frame(src, scan));
    }
    assert!(ban_secs(&d, "192.0.2.50").is_none());
    assert!(ban_secs(&d, "192.0.2.51").is_none());
    assert!(ban_secs(&d, "192.0.2.52").is_some());
}
