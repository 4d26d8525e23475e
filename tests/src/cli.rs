//! Helpers for the `besip` CLI tests: run the binary against a besip-netconfd.

use crate::harness::bin_path;
use std::io::Write;
use std::process::{Command, Stdio};

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Every test server has a new host key and ports get reused, so test runs
/// trust whatever key they meet, as `ssh -o UserKnownHostsFile=/dev/null`
/// (tests/tests/cli_host_key.rs checks the real known-hosts file).
pub const SCRATCH_KNOWN_HOSTS: &str = "/dev/null";

/// Run `besip --port PORT --user USER ARGS…` with `password` in BESIP_PASSWORD
/// and `stdin` as its input.
pub fn besip(port: u16, user: &str, password: &str, args: &[&str], stdin: &str) -> Output {
    besip_with_env(
        port,
        user,
        password,
        args,
        stdin,
        &[("BESIP_KNOWN_HOSTS", SCRATCH_KNOWN_HOSTS)],
    )
}

/// [`besip`] with these environment variables set.
pub fn besip_with_env(
    port: u16,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> Output {
    let mut child = Command::new(bin_path("besip"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--user")
        .arg(user)
        .args(args)
        .env("BESIP_PASSWORD", password)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start besip");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait for besip");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `besip -c CMD…` as admin; panics with the output unless it exits 0.
pub fn admin(port: u16, commands: &[&str]) -> String {
    let mut args = Vec::new();
    for c in commands {
        args.push("-c");
        args.push(c);
    }
    let out = besip(port, "admin", crate::netconf::ADMIN_PASSWORD, &args, "");
    assert_eq!(
        out.code, 0,
        "besip {commands:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// The rendered UCI packages of a root, by file name.
pub fn uci_files(root: &std::path::Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root.join("etc/config"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("besip_"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
