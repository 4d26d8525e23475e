//! The toll-fraud settings the whole way: /pbx/outbound and
//! /pbx/extension/outbound committed over NETCONF (ncclient) are rendered to
//! UCI and enforced by besip-pbxd; a refused call shows in <get> (counters)
//! and reaches a NETCONF subscriber as notification call-refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::bin_path;
use besip_tests::netconf::{python, NetconfServer, PythonLines, ADMIN_PASSWORD};
use besip_tests::pbx::{caller_rejected, free_port, have_sipp, Sipp};

const SUBSCRIBER: &str = r#"
import sys
from ncclient import manager
m = manager.connect(host='127.0.0.1', port=int(sys.argv[1]), username='admin', password=sys.argv[2],
                    hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)
m.create_subscription()
print('SUBSCRIBED', flush=True)
for _ in range(40):
    n = m.take_notification(timeout=1)
    if n is None:
        continue
    print('NOTIFICATION', n.notification_xml.replace('\n', ' '), flush=True)
    if '<call-refused' in n.notification_xml:
        break
print('DONE', flush=True)
"#;

#[test]
fn outbound_policy_committed_over_netconf_is_enforced_counted_and_notified() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let server = NetconfServer::start();
    let sip_port = free_port();
    let prov_port = free_port();
    let config = format!(
        "<config><pbx xmlns=\"urn:besip:pbx\"><domain>besip.test</domain>\
<auth><realm>besip.test</realm><algorithms>md5</algorithms></auth>\
<listen><name>t</name><address>127.0.0.1</address><port>{sip_port}</port></listen>\
<extension><number>100</number><password>pw100</password>\
<outbound><call-class>national</call-class><max-calls>2</max-calls><max-spend-per-hour>5.0</max-spend-per-hour></outbound></extension>\
<trunk><name>acme</name><host>127.0.0.1</host><port>{prov_port}</port></trunk>\
<route><name>out</name><match>0</match><trunk>acme</trunk></route>\
<outbound><max-calls>4</max-calls><default-call-class>national</default-call-class>\
<call-class><name>national</name><prefix>0</prefix></call-class>\
<call-class><name>premium</name><prefix>0900</prefix><prefix>0976</prefix></call-class>\
<trusted-peer><name>gw</name><address>127.0.0.2/32</address><call-class>national</call-class></trusted-peer>\
</outbound></pbx></config>"
    );
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='{config}'); m.commit()"),
    );
    assert!(ok, "commit failed: {out}");
    let uci = std::fs::read_to_string(server.root_path().join("etc/config/besip_pbx"))
        .expect("rendered besip_pbx");
    for line in [
        "option outbound_max_calls '4'",
        "list outbound_default_call_class 'national'",
        "config outbound_call_class 'outbound_call_class_premium'",
        "list prefix '0976'",
        "config outbound_trusted_peer 'outbound_trusted_peer_gw'",
        "list address '127.0.0.2/32'",
        "list outbound_call_class 'national'",
        "option outbound_max_spend_per_hour '5.0'",
    ] {
        assert!(uci.contains(line), "no {line:?} in:\n{uci}");
    }
    let mut pbx = Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(server.root_path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start besip-pbxd");
    let socket = server.root_path().join("run/pbx.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "besip-pbxd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // netconfd retries the daemon's socket every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    let subscriber = PythonLines::spawn(SUBSCRIBER, &[&server.port.to_string(), ADMIN_PASSWORD]);
    subscriber.expect_line("SUBSCRIBED", Duration::from_secs(30));
    let sipp = Sipp::new();
    let r = sipp.run(
        "premium",
        &caller_rejected("100", "0976123", 403),
        free_port(),
        sip_port,
        &["-au", "100", "-ap", "pw100"],
    );
    let received = subscriber.lines_until("DONE", Duration::from_secs(60));
    drop(subscriber);
    let get = "m = connect()\n\
print(m.get(filter=('subtree', '<pbx xmlns=\"urn:besip:pbx\"><counters><refused/></counters></pbx>')).data_xml)\n";
    let (ok, out) = python(server.port, ADMIN_PASSWORD, get);
    let _ = pbx.kill();
    let _ = pbx.wait();
    assert!(r.success, "premium call not refused with 403:\n{}", r.log);
    let all = received.join("\n");
    let note = received
        .iter()
        .find(|l| l.contains("<call-refused") && l.contains("urn:besip:pbx"))
        .unwrap_or_else(|| panic!("no call-refused notification: {all}"));
    assert!(note.contains("<reason>call-class</reason>"), "{note}");
    assert!(note.contains("<extension>100</extension>"), "{note}");
    assert!(ok, "{out}");
    assert!(out.contains("<call-class>1</call-class>"), "{out}");
    assert!(out.contains("<relay>0</relay>"), "{out}");
}
