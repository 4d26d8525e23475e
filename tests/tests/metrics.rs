//! Prometheus metrics of the whole box (`besip up --metrics-port`): the
//! endpoint serves every daemon's families and besip-netconfd's own in one
//! OpenMetrics exposition, read with a real parser (python3
//! prometheus_client); the values follow the traffic sent (registrations,
//! a failed authentication, replies by class, commits, captured packets).
//! An outsider gets nothing but GET /metrics, a flood of scrapes is bounded,
//! a giant request is refused and the endpoint follows the configuration
//! (moved and closed by a commit).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::netconf::python;
use besip_tests::pbx::{free_port, have_sipp, register_scenario, Sipp};
use besip_tests::up::Up;

const PASSWORD: &str = "metrics-test-pw";

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `besip up` on loopback with metrics on `metrics`.
struct Box {
    _up: Up,
    netconf: u16,
    sip: u16,
}

impl Box {
    fn up(metrics: u16) -> Box {
        let (netconf, sip) = (free_tcp_port(), free_port());
        let args = [
            "--netconf-port".to_owned(),
            netconf.to_string(),
            "--sip-port".into(),
            sip.to_string(),
            "--sip-tls-port".into(),
            free_tcp_port().to_string(),
            "--stun-port".into(),
            free_port().to_string(),
            "--web-port".into(),
            free_tcp_port().to_string(),
            "--web-http-port".into(),
            "0".into(),
            "--metrics-port".into(),
            metrics.to_string(),
            "--admin-password".into(),
            PASSWORD.into(),
        ];
        let up = Up::start(&args);
        assert!(
            up.banner
                .contains(&format!("metrics:      http://127.0.0.1:{metrics}/metrics")),
            "the metrics address is printed: {}",
            up.banner
        );
        Box {
            _up: up,
            netconf,
            sip,
        }
    }

    fn netconf(&self, body: &str) {
        let (ok, out) = python(self.netconf, PASSWORD, body);
        assert!(ok, "NETCONF failed: {out}");
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body); None when
/// the connection is refused or closed without an answer.
fn http(port: u16, request: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    // A refused giant request may close before all of it is written.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// The samples of an exposition, parsed by prometheus_client's OpenMetrics
/// parser: "name{labels}" -> value (labels sorted, `k="v"` joined by ',').
fn parse(text: &str) -> HashMap<String, f64> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
        .collect()
}

fn scrape(port: u16) -> HashMap<String, f64> {
    let (status, body) = get(port, "/metrics").expect("metrics endpoint answers");
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:?}", sorted_keys(samples)))
}

fn sorted_keys(samples: &HashMap<String, f64>) -> Vec<&String> {
    let mut k: Vec<&String> = samples.keys().collect();
    k.sort();
    k
}

/// Scrapes until `check` holds (the daemons' captures lag a little).
fn scrape_until(
    port: u16,
    what: &str,
    check: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(port);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", s);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn metrics_follow_the_traffic_and_the_configuration() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_tcp_port();
    let the_box = Box::up(port);
    let before = scrape_until(port, "every daemon's families", |s| {
        s.contains_key("besip_pbx_requests_total{}")
            && s.contains_key("besip_security_packets_total{}")
            && s.contains_key("besip_monitoring_frames_captured_total{}")
    });
    assert_eq!(value(&before, "besip_pbx_registrations{}"), 0.0);

    // A commit over NETCONF: counted, with its latency observed.
    the_box.netconf(
        "m = connect(); m.edit_config(target='candidate', config='<config><pbx xmlns=\"urn:besip:pbx\"><domain>besip.test</domain><extension><number>100</number><password>pw100</password></extension><extension><number>101</number><password>pw101</password></extension></pbx></config>'); m.commit()",
    );
    // 100 registers (401 then 200); 101 gives a wrong password (401 then 401).
    let sipp = Sipp::new();
    let ok = sipp.run(
        "register-100",
        &register_scenario("100", 600, 200),
        free_port(),
        the_box.sip,
        &["-au", "100", "-ap", "pw100", "-auth_uri", "besip.test"],
    );
    assert!(ok.success, "REGISTER 100:\n{}", ok.log);
    let wrong = sipp.run(
        "register-101-wrong",
        &register_scenario("101", 600, 401),
        free_port(),
        the_box.sip,
        &[
            "-au",
            "101",
            "-ap",
            "not-the-password",
            "-auth_uri",
            "besip.test",
        ],
    );
    assert!(wrong.success, "REGISTER 101 refused:\n{}", wrong.log);

    let after = scrape_until(port, "the security daemon saw the REGISTERs", |s| {
        s.get("besip_security_packets_total{}")
            .copied()
            .unwrap_or(0.0)
            >= value(&before, "besip_security_packets_total{}") + 4.0
    });
    let delta = |k: &str| value(&after, k) - value(&before, k);
    assert_eq!(delta("besip_pbx_requests_total{}"), 4.0, "four REGISTERs");
    assert_eq!(
        delta("besip_pbx_replies_total{class=\"4xx\"}"),
        3.0,
        "three 401s"
    );
    assert_eq!(
        delta("besip_pbx_replies_total{class=\"2xx\"}"),
        1.0,
        "one 200"
    );
    assert_eq!(
        delta("besip_pbx_auth_failures_total{}"),
        1.0,
        "the wrong password"
    );
    assert_eq!(value(&after, "besip_pbx_registrations{}"), 1.0);
    assert_eq!(delta("besip_netconf_commits_total{}"), 1.0);
    assert_eq!(delta("besip_netconf_commit_duration_seconds_count{}"), 1.0);
    assert!(value(&after, "besip_netconf_commit_duration_seconds_sum{}") > 0.0);
    assert!(
        delta("besip_netconf_rpcs_total{}") >= 2.0,
        "edit-config and commit"
    );
    assert_eq!(value(&after, "besip_monitoring_capture_running{}"), 1.0);
    // Histograms are complete: +Inf bucket equals the count.
    assert_eq!(
        value(&after, "besip_pbx_talk_time_seconds_bucket{le=\"+Inf\"}"),
        value(&after, "besip_pbx_talk_time_seconds_count{}")
    );

    // An outsider: nothing but GET /metrics.
    let post = http(
        port,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(post.map(|r| r.0), Some(405));
    for path in ["/", "/metrics/../etc/passwd", "/restconf/data", "/%00"] {
        let r = get(port, path).map(|r| r.0);
        assert!(matches!(r, Some(400 | 404)), "{path}: {r:?}");
    }
    let garbage = http(
        port,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert!(garbage.as_ref().is_none_or(|r| r.0 >= 400), "{garbage:?}");
    let giant = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let r = http(port, giant.as_bytes());
    assert!(
        r.as_ref().is_none_or(|r| r.0 == 431 || r.0 == 400),
        "a giant header: {r:?}"
    );
    // A flood of concurrent scrapes: each answered (200, or 503 while two
    // are in progress); the endpoint still answers afterwards.
    let flood: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || get(port, "/metrics").map(|r| r.0)))
        .collect();
    let codes: Vec<Option<u16>> = flood.into_iter().map(|t| t.join().expect("join")).collect();
    assert!(
        codes.iter().all(|c| matches!(c, Some(200 | 503))),
        "{codes:?}"
    );
    assert!(codes.contains(&Some(200)), "{codes:?}");
    scrape(port);

    // The endpoint follows the configuration: moved, then closed.
    let moved = free_tcp_port();
    the_box.netconf(&format!(
        "m = connect(); m.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><metrics><port>{moved}</port></metrics></system></config>'); m.commit()"
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(moved, "/metrics").is_none() {
        assert!(Instant::now() < deadline, "metrics not moved to {moved}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(get(port, "/metrics").is_none(), "the old port is closed");
    let s = scrape(moved);
    assert_eq!(
        value(&s, "besip_netconf_commits_total{}") - value(&after, "besip_netconf_commits_total{}"),
        1.0
    );
    the_box.netconf(
        "m = connect(); m.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><metrics><enabled>false</enabled></metrics></system></config>'); m.commit()",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(moved, "/metrics").is_some() {
        assert!(
            Instant::now() < deadline,
            "metrics still served when disabled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
