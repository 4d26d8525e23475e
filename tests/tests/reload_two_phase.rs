//! Two-phase reload end to end: one NETCONF commit changes the PBX's, the
//! security daemon's and the monitor's configuration; the PBX refuses it in
//! `prepare` (a listen port the test holds), so no daemon applies anything,
//! all keep their old configuration, and the commit is answered with an
//! error naming the daemon. A later commit they all accept is applied by all.
//! (besip_monitoring sorts before besip_pbx: a one-phase reload would have
//! switched the monitor before the PBX refused.)

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::bin_path;
use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use besip_tests::pbx::{options_answered, raw_register};

/// A daemon started on the NETCONF server's root, its stderr in `log`.
struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(program: &str, root: &Path, socket: &str) -> Daemon {
        let log = root.join(format!("{program}.log"));
        let child = Command::new(bin_path(program))
            .arg("--root")
            .arg(root)
            .args(["--foreground", "--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let socket = root.join("run").join(socket);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "{program} did not open its socket; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How often the daemon switched to a new configuration.
    fn applied(&self) -> usize {
        self.log().matches("configuration applied").count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn commit(port: u16, config: &str) -> String {
    let (ok, out) = python(
        port,
        ADMIN_PASSWORD,
        &format!(
            "m = connect()\nm.edit_config(target='candidate', config='''<config>{config}</config>''')\n\
             try:\n    m.commit()\n    print('COMMIT-OK')\n\
             except Exception as e:\n    print('COMMIT-ERROR', e)\n    m.discard_changes()\n"
        ),
    );
    assert!(ok, "{out}");
    out
}

fn register_100(pbx_port: u16, password: &str, call: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let contact = format!(
        "Contact: <sip:100@127.0.0.1:{}>\r\n",
        sock.local_addr().expect("addr").port()
    );
    raw_register(&sock, pbx_port, "100", password, &contact, call)
}

const PBX: &str = "urn:besip:pbx";
const SECURITY: &str = "urn:besip:security";
const MONITORING: &str = "urn:besip:monitoring";

#[test]
fn a_refused_prepare_leaves_every_daemon_on_its_old_configuration() {
    let server = NetconfServer::start();
    let root = server.root_path().to_owned();
    let sip_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let out = commit(
        server.port,
        &format!(
            "<pbx xmlns=\"{PBX}\"><domain>besip.test</domain><auth><realm>besip.test</realm><algorithms>md5</algorithms></auth>\
             <listen><name>udp</name><transport>udp</transport><address>127.0.0.1</address><port>{sip_port}</port></listen>\
             <extension><number>100</number><password>pw100</password></extension></pbx>\
             <security xmlns=\"{SECURITY}\"><firewall><backend>log-only</backend></firewall>\
             <capture><interface>lo</interface><sip-port>{sip_port}</sip-port></capture></security>\
             <monitoring xmlns=\"{MONITORING}\"><interface>lo</interface><mos-threshold>3.5</mos-threshold></monitoring>\
             <system xmlns=\"urn:besip:system\"><web><enabled>false</enabled></web></system>"
        ),
    );
    assert!(out.contains("COMMIT-OK"), "{out}");
    let pbx = Daemon::start("besip-pbxd", &root, "pbx.sock");
    let secd = Daemon::start("besip-secd", &root, "security.sock");
    let monitord = Daemon::start("besip-monitord", &root, "monitoring.sock");
    let answer = register_100(sip_port, "pw100", "before");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    let security_file = root.join("etc/config/besip_security");
    let security_before = std::fs::read(&security_file).expect("besip_security");

    // One commit for both daemons; the PBX cannot bind the port the test holds.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").port();
    let out = commit(
        server.port,
        &format!(
            "<pbx xmlns=\"{PBX}\"><listen><name>busy</name><transport>tcp</transport><address>127.0.0.1</address><port>{busy}</port></listen>\
             <extension><number>100</number><password>changed100</password></extension></pbx>\
             <security xmlns=\"{SECURITY}\"><capture><sip-port>{}</sip-port></capture></security>\
             <monitoring xmlns=\"{MONITORING}\"><mos-threshold>4.0</mos-threshold></monitoring>",
            sip_port + 1
        ),
    );
    assert!(out.contains("COMMIT-ERROR"), "{out}");
    assert!(
        out.contains("pbx") && out.contains(&busy.to_string()),
        "the error names the daemon and its reason: {out}"
    );
    // No daemon applied anything: not the PBX, not security and the monitor
    // (which prepared it and were told to abort).
    assert_eq!(pbx.applied(), 0, "pbx log:\n{}", pbx.log());
    assert_eq!(secd.applied(), 0, "secd log:\n{}", secd.log());
    assert_eq!(monitord.applied(), 0, "monitord log:\n{}", monitord.log());
    assert_eq!(
        std::fs::read(&security_file).expect("besip_security"),
        security_before
    );
    // Nothing of the refused commit stays staged. (A staged path may hold the
    // inode an earlier, installed version left behind: core writes the next
    // version into it instead of allocating a new file — persist.rs.)
    let staged = root.join("etc/config/.staged");
    let left: Vec<String> = std::fs::read_dir(&staged)
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|text| text.contains("changed100") || text.contains(&format!("'{busy}'"))),
        "the refused configuration left behind in {}: {left:?}",
        staged.display()
    );
    let answer = register_100(sip_port, "pw100", "refused");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(options_answered(sip_port));
    drop(taken);

    // A commit both can take is applied by both.
    let out = commit(
        server.port,
        &format!(
            "<pbx xmlns=\"{PBX}\"><extension><number>100</number><password>changed100</password></extension></pbx>\
             <security xmlns=\"{SECURITY}\"><capture><sip-port>{}</sip-port></capture></security>\
             <monitoring xmlns=\"{MONITORING}\"><mos-threshold>4.0</mos-threshold></monitoring>",
            sip_port + 1
        ),
    );
    assert!(out.contains("COMMIT-OK"), "{out}");
    assert_eq!(pbx.applied(), 1, "pbx log:\n{}", pbx.log());
    assert_eq!(secd.applied(), 1, "secd log:\n{}", secd.log());
    assert_eq!(monitord.applied(), 1, "monitord log:\n{}", monitord.log());
    let answer = register_100(sip_port, "changed100", "after");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
}
