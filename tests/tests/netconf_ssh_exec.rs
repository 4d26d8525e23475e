//! `ssh -p 830 admin@box 'COMMANDS'`: besip-netconfd runs an SSH exec
//! request as a `;`-separated command list of the shell with the user's
//! rights, prints the output and exits with the CLI's exit codes (0 ok,
//! 1 command error, 2 usage). OpenSSH's own client, key login, BatchMode.

use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Exec {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A new ed25519 key pair in `dir`: (private key file, public key line).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (apt install openssh-client)");
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    (key, public.trim().to_owned())
}

/// `ssh -i KEY -p PORT USER@127.0.0.1 COMMAND` with no prompts.
fn ssh(port: u16, user: &str, key: &Path, command: &str) -> Exec {
    let out = Command::new("ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
        ])
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh");
    Exec {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The running hostname, read with ncclient.
fn running_hostname(port: u16) -> String {
    let (ok, out) = python(
        port,
        ADMIN_PASSWORD,
        "m = connect(); print(m.get_config('running', filter=('subtree', '<system xmlns=\"urn:besip:system\"><hostname/></system>')).data_xml)",
    );
    assert!(ok, "{out}");
    out
}

/// A server where admin and `mon` (group monitor) log in with these keys.
fn server_with_keys(dir: &Path) -> (NetconfServer, PathBuf, PathBuf) {
    let server = NetconfServer::start();
    let (admin_key, admin_public) = key_pair(dir, "admin_ed25519");
    let (mon_key, mon_public) = key_pair(dir, "mon_ed25519");
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!(
            "m = connect(); m.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\">\
             <user><name>admin</name><ssh-key>{admin_public}</ssh-key></user>\
             <user><name>mon</name><group>monitor</group><ssh-key>{mon_public}</ssh-key></user>\
             </system></config>'); m.commit()"
        ),
    );
    assert!(ok, "{out}");
    (server, admin_key, mon_key)
}

#[test]
fn exec_runs_a_command_list_and_returns_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin_key, _) = server_with_keys(dir.path());
    let port = server.port;

    let show = ssh(
        port,
        "admin",
        &admin_key,
        "show configuration running system hostname",
    );
    assert_eq!(
        show.code,
        0,
        "{}{}\n{}",
        show.stdout,
        show.stderr,
        server.log()
    );
    assert_eq!(
        show.stdout.trim(),
        "set system hostname besip",
        "{}",
        show.stderr
    );

    // A list: the quoted `;` is part of the value, not a separator.
    let commit = ssh(
        port,
        "admin",
        &admin_key,
        "set system hostname viaexec; set pbx extension 300 password 'x;y'; commit comment by exec",
    );
    assert_eq!(
        commit.code,
        0,
        "{}{}\n{}",
        commit.stdout,
        commit.stderr,
        server.log()
    );
    assert!(
        commit.stdout.contains("Commit complete"),
        "{}",
        commit.stdout
    );
    assert!(
        running_hostname(port).contains("<hostname>viaexec</hostname>"),
        "the commit through exec is in running"
    );
    let extension = ssh(
        port,
        "admin",
        &admin_key,
        "show configuration running pbx extension 300",
    );
    assert_eq!(extension.code, 0, "{}", extension.stderr);
    assert!(
        extension.stdout.contains("extension 300 password"),
        "{}",
        extension.stdout
    );
    assert!(extension.stdout.contains("x;y"), "{}", extension.stdout);

    // A typo: exit code 1, the error with its suggestion on stderr.
    let typo = ssh(port, "admin", &admin_key, "set system hostnme x");
    assert_eq!(typo.code, 1, "{}{}", typo.stdout, typo.stderr);
    assert!(
        typo.stderr.contains("did you mean: hostname"),
        "{}",
        typo.stderr
    );

    // A failing command stops the list: what came before ran, what follows did not.
    let stopped = ssh(
        port,
        "admin",
        &admin_key,
        "show configuration running system hostname; bogus; set system hostname never; commit",
    );
    assert_eq!(stopped.code, 1, "{}{}", stopped.stdout, stopped.stderr);
    assert!(
        stopped.stdout.contains("set system hostname viaexec"),
        "{}",
        stopped.stdout
    );
    assert!(
        stopped.stderr.contains("command 2 (bogus)"),
        "{}",
        stopped.stderr
    );
    assert!(
        !stopped.stdout.contains("Commit complete"),
        "{}",
        stopped.stdout
    );
    assert!(running_hostname(port).contains("<hostname>viaexec</hostname>"));
    let candidate = ssh(port, "admin", &admin_key, "compare");
    assert_eq!(
        candidate.stdout.trim(),
        "No changes.",
        "{}",
        candidate.stderr
    );

    // A gigantic command line is refused whole with a usage error (2).
    let huge = format!("set system hostname {}", "a".repeat(80 * 1024));
    let refused = ssh(port, "admin", &admin_key, &huge);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("more than the 65536"),
        "{}",
        refused.stderr
    );
}

#[test]
fn exec_keeps_the_users_rights() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _, mon_key) = server_with_keys(dir.path());
    let port = server.port;

    // A monitor may read ...
    let show = ssh(
        port,
        "mon",
        &mon_key,
        "show configuration running system hostname",
    );
    assert_eq!(
        show.code,
        0,
        "{}{}\n{}",
        show.stdout,
        show.stderr,
        server.log()
    );
    assert!(
        show.stdout.contains("set system hostname besip"),
        "{}",
        show.stdout
    );

    // ... but neither edit nor commit.
    let commit = ssh(
        port,
        "mon",
        &mon_key,
        "set system hostname bymonitor; commit",
    );
    assert_eq!(commit.code, 1, "{}{}", commit.stdout, commit.stderr);
    assert!(
        commit.stderr.contains("access-denied") || commit.stderr.to_lowercase().contains("may not"),
        "{}",
        commit.stderr
    );
    let alone = ssh(port, "mon", &mon_key, "commit");
    assert_eq!(alone.code, 1, "{}{}", alone.stdout, alone.stderr);
    assert!(running_hostname(port).contains("<hostname>besip</hostname>"));
}
