//! Trunk hosts that are domain names (RFC 3263), resolved through a real
//! dnsmasq serving NAPTR, SRV and A records that point at sipp UASes on
//! 127.0.0.x: the trunk is reached by name (the Request-URI keeps the
//! name), SRV priority orders the targets, a target answering 503 or
//! staying silent fails the call over to the next, an answer is resolved
//! again when its TTL ends, a name that does not resolve shows in
//! /pbx/dns-state and its calls get 503 at once; a DNS server that never
//! answers and a huge SRV answer set change nothing else.

use std::time::{Duration, Instant};

use besip_tests::dns::*;
use besip_tests::pbx::*;

/// UCI of a PBX whose route 0… goes to trunk `prov` at `host` (no port,
/// no transport: NAPTR first), asking dnsmasq on `dns_port`.
fn dns_uci(port: u16, dns_port: u16, host: &str, trunk_extra: &str) -> String {
    let dns = format!(
        "\tlist dns_server '127.0.0.1'\n\toption dns_server_port '{dns_port}'\n\toption dns_timeout '300'\n\toption dns_no_answer_timeout '1000'\n"
    );
    let mut uci = config(port, &dns);
    uci.push_str(&format!(
        "config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '{host}'\n{trunk_extra}\n"
    ));
    uci.push_str("config route 'route_out'\n\toption name 'out'\n\toption priority '100'\n\toption match '0'\n\toption strip '0'\n\toption trunk 'prov'\n\n");
    uci
}

/// /pbx/dns-state/trunk[name='prov'].
fn trunk_state(pbx: &Pbx) -> serde_json::Value {
    let s = pbx.state();
    s["besip-pbx:pbx"]["dns-state"]["trunk"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "prov").cloned())
        .unwrap_or(serde_json::Value::Null)
}

fn targets(state: &serde_json::Value) -> Vec<String> {
    state["target"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the trunk's resolution is `want` and `check` holds.
fn wait_resolution(
    pbx: &Pbx,
    want: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = trunk_state(pbx);
        if t["state"] == want && check(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "trunk resolution is not {want}: {t}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn call(sipp: &Sipp, pbx: &Pbx, name: &str, scenario: &str) {
    let r = sipp.run(
        name,
        scenario,
        free_port(),
        pbx.port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "{name} failed:\n{}", r.log);
}

fn tools() -> bool {
    if !have_sipp() || !have_dnsmasq() {
        eprintln!("SKIP: sipp or dnsmasq not installed");
        return false;
    }
    true
}

#[test]
fn trunk_by_name_is_reached_through_naptr_srv_and_a() {
    if !tools() {
        return;
    }
    let (pa, dns_port, port) = (free_port(), free_port(), free_port());
    let _dns = Dnsmasq::start(
        dns_port,
        60,
        &[
            naptr("prov.test", 10, 10, "SIP+D2U", "_sip._udp.prov.test"),
            srv("_sip._udp.prov.test", "gw1.prov.test", pa, 10, 10),
            host("gw1.prov.test", "127.0.0.2"),
        ],
    );
    let pbx = Pbx::start(&dns_uci(port, dns_port, "prov.test", ""), port);
    let t = wait_resolution(&pbx, "resolved", |_| true);
    assert_eq!(targets(&t), vec![format!("udp:127.0.0.2:{pa}")]);
    assert_eq!(t["host"], "prov.test");
    let sipp = Sipp::new();
    let a = sipp.spawn("a", &callee_answers(0), pa, pbx.port, &["-i", "127.0.0.2"]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555001"));
    let ra = sipp.wait(a);
    assert!(ra.success, "the provider got no call:\n{}", ra.log);
    // RFC 3263: the name stays in the Request-URI, only the packets go to the target.
    assert!(
        sipp.messages("a")
            .contains("INVITE sip:0555001@prov.test SIP/2.0"),
        "{}",
        sipp.messages("a")
    );
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

#[test]
fn srv_priority_orders_targets_and_a_503_fails_over_to_the_next() {
    if !tools() {
        return;
    }
    let (pa, pb, dns_port, port) = (free_port(), free_port(), free_port(), free_port());
    // The preferred target is listed last: only the priority puts it first.
    let _dns = Dnsmasq::start(
        dns_port,
        60,
        &[
            srv("_sip._udp.prov.test", "backup.prov.test", pb, 20, 10),
            srv("_sip._udp.prov.test", "main.prov.test", pa, 10, 10),
            host("main.prov.test", "127.0.0.3"),
            host("backup.prov.test", "127.0.0.4"),
        ],
    );
    let pbx = Pbx::start(&dns_uci(port, dns_port, "prov.test", ""), port);
    let t = wait_resolution(&pbx, "resolved", |_| true);
    assert_eq!(
        targets(&t),
        vec![format!("udp:127.0.0.3:{pa}"), format!("udp:127.0.0.4:{pb}")]
    );
    let sipp = Sipp::new();
    let rejects = callee_rejects(503, "Service Unavailable");
    let a = sipp.spawn("a", &rejects, pa, pbx.port, &["-i", "127.0.0.3"]);
    let b = sipp.spawn("b", &callee_answers(0), pb, pbx.port, &["-i", "127.0.0.4"]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555002"));
    let (ra, rb) = (sipp.wait(a), sipp.wait(b));
    assert!(ra.success, "the first target got no call:\n{}", ra.log);
    assert!(rb.success, "no failover to the second target:\n{}", rb.log);
    let t = trunk_state(&pbx);
    assert_eq!(
        t["last-error"].as_str(),
        Some(format!("udp:127.0.0.3:{pa}: 503 Service Unavailable").as_str()),
        "{t}"
    );
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

/// A UDP socket that reads and never answers; counts the INVITEs it got.
fn silent_target(ip: &str, port: u16) -> std::thread::JoinHandle<usize> {
    let sock = std::net::UdpSocket::bind((ip, port)).expect("bind silent target");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut invites = 0;
        let mut buf = [0u8; 65536];
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n].starts_with(b"STOP") {
                    break;
                }
                invites += usize::from(buf[..n].starts_with(b"INVITE "));
            }
        }
        invites
    })
}

#[test]
fn a_silent_target_is_given_up_for_the_next_one() {
    if !tools() {
        return;
    }
    let (pa, pb, dns_port, port) = (free_port(), free_port(), free_port(), free_port());
    let _dns = Dnsmasq::start(
        dns_port,
        60,
        &[
            srv("_sip._udp.prov.test", "main.prov.test", pa, 10, 10),
            srv("_sip._udp.prov.test", "backup.prov.test", pb, 20, 10),
            host("main.prov.test", "127.0.0.5"),
            host("backup.prov.test", "127.0.0.6"),
        ],
    );
    let pbx = Pbx::start(&dns_uci(port, dns_port, "prov.test", ""), port);
    wait_resolution(&pbx, "resolved", |t| targets(t).len() == 2);
    let silent = silent_target("127.0.0.5", pa);
    let sipp = Sipp::new();
    let b = sipp.spawn("b", &callee_answers(0), pb, pbx.port, &["-i", "127.0.0.6"]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555003"));
    let rb = sipp.wait(b);
    assert!(rb.success, "no failover to the second target:\n{}", rb.log);
    let stop = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    stop.send_to(b"STOP", ("127.0.0.5", pa)).expect("stop");
    assert!(
        silent.join().expect("silent target") >= 1,
        "the first target got no INVITE"
    );
    let t = trunk_state(&pbx);
    assert_eq!(
        t["last-error"].as_str(),
        Some(format!("udp:127.0.0.5:{pa}: no answer in 1000 ms").as_str()),
        "{t}"
    );
}

#[test]
fn a_changed_record_is_used_once_its_ttl_ends() {
    if !tools() {
        return;
    }
    let (pa, dns_port, port) = (free_port(), free_port(), free_port());
    // A port given: A records only (RFC 3263 §4.2), with a 1 s TTL.
    let mut dns = Dnsmasq::start(dns_port, 1, &[host("gw.prov.test", "127.0.0.7")]);
    let trunk_port = format!("\toption port '{pa}'\n");
    let pbx = Pbx::start(&dns_uci(port, dns_port, "gw.prov.test", &trunk_port), port);
    let t = wait_resolution(&pbx, "resolved", |_| true);
    assert_eq!(targets(&t), vec![format!("udp:127.0.0.7:{pa}")]);
    assert!(t["expires"].as_u64().is_some_and(|e| e <= 1), "{t}");
    dns.stop();
    let _dns = Dnsmasq::start(dns_port, 1, &[host("gw.prov.test", "127.0.0.8")]);
    let want = format!("udp:127.0.0.8:{pa}");
    wait_resolution(&pbx, "resolved", |t| targets(t) == vec![want.clone()]);
    let sipp = Sipp::new();
    let b = sipp.spawn("b", &callee_answers(0), pa, pbx.port, &["-i", "127.0.0.8"]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555004"));
    let rb = sipp.wait(b);
    assert!(rb.success, "the new address got no call:\n{}", rb.log);
}

#[test]
fn a_name_that_does_not_resolve_shows_in_the_state_and_calls_get_503() {
    if !tools() {
        return;
    }
    let (dns_port, port) = (free_port(), free_port());
    let _dns = Dnsmasq::start(dns_port, 60, &[host("other.test", "127.0.0.9")]);
    let pbx = Pbx::start(&dns_uci(port, dns_port, "nowhere.test", ""), port);
    let t = wait_resolution(&pbx, "failed", |t| t["last-error"].is_string());
    assert!(targets(&t).is_empty(), "{t}");
    assert!(
        t["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("nowhere.test"),
        "{t}"
    );
    let sipp = Sipp::new();
    call(&sipp, &pbx, "call", &caller_rejected("100", "0555005", 503));
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

#[test]
fn a_dns_server_that_never_answers_fails_the_name_not_the_pbx() {
    if !tools() {
        return;
    }
    let (silent_port, queries) = silent_dns_server();
    let port = free_port();
    let pbx = Pbx::start(&dns_uci(port, silent_port, "prov.test", ""), port);
    let t = wait_resolution(&pbx, "failed", |t| t["last-error"].is_string());
    assert!(
        t["last-error"].as_str().unwrap_or("").contains("timed out"),
        "{t}"
    );
    assert!(queries.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // The call gets its answer without waiting for DNS.
    let sipp = Sipp::new();
    call(&sipp, &pbx, "call", &caller_rejected("100", "0555006", 503));
    assert!(options_answered(pbx.port), "the PBX stopped answering");
}

#[test]
fn a_huge_srv_answer_set_is_cut_to_a_bounded_target_list() {
    if !tools() {
        return;
    }
    let (pa, dns_port, port) = (free_port(), free_port(), free_port());
    let mut records = vec![
        srv("_sip._udp.prov.test", "first.prov.test", pa, 1, 10),
        host("first.prov.test", "127.0.0.10"),
    ];
    for i in 0..300u16 {
        records.push(srv(
            "_sip._udp.prov.test",
            &format!("gw{i}.prov.test"),
            6000 + i,
            50,
            10,
        ));
        records.push(host(&format!("gw{i}.prov.test"), "127.0.0.11"));
    }
    let _dns = Dnsmasq::start(dns_port, 60, &records);
    let pbx = Pbx::start(&dns_uci(port, dns_port, "prov.test", ""), port);
    let t = wait_resolution(&pbx, "resolved", |_| true);
    let got = targets(&t);
    assert_eq!(got.len(), 16, "{t}");
    assert_eq!(got[0], format!("udp:127.0.0.10:{pa}"));
    let sipp = Sipp::new();
    let a = sipp.spawn("a", &callee_answers(0), pa, pbx.port, &["-i", "127.0.0.10"]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555007"));
    let ra = sipp.wait(a);
    assert!(ra.success, "the first target got no call:\n{}", ra.log);
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

/// UCI of a PBX whose route 0… goes to dispatcher set `gw` (no probing,
/// no-answer-timeout 1 s) of destinations `uris`, asking dnsmasq on `dns_port`.
fn dispatcher_dns_uci(port: u16, dns_port: u16, uris: &[&str]) -> String {
    let dns = format!(
        "\tlist dns_server '127.0.0.1'\n\toption dns_server_port '{dns_port}'\n\toption dns_timeout '300'\n"
    );
    let mut uci = config(port, &dns);
    uci.push_str("config dispatcher_set 'dispatcher_set_gw'\n\toption name 'gw'\n\toption probing '0'\n\toption no_answer_timeout '1000'\n\n");
    for (i, uri) in uris.iter().enumerate() {
        uci.push_str(&format!(
            "config dispatcher_set_destination 'dispatcher_set_gw__d{i}'\n\toption dispatcher_set 'gw'\n\toption uri '{uri}'\n\n"
        ));
    }
    uci.push_str("config route 'route_out'\n\toption name 'out'\n\toption priority '100'\n\toption match '0'\n\toption strip '0'\n\toption dispatcher_set 'gw'\n\n");
    uci
}

/// /pbx/dns-state/destination of `uri`.
fn destination_state(pbx: &Pbx, uri: &str) -> serde_json::Value {
    let s = pbx.state();
    s["besip-pbx:pbx"]["dns-state"]["destination"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["uri"] == uri).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until the destination's resolution is `want` and `check` holds.
fn wait_destination(
    pbx: &Pbx,
    uri: &str,
    want: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = destination_state(pbx, uri);
        if d["state"] == want && check(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "destination resolution is not {want}: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The dispatcher's state of destination `uri` (up, down, probing).
fn dispatcher_state(pbx: &Pbx, uri: &str) -> String {
    let s = pbx.state();
    s["besip-pbx:pbx"]["dispatcher-set"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|set| set["destination"].as_array().cloned().unwrap_or_default())
        .find(|d| d["uri"] == uri)
        .and_then(|d| d["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn a_dispatcher_destination_by_name_fails_over_across_its_srv_targets() {
    if !tools() {
        return;
    }
    let (pa, pb, pc, dns_port, port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    // pbx.example.test: SRV to a target answering 503, then one that stays
    // silent, then one that answers.
    let _dns = Dnsmasq::start(
        dns_port,
        60,
        &[
            srv("_sip._udp.pbx.example.test", "a.example.test", pa, 10, 10),
            srv("_sip._udp.pbx.example.test", "b.example.test", pb, 20, 10),
            srv("_sip._udp.pbx.example.test", "c.example.test", pc, 30, 10),
            host("a.example.test", "127.0.0.12"),
            host("b.example.test", "127.0.0.13"),
            host("c.example.test", "127.0.0.14"),
        ],
    );
    let uri = "sip:pbx.example.test";
    let pbx = Pbx::start(&dispatcher_dns_uci(port, dns_port, &[uri]), port);
    let d = wait_destination(&pbx, uri, "resolved", |d| targets(d).len() == 3);
    assert_eq!(
        targets(&d),
        vec![
            format!("udp:127.0.0.12:{pa}"),
            format!("udp:127.0.0.13:{pb}"),
            format!("udp:127.0.0.14:{pc}")
        ]
    );
    assert_eq!(d["set"], "gw");
    assert_eq!(d["host"], "pbx.example.test");
    let sipp = Sipp::new();
    let rejects = callee_rejects(503, "Service Unavailable");
    let a = sipp.spawn("a", &rejects, pa, pbx.port, &["-i", "127.0.0.12"]);
    let silent = silent_target("127.0.0.13", pb);
    let c = sipp.spawn("c", &callee_answers(0), pc, pbx.port, &["-i", "127.0.0.14"]);
    call(&sipp, &pbx, "call", &caller_answered("100", "0555010"));
    let (ra, rc) = (sipp.wait(a), sipp.wait(c));
    assert!(ra.success, "the first target got no call:\n{}", ra.log);
    assert!(rc.success, "no failover to the third target:\n{}", rc.log);
    let stop = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    stop.send_to(b"STOP", ("127.0.0.13", pb)).expect("stop");
    assert!(
        silent.join().expect("silent target") >= 1,
        "the second target got no INVITE"
    );
    // RFC 3263: the name stays in the Request-URI.
    assert!(
        sipp.messages("c")
            .contains("INVITE sip:0555010@pbx.example.test SIP/2.0"),
        "{}",
        sipp.messages("c")
    );
    let d = destination_state(&pbx, uri);
    assert_eq!(
        d["last-error"].as_str(),
        Some(format!("udp:127.0.0.13:{pb}: no answer in 1000 ms").as_str()),
        "{d}"
    );
    // One of its targets answered: the destination is not down.
    assert_eq!(dispatcher_state(&pbx, uri), "up");
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

#[test]
fn a_dispatcher_destination_that_does_not_resolve_gets_503_at_once() {
    if !tools() {
        return;
    }
    let (dns_port, port) = (free_port(), free_port());
    let _dns = Dnsmasq::start(dns_port, 60, &[host("other.test", "127.0.0.9")]);
    let uri = "sip:nowhere.test";
    let pbx = Pbx::start(&dispatcher_dns_uci(port, dns_port, &[uri]), port);
    let d = wait_destination(&pbx, uri, "failed", |d| d["last-error"].is_string());
    assert!(targets(&d).is_empty(), "{d}");
    assert!(
        d["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("nowhere.test"),
        "{d}"
    );
    let sipp = Sipp::new();
    let started = Instant::now();
    call(&sipp, &pbx, "call", &caller_rejected("100", "0555011", 503));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the 503 came after {:?}",
        started.elapsed()
    );
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
}

/// Resident memory of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn huge_and_garbage_destination_names_keep_the_tables_bounded() {
    if !tools() {
        return;
    }
    let (dns_port, port) = (free_port(), free_port());
    let mut records = Vec::new();
    for i in 0..300u16 {
        records.push(srv(
            "_sip._udp.many.example.test",
            &format!("gw{i}.example.test"),
            6000 + i,
            10,
            10,
        ));
        records.push(host(&format!("gw{i}.example.test"), "127.0.0.15"));
    }
    let _dns = Dnsmasq::start(dns_port, 1, &records);
    let (many, garbage) = ("sip:many.example.test", "sip:a..b-.example.test");
    // Route 0… goes to set gw (the garbage name only); set big holds the name
    // with the huge answer.
    let uci = dispatcher_dns_uci(port, dns_port, &[garbage])
        + "config dispatcher_set 'dispatcher_set_big'\n\toption name 'big'\n\toption probing '0'\n\n"
        + &format!("config dispatcher_set_destination 'dispatcher_set_big__d0'\n\toption dispatcher_set 'big'\n\toption uri '{many}'\n\n");
    let pbx = Pbx::start(&uci, port);
    let d = wait_destination(&pbx, many, "resolved", |_| true);
    assert_eq!(targets(&d).len(), 16, "{d}");
    let g = wait_destination(&pbx, garbage, "failed", |d| d["last-error"].is_string());
    assert!(
        g["last-error"]
            .as_str()
            .unwrap_or("")
            .contains("not a valid domain name"),
        "{g}"
    );
    // Floods of calls to the garbage name: each gets 503 at once, none
    // starts a lookup or adds a name or a destination.
    let pid = pbx.pid().expect("running");
    let sipp = Sipp::new();
    let flood = |name: &str| {
        let started = Instant::now();
        let flood = sipp.run(
            name,
            &caller_rejected("100", "0555012", 503),
            free_port(),
            pbx.port,
            &[
                "-au", "100", "-ap", "pw100", "-m", "200", "-r", "100", "-l", "50",
            ],
        );
        assert!(flood.success, "every call gets 503:\n{}", flood.log);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the flood took {:?}",
            started.elapsed()
        );
        // Past Timer I (T4, 5 s): the flood's transactions are gone.
        std::thread::sleep(Duration::from_secs(6));
    };
    // The first flood grows what is reused later (allocator arenas,
    // tables' capacity, the runtime's threads); the second must not grow
    // memory again: a leak of 50 KB a call would show as 10 MB.
    flood("flood");
    let before = rss_kib(pid);
    flood("flood-again");
    let state = pbx.state();
    let dns = &state["besip-pbx:pbx"]["dns-state"];
    assert_eq!(
        dns["destination"].as_array().map(Vec::len),
        Some(2),
        "{dns}"
    );
    assert!(dns.get("trunk").is_none(), "{dns}");
    for d in dns["destination"].as_array().into_iter().flatten() {
        assert!(targets(d).len() <= 16, "{d}");
    }
    // The answer (TTL 1 s) is asked again and again: still 16 targets.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(targets(&destination_state(&pbx, many)).len(), 16);
    let after = rss_kib(pid);
    eprintln!(
        "RSSGROWTH {before} -> {after} = {}",
        after as i64 - before as i64
    );
    assert!(
        after < before + 8 * 1024,
        "memory grew from {before} KiB to {after} KiB over the second flood"
    );
    assert!(options_answered(pbx.port), "the PBX stopped answering");
    assert_state_valid(&pbx, &state);
}
