//! Bans in the kernel. The set entries carry their own timeout, so the kernel
//! lifts a ban even when the daemon is not running. Only the objects named after
//! the configured set name are created or touched.
//!
//! Two sets per address family: bans of scope `sip` (the default) drop only
//! packets to the SIP ports and the RTP range, so a ban cannot cut the admin
//! off NETCONF/SSH or the web panel; bans of scope `all` drop everything. The
//! sets hold prefixes (ipset hash:net, nftables interval sets), so a full ban
//! table can fall back to /24 and /64 bans.
//!
//! When besip-pbxd forwards RTP in the kernel (/pbx/rtp/kernel-forwarding),
//! its packets leave at netdev ingress, before any input hook: with
//! nftables the bans are then kept in a netdev table of the same name too,
//! whose chains, one per network device and ahead of the PBX's, drop what
//! the input rules would (packets to the box only: routed traffic is none
//! of the guard's business).

use std::io::Write;
use std::process::{Command, Stdio};

use besip_core::netdev::{ingress_chain, safe_device};
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
    /// The devices the netdev table's chains hook now.
    hooked: std::sync::Mutex<Vec<String>>,
}

/// The destination ports a `sip`-scope ban drops, and whether bans must
/// also drop at netdev ingress (the PBX forwards RTP there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports {
    pub sip: Vec<u16>,
    pub rtp: Option<(u16, u16)>,
    pub at_ingress: bool,
}

/// Priority of the ingress chains: ahead of besip-pbxd's (-500).
const INGRESS_PRIORITY: i32 = -600;

/// The box's network devices now (sysfs), those safe to name.
fn network_devices() -> Vec<String> {
    let mut devices: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| safe_device(n))
                .collect()
        })
        .unwrap_or_default();
    devices.sort();
    devices
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

/// The nft script making table `t` of `family` and its four ban sets
/// (kept with their elements when they exist).
fn nft_table_and_sets(family: &str, t: &str) -> String {
    let mut script = format!("add table {family} {t}\n");
    for (name, kind) in [
        ("v4", "ipv4_addr"),
        ("v6", "ipv6_addr"),
        ("v4all", "ipv4_addr"),
        ("v6all", "ipv6_addr"),
    ] {
        script.push_str(&format!(
            "add set {family} {t} {name} {{ type {kind}; flags interval, timeout; }}\n"
        ));
    }
    script
}

/// The drop rules appended to `chain` ("inet T input", "netdev T banned"):
/// sip-scope sets for the ports, all-scope sets for everything; `only`
/// (empty, or a match and a space) narrows each rule.
fn nft_drop_rules(ports: &Ports, chain: &str, only: &str) -> String {
    let mut rules = String::new();
    if !ports.sip.is_empty() || ports.rtp.is_some() {
        let ports = nft_ports(ports);
        for (family, set) in [("ip", "v4"), ("ip6", "v6")] {
            for proto in ["udp", "tcp"] {
                rules.push_str(&format!(
                    "add rule {chain} {family} saddr @{set} {proto} dport {ports} {only}counter drop\n"
                ));
            }
        }
    }
    for (family, set) in [("ip", "v4all"), ("ip6", "v6all")] {
        rules.push_str(&format!(
            "add rule {chain} {family} saddr @{set} {only}counter drop\n"
        ));
    }
    rules
}

/// An nft set element banning `net` for `seconds`.
fn nft_timed_element(net: &IpNet, seconds: u32) -> String {
    format!("{{ {} timeout {}s }}", element(net), ban_seconds(seconds))
}

/// A ban's time as the tools take it: at least a second, at most what
/// ipset's timeout holds.
fn ban_seconds(seconds: u32) -> u32 {
    seconds.clamp(1, 2_147_483)
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
            hooked: Default::default(),
        }
    }

    /// Whether bans are kept at netdev ingress too.
    fn at_ingress(&self) -> bool {
        self.backend == Backend::Nftables && self.ports.at_ingress
    }

    /// The netdev table: the sets, and the chain of drop rules every
    /// device's ingress chain jumps to.
    fn ingress_script(&self) -> String {
        let t = &self.set;
        let mut script = nft_table_and_sets("netdev", t);
        script.push_str(&format!(
            "add chain netdev {t} banned\nflush chain netdev {t} banned\n"
        ));
        // The set first: a miss (nearly every packet) costs no route lookup.
        script.push_str(&nft_drop_rules(
            &self.ports,
            &format!("netdev {t} banned"),
            "fib daddr type local ",
        ));
        script
    }

    /// Hooks the netdev table to the devices there are now, and unhooks
    /// those gone (called every few seconds: interfaces come and go).
    pub fn hook_devices(&self) {
        if !self.at_ingress() {
            return;
        }
        let t = &self.set;
        let now = network_devices();
        let Ok(mut hooked) = self.hooked.lock() else {
            return;
        };
        for gone in hooked.iter().filter(|d| !now.contains(d)) {
            // The kernel may have dropped it with its device already.
            let chain = ingress_chain(gone);
            let _ = run("nft", &["delete", "chain", "netdev", t, &chain], None);
        }
        hooked.retain(|d| now.contains(d));
        for device in now
            .iter()
            .filter(|d| !hooked.contains(d))
            .cloned()
            .collect::<Vec<_>>()
        {
            let chain = ingress_chain(&device);
            let script = format!(
                "add chain netdev {t} {chain} {{ type filter hook ingress device \"{device}\" priority {INGRESS_PRIORITY}; }}\nflush chain netdev {t} {chain}\nadd rule netdev {t} {chain} jump banned\n"
            );
            match run("nft", &["-f", "-"], Some(&script)) {
                Ok(()) => hooked.push(device),
                // Gone meanwhile, or a name clash: the next round tries again.
                Err(e) => tracing::debug!(%device, error = %e, "ingress chain not made"),
            }
        }
    }

    /// Makes the netdev table (kept when it exists: its bans stay) or,
    /// when the PBX forwards nothing in the kernel, removes it.
    fn setup_ingress(&self) {
        if self.backend != Backend::Nftables {
            return;
        }
        if !self.ports.at_ingress {
            if let Ok(mut hooked) = self.hooked.lock() {
                hooked.clear();
            }
            if run("nft", &["list", "table", "netdev", &self.set], None).is_ok() {
                let _ = run("nft", &["delete", "table", "netdev", &self.set], None);
            }
            return;
        }
        match run("nft", &["-f", "-"], Some(&self.ingress_script())) {
            Ok(()) => self.hook_devices(),
            // The input rules still hold every ban; only kernel-forwarded
            // media escapes them.
            Err(e) => tracing::error!(error = %e, "bans cannot be kept at netdev ingress"),
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
                let mut script = nft_table_and_sets("inet", t);
                script.push_str(&format!("add chain inet {t} input {{ type filter hook input priority -10; policy accept; }}\nflush chain inet {t} input\n"));
                script.push_str(&nft_drop_rules(&self.ports, &format!("inet {t} input"), ""));
                if run("nft", &["-f", "-"], Some(&script)).is_err() {
                    // A table of an older version (sets without the interval
                    // flag): replace it; the daemon restores its bans from SQLite.
                    tracing::warn!(table = %t, "replacing an nftables table of another layout");
                    run("nft", &["delete", "table", "inet", t], None)?;
                    run("nft", &["-f", "-"], Some(&script))?;
                }
                self.setup_ingress();
                Ok(())
            }
        }
    }

    /// Apply new ports (the PBX's listen ports or RTP range changed, or its
    /// kernel forwarding); true when bans must be kept at ingress from now
    /// on: the caller adds the current ones there.
    pub fn set_ports(&mut self, ports: Ports) -> Result<bool, FirewallError> {
        if ports == self.ports {
            return Ok(false);
        }
        let was_at_ingress = self.at_ingress();
        self.ports = ports;
        self.setup()?;
        Ok(self.at_ingress() && !was_at_ingress)
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
                if run("nft", &["list", "table", "netdev", &self.set], None).is_ok() {
                    run("nft", &["delete", "table", "netdev", &self.set], None)?;
                }
                if run("nft", &["list", "table", "inet", &self.set], None).is_err() {
                    return Ok(());
                }
                run("nft", &["delete", "table", "inet", &self.set], None)
            }
        }
    }

    pub fn ban(&self, net: IpNet, scope: Scope, seconds: u32) -> Result<(), FirewallError> {
        let secs = ban_seconds(seconds).to_string();
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
            Backend::Nftables => {
                let element = nft_timed_element(&net, seconds);
                let set = Firewall::nft_set(v6, scope);
                run(
                    "nft",
                    &["add", "element", "inet", &self.set, set, &element],
                    None,
                )?;
                self.ban_at_ingress(net, scope, seconds);
                Ok(())
            }
        }
    }

    /// Keeps a ban at netdev ingress too, for `seconds` (when bans are
    /// kept there: a new ban, or one that has that long left when kernel
    /// forwarding is switched on). A failure leaves the input rules, which
    /// hold it, and is logged.
    pub fn ban_at_ingress(&self, net: IpNet, scope: Scope, seconds: u32) {
        if !self.at_ingress() {
            return;
        }
        let set = Firewall::nft_set(matches!(net, IpNet::V6(_)), scope);
        let element = nft_timed_element(&net, seconds);
        let args = ["add", "element", "netdev", &self.set, set, &element];
        if let Err(e) = run("nft", &args, None) {
            tracing::error!(error = %e, "ban not kept at netdev ingress");
        }
    }

    /// Removes `elements` from the netdev table's `set` (when bans are
    /// kept there).
    fn unban_at_ingress(&self, set: &str, elements: &[String]) {
        if self.at_ingress() {
            self.nft_delete_elements("netdev", set, elements);
        }
    }

    /// Removes `elements` from `set` of this table in `family`, with one
    /// command; elements the kernel expired already make it fail, and
    /// then they go one by one, those absent ignored.
    fn nft_delete_elements(&self, family: &str, set: &str, elements: &[String]) {
        if elements.is_empty() {
            return;
        }
        let delete = |list: &str| {
            run(
                "nft",
                &["delete", "element", family, &self.set, set, list],
                None,
            )
        };
        if delete(&format!("{{ {} }}", elements.join(", "))).is_err() && elements.len() > 1 {
            for e in elements {
                let _ = delete(&format!("{{ {e} }}"));
            }
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
                        let set = Firewall::nft_set(v6, scope);
                        self.unban_at_ingress(set, &elements);
                        self.nft_delete_elements("inet", set, &elements);
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
                // Absent already (expired in the kernel) is fine.
                let elements = [a];
                let set = Firewall::nft_set(v6, scope);
                self.unban_at_ingress(set, &elements);
                self.nft_delete_elements("inet", set, &elements);
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
            at_ingress: false,
        };
        assert_eq!(multiport_lists(&ports), vec!["5060,5070,10000:20000"]);
        let many = Ports {
            sip: (1..=14).collect(),
            rtp: Some((10000, 20000)),
            at_ingress: false,
        };
        let lists = multiport_lists(&many);
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[1], "10000:20000");
        assert_eq!(nft_ports(&ports), "{ 5060, 5070, 10000-20000 }");
        assert_eq!(element(&"10.0.0.5/32".parse().unwrap()), "10.0.0.5");
        assert_eq!(element(&"10.0.0.0/24".parse().unwrap()), "10.0.0.0/24");
    }
}
