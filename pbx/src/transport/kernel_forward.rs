//! Kernel forwarding of latched RTP flows (/pbx/rtp/kernel-forwarding), the
//! way rtpengine's kernel module takes packets off its userspace loop: once
//! a relay knows both phones (latched, symmetric RTP) and nothing of the
//! call needs its packets (no SRTP to open, no recording, no music on hold),
//! an nftables rule on the ingress hook of the device the phone's packets
//! arrive on rewrites them to the other phone (addresses and ports, the
//! relay's own port as the source) and sends them on with `fwd`. They never
//! reach a socket, the firewall's forward chain or conntrack. Everything
//! else (strangers, the first packets, a flow changed by a re-INVITE) still
//! reaches the relay's sockets, which stay bound.
//!
//! One table, `netdev besip_relay`, owned by this module: a base chain per
//! ingress device with one lookup per family in a verdict map keyed by
//! (source address, source port, our port), and a chain per direction of
//! each flow holding its rewrite and counter; IPv4 and IPv6 flows each have
//! their map (a call between the two families stays in userspace). The
//! rules are written by `nft` (present wherever fw4 is), batched by one
//! thread, after `ip route get` (iproute2's or busybox's) named each
//! phone's device and next hop; counters are read back every COUNTER_POLL.
//! A table left by a daemon that died is deleted when forwarding is next
//! enabled.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use besip_core::netdev::{ingress_chain, safe_device};

const TABLE: &str = "besip_relay";
/// How often the counters of the flows in the kernel are read: often
/// enough for the media timeout (60 s by default), rarely enough that the
/// reading (~30 ms of `nft` for 2,000 flows) does not matter.
const COUNTER_POLL: Duration = Duration::from_secs(10);
/// How long requests gather before one `nft` run writes them.
const BATCH: Duration = Duration::from_millis(50);
/// How long a refused flow stays in userspace before it is offered again
/// (a route or device may have come since): rare enough to cost nothing.
const RETRY_REFUSED: Duration = Duration::from_secs(30);

/// One direction of a flow: what arrives from `source` on our `port` leaves
/// from our `out_port` towards `target` (of the same family: the kernel
/// rewrites addresses, it does not translate between IPv4 and IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    pub source: SocketAddr,
    pub port: u16,
    pub out_port: u16,
    pub target: SocketAddr,
}

/// What the kernel counted for an offloaded flow.
#[derive(Default)]
pub struct Counters {
    /// Packets forwarded, both directions.
    packets: AtomicU64,
    /// Milliseconds after EPOCH when `packets` last grew (or the flow was made).
    last_growth_ms: AtomicU64,
    /// `packets` grew between the last two readings (or no reading yet).
    flowing: AtomicBool,
    /// The rules could not be written: the flow stays in userspace (until
    /// its relay offers it again).
    refused: AtomicBool,
    /// The rules are in place.
    installed: AtomicBool,
}

impl Counters {
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Time since the kernel was last seen forwarding the flow: zero while
    /// the counters grew at the last reading, so a media timeout shorter
    /// than COUNTER_POLL does not end a live call (a dead one is seen at
    /// most COUNTER_POLL late).
    pub fn idle(&self) -> Duration {
        if self.flowing.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_growth_ms.load(Ordering::Relaxed));
        epoch().elapsed().saturating_sub(last)
    }

    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn installed(&self) -> bool {
        self.installed.load(Ordering::Relaxed)
    }
}

/// A flow handed to the kernel; dropping it takes it back.
pub struct Offload {
    id: u64,
    counters: Arc<Counters>,
    /// The table it was asked of (see `Forwarder::generation`).
    generation: u64,
    made: Instant,
}

impl Offload {
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The flow is not in the kernel and will not be unless offered again:
    /// its table went (forwarding switched off, or off and on, or rebuilt)
    /// before or after it was written, or it was refused RETRY_REFUSED ago.
    pub fn expired(&self) -> bool {
        if self.counters.installed() {
            return false;
        }
        let table_gone = FORWARDER
            .get()
            .is_none_or(|f| f.generation.load(Ordering::Relaxed) != self.generation);
        table_gone || (self.counters.refused() && self.made.elapsed() >= RETRY_REFUSED)
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        if let Some(f) = FORWARDER.get() {
            let _ = f.commands.send(Request::Remove(self.id));
        }
    }
}

enum Request {
    Configure(bool),
    Add(u64, [Direction; 2], Arc<Counters>),
    Remove(u64),
}

struct Forwarder {
    commands: Sender<Request>,
    /// Forwarding is on and the table could be made.
    active: AtomicBool,
    /// Counts the tables made: a flow asked of an earlier one is gone.
    generation: AtomicU64,
    next_id: AtomicU64,
}

static FORWARDER: OnceLock<Forwarder> = OnceLock::new();
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// Flows forwarded by the kernel right now (/pbx/counters).
static FLOWS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn forwarder() -> &'static Forwarder {
    FORWARDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kernel-forward".into())
            .spawn(move || Writer::default().run(&rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the kernel forwarding thread");
        }
        Forwarder {
            commands: tx,
            active: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    })
}

/// Turns kernel forwarding on or off (the configuration's leaf). Turning it
/// off takes every flow back to userspace. Off at start touches nothing, so
/// a daemon with forwarding off never disturbs another's table.
pub fn configure(enabled: bool) {
    if !enabled && FORWARDER.get().is_none() {
        return;
    }
    let _ = forwarder().commands.send(Request::Configure(enabled));
}

/// Deletes the table as the daemon stops: its rules would otherwise go on
/// forwarding for calls nobody relays any more.
pub fn shutdown() {
    if active() {
        if let Err(e) = nft(&format!("delete table netdev {TABLE}\n")) {
            tracing::warn!(error = %e, "cannot delete the kernel RTP table");
        }
    }
}

/// Whether flows are being offloaded (on, and the table was made).
pub fn active() -> bool {
    FORWARDER
        .get()
        .is_some_and(|f| f.active.load(Ordering::Relaxed))
}

/// Flows in the kernel now.
pub fn flows() -> u64 {
    FLOWS.load(Ordering::Relaxed)
}

/// Asks the kernel to forward both directions of a flow; None when kernel
/// forwarding is off or the directions mix address families. The rules
/// land within BATCH; until then (or, when they are refused, until the
/// relay offers the flow again: see `Offload::expired`) the relay's
/// sockets go on relaying.
pub fn offload(directions: [Direction; 2]) -> Option<Offload> {
    let f = FORWARDER
        .get()
        .filter(|f| f.active.load(Ordering::Relaxed))?;
    let family = directions[0].source.is_ipv4();
    if directions
        .iter()
        .any(|d| d.source.is_ipv4() != family || d.target.is_ipv4() != family)
    {
        return None;
    }
    let id = f.next_id.fetch_add(1, Ordering::Relaxed);
    let generation = f.generation.load(Ordering::Relaxed);
    let counters = Arc::new(Counters::default());
    counters.last_growth_ms.store(now_ms(), Ordering::Relaxed);
    counters.flowing.store(true, Ordering::Relaxed);
    f.commands
        .send(Request::Add(id, directions, counters.clone()))
        .ok()?;
    Some(Offload {
        id,
        counters,
        generation,
        made: Instant::now(),
    })
}

/// A flow as installed: its directions (the map keys to delete) and counters.
struct Installed {
    directions: [Direction; 2],
    counters: Arc<Counters>,
}

/// A flow's rules, ready to be written.
struct Prepared {
    id: u64,
    directions: [Direction; 2],
    counters: Arc<Counters>,
    devices: Vec<String>,
    script: String,
}

/// The thread writing the table: owns what is installed.
#[derive(Default)]
struct Writer {
    enabled: bool,
    /// Ingress devices that have their base chain.
    devices: HashSet<String>,
    flows: HashMap<u64, Installed>,
    last_poll: Option<Instant>,
    /// When a refused flow was last logged as a warning.
    refusal_warned: Option<Instant>,
}

/// Where a packet towards an address leaves: device, next hop, our source.
struct Route {
    device: String,
    next_hop: IpAddr,
    source: IpAddr,
}

impl Writer {
    fn run(mut self, requests: &Receiver<Request>) {
        loop {
            let first = match requests.recv_timeout(COUNTER_POLL) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<Request> = first.into_iter().collect();
            if !batch.is_empty() {
                std::thread::sleep(BATCH);
                batch.extend(requests.try_iter());
            }
            self.handle(batch);
            let due = self.last_poll.is_none_or(|t| t.elapsed() >= COUNTER_POLL);
            if due && !self.flows.is_empty() {
                self.read_counters();
                self.last_poll = Some(Instant::now());
            }
        }
    }

    fn handle(&mut self, batch: Vec<Request>) {
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        for request in batch {
            match request {
                Request::Configure(on) => {
                    // What came before a switch belongs to the old table
                    // (its relays see their flows expired and offer anew).
                    if on != self.enabled {
                        adds.clear();
                        removes.clear();
                    }
                    self.configure(on);
                }
                Request::Add(id, dirs, counters) => adds.push((id, dirs, counters)),
                Request::Remove(id) => {
                    // Taken back before it was written: nothing to undo.
                    if let Some(i) = adds.iter().position(|(a, _, _)| *a == id) {
                        adds.swap_remove(i);
                    } else {
                        removes.push(id);
                    }
                }
            }
        }
        self.remove(&removes);
        self.add(adds);
        FLOWS.store(self.flows.len() as u64, Ordering::Relaxed);
    }

    fn configure(&mut self, on: bool) {
        let f = forwarder();
        if on == self.enabled {
            return;
        }
        // What the kernel forwarded up to now still counts.
        if !self.flows.is_empty() {
            self.read_counters();
        }
        // Off, or on afresh: whatever table there is goes (ours, or one
        // left by a daemon that died).
        let _ = nft(&format!("delete table netdev {TABLE}\n"));
        for (_, flow) in self.flows.drain() {
            flow.counters.installed.store(false, Ordering::Relaxed);
        }
        self.devices.clear();
        self.enabled = false;
        f.active.store(false, Ordering::Relaxed);
        if !on {
            tracing::info!("kernel forwarding of RTP off");
            return;
        }
        let made = nft(&format!(
            "add table netdev {TABLE}\n\
             add map netdev {TABLE} flows {{ type ipv4_addr . inet_service . inet_service : verdict; }}\n\
             add map netdev {TABLE} flows6 {{ type ipv6_addr . inet_service . inet_service : verdict; }}\n"
        ));
        match made {
            Ok(()) => {
                self.enabled = true;
                f.generation.fetch_add(1, Ordering::Relaxed);
                f.active.store(true, Ordering::Relaxed);
                tracing::info!("kernel forwarding of RTP on");
            }
            Err(e) => tracing::warn!(error = %e,
                "kernel forwarding of RTP unavailable (needs nft and CAP_NET_ADMIN); relaying in userspace"),
        }
    }

    fn remove(&mut self, ids: &[u64]) {
        let mut script = String::new();
        for id in ids {
            let Some(flow) = self.flows.remove(id) else {
                continue;
            };
            flow.counters.installed.store(false, Ordering::Relaxed);
            for (d, name) in flow.directions.iter().zip(chain_names(*id)) {
                script.push_str(&format!(
                    "delete element netdev {TABLE} {} {{ {} . {} . {} }}\n\
                     flush chain netdev {TABLE} {name}\n\
                     delete chain netdev {TABLE} {name}\n\
                     delete counter netdev {TABLE} {name}\n",
                    Family::of(d).map,
                    d.source.ip(),
                    d.source.port(),
                    d.port
                ));
            }
        }
        if script.is_empty() {
            return;
        }
        if let Err(e) = nft(&script) {
            // Left rules would forward a stranger reusing the address: start over.
            tracing::warn!(error = %e, "cannot remove kernel RTP flows; rebuilding the table");
            self.configure(false);
            self.configure(true);
        }
    }

    fn add(&mut self, adds: Vec<(u64, [Direction; 2], Arc<Counters>)>) {
        if adds.is_empty() || !self.enabled {
            for (_, _, c) in adds {
                c.refused.store(true, Ordering::Relaxed);
            }
            return;
        }
        let mut addresses: Vec<IpAddr> = Vec::new();
        for (_, dirs, _) in &adds {
            for d in dirs {
                addresses.push(d.source.ip());
                addresses.push(d.target.ip());
            }
        }
        let routes = routes(&addresses);
        let mut prepared = Vec::new();
        for (id, directions, counters) in adds {
            match self.script_for(id, &directions, &routes) {
                Some((devices, script)) => prepared.push(Prepared {
                    id,
                    directions,
                    counters,
                    devices,
                    script,
                }),
                None => {
                    self.refusal(&format!("no route for the RTP flow {directions:?}"));
                    counters.refused.store(true, Ordering::Relaxed);
                }
            }
        }
        // One run for all; when it fails (a device gone, ...), each on its own.
        let all: String = prepared.iter().map(|p| p.script.as_str()).collect();
        let devices = prepared.iter().flat_map(|p| &p.devices);
        let together = !all.is_empty() && self.with_devices(devices, &all).is_ok();
        for p in prepared {
            let done = together
                || match self.with_devices(p.devices.iter(), &p.script) {
                    Ok(()) => true,
                    Err(e) => {
                        self.refusal(&format!("nft refused an RTP flow: {e}"));
                        false
                    }
                };
            if done {
                p.counters.installed.store(true, Ordering::Relaxed);
                self.devices.extend(p.devices);
                self.flows.insert(
                    p.id,
                    Installed {
                        directions: p.directions,
                        counters: p.counters,
                    },
                );
            } else {
                p.counters.refused.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Logs a refused flow, as a warning at most once a minute: each call's
    /// refused flow is offered again every RETRY_REFUSED.
    fn refusal(&mut self, why: &str) {
        let due = self
            .refusal_warned
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if due {
            self.refusal_warned = Some(Instant::now());
            tracing::warn!("{why}; it stays in userspace for now");
        } else {
            tracing::debug!("{why}; it stays in userspace for now");
        }
    }

    /// Runs `script` after making the base chains of `devices` not made yet.
    fn with_devices<'a>(
        &self,
        devices: impl Iterator<Item = &'a String>,
        script: &str,
    ) -> Result<(), String> {
        let mut head = String::new();
        let mut new: HashSet<&str> = HashSet::new();
        for device in devices {
            if !self.devices.contains(device) && new.insert(device) {
                let chain = ingress_chain(device);
                head.push_str(&format!(
                    "add chain netdev {TABLE} {chain} {{ type filter hook ingress device \"{device}\" priority -500; }}\n"
                ));
                for Family { ip, map } in [Family::V4, Family::V6] {
                    head.push_str(&format!(
                        "add rule netdev {TABLE} {chain} fib daddr type local {ip} saddr . udp sport . udp dport vmap @{map}\n"
                    ));
                }
            }
        }
        nft(&(head + script))
    }

    /// The rules of one flow, and the ingress devices they hang from; None
    /// when a route is unknown.
    fn script_for(
        &self,
        id: u64,
        dirs: &[Direction; 2],
        routes: &HashMap<IpAddr, Route>,
    ) -> Option<(Vec<String>, String)> {
        let mut devices = Vec::new();
        let mut script = String::new();
        for (d, name) in dirs.iter().zip(chain_names(id)) {
            // Packets from the phone arrive where packets to it leave.
            let inbound = routes.get(&d.source.ip())?;
            let out = routes.get(&d.target.ip())?;
            let same_family = |a: IpAddr| a.is_ipv4() == d.target.is_ipv4();
            if !safe_device(&inbound.device)
                || !safe_device(&out.device)
                || !same_family(out.source)
                || !same_family(out.next_hop)
            {
                return None;
            }
            let family = Family::of(d);
            devices.push(inbound.device.clone());
            script.push_str(&format!(
                "add counter netdev {TABLE} {name}\n\
                 add chain netdev {TABLE} {name}\n\
                 add rule netdev {TABLE} {name} {ip} daddr set {dst} udp dport set {dport} {ip} saddr set {src} udp sport set {sport} counter name \"{name}\" fwd {ip} to {hop} device \"{dev}\"\n\
                 add element netdev {TABLE} {map} {{ {s} . {sp} . {p} : jump {name} }}\n",
                ip = family.ip,
                map = family.map,
                dst = d.target.ip(),
                dport = d.target.port(),
                src = out.source,
                sport = d.out_port,
                hop = out.next_hop,
                dev = out.device,
                s = d.source.ip(),
                sp = d.source.port(),
                p = d.port,
            ));
        }
        Some((devices, script))
    }

    /// Reads the flows' named counters (not the whole table: with thousands
    /// of flows, listing rules and map costs the core the packets need).
    fn read_counters(&mut self) {
        let listed = background(
            Command::new("nft").args(["-j", "list", "counters", "table", "netdev", TABLE]),
        )
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
        let Ok(out) = listed else {
            return;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return;
        };
        let mut per_flow: HashMap<u64, u64> = HashMap::new();
        let items = json["nftables"].as_array().map_or(&[][..], Vec::as_slice);
        for counter in items.iter().filter_map(|i| i.get("counter")) {
            let Some(id) = counter["name"].as_str().and_then(flow_of_chain) else {
                continue;
            };
            if let Some(p) = counter["packets"].as_u64() {
                *per_flow.entry(id).or_default() += p;
            }
        }
        let now = now_ms();
        for (id, flow) in &self.flows {
            let packets = per_flow.get(id).copied().unwrap_or(0);
            let grew = packets > flow.counters.packets.swap(packets, Ordering::Relaxed);
            if grew {
                flow.counters.last_growth_ms.store(now, Ordering::Relaxed);
            }
            // A flow made since the last reading has had no time to grow.
            let young = now.saturating_sub(flow.counters.last_growth_ms.load(Ordering::Relaxed))
                < COUNTER_POLL.as_millis() as u64;
            flow.counters
                .flowing
                .store(grew || young, Ordering::Relaxed);
        }
    }
}

/// The words naming a direction's address family in the table.
struct Family {
    /// nft's protocol keyword (`ip saddr`, `fwd ip to`).
    ip: &'static str,
    /// The verdict map of the family's flows.
    map: &'static str,
}

impl Family {
    const V4: Family = Family {
        ip: "ip",
        map: "flows",
    };
    const V6: Family = Family {
        ip: "ip6",
        map: "flows6",
    };

    fn of(direction: &Direction) -> Family {
        if direction.source.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

fn chain_names(id: u64) -> [String; 2] {
    [format!("f{id}a"), format!("f{id}b")]
}

fn flow_of_chain(name: &str) -> Option<u64> {
    name.strip_prefix('f')?
        .strip_suffix(['a', 'b'])?
        .parse()
        .ok()
}

/// `command` at the lowest CPU priority, in a session (so a scheduler
/// autogroup) of its own: writing rules or reading counters must not take
/// the core from the kernel's packet work, which ksoftirqd does at normal
/// priority when it piles up, however high the daemon itself runs.
fn background(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid, setpriority and sched_setscheduler are
    // async-signal-safe and touch only the child; failures leave it as is.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
            Ok(())
        })
    }
}

/// Runs an nft script as one transaction.
fn nft(script: &str) -> Result<(), String> {
    let mut child = background(&mut Command::new("nft"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The kernel's routes towards `addresses`, one `ip route get` each (the
/// plain text, which iproute2 and busybox's `ip` both print; busybox has
/// neither `-j` nor `-batch`). Unroutable addresses are left out.
fn routes(addresses: &[IpAddr]) -> HashMap<IpAddr, Route> {
    let unique: HashSet<IpAddr> = addresses.iter().copied().collect();
    let mut found = HashMap::new();
    for address in unique {
        let asked = background(&mut Command::new("ip"))
            .args(["route", "get", &address.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let Ok(out) = asked else {
            return found; // no `ip` at all
        };
        if let Some(route) = parse_route(&String::from_utf8_lossy(&out.stdout)) {
            found.insert(address, route);
        }
    }
    found
}

/// One answer of `ip route get`: `[type] DST [via GW] dev DEV [src SRC] …`
/// (iproute2: `local 127.0.0.5 dev lo src 127.0.0.1 uid 0`; busybox:
/// `8.8.8.8 via 10.0.2.2 dev eth0  src 10.0.2.15`).
fn parse_route(text: &str) -> Option<Route> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1]);
    // The type word (local, unicast, …) is no address: the first address is the destination.
    let dst: IpAddr = words.iter().find_map(|w| w.parse().ok())?;
    let next_hop = match after("via") {
        // A gateway we cannot name (e.g. `via inet6 …`): no route we can use.
        Some(gateway) => gateway.parse().ok()?,
        None => dst,
    };
    Some(Route {
        device: after("dev")?.to_string(),
        next_hop,
        source: after("src")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_lead_back_to_their_flow() {
        for name in chain_names(42) {
            assert_eq!(flow_of_chain(&name), Some(42));
        }
        assert_eq!(flow_of_chain("in_lo"), None);
        assert_eq!(flow_of_chain("f12c"), None);
    }

    #[test]
    fn routes_are_read_from_iproute2_and_busybox_alike() {
        // (answer of `ip route get`, device, next hop, source)
        let answers = [
            (
                "local 127.0.0.5 dev lo src 127.0.0.1 uid 0 \n    cache <local> \n",
                "lo",
                "127.0.0.5",
                "127.0.0.1",
            ),
            (
                "8.8.8.8 via 10.0.2.2 dev eth0  src 10.0.2.15 \n",
                "eth0",
                "10.0.2.2",
                "10.0.2.15",
            ),
            (
                "2001:db8::1 from :: via fe80::1 dev eth0 proto ra src 2001:db8::2 metric 100 pref medium\n",
                "eth0",
                "fe80::1",
                "2001:db8::2",
            ),
            (
                "local ::1 from :: dev lo table local proto kernel src ::1 metric 0 pref medium\n",
                "lo",
                "::1",
                "::1",
            ),
        ];
        for (text, device, next_hop, source) in answers {
            let route = parse_route(text).unwrap_or_else(|| panic!("not read: {text}"));
            assert_eq!(route.device, device, "{text}");
            assert_eq!(
                route.next_hop,
                next_hop.parse::<IpAddr>().unwrap(),
                "{text}"
            );
            assert_eq!(route.source, source.parse::<IpAddr>().unwrap(), "{text}");
        }
        assert!(parse_route("192.0.2.1 via inet6 fe80::1 dev eth0 src 10.0.2.15").is_none());
        assert!(parse_route("").is_none());
        assert!(parse_route("RTNETLINK answers: Network is unreachable").is_none());
    }
}
