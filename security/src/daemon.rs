//! The running daemon: detector + bans + firewall + SQLite log, glued to IPC
//! (the handler is in `ipc.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use besip_core::ipc::{rfc3339_from_unix, HandlerError, Notifier, StagedPackages};
use besip_core::paths::Layout;
use ipnet::IpNet;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::bans::{is_single, prefix_of, unix_ms, Ban, BanTable};
use crate::capture::own_addresses;
use crate::config::{Backend, Config, Scope};
use crate::detect::{Detector, Verdict};
use crate::firewall::{Firewall, Ports};
use crate::packet::{decode, for_each_sip};
use crate::protect::{canonical, PbxView};
use crate::store::{BanRow, Store};
use besip_core::capture::LiveCapture as Capture;

/// Longest protection one `protect` call grants (a session refreshes it).
pub const MAX_PROTECT_TTL_S: u64 = 86_400;

#[derive(Default)]
struct Counters {
    packets: u64,
    malformed: u64,
    bans_total: u64,
    bans_refused: u64,
    /// Bans raised, by rule name (for metrics). Rule names come from the
    /// configuration and the built-in detectors; past `MAX_RULES_COUNTED`
    /// distinct names the rest count as "other".
    bans_by_rule: HashMap<String, u64>,
}

const MAX_RULES_COUNTED: usize = 256;

impl Counters {
    fn ban_raised(&mut self, rule: &str) {
        self.bans_total += 1;
        let key = if self.bans_by_rule.contains_key(rule)
            || self.bans_by_rule.len() < MAX_RULES_COUNTED
        {
            rule
        } else {
            "other"
        };
        *self.bans_by_rule.entry(key.to_owned()).or_insert(0) += 1;
    }
}

struct Engine {
    detector: Detector,
    bans: BanTable,
    offences: HashMap<IpAddr, u32>,
    counters: Counters,
}

/// besip_pbx as last read, and its modification time (re-read when it changes:
/// a commit that changes only the PBX reloads only the PBX).
struct PbxFile {
    view: PbxView,
    modified: Option<SystemTime>,
}

/// A configuration read and checked by `prepare`, applied by `apply`.
pub struct PreparedConfig {
    cfg: Config,
    pbx: PbxFile,
}

pub struct Daemon {
    layout: Layout,
    started: Instant,
    engine: Mutex<Engine>,
    firewall: Mutex<Firewall>,
    store: Mutex<Store>,
    captures: Mutex<Vec<Capture>>,
    notifier: OnceLock<Notifier>,
    pbx: Mutex<PbxFile>,
    /// Bans shared with the other boxes of a cluster.
    shared_bans: crate::shared_bans::SharedBans,
}

/// The ports a `sip`-scope ban drops: the PBX's listen ports, the ports the
/// daemon watches, and the PBX's RTP range.
fn ports(cfg: &Config, pbx: &PbxView) -> Ports {
    let mut sip = pbx.sip_ports.clone();
    for p in &cfg.sip_ports {
        if !sip.contains(p) {
            sip.push(*p);
        }
    }
    Ports {
        sip,
        rtp: pbx.rtp,
        at_ingress: pbx.kernel_forwarding,
    }
}

/// A ban's key as stored and shown: `a.b.c.d` or `a.b.c.0/24`.
fn key_text(net: &IpNet) -> String {
    if is_single(net) {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn parse_key(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Daemon {
    /// Load config, set up the firewall and restore unexpired bans from SQLite.
    pub fn start(layout: Layout) -> Result<Arc<Daemon>, String> {
        let cfg = Config::load(&layout.uci_package("besip_security")).map_err(|e| e.to_string())?;
        let pbx = read_pbx(&layout.uci_package("besip_pbx"));
        let store =
            Store::open(&layout.lib_dir().join("security.db")).map_err(|e| e.to_string())?;
        let firewall = Firewall::new(cfg.backend, &cfg.set_name, ports(&cfg, &pbx.view));
        firewall.setup().map_err(|e| e.to_string())?;
        let now = unix_ms();
        let mut bans = BanTable::default();
        for row in store.active(now).map_err(|e| e.to_string())? {
            let Some(net) = parse_key(&row.address) else {
                continue;
            };
            let scope = Scope::parse(&row.scope).unwrap_or(Scope::Sip);
            let left = ((row.expires - now) / 1000).max(1) as u32;
            if let Err(e) = firewall.ban(net, scope, left) {
                tracing::error!(address = %net, error = %e, "cannot restore ban");
            }
            tracing::info!(address = %net, rule = %row.rule, seconds_left = left, "ban restored");
            bans.insert(
                net,
                Ban {
                    rule: row.rule,
                    reason: row.reason,
                    scope,
                    since_ms: row.since,
                    expires_ms: row.expires,
                    packets: 0,
                    offences: row.offences,
                },
            );
        }
        let offences = store
            .offences()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|(a, n)| Some((a.parse().ok()?, n)))
            .collect();
        let mut detector = Detector::new(cfg, own_addresses());
        detector.guard_mut().set_peers(pbx.view.peers.clone());
        let daemon = Arc::new(Daemon {
            layout,
            started: Instant::now(),
            engine: Mutex::new(Engine {
                detector,
                bans,
                offences,
                counters: Counters::default(),
            }),
            firewall: Mutex::new(firewall),
            store: Mutex::new(store),
            captures: Mutex::new(Vec::new()),
            notifier: OnceLock::new(),
            pbx: Mutex::new(pbx),
            shared_bans: Default::default(),
        });
        // Bans restored for addresses that are protected now are lifted.
        daemon.lift_protected();
        let cluster = daemon.pbx.lock().view.cluster.clone();
        crate::shared_bans::reconcile(&daemon, cluster);
        Ok(daemon)
    }

    pub fn set_notifier(&self, n: Notifier) {
        let _ = self.notifier.set(n);
    }

    fn notify(&self, name: &str, data: Value) {
        if let Some(n) = self.notifier.get() {
            n.notify(name, data);
        }
    }

    fn now_mono(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// (Re)start the captures for `cfg`; on failure the old captures stay.
    pub fn start_captures(self: &Arc<Self>, cfg: &Config) -> Result<(), String> {
        let mut fresh = Vec::new();
        if cfg.enabled {
            let ifaces = if cfg.interfaces.is_empty() {
                vec!["any".to_owned()]
            } else {
                cfg.interfaces.clone()
            };
            for iface in ifaces {
                let me = Arc::clone(self);
                fresh.push(Capture::start(
                    &iface,
                    &cfg.bpf_filter(),
                    move |lt, _ts, frame| me.frame(lt, frame),
                )?);
            }
        }
        *self.captures.lock() = fresh;
        Ok(())
    }

    pub fn stop_captures(&self) {
        self.captures.lock().clear();
    }

    /// One captured frame: detect, and ban on the spot (the ban path is this thread).
    pub fn frame(&self, linktype: i32, frame: &[u8]) {
        let now = self.now_mono();
        let verdict = {
            let mut e = self.engine.lock();
            let Some(d) = decode(linktype, frame) else {
                e.counters.malformed += 1;
                return;
            };
            if let Some(b) = e.bans.covering_mut(d.src) {
                b.packets += 1;
                e.counters.packets += 1;
                return;
            }
            let mut verdict = None;
            let engine = &mut *e;
            let messages = for_each_sip(d.payload, d.tcp, |sip| {
                if verdict.is_none() {
                    verdict = engine.detector.observe(now, d.src, d.dst, sip);
                }
            });
            if messages == 0 {
                e.counters.malformed += 1;
                return;
            }
            e.counters.packets += 1;
            verdict
        };
        if let Some(v) = verdict {
            self.ban(v);
        }
    }

    /// Where a ban of `addr` goes: the address itself while the single part
    /// of the table has room, else its prefix (None: refused).
    fn placement(e: &Engine, addr: IpAddr) -> Option<IpNet> {
        let cap = e.detector.config().max_bans;
        if e.bans.singles() < cap {
            return Some(IpNet::from(addr));
        }
        let prefix = prefix_of(addr);
        (e.bans.prefixes() < cap && !e.detector.protects_any_in(&prefix)).then_some(prefix)
    }

    fn ban(&self, v: Verdict) {
        let now = unix_ms();
        let address = canonical(v.address);
        let (net, ban, absorbed) = {
            let mut e = self.engine.lock();
            if e.bans.covering(address).is_some() || e.detector.never_banned(&address) {
                return;
            }
            let Some(net) = Daemon::placement(&e, address) else {
                e.counters.bans_refused += 1;
                if e.counters.bans_refused.is_power_of_two() {
                    tracing::warn!(address = %address, "ban table full, ban skipped");
                }
                return;
            };
            if e.offences.len() >= e.detector.config().max_tracked {
                let Engine { offences, bans, .. } = &mut *e;
                offences.retain(|a, _| bans.covering(*a).is_some());
            }
            let cfg = e.detector.config();
            let (factor, max) = (
                u64::from(cfg.escalation_factor),
                u64::from(cfg.max_ban_time_s),
            );
            let prior = e.offences.get(&address).copied().unwrap_or(0);
            let mut secs = u64::from(v.ban_time_s);
            for _ in 0..prior.min(32) {
                secs = (secs * factor).min(max.max(u64::from(v.ban_time_s)));
            }
            let offences = prior + 1;
            e.offences.insert(address, offences);
            e.counters.ban_raised(&v.rule);
            let absorbed = if is_single(&net) {
                Vec::new()
            } else {
                e.bans.take_inside(&net)
            };
            let mut ban = Ban {
                rule: v.rule.clone(),
                reason: v.reason.clone(),
                scope: v.scope,
                since_ms: now,
                expires_ms: now + secs * 1000,
                packets: 1,
                offences,
            };
            for (_, old) in &absorbed {
                ban.scope = ban.scope.max(old.scope);
                ban.expires_ms = ban.expires_ms.max(old.expires_ms);
            }
            if !is_single(&net) {
                ban.reason = format!("{} (ban table full: whole prefix)", ban.reason);
            }
            e.bans.insert(net, ban.clone());
            (net, ban, absorbed)
        };
        let seconds = ban.seconds_left(now);
        {
            let fw = self.firewall.lock();
            // nftables refuses a prefix overlapping its own elements.
            let old: Vec<(IpNet, Scope)> = absorbed.iter().map(|(n, b)| (*n, b.scope)).collect();
            if let Err(e) = fw.unban_many(&old) {
                tracing::error!(prefix = %net, error = %e, "absorbed bans not removed");
            }
            if let Err(e) = fw.ban(net, ban.scope, seconds) {
                tracing::error!(address = %net, error = %e, "ban not applied in the kernel");
            }
        }
        for (old, _) in &absorbed {
            self.lifted(old, "absorbed");
        }
        tracing::warn!(address = %net, rule = %v.rule, reason = %ban.reason, scope = ban.scope.as_str(), seconds, offences = ban.offences, user_agent = ?v.sample_user_agent, "banned");
        let row = BanRow {
            address: key_text(&net),
            rule: v.rule.clone(),
            reason: ban.reason.clone(),
            scope: ban.scope.as_str().to_owned(),
            since: now,
            expires: ban.expires_ms,
            offences: ban.offences,
        };
        let evidence = json!({"count": v.count, "window": v.window_s, "sample-user-agent": v.sample_user_agent, "source": address.to_string()}).to_string();
        if let Err(e) = self.store.lock().add(&row, &evidence) {
            tracing::error!(error = %e, "ban not logged");
        }
        let mut data = json!({
            "address": net.network().to_string(), "rule": v.rule, "count": v.count,
            "window": v.window_s, "expires": rfc3339_from_unix(ban.expires_ms / 1000),
        });
        if !is_single(&net) {
            data["prefix-length"] = json!(net.prefix_len());
        }
        if let Some(ua) = v.sample_user_agent {
            data["sample-user-agent"] = json!(ua);
        }
        self.notify("besip-security:ban-added", data);
        if is_single(&net) {
            self.shared_bans.raised(crate::shared_bans::Raised {
                address: net.addr(),
                rule: v.rule,
                reason: ban.reason,
                scope: ban.scope,
                expires_ms: ban.expires_ms,
            });
        }
    }

    fn lifted(&self, net: &IpNet, reason: &str) {
        tracing::info!(address = %net, reason, "ban lifted");
        if let Err(e) = self.store.lock().lift(&key_text(net), unix_ms(), reason) {
            tracing::error!(error = %e, "lift not logged");
        }
        let mut data = json!({"address": net.network().to_string(), "reason": reason});
        if !is_single(net) {
            data["prefix-length"] = json!(net.prefix_len());
        }
        self.notify("besip-security:ban-lifted", data);
    }

    /// Take a ban out of the table and the kernel.
    fn lift(&self, net: IpNet, reason: &str) {
        let gone = {
            let mut e = self.engine.lock();
            let gone = e.bans.remove(&net);
            if is_single(&net) {
                e.detector.forget(&net.addr());
            }
            gone
        };
        let Some(ban) = gone else {
            return;
        };
        if let Err(e) = self.firewall.lock().unban(net, ban.scope) {
            tracing::error!(address = %net, error = %e, "ban not lifted in the kernel");
        }
        self.lifted(&net, reason);
    }

    /// Drop expired bans from the table (the kernel has expired them itself)
    /// and expired session protections.
    pub fn expire(&self) {
        let now = unix_ms();
        let mono = self.now_mono();
        let gone = {
            let mut e = self.engine.lock();
            e.detector.guard_mut().expire_sessions(mono);
            let gone = e.bans.keys_where(|_, b| b.expires_ms <= now);
            for n in &gone {
                e.bans.remove(n);
                if is_single(n) {
                    e.detector.forget(&n.addr());
                }
            }
            gone
        };
        for n in gone {
            self.lifted(&n, "expired");
        }
    }

    /// Lift every ban that covers an address that is never banned (after the
    /// whitelist, the trunks or the own addresses changed).
    fn lift_protected(&self) {
        let hits = {
            let e = self.engine.lock();
            e.bans.keys_where(|n, _| e.detector.protects_any_in(n))
        };
        for n in hits {
            self.lift(n, "protected");
        }
    }

    /// Protect a management session's source for `ttl_s` (IPC `protect`):
    /// bans covering it are lifted at once.
    pub fn protect(&self, addr: IpAddr, ttl_s: u64) {
        let until = self.now_mono() + ttl_s.clamp(1, MAX_PROTECT_TTL_S) * 1000;
        let addr = canonical(addr);
        let hits = {
            let mut e = self.engine.lock();
            e.detector.guard_mut().protect_session(addr, until);
            e.bans.all_covering(addr)
        };
        tracing::debug!(address = %addr, ttl_s, "session source protected");
        for n in hits {
            self.lift(n, "protected");
        }
    }

    /// Every few seconds: the box's addresses (DHCP, new interfaces) and the
    /// PBX's trunks, destinations and ports may have changed.
    pub fn housekeeping(self: &Arc<Self>) {
        let own = own_addresses();
        let path = self.layout.uci_package("besip_pbx");
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let fresh = (modified != self.pbx.lock().modified).then(|| read_pbx(&path));
        let cfg = {
            let mut e = self.engine.lock();
            e.detector.guard_mut().set_own(own);
            if let Some(p) = &fresh {
                e.detector.guard_mut().set_peers(p.view.peers.clone());
            }
            e.detector.config().clone()
        };
        if let Some(p) = fresh {
            tracing::info!(peers = p.view.peers.len(), "PBX configuration re-read");
            // (The lock must be gone before keep_bans_at_ingress takes it.)
            let applied = self.firewall.lock().set_ports(ports(&cfg, &p.view));
            match applied {
                Ok(true) => self.keep_bans_at_ingress(),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot apply the PBX's ports to the drop rules")
                }
            }
            let cluster = p.view.cluster.clone();
            *self.pbx.lock() = p;
            // besip_pbx belongs to the PBX's reload: its cluster is followed here.
            crate::shared_bans::reconcile(self, cluster);
        }
        self.firewall.lock().hook_devices();
        self.lift_protected();
    }

    /// Adds the current bans to the netdev table (kernel forwarding was
    /// just switched on: its sets start empty).
    fn keep_bans_at_ingress(&self) {
        let now = unix_ms();
        let bans: Vec<(IpNet, Scope, u32)> = self
            .engine
            .lock()
            .bans
            .iter()
            .map(|(n, b)| (*n, b.scope, b.seconds_left(now)))
            .collect();
        let fw = self.firewall.lock();
        for (net, scope, seconds) in bans {
            fw.ban_at_ingress(net, scope, seconds);
        }
    }

    pub fn unban(&self, addr: IpAddr) -> Result<(), HandlerError> {
        let addr = canonical(addr);
        let key = {
            let e = self.engine.lock();
            let single = IpNet::from(addr);
            let prefix = prefix_of(addr);
            if e.bans.get(&single).is_some() {
                Some(single)
            } else if prefix.network() == addr && e.bans.get(&prefix).is_some() {
                Some(prefix)
            } else {
                None
            }
        };
        let Some(key) = key else {
            return Err(HandlerError::invalid_params(format!(
                "{addr} is not banned"
            )));
        };
        self.lift(key, "unban");
        Ok(())
    }

    /// Reads the rules (and the PBX's ports and trunks), the `staged`
    /// packages from their staged files; changes nothing.
    pub fn prepare_config(&self, staged: &StagedPackages) -> Result<PreparedConfig, String> {
        let cfg = Config::load(&staged.path(&self.layout, "besip_security"))
            .map_err(|e| e.to_string())?;
        let pbx = read_pbx(&staged.path(&self.layout, "besip_pbx"));
        Ok(PreparedConfig { cfg, pbx })
    }

    /// Switches to a prepared configuration: firewall set and ports,
    /// captures, detector rules.
    pub fn apply_config(self: &Arc<Self>, prepared: PreparedConfig) -> Result<(), String> {
        let PreparedConfig { cfg, pbx } = prepared;
        let old = self.engine.lock().detector.config().clone();
        let wanted_ports = ports(&cfg, &pbx.view);
        if old.backend != cfg.backend || old.set_name != cfg.set_name {
            let fw = Firewall::new(cfg.backend, &cfg.set_name, wanted_ports.clone());
            fw.setup().map_err(|e| e.to_string())?;
            let now = unix_ms();
            for (n, b) in self.engine.lock().bans.iter() {
                fw.ban(*n, b.scope, b.seconds_left(now))
                    .map_err(|e| e.to_string())?;
            }
            let old_firewall = std::mem::replace(&mut *self.firewall.lock(), fw);
            // The bans now live in the new set; the old one would only keep
            // dropping their sources until its timeouts ran out.
            if let Err(e) = old_firewall.teardown() {
                tracing::warn!(error = %e, "cannot remove the previous firewall set");
            }
        } else {
            let now_at_ingress = self
                .firewall
                .lock()
                .set_ports(wanted_ports)
                .map_err(|e| e.to_string())?;
            if now_at_ingress {
                self.keep_bans_at_ingress();
            }
        }
        if old.interfaces != cfg.interfaces
            || old.sip_ports != cfg.sip_ports
            || old.enabled != cfg.enabled
        {
            self.start_captures(&cfg)?;
        }
        {
            let mut e = self.engine.lock();
            e.detector.set_config(cfg);
            e.detector.guard_mut().set_peers(pbx.view.peers.clone());
        }
        let cluster = pbx.view.cluster.clone();
        *self.pbx.lock() = pbx;
        crate::shared_bans::reconcile(self, cluster);
        self.lift_protected();
        tracing::info!("configuration applied");
        Ok(())
    }

    pub fn state_json(&self) -> Value {
        let e = self.engine.lock();
        let mut bans: Vec<(&IpNet, &Ban)> = e.bans.iter().collect();
        bans.sort_by_key(|(n, _)| **n);
        let list: Vec<Value> = bans
            .iter()
            .map(|(n, b)| {
                let mut v = json!({
                    "address": n.network().to_string(), "rule": b.rule, "reason": b.reason,
                    "scope": b.scope.as_str(),
                    "since": rfc3339_from_unix(b.since_ms / 1000), "expires": rfc3339_from_unix(b.expires_ms / 1000),
                    "packets": b.packets.to_string(), "offences": b.offences,
                });
                if !is_single(n) {
                    v["prefix-length"] = json!(n.prefix_len());
                }
                v
            })
            .collect();
        let mut state = json!({"besip-security:security": {
            "bans": {"ban": list},
            "statistics": {
                "packets": e.counters.packets.to_string(), "malformed": e.counters.malformed.to_string(),
                "bans-total": e.counters.bans_total.to_string(),
                "bans-refused": e.counters.bans_refused.to_string(),
                "tracked-sources": e.detector.tracked(),
                "protected-sessions": e.detector.guard().sessions(),
            }
        }});
        if let Some(connected) = self.shared_bans.connected() {
            state["besip-security:security"]["statistics"]["cluster-connected"] = json!(connected);
        }
        state
    }

    /// OpenMetrics text of the security daemon's families
    /// (`besip_security_*`, without `# EOF`).
    pub fn metrics(&self) -> String {
        use besip_core::metrics::{counter, families, gauge, labelled_counter, MetricsRegistry};
        let e = self.engine.lock();
        let mut r = MetricsRegistry::with_prefix("besip_security");
        counter(
            &mut r,
            "packets",
            "SIP packets inspected.",
            e.counters.packets,
        );
        counter(
            &mut r,
            "malformed",
            "Inspected packets that were not SIP.",
            e.counters.malformed,
        );
        labelled_counter(
            &mut r,
            "bans",
            "Bans raised, by the rule that raised them.",
            "rule",
            e.counters
                .bans_by_rule
                .iter()
                .map(|(k, v)| (k.as_str(), *v)),
        );
        counter(
            &mut r,
            "bans_refused",
            "Bans not placed because the ban table was full.",
            e.counters.bans_refused,
        );
        let active = i64::try_from(e.bans.iter().count()).unwrap_or(i64::MAX);
        gauge(&mut r, "active_bans", "Bans in force now.", active);
        let tracked = i64::try_from(e.detector.tracked()).unwrap_or(i64::MAX);
        gauge(
            &mut r,
            "tracked_sources",
            "Sources the detector keeps counts of.",
            tracked,
        );
        families(&r)
    }

    pub fn backend(&self) -> Backend {
        self.firewall.lock().backend()
    }

    pub fn config(&self) -> Config {
        self.engine.lock().detector.config().clone()
    }
}

/// besip_pbx (the live `path` or a staged one); a file that does not parse
/// is logged and read as empty (the PBX refuses it too, and keeps its
/// previous configuration).
fn read_pbx(path: &Path) -> PbxFile {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let view = PbxView::load(path).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the PBX configuration; its trunks are not protected");
        PbxView::default()
    });
    PbxFile { view, modified }
}

impl crate::shared_bans::BanHost for Daemon {
    fn shared_bans(&self) -> &crate::shared_bans::SharedBans {
        &self.shared_bans
    }

    fn apply_shared_ban(
        &self,
        address: IpAddr,
        rule: String,
        reason: String,
        scope: crate::config::Scope,
        seconds: u32,
    ) {
        self.ban(Verdict {
            address,
            rule,
            count: 0,
            window_s: 0,
            ban_time_s: seconds,
            scope,
            sample_user_agent: None,
            reason,
        });
    }
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
