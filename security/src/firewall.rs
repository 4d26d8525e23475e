//! Bans in the kernel. The set entries carry their own timeout, so the kernel
//! lifts a ban even when the daemon is not running. Only the objects named after
//! the configured set name are created or touched.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use snafu::Snafu;

use crate::config::Backend;

#[derive(Debug, Snafu)]
#[snafu(display(
    "firewall command '{command}' failed: {message} (is the tool installed and are we root?)"
))]
pub struct FirewallError {
    command: String,
    message: String,
}

pub struct Firewall {
    backend: Backend,
    set: String,
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), FirewallError> {
    let command = format!("{program} {}", args.join(" "));
    let fail = |message: String| FirewallError {
        command: command.clone(),
        message,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}

/// The iptables rule that drops sources in `set` (added by setup, removed by teardown).
fn drop_rule(set: &str) -> [&str; 8] {
    [
        "INPUT",
        "-m",
        "set",
        "--match-set",
        set,
        "src",
        "-j",
        "DROP",
    ]
}

impl Firewall {
    pub fn new(backend: Backend, set: &str) -> Firewall {
        Firewall {
            backend,
            set: set.to_owned(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn set6(&self) -> String {
        format!("{}6", self.set)
    }

    /// Create the sets and the drop rules unless they exist already.
    pub fn setup(&self) -> Result<(), FirewallError> {
        match self.backend {
            Backend::LogOnly => Ok(()),
            Backend::IptablesIpset => {
                let set6 = self.set6();
                run(
                    "ipset",
                    &[
                        "create", &self.set, "hash:ip", "family", "inet", "timeout", "0", "-exist",
                    ],
                    None,
                )?;
                run(
                    "ipset",
                    &[
                        "create", &set6, "hash:ip", "family", "inet6", "timeout", "0", "-exist",
                    ],
                    None,
                )?;
                for (tool, set) in [
                    ("iptables", self.set.as_str()),
                    ("ip6tables", set6.as_str()),
                ] {
                    let rule = drop_rule(set);
                    let mut check = vec!["-w", "-C"];
                    check.extend_from_slice(&rule);
                    if run(tool, &check, None).is_err() {
                        let mut insert = vec!["-w", "-I"];
                        insert.extend_from_slice(&rule);
                        run(tool, &insert, None)?;
                    }
                }
                Ok(())
            }
            Backend::Nftables => {
                if run("nft", &["list", "table", "inet", &self.set], None).is_ok() {
                    return Ok(());
                }
                let script = format!(
                    "table inet {t} {{\n set v4 {{ type ipv4_addr; flags timeout; }}\n set v6 {{ type ipv6_addr; flags timeout; }}\n chain input {{ type filter hook input priority -10; policy accept;\n  ip saddr @v4 counter drop\n  ip6 saddr @v6 counter drop\n }}\n}}\n",
                    t = self.set
                );
                run("nft", &["-f", "-"], Some(&script))
            }
        }
    }

    /// Remove the drop rules and the sets (the bans in them go too): used when
    /// the backend or the set name changes, and by `besip-secd teardown`
    /// (package removal). Objects already gone are not an error.
    pub fn teardown(&self) -> Result<(), FirewallError> {
        match self.backend {
            Backend::LogOnly => Ok(()),
            Backend::IptablesIpset => {
                let set6 = self.set6();
                for (tool, set) in [
                    ("iptables", self.set.as_str()),
                    ("ip6tables", set6.as_str()),
                ] {
                    let rule = drop_rule(set);
                    let mut delete = vec!["-w", "-D"];
                    delete.extend_from_slice(&rule);
                    // Inserted once by setup, but delete every copy there is.
                    while run(tool, &delete, None).is_ok() {}
                }
                for set in [self.set.as_str(), set6.as_str()] {
                    let exists = run("ipset", &["list", "-n", set], None).is_ok();
                    if exists {
                        run("ipset", &["destroy", set], None)?;
                    }
                }
                Ok(())
            }
            Backend::Nftables => {
                if run("nft", &["list", "table", "inet", &self.set], None).is_err() {
                    return Ok(());
                }
                run("nft", &["delete", "table", "inet", &self.set], None)
            }
        }
    }

    pub fn ban(&self, addr: IpAddr, seconds: u32) -> Result<(), FirewallError> {
        let secs = seconds.clamp(1, 2_147_483).to_string();
        let a = addr.to_string();
        match (self.backend, addr) {
            (Backend::LogOnly, _) => Ok(()),
            (Backend::IptablesIpset, IpAddr::V4(_)) => run(
                "ipset",
                &["add", &self.set, &a, "timeout", &secs, "-exist"],
                None,
            ),
            (Backend::IptablesIpset, IpAddr::V6(_)) => run(
                "ipset",
                &["add", &self.set6(), &a, "timeout", &secs, "-exist"],
                None,
            ),
            (Backend::Nftables, _) => {
                let set = if addr.is_ipv4() { "v4" } else { "v6" };
                // `add` keeps an existing element (a restore after restart): same ban, same timeout.
                run(
                    "nft",
                    &[
                        "add",
                        "element",
                        "inet",
                        &self.set,
                        set,
                        &format!("{{ {a} timeout {secs}s }}"),
                    ],
                    None,
                )
            }
        }
    }

    pub fn unban(&self, addr: IpAddr) -> Result<(), FirewallError> {
        let a = addr.to_string();
        match (self.backend, addr) {
            (Backend::LogOnly, _) => Ok(()),
            (Backend::IptablesIpset, IpAddr::V4(_)) => {
                run("ipset", &["del", &self.set, &a, "-exist"], None)
            }
            (Backend::IptablesIpset, IpAddr::V6(_)) => {
                run("ipset", &["del", &self.set6(), &a, "-exist"], None)
            }
            (Backend::Nftables, _) => {
                let set = if addr.is_ipv4() { "v4" } else { "v6" };
                // absent already (expired in the kernel) is fine
                let _ = run(
                    "nft",
                    &[
                        "delete",
                        "element",
                        "inet",
                        &self.set,
                        set,
                        &format!("{{ {a} }}"),
                    ],
                    None,
                );
                Ok(())
            }
        }
    }
}
