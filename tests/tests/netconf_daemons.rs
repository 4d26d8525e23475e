//! besip-netconfd and a real daemon (besip-pbxd) on one root: daemon state in
//! <get> and module RPCs forwarded over IPC; a clear error while it is down.

use besip_tests::harness::bin_path;
use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNREGISTER: &str = "from ncclient.xml_ import to_ele\n\
m = connect()\n\
try:\n    r = m.dispatch(to_ele('<unregister xmlns=\"urn:besip:pbx\"><aor>100</aor></unregister>'))\n    print('REPLY', r.xml)\n\
except Exception as e:\n    print('ERROR', getattr(e, 'tag', ''), e)\n\
try:\n    m.dispatch(to_ele('<frobnicate xmlns=\"urn:besip:pbx\"/>'))\n\
except Exception as e:\n    print('UNKNOWN', getattr(e, 'tag', ''))\n\
print('STATE', m.get(filter=('subtree', '<pbx xmlns=\"urn:besip:pbx\"/>')).data_xml)\n";

#[test]
fn daemon_state_and_rpcs_go_through_ipc() {
    let server = NetconfServer::start();
    let sip_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // Daemon not running: the RPC fails cleanly, <get> still answers.
    let (ok, out) = python(server.port, ADMIN_PASSWORD, UNREGISTER);
    assert!(ok, "{out}");
    assert!(
        out.contains("ERROR operation-failed") && out.contains("not running"),
        "{out}"
    );
    assert!(out.contains("UNKNOWN operation-not-supported"), "{out}");
    assert!(
        out.contains("STATE") && !out.contains("<counters>"),
        "{out}"
    );

    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='<config><pbx xmlns=\"urn:besip:pbx\"><listen><name>t</name><address>127.0.0.1</address><port>{sip_port}</port></listen></pbx></config>'); m.commit()"),
    );
    assert!(ok, "{out}");
    let mut pbx = Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(server.root_path())
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip-pbxd");
    let socket = server.root_path().join("run/pbx.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "besip-pbxd did not open its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out) = python(server.port, ADMIN_PASSWORD, UNREGISTER);
    let _ = pbx.kill();
    let _ = pbx.wait();
    assert!(ok, "{out}");
    assert!(
        out.contains("REPLY") && out.contains("<removed") && out.contains("urn:besip:pbx"),
        "{out}"
    );
    assert!(
        out.contains("<counters>"),
        "daemon state missing from <get>: {out}"
    );
}
