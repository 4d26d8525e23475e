//! `besip up --restconf-port`: the whole box with RESTCONF; an extension
//! created over RESTCONF lets a phone (sipp) register.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::{bin_path, TempRoot};
use besip_tests::pbx::{free_port, have_sipp, register_scenario, Sipp};

const PASSWORD: &str = "restconf-up-pw";

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Up {
    child: Child,
    sip: u16,
    _root: TempRoot,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn besip_up_serves_restconf_and_a_restconf_extension_registers() {
    let root = TempRoot::new();
    let (restconf, sip) = (free_tcp_port(), free_port());
    let mut child = Command::new(bin_path("besip"))
        .args(["up", "--root"])
        .arg(root.path())
        .args(["--netconf-port", &free_tcp_port().to_string()])
        .args(["--sip-port", &sip.to_string()])
        .args(["--sip-tls-port", &free_tcp_port().to_string()])
        .args(["--stun-port", &free_port().to_string()])
        .args(["--web-port", &free_tcp_port().to_string()])
        .args(["--web-http-port", "0"])
        .args(["--restconf-port", &restconf.to_string()])
        .args(["--admin-password", PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip up");
    let stdout = child.stdout.take().expect("stdout");
    let up = Up {
        child,
        sip,
        _root: root,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banner.contains("Press Ctrl-C") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => banner.push_str(&(line + "\n")),
            Err(_) => panic!("besip up did not come up: {banner}"),
        }
    }
    let root_url = format!("https://127.0.0.1:{restconf}/restconf");
    assert!(
        banner.contains(&format!("RESTCONF:     {root_url}")),
        "{banner}"
    );

    let body = r#"{"besip-pbx:pbx":{"domain":"besip.test","extension":[{"number":"100","password":"pw100-secret"}]}}"#;
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            &format!("admin:{PASSWORD}"),
        ])
        .args([
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/yang-data+json",
            "--data-binary",
            body,
        ])
        .arg(format!("{root_url}/data/besip-pbx:pbx"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");

    // A module RPC reaches its daemon (besip-secd answers: nothing to unban).
    let unban = Command::new("curl")
        .args(["-sk", "-u", &format!("admin:{PASSWORD}"), "-X", "POST"])
        .args([
            "-H",
            "Content-Type: application/yang-data+json",
            "--data-binary",
        ])
        .arg(r#"{"besip-security:input":{"address":"192.0.2.77"}}"#)
        .arg(format!("{root_url}/operations/besip-security:unban"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&unban.stdout);
    assert!(
        text.contains("ietf-restconf:errors")
            && text.contains("192.0.2.77")
            && !text.contains("not running"),
        "{text}"
    );

    if !have_sipp() {
        eprintln!("SKIP (sipp part): sipp not installed");
        return;
    }
    let sipp = Sipp::new();
    let ok = sipp.run(
        "register-100",
        &register_scenario("100", 600, 200),
        free_port(),
        up.sip,
        &[
            "-au",
            "100",
            "-ap",
            "pw100-secret",
            "-auth_uri",
            "besip.test",
        ],
    );
    assert!(ok.success, "REGISTER 100:\n{}", ok.log);
    // The registration is state RESTCONF reads back (content=nonconfig).
    let state = Command::new("curl")
        .args(["-sk", "-u", &format!("admin:{PASSWORD}")])
        .arg(format!("{root_url}/data/besip-pbx:pbx?content=nonconfig"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&state.stdout);
    assert!(
        text.contains("registration") && text.contains("100@"),
        "{text}"
    );
}
