//! RFC 6470 base notifications of besip-netconfd seen by a real subscriber
//! (ncclient; netopeer2-cli is not packaged for this Debian release):
//! `netconf-confirmed-commit` start, extend, complete (also by persist-id),
//! cancel, timeout, the `netconf-config-change` of each rollback, session
//! start and end (also killed-by). Every notification received is checked
//! against ietf-netconf-notifications by yanglint (libyang's command-line
//! tool), as a libyang client would parse it.
//! NACM notification rules keep them from users who may not read them.

use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use std::path::Path;
use std::process::Command;

/// Defines `expect(listener, *needles)`: the next notification holding every
/// needle (those before it are skipped; each one is saved to OUT for yanglint).
const EXPECT: &str = r#"
import os
HOST = '<config><system xmlns="urn:besip:system"><hostname>{}</hostname></system></config>'
saved = [0]
def expect(listener, *needles, wait=10):
    end = time.time() + wait
    while time.time() < end:
        n = listener.take_notification(timeout=max(0.1, end - time.time()))
        if n is None:
            break
        xml = n.notification_xml
        saved[0] += 1
        with open(os.path.join(OUT, '%03d.xml' % saved[0]), 'w') as f:
            f.write(xml)
        if all(w in xml for w in needles):
            return xml
    raise SystemExit('MISSING %r' % (needles,))
def hostname(m):
    data = m.get_config('running', filter=('subtree', '<system xmlns="urn:besip:system"><hostname/></system>')).data_xml
    return data.split('<hostname>')[1].split('</hostname>')[0]
CC = '<netconf-confirmed-commit'
CHANGE = '<netconf-config-change'
"#;

const SCENARIO: &str = r#"
listener = connect()
listener.create_subscription()
a = connect()
me = '<session-id>%s</session-id>' % a.session_id
expect(listener, '<netconf-session-start', me, '<username>admin</username>', '<source-host>127.0.0.1</source-host>')
original = hostname(a)

# start, extend, complete
a.edit_config(target='candidate', config=HOST.format('tentative'))
a.commit(confirmed=True, timeout='60')
expect(listener, CHANGE, me, 'hostname')
expect(listener, CC, me, '<confirm-event>start</confirm-event>', '<timeout>60</timeout>')
a.edit_config(target='candidate', config=HOST.format('extended'))
a.commit(confirmed=True, timeout='120')
expect(listener, CC, me, '<confirm-event>extend</confirm-event>', '<timeout>120</timeout>')
a.commit()
n = expect(listener, CC, '<confirm-event>complete</confirm-event>')
assert me in n and '<timeout>' not in n, n
assert hostname(a) == 'extended'
print('COMPLETE OK', flush=True)

# cancel-commit: running goes back, and says so
a.edit_config(target='candidate', config=HOST.format('cancelled'))
a.commit(confirmed=True, timeout='60')
expect(listener, CC, '<confirm-event>start</confirm-event>')
a.cancel_commit()
n = expect(listener, CHANGE)
assert me in n and '<username>admin</username>' in n and '<operation>replace</operation>' in n, n
assert ':system</target>' in n, n
expect(listener, CC, me, '<confirm-event>cancel</confirm-event>')
assert hostname(a) == 'extended'
print('CANCEL OK', flush=True)

# timeout: the server rolls back; no session parameters
a.edit_config(target='candidate', config=HOST.format('expiring'))
a.commit(confirmed=True, timeout='2')
expect(listener, CC, '<confirm-event>start</confirm-event>', '<timeout>2</timeout>')
n = expect(listener, CHANGE, wait=20)
assert '<server/>' in n and '<username>' not in n and ':system</target>' in n, n
n = expect(listener, CC, '<confirm-event>timeout</confirm-event>')
assert '<username>' not in n and '<session-id>' not in n and '<timeout>' not in n, n
assert hostname(a) == 'extended'
print('TIMEOUT OK', flush=True)

# the end of the session that owns a confirmed commit cancels it
b = connect()
theirs = '<session-id>%s</session-id>' % b.session_id
b.edit_config(target='candidate', config=HOST.format('sessionbound'))
b.commit(confirmed=True, timeout='60')
expect(listener, CC, theirs, '<confirm-event>start</confirm-event>')
b.close_session()
expect(listener, CHANGE, theirs)
expect(listener, CC, theirs, '<confirm-event>cancel</confirm-event>')
expect(listener, '<netconf-session-end', theirs, '<termination-reason>closed</termination-reason>')
assert hostname(a) == 'extended'

# a persistent confirmed commit confirmed from another session: complete, by that session
a.edit_config(target='candidate', config=HOST.format('persisted'))
a.commit(confirmed=True, timeout='60', persist='tok')
expect(listener, CC, me, '<confirm-event>start</confirm-event>')
d = connect()
d.commit(persist_id='tok')
expect(listener, CC, '<session-id>%s</session-id>' % d.session_id, '<confirm-event>complete</confirm-event>')
assert hostname(a) == 'persisted'
print('PERSIST OK', flush=True)
a.edit_config(target='candidate', config=HOST.format(original))
a.commit()
expect(listener, CHANGE)
from lxml import etree
with open(os.path.join(OUT, 'running.xml'), 'w') as f:
    f.write(''.join(etree.tostring(c).decode() for c in a.get_config('running').data_ele))
print('SESSION END OK', flush=True)

c = connect()
a.kill_session(c.session_id)
expect(listener, '<netconf-session-end', '<session-id>%s</session-id>' % c.session_id,
       '<killed-by>%s</killed-by>' % a.session_id, '<termination-reason>killed</termination-reason>')
print('KILLED OK', flush=True)
print('DONE', flush=True)
"#;

#[test]
fn confirmed_commit_events_reach_a_subscriber_and_validate() {
    let server = NetconfServer::start();
    let out = tempfile::tempdir().expect("a directory for the notifications");
    let script = format!("OUT = {:?}\n{EXPECT}{SCENARIO}", out.path());
    let (ok, printed) = python(server.port, ADMIN_PASSWORD, &script);
    assert!(
        ok && printed.contains("DONE"),
        "{printed}\n--- server log ---\n{}",
        server.log()
    );
    let checked = validate_all(out.path());
    assert!(checked >= 18, "only {checked} notifications saved");
}

/// yanglint every saved notification (with running, which the config
/// changes' edit targets point into); the number checked.
fn validate_all(dir: &Path) -> usize {
    let yang = Path::new(env!("CARGO_MANIFEST_DIR")).join("../yang");
    let running = dir.join("running.xml");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read the notifications")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != &running)
        .collect();
    files.sort();
    for file in &files {
        let output = Command::new("yanglint")
            .args(["-t", "nc-notif", "-p"])
            .arg(yang.join("ietf"))
            .arg("-O")
            .arg(&running)
            .arg(yang.join("ietf/ietf-netconf-notifications@2012-02-06.yang"))
            .args(besip_modules(&yang))
            .arg(file)
            .output()
            .expect("run yanglint (apt install libyang2-tools)");
        let text = std::fs::read_to_string(file).unwrap_or_default();
        assert!(
            output.status.success(),
            "{}: {text}\n{}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    files.len()
}

fn besip_modules(yang: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(yang)
        .expect("read yang/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yang"))
        .collect()
}

const NACM_SCENARIO: &str = r#"
HASH = '$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1'
def user(name, group):
    return '<user><name>%s</name><group>%s</group><password-hash>%s</password-hash></user>' % (name, group, HASH)
def deny(name, notification):
    return ('<rule><name>%s</name><module-name>ietf-netconf-notifications</module-name>'
            '<notification-name>%s</notification-name><access-operations>read</access-operations>'
            '<action>deny</action></rule>') % (name, notification)
a = connect()
a.edit_config(target='candidate', config='<config><system xmlns="urn:besip:system">%s%s</system>'
    '<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm">'
    '<rule-list><name>mon-quiet</name><group>monitor</group>%s</rule-list>'
    '<rule-list><name>oper-no-cc</name><group>operator</group>%s</rule-list></nacm></config>'
    % (user('mon', 'monitor'), user('oper', 'operator'), deny('none', '*'), deny('no-cc', 'netconf-confirmed-commit')))
a.commit()
admin, mon, oper = connect(), connect('mon', 's3cret'), connect('oper', 's3cret')
for s in (admin, mon, oper):
    s.create_subscription()
a.edit_config(target='candidate', config=HOST.format('guarded'))
a.commit(confirmed=True, timeout='60')
a.commit()
expect(admin, CHANGE, 'hostname')
expect(admin, CC, '<confirm-event>start</confirm-event>')
expect(admin, CC, '<confirm-event>complete</confirm-event>')
# The operator still hears of the change, not of the confirmed commit.
expect(oper, CHANGE, 'hostname')
def drain(s, wait=2):
    out = []
    while True:
        n = s.take_notification(timeout=wait)
        if n is None:
            return out
        out.append(n.notification_xml)
rest = drain(oper)
assert not any(CC in x for x in rest), rest
got = drain(mon)
assert not got, got
print('NACM OK', flush=True)
"#;

#[test]
fn nacm_keeps_base_notifications_from_users_who_may_not_read_them() {
    let server = NetconfServer::start();
    let out = tempfile::tempdir().expect("a directory for the notifications");
    let script = format!("OUT = {:?}\n{EXPECT}{NACM_SCENARIO}", out.path());
    let (ok, printed) = python(server.port, ADMIN_PASSWORD, &script);
    assert!(
        ok && printed.contains("NACM OK"),
        "{printed}\n--- server log ---\n{}",
        server.log()
    );
}
