//! HEP v3 export of the SIP traffic (/pbx/hep), checked by independent
//! decoders: sngrep listens as the HOMER collector and writes what it
//! decodes from our HEP packets into a pcap, which tshark's SIP dissector
//! reads (Debian's tshark 4.0 has no HEP dissector of its own). Every
//! message of a registration arrives with the right addresses, ports and
//! Call-ID; the export is switched on and off by a reload; a collector
//! that is gone changes nothing for the phones.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::pbx::*;

fn have_tools() -> bool {
    let ok = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if !have_sipp() || !ok("sngrep") || !ok("tshark") {
        eprintln!("SKIP: sipp, sngrep or tshark not installed");
        return false;
    }
    true
}

fn hep_config(port: u16, collector: u16) -> String {
    config(
        port,
        &format!(
            "\toption hep_collector_address '127.0.0.1'\n\toption hep_collector_port '{collector}'\n\toption hep_capture_id '4242'\n"
        ),
    )
}

/// sngrep as a HEP collector on 127.0.0.1:`port`, writing what it decodes
/// into `pcap`.
struct Collector {
    child: Child,
    pcap: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start(port: u16) -> Collector {
        let dir = tempfile::tempdir().expect("tempdir");
        let pcap = dir.path().join("hep.pcap");
        let child = Command::new("sngrep")
            .args(["-N", "-q", "-F", "-L"])
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-O")
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sngrep");
        // Listening once its socket is bound.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "sngrep does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Collector {
            child,
            pcap,
            _dir: dir,
        }
    }

    /// Stops sngrep (SIGINT writes out the pcap) and reads the SIP in it:
    /// one line per message, "src sport dst dport method-or-status call-id".
    fn stop(mut self) -> Vec<String> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.pcap)
            .args(["-Y", "sip", "-T", "fields", "-E", "separator=/s"])
            .args([
                "-e",
                "ip.src",
                "-e",
                "udp.srcport",
                "-e",
                "ip.dst",
                "-e",
                "udp.dstport",
            ])
            .args([
                "-e",
                "sip.Method",
                "-e",
                "sip.Status-Code",
                "-e",
                "sip.Call-ID",
            ])
            .output()
            .expect("tshark");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }
}

#[test]
fn every_message_of_a_registration_reaches_the_collector() {
    if !have_tools() {
        return;
    }
    let (port, collector_port, phone) = (free_port(), free_port(), free_port());
    let collector = Collector::start(collector_port);
    let pbx = Pbx::start(&hep_config(port, collector_port), port);
    let sipp = Sipp::new();
    register(&sipp, "100", phone, port);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pbx.counter("hep-sent") < 4 {
        assert!(
            Instant::now() < deadline,
            "hep-sent: {}",
            pbx.counter("hep-sent")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let seen = collector.stop();
    let ids: Vec<&str> = seen.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    assert_eq!(seen.len(), 4, "REGISTER, 401, REGISTER, 200: {seen:#?}");
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one Call-ID: {seen:#?}"
    );
    let call_id = ids[0];
    let expected = [
        format!("127.0.0.1 {phone} 127.0.0.1 {port} REGISTER {call_id}"),
        format!("127.0.0.1 {port} 127.0.0.1 {phone} 401 {call_id}"),
        format!("127.0.0.1 {phone} 127.0.0.1 {port} REGISTER {call_id}"),
        format!("127.0.0.1 {port} 127.0.0.1 {phone} 200 {call_id}"),
    ];
    assert_eq!(seen, expected);
    assert_eq!(pbx.counter("hep-sent"), 4);
    assert_eq!(pbx.counter("hep-dropped"), 0);
    assert_state_valid(&pbx, &pbx.state());
}

#[test]
fn a_reload_switches_the_export_and_a_missing_collector_harms_nobody() {
    if !have_tools() {
        return;
    }
    let (port, collector_port) = (free_port(), free_port());
    let pbx = Pbx::start(&config(port, ""), port);
    let sipp = Sipp::new();
    register(&sipp, "100", free_port(), port);
    assert_eq!(pbx.counter("hep-sent"), 0, "no collector configured");

    // Switched on by a reload, towards a collector that is not there: the
    // phones are served as before, the copies are sent into the void.
    pbx.reload(&hep_config(port, collector_port))
        .expect("reload");
    register(&sipp, "101", free_port(), port);
    assert!(pbx.counter("hep-sent") >= 4);

    // The collector appears: later traffic reaches it.
    let collector = Collector::start(collector_port);
    let phone_102 = free_port();
    register(&sipp, "102", phone_102, port);
    // Switched off again: nothing more is sent.
    pbx.reload(&config(port, "")).expect("reload");
    let sent = pbx.counter("hep-sent");
    register(&sipp, "103", free_port(), port);
    assert_eq!(pbx.counter("hep-sent"), sent, "export off after the reload");
    std::thread::sleep(Duration::from_millis(300));
    let seen = collector.stop();
    assert_eq!(seen.len(), 4, "only 102's registration: {seen:#?}");
    let from_102 = format!("127.0.0.1 {phone_102} 127.0.0.1 {port} REGISTER");
    let to_102 = format!("127.0.0.1 {port} 127.0.0.1 {phone_102} ");
    assert!(
        seen.iter()
            .all(|l| l.starts_with(&from_102) || l.starts_with(&to_102)),
        "{seen:#?}"
    );
}
