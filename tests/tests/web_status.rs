//! The panel's status strip reads the other daemons' state over IPC: with
//! besip-pbxd running and one sipp registration it shows the count; the
//! absent besip-secd shows as "not running".

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::bin_path;
use besip_tests::netconf::ADMIN_PASSWORD;
use besip_tests::pbx::{self, register, Sipp};
use besip_tests::web::Panel;

#[test]
fn status_strip_shows_registrations_and_absent_daemons() {
    if !pbx::have_sipp() {
        eprintln!("SKIP: sipp not installed (scripts/install-deps)");
        return;
    }
    let p = Panel::start("<interface>lo</interface><capture-filter>udp port 9</capture-filter>");
    let mut c = p.client();
    c.login_ok("admin", ADMIN_PASSWORD);
    let page = c.get("/");
    assert!(
        page.body
            .contains("Registrations: <span class=\"down\">not running</span>"),
        "{}",
        page.body
    );

    // A PBX with extensions 100..103 on this root.
    let sip_port = pbx::free_port();
    let root = p.netconf.root_path();
    std::fs::write(root.join("etc/config/besip_pbx"), pbx::config(sip_port, "")).expect("UCI");
    let mut pbxd = Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(root)
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip-pbxd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !root.join("run/pbx.sock").exists() {
        assert!(
            Instant::now() < deadline,
            "besip-pbxd did not open its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    register(&Sipp::new(), "100", pbx::free_port(), sip_port);

    let r = c.get("/api/status");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    let _ = pbxd.kill();
    let _ = pbxd.wait();
    assert_eq!(v["pbx"]["registrations"], 1, "{v}");
    assert_eq!(v["pbx"]["active-calls"], 0, "{v}");
    assert!(v["security"].is_null(), "besip-secd is not running: {v}");
    // And the HTML strip of the same moment's data, once pbxd is gone.
    let page = c.get("/calls");
    assert!(page
        .body
        .contains("Active calls: <span class=\"down\">not running</span>"));
    assert!(page
        .body
        .contains("Active bans: <span class=\"down\">not running</span>"));
    // SIGTERM with the panel open (and a session live) still ends cleanly.
    let Panel { monitord, .. } = p;
    let status = monitord.stop();
    assert!(status.success(), "besip-monitord exit: {status:?}");
}
