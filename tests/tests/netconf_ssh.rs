//! The SSH side of besip-netconfd: host key kept across restarts, the random
//! first admin password, the session limit and the idle timeout.

use besip_tests::harness::TempRoot;
use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};

const HOST_KEY: &str = "t = paramiko.Transport(('127.0.0.1', PORT)); t.start_client(timeout=10); k = t.get_remote_server_key(); print('KEY', k.get_name(), k.get_base64()); t.close()";

fn host_key(server: &NetconfServer) -> String {
    let (ok, out) = python(server.port, "", HOST_KEY);
    assert!(ok, "{out}");
    out.lines()
        .find(|l| l.starts_with("KEY "))
        .expect("host key line")
        .to_owned()
}

#[test]
fn host_key_is_generated_once_and_kept() {
    let server = NetconfServer::start();
    let key_file = server.root_path().join("etc/besip/ssh_host_ed25519_key");
    let first = host_key(&server);
    assert!(first.starts_with("KEY ssh-ed25519 "), "{first}");
    let text = std::fs::read_to_string(&key_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let root = server.stop();
    let server = NetconfServer::start_in(root);
    assert_eq!(host_key(&server), first);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), text);
}

#[test]
fn first_start_creates_admin_with_random_password() {
    let server = NetconfServer::start_with(TempRoot::new(), None);
    let log = server.log();
    let password = log
        .split("user admin, password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no password printed: {log}"));
    assert_eq!(password.len(), 20, "{password}");
    let (ok, out) = python(
        server.port,
        &password,
        "m = connect(); print(m.get_config('running').data_xml)",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("$argon2id$") && !out.contains(&password),
        "{out}"
    );
    // Printed once: a restart does not create or print another one.
    let root = server.stop();
    let server = NetconfServer::start_with(root, None);
    assert_eq!(
        server
            .log()
            .matches("created the first administrator")
            .count(),
        1
    );
    let (ok, out) = python(server.port, &password, "connect().close_session()");
    assert!(ok, "{out}");
}

#[test]
fn session_limit_and_idle_timeout() {
    let server = NetconfServer::start();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "m = connect(); m.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><netconf><max-sessions>1</max-sessions><idle-timeout>30</idle-timeout></netconf></system></config>'); m.commit()",
    );
    assert!(ok, "{out}");
    // The limits apply from the next start.
    let root = server.stop();
    let server = NetconfServer::start_in(root);
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        "a = connect()\n\
         try:\n    connect(); print('SECOND-ACCEPTED')\n\
         except Exception as e:\n    print('SECOND-REFUSED', type(e).__name__)\n\
         time.sleep(34)\n\
         print('A-CONNECTED', a.connected)\n\
         b = connect(); print('B-OK', b.get_config('running').data_xml.count('<hostname>'))\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("SECOND-REFUSED"), "{out}");
    assert!(
        out.contains("A-CONNECTED False"),
        "idle session was not closed: {out}"
    );
    assert!(out.contains("B-OK 1"), "{out}");
}

/// OpenSSH's own client (`ssh -s ... netconf`) logs in with an ed25519 key
/// from the user's ssh-key list and speaks NETCONF 1.0 through the subsystem.
#[test]
fn openssh_client_with_ed25519_key() {
    let server = NetconfServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (apt install openssh-client)");
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><user><name>admin</name><ssh-key>{}</ssh-key></user></system></config>'); m.commit()", public.trim()),
    );
    assert!(ok, "{out}");
    let input = "<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>\
<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"1\"><get-config><source><running/></source><filter><system xmlns=\"urn:besip:system\"><hostname/></system></filter></get-config></rpc>]]>]]>\
<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"2\"><close-session/></rpc>]]>]]>";
    let mut child = std::process::Command::new("ssh")
        .arg("-i")
        .arg(&key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .args([
            "-p",
            &server.port.to_string(),
            "-s",
            "admin@127.0.0.1",
            "netconf",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run ssh");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("<hostname>besip</hostname>"), "{text}");
    assert!(text.contains("message-id=\"2\"><ok/>"), "{text}");
}
