//! Hand-edited UCI is validated (issue 15): an edit of /etc/config/besip_pbx
//! imported with `besip-uci-import` (what the init scripts' reload_service
//! runs after `uci commit` + `reload_config`) is validated against YANG and
//! committed — NETCONF clients see it and get netconf-config-change — or
//! refused with file, line and YANG path: the file is put back byte for byte,
//! the refused text is kept, running is unchanged and subscribers get
//! besip-system uci-import-refused. The NETCONF RPC besip-system:import-uci
//! does the same for a remote client.

use besip_tests::harness::bin_path;
use besip_tests::netconf::{python, NetconfServer, PythonLines, ADMIN_PASSWORD};
use std::process::{Command, Output};
use std::time::Duration;

fn uci_import(server: &NetconfServer, package: &str) -> Output {
    Command::new(bin_path("besip-uci-import"))
        .arg("--root")
        .arg(server.root_path())
        .arg(package)
        .output()
        .expect("run besip-uci-import (cargo build -p besip-box)")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Extension 100's display name in running, as a NETCONF client sees it.
fn display_name(server: &NetconfServer) -> String {
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "m = connect()\nprint(m.get_config('running', filter=('subtree', '<pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><display-name/></extension></pbx>')).data_xml)",
    );
    assert!(ok, "{out}");
    out.split("<display-name>")
        .nth(1)
        .and_then(|rest| rest.split("</display-name>").next())
        .unwrap_or_default()
        .to_owned()
}

const SUBSCRIBER: &str = "import sys\nfrom ncclient import manager\n\
m = manager.connect(host='127.0.0.1', port=int(sys.argv[1]), username='admin', password=sys.argv[2], hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)\n\
m.create_subscription()\nprint('READY', flush=True)\n\
while True:\n    n = m.take_notification(timeout=60)\n    if n is not None:\n        print(n.notification_xml.replace('\\n', ' '), flush=True)\n";

fn next_notification(subscriber: &PythonLines, name: &str) -> String {
    loop {
        let line = subscriber
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no <{name}> notification within 60 s"));
        if line.contains(&format!("<{name}")) {
            return line;
        }
    }
}

#[test]
fn hand_edits_are_validated_and_committed_or_refused_and_put_back() {
    let server = NetconfServer::start();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "m = connect(); m.edit_config(target='candidate', config='<config><pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><display-name>Alice</display-name><password>pw-100</password></extension></pbx></config>'); m.commit()",
    );
    assert!(ok, "{out}");
    let port = server.port.to_string();
    let subscriber = PythonLines::spawn(SUBSCRIBER, &[&port, ADMIN_PASSWORD]);
    subscriber.expect_line("READY", Duration::from_secs(60));

    let file = server.root_path().join("etc/config/besip_pbx");
    let rendered = std::fs::read_to_string(&file).expect("netconfd rendered besip_pbx");
    assert!(rendered.contains("'Alice'"), "{rendered}");

    // Nothing edited: nothing to do.
    let out = uci_import(&server, "besip_pbx");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("besip_pbx: unchanged"),
        "{}",
        text(&out)
    );

    // A valid hand edit is committed.
    std::fs::write(&file, rendered.replace("'Alice'", "'Alicia'")).unwrap();
    let out = uci_import(&server, "besip_pbx");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("besip_pbx: committed"),
        "{}",
        text(&out)
    );
    assert_eq!(display_name(&server), "Alicia");
    let change = next_notification(&subscriber, "netconf-config-change");
    assert!(change.contains("<server/>"), "{change}");
    let accepted = std::fs::read_to_string(&file).unwrap();
    assert!(accepted.contains("'Alicia'"), "{accepted}");

    // An invalid one (display-name is 0..64 characters) is refused with file,
    // line and YANG path; the file is put back byte for byte.
    let too_long = "x".repeat(65);
    let refused_text = accepted.replace("'Alicia'", &format!("'{too_long}'"));
    let bad_line = refused_text
        .lines()
        .position(|l| l.contains(&too_long))
        .expect("the edited line")
        + 1;
    std::fs::write(&file, &refused_text).unwrap();
    let out = uci_import(&server, "besip_pbx");
    let message = text(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!("besip_pbx:{bad_line}: edit refused")),
        "no file:line in: {message}"
    );
    assert!(
        message.contains("YANG path /besip-pbx:pbx/extension[number='100']/display-name"),
        "no YANG path in: {message}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), accepted);
    let kept = server.root_path().join("run/besip_pbx.refused");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), refused_text);
    assert_eq!(display_name(&server), "Alicia");
    let refusal = next_notification(&subscriber, "uci-import-refused");
    assert!(
        refusal.contains(&format!("<line>{bad_line}</line>"))
            && refusal.contains("display-name</yang-path>"),
        "{refusal}"
    );

    // A syntax error names its line too.
    std::fs::write(&file, format!("{accepted}\nconfig 'unterminated\n")).unwrap();
    let out = uci_import(&server, "besip_pbx");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("besip_pbx:"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), accepted);

    // Uncommitted NETCONF changes are not swept into a hand edit's commit.
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "m = connect(); m.edit_config(target='candidate', config='<config><pbx xmlns=\"urn:besip:pbx\"><extension><number>102</number><password>pw-102</password></extension></pbx></config>')",
    );
    assert!(ok, "{out}");
    std::fs::write(&file, accepted.replace("'Alicia'", "'Bob'")).unwrap();
    let out = uci_import(&server, "besip_pbx");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("uncommitted NETCONF changes"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), accepted);

    // The same over NETCONF: besip-system:import-uci.
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "from ncclient.xml_ import to_ele\nm = connect(); m.discard_changes()\n\
         r = m.dispatch(to_ele('<import-uci xmlns=\"urn:besip:system\"><package>besip_pbx</package></import-uci>'))\n\
         print('REPLY', r.xml)\n\
         try:\n    m.dispatch(to_ele('<import-uci xmlns=\"urn:besip:system\"><package>besip_nothing</package></import-uci>'))\n\
         except Exception as e:\n    print('ERROR', getattr(e, 'tag', ''), e)\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains(">unchanged</result>"), "{out}");
    assert!(
        out.contains("ERROR invalid-value") && out.contains("not the UCI package"),
        "{out}"
    );
    std::fs::write(&file, accepted.replace("'Alicia'", "'Carol'")).unwrap();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "from ncclient.xml_ import to_ele\nm = connect()\n\
         print('REPLY', m.dispatch(to_ele('<import-uci xmlns=\"urn:besip:system\"><package>besip_pbx</package></import-uci>')).xml)\n",
    );
    assert!(ok && out.contains(">committed</result>"), "{out}");
    assert_eq!(display_name(&server), "Carol");

    // A read-only (monitor) user may not import: access-denied, nothing
    // committed, the hand-edited file left as it is for an admin to import.
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        r#"
m = connect()
m.edit_config(target='candidate', config='''<config><system xmlns="urn:besip:system"><user><name>mon</name><group>monitor</group>
<password-hash>$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1</password-hash></user></system></config>''')
m.commit()
print('CONFIGURED')
"#,
    );
    assert!(ok && out.contains("CONFIGURED"), "{out}");
    let edited = accepted.replace("'Alicia'", "'Dave'");
    std::fs::write(&file, &edited).unwrap();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        r#"
from ncclient.xml_ import to_ele
m = connect('mon', 's3cret')
try:
    print('REPLY', m.dispatch(to_ele('<import-uci xmlns="urn:besip:system"><package>besip_pbx</package></import-uci>')).xml)
except Exception as e:
    print('ERROR', getattr(e, 'tag', ''), e)
"#,
    );
    assert!(ok && out.contains("ERROR access-denied"), "{out}");
    assert_eq!(display_name(&server), "Carol");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
}
