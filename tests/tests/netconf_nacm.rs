//! NACM rules configured under `/nacm` (RFC 8341) take effect in
//! besip-netconfd: ncclient sessions of admin, operator and monitor users
//! against a server of its own (tests/netconf/nacm_cases.py).

use besip_tests::netconf::{
    python, run_pytest, suite_dir, NetconfServer, PytestRun, PythonLines, ADMIN_PASSWORD,
};
use besip_tests::security::{options_burst, tools_present, write_config, Netns, SecDaemon};
use std::time::Duration;

#[test]
fn nacm_rules_take_effect() {
    let server = NetconfServer::start();
    let PytestRun {
        success,
        stdout,
        stderr,
    } = run_pytest(&server, &suite_dir().join("nacm_cases.py"), &[]);
    assert!(
        success,
        "NACM cases failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    assert!(stdout.contains("10 passed"), "{stdout}");
    // The daemon survived every rule, good or bad.
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Rule paths are printed with XML prefixes into running.xml and the commit
/// history: the server starts again with them and a rollback reads them back.
#[test]
fn path_rules_survive_restart_and_rollback() {
    let server = NetconfServer::start();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        r#"
m = connect()
m.edit_config(target='candidate', config='''<config>
<system xmlns="urn:besip:system"><user><name>oper</name><group>operator</group>
<password-hash>$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1</password-hash></user></system>
<pbx xmlns="urn:besip:pbx"><trunk><name>prov</name><host>192.0.2.1</host></trunk></pbx>
<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"><rule-list><name>ops</name><group>operator</group>
<rule><name>no-trunks</name><module-name>besip-pbx</module-name><path>/besip-pbx:pbx/trunk</path>
<access-operations>update</access-operations><action>deny</action></rule></rule-list></nacm></config>''')
m.commit()
print('CONFIGURED')
"#,
    );
    assert!(ok && out.contains("CONFIGURED"), "{out}\n{}", server.log());
    let path = walk(server.root_path(), "running.xml").expect("running.xml under the root");
    let running = std::fs::read_to_string(path).expect("read running.xml");
    assert!(running.contains("trunk</path>"), "{running}");
    let root = server.stop();
    let server = NetconfServer::start_in(root);
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        r#"
from ncclient.operations.rpc import RPCError
from ncclient.xml_ import to_ele
oper = connect('oper', 's3cret')
try:
    oper.edit_config(target='candidate', config='<config><pbx xmlns="urn:besip:pbx"><trunk><name>prov</name><host>192.0.2.7</host></trunk></pbx></config>')
    print('NOT DENIED')
except RPCError as e:
    print('DENIED', e.tag)
m = connect()
m.dispatch(to_ele('<rollback xmlns="urn:besip:system"><back>0</back></rollback>'))
print('ROLLBACK OK' if 'trunk</path>' in m.get_config('candidate').data_xml else 'ROLLBACK LOST THE RULE')
"#,
    );
    assert!(ok, "{out}\n{}", server.log());
    assert!(out.contains("DENIED access-denied"), "{out}");
    assert!(out.contains("ROLLBACK OK"), "{out}");
}

fn walk(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = walk(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

const TWO_SUBSCRIBERS: &str = r#"
import sys, time
from ncclient import manager
def connect(user, pw):
    return manager.connect(host='127.0.0.1', port=int(sys.argv[1]), username=user, password=pw,
                           hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)
sessions = {'ADMIN': connect('admin', sys.argv[2]), 'MON': connect('mon', 's3cret')}
for s in sessions.values():
    s.create_subscription()
print('SUBSCRIBED', flush=True)
seen = {'ADMIN': set(), 'MON': set()}
deadline = time.time() + 40
while time.time() < deadline and len(seen['ADMIN']) < 2:
    for who, s in sessions.items():
        n = s.take_notification(timeout=0.2)
        if n is None:
            continue
        for name in ('ban-added', 'ban-lifted'):
            if '<' + name in n.notification_xml:
                seen[who].add(name)
                print(who, name, flush=True)
end = time.time() + 2
while time.time() < end:
    n = sessions['MON'].take_notification(timeout=0.2)
    if n is not None:
        for name in ('ban-added', 'ban-lifted'):
            if '<' + name in n.notification_xml:
                print('MON', name, flush=True)
print('DONE', flush=True)
"#;

/// A notification-name rule keeps besip-secd's ban-added from the monitor
/// group while the admin (and the monitor, for ban-lifted) still get theirs.
#[test]
fn notification_rule_filters_daemon_notifications() {
    if !tools_present(&["ip", "ipset", "iptables"]) {
        return;
    }
    let server = NetconfServer::start();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        r#"
m = connect()
m.edit_config(target='candidate', config='''<config>
<system xmlns="urn:besip:system"><user><name>mon</name><group>monitor</group>
<password-hash>$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1</password-hash></user></system>
<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"><rule-list><name>quiet</name><group>monitor</group>
<rule><name>no-ban-added</name><module-name>besip-security</module-name><notification-name>ban-added</notification-name>
<access-operations>read</access-operations><action>deny</action></rule></rule-list></nacm></config>''')
m.commit()
print('CONFIGURED')
"#,
    );
    assert!(ok && out.contains("CONFIGURED"), "{out}\n{}", server.log());
    let set = format!("bnacm{}", std::process::id());
    let root = besip_tests::harness::TempRoot::existing(server.root_path());
    write_config(&root, "iptables-ipset", &set, "");
    let ns = Netns::new("nacm");
    let daemon = SecDaemon::start(&ns, &root);
    // netconfd retries the daemon's socket every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    let subscriber =
        PythonLines::spawn(TWO_SUBSCRIBERS, &[&server.port.to_string(), ADMIN_PASSWORD]);
    subscriber.expect_line("SUBSCRIBED", Duration::from_secs(30));
    // 10 OPTIONS from one source in well under 5 s cross the 'short' rule (5 in 5 s).
    options_burst(&ns, "127.0.0.9", 10);
    let received = subscriber.lines_until("DONE", Duration::from_secs(60));
    drop(subscriber);
    let log = daemon.log();
    daemon.stop();
    let has = |l: &str| received.iter().any(|r| r == l);
    assert!(
        has("ADMIN ban-added") && has("ADMIN ban-lifted"),
        "{received:?}\nsecd log:\n{log}"
    );
    assert!(has("MON ban-lifted"), "{received:?}");
    assert!(!has("MON ban-added"), "{received:?}");
}
