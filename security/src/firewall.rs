//! Bans in the kernel. The set entries carry their own timeout, so the kernel
//! lifts a ban even when the daemon is not running. Only the objects named after
//! the configured set name are created or touched.
//!
//! Two sets per address family: bans of scope `sip` (the default) drop only
//! packets to the SIP ports and the RTP range, so a ban cannot cut the admin
//! off NETCONF/SSH or the web panel; bans of scope `all` drop everything. The
//! sets hold prefixes (ipset hash:net, nftables interval sets), so a full ban
//! table can fall back to /24 and /64 bans.

use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use snafu::Snafu;

use crate::config::{Backend, Scope};

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
    ports: Ports,
}

/// The destination ports a `sip`-scope ban drops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports {
    pub sip: Vec<u16>,
    pub rtp: Option<(u16, u16)>,
}

/// Largest element a set may hold (ipset's maxelem): single and prefix bans
/// are each bounded by max-bans (at most 1,000,000).
const SET_MAX_ELEMENTS: &str = "2100000";

/// Insert at the top of INPUT a rule that drops sources in `set` (narrowed by
/// `matches`, e.g. protocol and ports), tagged with our `mark` comment so that
/// `delete_iptables_rules` finds it.
fn insert_drop_rule(
    tool: &str,
    matches: &[&str],
    set: &str,
    mark: &str,
) -> Result<(), FirewallError> {
    let mut args = vec!["-w", "-I", "INPUT"];
    args.extend_from_slice(matches);
    args.extend_from_slice(&[
        "-m",
        "set",
        "--match-set",
        set,
        "src",
        "-m",
        "comment",
        "--comment",
        mark,
        "-j",
        "DROP",
    ]);
    run(tool, &args, None)
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

/// Marks the iptables rules of set `set` (so they can be found and replaced).
fn comment(set: &str) -> String {
    format!("besip:{set}")
}

/// multiport takes at most 15 ports per rule, a range counting as two.
fn multiport_lists(ports: &Ports) -> Vec<String> {
    let mut items: Vec<(String, usize)> = ports.sip.iter().map(|p| (p.to_string(), 1)).collect();
    if let Some((min, max)) = ports.rtp {
        items.push((format!("{min}:{max}"), 2));
    }
    let mut lists = Vec::new();
    let (mut current, mut weight) = (Vec::new(), 0);
    for (item, w) in items {
        if weight + w > 15 {
            lists.push(current.join(","));
            (current, weight) = (Vec::new(), 0);
        }
        current.push(item);
        weight += w;
    }
    if !current.is_empty() {
        lists.push(current.join(","));
    }
    lists
}

/// The nftables port set text: `{ 5060, 10000-20000 }`.
fn nft_ports(ports: &Ports) -> String {
    let mut items: Vec<String> = ports.sip.iter().map(u16::to_string).collect();
    if let Some((min, max)) = ports.rtp {
        items.push(format!("{min}-{max}"));
    }
    format!("{{ {} }}", items.join(", "))
}

/// An element as the tools want it: a bare address for a single host.
fn element(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl Firewall {
    pub fn new(backend: Backend, set: &str, ports: Ports) -> Firewall {
        Firewall {
            backend,
            set: set.to_owned(),
            ports,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The ipset of one family and scope.
    fn ipset(&self, v6: bool, scope: Scope) -> String {
        let all = if scope == Scope::All { "_all" } else { "" };
        let six = if v6 { "6" } else { "" };
        format!("{}{all}{six}", self.set)
    }

    /// The nftables set of one family and scope.
    fn nft_set(v6: bool, scope: Scope) -> &'static str {
        match (v6, scope) {
            (false, Scope::Sip) => "v4",
            (true, Scope::Sip) => "v6",
            (false, Scope::All) => "v4all",
            (true, Scope::All) => "v6all",
        }
    }

    /// Create the sets unless they exist and (re)write the drop rules for the
    /// current ports.
    pub fn setup(&self) -> Result<(), FirewallError> {
        match self.backend {
            Backend::LogOnly => Ok(()),
            Backend::IptablesIpset => {
                for v6 in [false, true] {
                    for scope in [Scope::Sip, Scope::All] {
                        self.create_ipset(&self.ipset(v6, scope), v6)?;
                    }
                }
                self.write_iptables_rules()
            }
            Backend::Nftables => {
                let t = &self.set;
                let mut script = format!("add table inet {t}\n");
                for (name, kind) in [
                    ("v4", "ipv4_addr"),
                    ("v6", "ipv6_addr"),
                    ("v4all", "ipv4_addr"),
                    ("v6all", "ipv6_addr"),
                ] {
                    script.push_str(&format!(
                        "add set inet {t} {name} {{ type {kind}; flags interval, timeout; }}\n"
                    ));
                }
                script.push_str(&format!("add chain inet {t} input {{ type filter hook input priority -10; policy accept; }}\nflush chain inet {t} input\n"));
                if !self.ports.sip.is_empty() || self.ports.rtp.is_some() {
                    let ports = nft_ports(&self.ports);
                    for (family, set) in [("ip", "v4"), ("ip6", "v6")] {
                        for proto in ["udp", "tcp"] {
                            script.push_str(&format!("add rule inet {t} input {family} saddr @{set} {proto} dport {ports} counter drop\n"));
                        }
                    }
                }
                script.push_str(&format!("add rule inet {t} input ip saddr @v4all counter drop\nadd rule inet {t} input ip6 saddr @v6all counter drop\n"));
                if run("nft", &["-f", "-"], Some(&script)).is_ok() {
                    return Ok(());
                }
                // A table of an older version (sets without the interval
                // flag): replace it; the daemon restores its bans from SQLite.
                tracing::warn!(table = %t, "replacing an nftables table of another layout");
                run("nft", &["delete", "table", "inet", t], None)?;
                run("nft", &["-f", "-"], Some(&script))
            }
        }
    }

    /// Apply new ports (the PBX's listen ports or RTP range changed).
    pub fn set_ports(&mut self, ports: Ports) -> Result<(), FirewallError> {
        if ports == self.ports {
            return Ok(());
        }
        self.ports = ports;
        self.setup()
    }

    fn create_ipset(&self, name: &str, v6: bool) -> Result<(), FirewallError> {
        let family = if v6 { "inet6" } else { "inet" };
        let args = [
            "create",
            name,
            "hash:net",
            "family",
            family,
            "timeout",
            "0",
            "maxelem",
            SET_MAX_ELEMENTS,
            "-exist",
        ];
        if run("ipset", &args, None).is_ok() {
            return Ok(());
        }
        // A set of that name with another type (hash:ip of an older version):
        // replace it; the daemon restores its bans from SQLite after setup.
        tracing::warn!(set = name, "replacing an ipset of another type");
        self.delete_iptables_rules();
        run("ipset", &["destroy", name], None)?;
        run("ipset", &args, None)
    }

    /// Delete every INPUT rule of ours (marked with our comment, or the
    /// unmarked rule of older versions).
    fn delete_iptables_rules(&self) {
        let mark = comment(&self.set);
        for (tool, v6) in [("iptables", false), ("ip6tables", true)] {
            let legacy = format!(
                "-A INPUT -m set --match-set {} src -j DROP",
                self.ipset(v6, Scope::Sip)
            );
            let Ok(out) = Command::new(tool).args(["-w", "-S", "INPUT"]).output() else {
                continue;
            };
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let ours = line.split_whitespace().any(|w| w.trim_matches('"') == mark);
                if !ours && line.trim() != legacy {
                    continue;
                }
                let mut args: Vec<String> = vec!["-w".into()];
                args.extend(
                    line.split_whitespace()
                        .map(|w| w.trim_matches('"').to_owned()),
                );
                if let Some(a) = args.get_mut(1) {
                    *a = "-D".into();
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let _ = run(tool, &refs, None);
            }
        }
    }

    fn write_iptables_rules(&self) -> Result<(), FirewallError> {
        self.delete_iptables_rules();
        let mark = comment(&self.set);
        for (tool, v6) in [("iptables", false), ("ip6tables", true)] {
            let all = self.ipset(v6, Scope::All);
            insert_drop_rule(tool, &[], &all, &mark)?;
            let sip = self.ipset(v6, Scope::Sip);
            // Inserted at the top in reverse, so UDP comes first in listings.
            for ports in multiport_lists(&self.ports).iter().rev() {
                for proto in ["tcp", "udp"] {
                    let only = ["-p", proto, "-m", "multiport", "--dports", ports.as_str()];
                    insert_drop_rule(tool, &only, &sip, &mark)?;
                }
            }
        }
        Ok(())
    }

    /// Remove the drop rules and the sets (the bans in them go too): used when
    /// the backend or the set name changes, and by `besip-secd teardown`
    /// (package removal). Objects already gone are not an error.
    pub fn teardown(&self) -> Result<(), FirewallError> {
        match self.backend {
            Backend::LogOnly => Ok(()),
            Backend::IptablesIpset => {
                self.delete_iptables_rules();
                for v6 in [false, true] {
                    for scope in [Scope::Sip, Scope::All] {
                        let set = self.ipset(v6, scope);
                        if run("ipset", &["list", "-n", &set], None).is_ok() {
                            run("ipset", &["destroy", &set], None)?;
                        }
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

    pub fn ban(&self, net: IpNet, scope: Scope, seconds: u32) -> Result<(), FirewallError> {
        let secs = seconds.clamp(1, 2_147_483).to_string();
        let a = element(&net);
        let v6 = matches!(net, IpNet::V6(_));
        match self.backend {
            Backend::LogOnly => Ok(()),
            Backend::IptablesIpset => run(
                "ipset",
                &[
                    "add",
                    &self.ipset(v6, scope),
                    &a,
                    "timeout",
                    &secs,
                    "-exist",
                ],
                None,
            ),
            // `add` keeps an existing element (a restore after restart): same ban, same timeout.
            Backend::Nftables => run(
                "nft",
                &[
                    "add",
                    "element",
                    "inet",
                    &self.set,
                    Firewall::nft_set(v6, scope),
                    &format!("{{ {a} timeout {secs}s }}"),
                ],
                None,
            ),
        }
    }

    /// Lift many bans with one command per set (a prefix ban absorbing up
    /// to max-bans single bans must not run a tool per address).
    pub fn unban_many(&self, nets: &[(IpNet, Scope)]) -> Result<(), FirewallError> {
        for v6 in [false, true] {
            for scope in [Scope::Sip, Scope::All] {
                let elements: Vec<String> = nets
                    .iter()
                    .filter(|(n, s)| matches!(n, IpNet::V6(_)) == v6 && *s == scope)
                    .map(|(n, _)| element(n))
                    .collect();
                if elements.is_empty() {
                    continue;
                }
                match self.backend {
                    Backend::LogOnly => {}
                    Backend::IptablesIpset => {
                        let set = self.ipset(v6, scope);
                        let script: String = elements
                            .iter()
                            .map(|e| format!("del {set} {e}\n"))
                            .collect();
                        run("ipset", &["-exist", "restore"], Some(&script))?;
                    }
                    Backend::Nftables => {
                        // Elements the kernel expired already make the batch fail: then one by one.
                        let list = format!("{{ {} }}", elements.join(", "));
                        let set = Firewall::nft_set(v6, scope);
                        if run(
                            "nft",
                            &["delete", "element", "inet", &self.set, set, &list],
                            None,
                        )
                        .is_err()
                        {
                            for (n, _) in nets
                                .iter()
                                .filter(|(n, s)| matches!(n, IpNet::V6(_)) == v6 && *s == scope)
                            {
                                self.unban(*n, scope)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn unban(&self, net: IpNet, scope: Scope) -> Result<(), FirewallError> {
        let a = element(&net);
        let v6 = matches!(net, IpNet::V6(_));
        match self.backend {
            Backend::LogOnly => Ok(()),
            Backend::IptablesIpset => run(
                "ipset",
                &["del", &self.ipset(v6, scope), &a, "-exist"],
                None,
            ),
            Backend::Nftables => {
                // absent already (expired in the kernel) is fine
                let _ = run(
                    "nft",
                    &[
                        "delete",
                        "element",
                        "inet",
                        &self.set,
                        Firewall::nft_set(v6, scope),
                        &format!("{{ {a} }}"),
                    ],
                    None,
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiport_lists_respect_the_15_port_limit() {
        let ports = Ports {
            sip: vec![5060, 5070],
            rtp: Some((10000, 20000)),
        };
        assert_eq!(multiport_lists(&ports), vec!["5060,5070,10000:20000"]);
        let many = Ports {
            sip: (1..=14).collect(),
            rtp: Some((10000, 20000)),
        };
        let lists = multiport_lists(&many);
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[1], "10000:20000");
        assert_eq!(nft_ports(&ports), "{ 5060, 5070, 10000-20000 }");
        assert_eq!(element(&"10.0.0.5/32".parse().unwrap()), "10.0.0.5");
        assert_eq!(element(&"10.0.0.0/24".parse().unwrap()), "10.0.0.0/24");
    }
}
