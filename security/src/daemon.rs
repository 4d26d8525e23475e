//! The running daemon: detector + bans + firewall + SQLite log, glued to IPC.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use besip_core::ipc::{rfc3339_from_unix, Handler, HandlerError, Notifier};
use besip_core::paths::Layout;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::capture::own_addresses;
use crate::config::{Backend, Config};
use crate::detect::{Detector, Verdict};
use crate::firewall::Firewall;
use crate::packet::{decode, for_each_sip};
use crate::store::{BanRow, Store};
use besip_core::capture::LiveCapture as Capture;

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Clone)]
pub struct Ban {
    pub rule: String,
    pub reason: String,
    pub since_ms: u64,
    pub expires_ms: u64,
    pub packets: u64,
    pub offences: u32,
}

#[derive(Default)]
struct Counters {
    packets: u64,
    malformed: u64,
    bans_total: u64,
    bans_refused: u64,
}

struct Engine {
    detector: Detector,
    bans: HashMap<IpAddr, Ban>,
    offences: HashMap<IpAddr, u32>,
    counters: Counters,
}

pub struct Daemon {
    layout: Layout,
    started: Instant,
    engine: Mutex<Engine>,
    firewall: Mutex<Firewall>,
    store: Mutex<Store>,
    captures: Mutex<Vec<Capture>>,
    notifier: OnceLock<Notifier>,
}

impl Daemon {
    /// Load config, set up the firewall and restore unexpired bans from SQLite.
    pub fn start(layout: Layout) -> Result<Arc<Daemon>, String> {
        let cfg = Config::load(&layout.uci_package("besip_security")).map_err(|e| e.to_string())?;
        let store =
            Store::open(&layout.lib_dir().join("security.db")).map_err(|e| e.to_string())?;
        let firewall = Firewall::new(cfg.backend, &cfg.set_name);
        firewall.setup().map_err(|e| e.to_string())?;
        let now = unix_ms();
        let mut bans = HashMap::new();
        for row in store.active(now).map_err(|e| e.to_string())? {
            let Ok(addr) = row.address.parse::<IpAddr>() else {
                continue;
            };
            let left = ((row.expires - now) / 1000).max(1) as u32;
            if let Err(e) = firewall.ban(addr, left) {
                tracing::error!(address = %addr, error = %e, "cannot restore ban");
            }
            tracing::info!(address = %addr, rule = %row.rule, seconds_left = left, "ban restored");
            bans.insert(
                addr,
                Ban {
                    rule: row.rule,
                    reason: row.reason,
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
        let detector = Detector::new(cfg, own_addresses());
        Ok(Arc::new(Daemon {
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
        }))
    }

    pub fn set_notifier(&self, n: Notifier) {
        let _ = self.notifier.set(n);
    }

    fn notify(&self, name: &str, data: Value) {
        if let Some(n) = self.notifier.get() {
            n.notify(name, data);
        }
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
        let now = self.started.elapsed().as_millis() as u64;
        let verdict = {
            let mut e = self.engine.lock();
            let Some(d) = decode(linktype, frame) else {
                e.counters.malformed += 1;
                return;
            };
            if let Some(b) = e.bans.get_mut(&d.src) {
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

    fn ban(&self, v: Verdict) {
        let now = unix_ms();
        let (seconds, offences) = {
            let mut e = self.engine.lock();
            if e.bans.contains_key(&v.address) {
                return;
            }
            // Spoofed scanner packets could otherwise ban without bound: cap the
            // active bans and the offence memory at the tracking-table size.
            let cap = e.detector.config().max_tracked;
            if e.bans.len() >= cap {
                e.counters.bans_refused += 1;
                if e.counters.bans_refused.is_power_of_two() {
                    tracing::warn!(address = %v.address, active = cap, "ban table full, ban skipped");
                }
                return;
            }
            if e.offences.len() >= cap {
                let Engine { offences, bans, .. } = &mut *e;
                offences.retain(|a, _| bans.contains_key(a));
            }
            let cfg = e.detector.config();
            let (factor, max) = (
                u64::from(cfg.escalation_factor),
                u64::from(cfg.max_ban_time_s),
            );
            let prior = e.offences.get(&v.address).copied().unwrap_or(0);
            let mut secs = u64::from(v.ban_time_s);
            for _ in 0..prior.min(32) {
                secs = (secs * factor).min(max.max(u64::from(v.ban_time_s)));
            }
            let offences = prior + 1;
            e.offences.insert(v.address, offences);
            e.counters.bans_total += 1;
            e.bans.insert(
                v.address,
                Ban {
                    rule: v.rule.clone(),
                    reason: v.reason.clone(),
                    since_ms: now,
                    expires_ms: now + secs * 1000,
                    packets: 1,
                    offences,
                },
            );
            (secs as u32, offences)
        };
        if let Err(e) = self.firewall.lock().ban(v.address, seconds) {
            tracing::error!(address = %v.address, error = %e, "ban not applied in the kernel");
        }
        tracing::warn!(address = %v.address, rule = %v.rule, reason = %v.reason, seconds, offences, user_agent = ?v.sample_user_agent, "banned");
        let expires_ms = now + u64::from(seconds) * 1000;
        let row = BanRow {
            address: v.address.to_string(),
            rule: v.rule.clone(),
            reason: v.reason.clone(),
            since: now,
            expires: expires_ms,
            offences,
        };
        let evidence = json!({"count": v.count, "window": v.window_s, "sample-user-agent": v.sample_user_agent}).to_string();
        if let Err(e) = self.store.lock().add(&row, &evidence) {
            tracing::error!(error = %e, "ban not logged");
        }
        let mut data = json!({
            "address": v.address.to_string(), "rule": v.rule, "count": v.count,
            "window": v.window_s, "expires": rfc3339_from_unix(expires_ms / 1000),
        });
        if let Some(ua) = v.sample_user_agent {
            data["sample-user-agent"] = json!(ua);
        }
        self.notify("besip-security:ban-added", data);
    }

    fn lifted(&self, addr: IpAddr, reason: &str) {
        tracing::info!(address = %addr, reason, "ban lifted");
        if let Err(e) = self.store.lock().lift(&addr.to_string(), unix_ms(), reason) {
            tracing::error!(error = %e, "lift not logged");
        }
        self.notify(
            "besip-security:ban-lifted",
            json!({"address": addr.to_string(), "reason": reason}),
        );
    }

    /// Drop expired bans from the table (the kernel has expired them itself).
    pub fn expire(&self) {
        let now = unix_ms();
        let gone: Vec<IpAddr> = {
            let mut e = self.engine.lock();
            let gone: Vec<IpAddr> = e
                .bans
                .iter()
                .filter(|(_, b)| b.expires_ms <= now)
                .map(|(a, _)| *a)
                .collect();
            for a in &gone {
                e.bans.remove(a);
                e.detector.forget(a);
            }
            gone
        };
        for a in gone {
            self.lifted(a, "expired");
        }
    }

    pub fn unban(&self, addr: IpAddr) -> Result<(), HandlerError> {
        if self.engine.lock().bans.remove(&addr).is_none() {
            return Err(HandlerError::invalid_params(format!(
                "{addr} is not banned"
            )));
        }
        self.engine.lock().detector.forget(&addr);
        self.firewall
            .lock()
            .unban(addr)
            .map_err(|e| HandlerError::refused(e.to_string()))?;
        self.lifted(addr, "unban");
        Ok(())
    }

    fn reload_config(self: &Arc<Self>) -> Result<(), String> {
        let cfg =
            Config::load(&self.layout.uci_package("besip_security")).map_err(|e| e.to_string())?;
        let old = self.engine.lock().detector.config().clone();
        if old.backend != cfg.backend || old.set_name != cfg.set_name {
            let fw = Firewall::new(cfg.backend, &cfg.set_name);
            fw.setup().map_err(|e| e.to_string())?;
            let now = unix_ms();
            for (a, b) in self.engine.lock().bans.iter() {
                let left = (b.expires_ms.saturating_sub(now) / 1000).max(1) as u32;
                fw.ban(*a, left).map_err(|e| e.to_string())?;
            }
            let old_firewall = std::mem::replace(&mut *self.firewall.lock(), fw);
            // The bans now live in the new set; the old one would only keep
            // dropping their sources until its timeouts ran out.
            if let Err(e) = old_firewall.teardown() {
                tracing::warn!(error = %e, "cannot remove the previous firewall set");
            }
        }
        if old.interfaces != cfg.interfaces
            || old.sip_ports != cfg.sip_ports
            || old.enabled != cfg.enabled
        {
            self.start_captures(&cfg)?;
        }
        self.engine.lock().detector.set_config(cfg);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    pub fn state_json(&self) -> Value {
        let e = self.engine.lock();
        let mut bans: Vec<(&IpAddr, &Ban)> = e.bans.iter().collect();
        bans.sort_by_key(|(a, _)| **a);
        let list: Vec<Value> = bans
            .iter()
            .map(|(a, b)| {
                json!({
                    "address": a.to_string(), "rule": b.rule, "reason": b.reason,
                    "since": rfc3339_from_unix(b.since_ms / 1000), "expires": rfc3339_from_unix(b.expires_ms / 1000),
                    "packets": b.packets.to_string(), "offences": b.offences,
                })
            })
            .collect();
        json!({"besip-security:security": {
            "bans": {"ban": list},
            "statistics": {
                "packets": e.counters.packets.to_string(), "malformed": e.counters.malformed.to_string(),
                "bans-total": e.counters.bans_total.to_string(), "tracked-sources": e.detector.tracked(),
            }
        }})
    }

    pub fn backend(&self) -> Backend {
        self.firewall.lock().backend()
    }
}

pub struct IpcHandler(pub Arc<Daemon>);

impl Handler for IpcHandler {
    async fn reload(&self) -> Result<(), HandlerError> {
        let d = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || d.reload_config())
            .await
            .map_err(|e| HandlerError::refused(e.to_string()))?
            .map_err(HandlerError::refused)
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(self.0.state_json())
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        if name != "besip-security:unban" && name != "unban" {
            return Err(HandlerError::unknown_rpc(name));
        }
        let addr = input
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::invalid_params("unban needs input 'address'"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| HandlerError::invalid_params(format!("'{addr}' is not an IP address")))?;
        let d = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || d.unban(addr))
            .await
            .map_err(|e| HandlerError::refused(e.to_string()))??;
        Ok(json!({}))
    }
}

impl Daemon {
    pub fn config(&self) -> Config {
        self.engine.lock().detector.config().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_frame(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[10, 0, 0, 1]);
        let ulen = (8 + payload.len()) as u16;
        f.extend_from_slice(&[0x13, 0xc4, 0x13, 0xc4, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn tcp_frame(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[10, 0, 0, 1]);
        f.extend_from_slice(&[
            0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0,
        ]);
        f.extend_from_slice(payload);
        f
    }

    fn daemon() -> (tempfile::TempDir, Arc<Daemon>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etc/config");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(
            cfg.join("besip_security"),
            "package besip_security\n\nconfig security 'main'\n\toption firewall_backend 'log-only'\n\toption escalation_factor '3'\n\toption escalation_max_ban_time '50'\n\toption max_tracked_sources '1000'\n\nconfig rule 'rule_o'\n\toption name 'o'\n\toption method 'OPTIONS'\n\toption count '2'\n\toption window '5'\n\toption ban_time '10'\n",
        )
        .unwrap();
        let d = Daemon::start(Layout::new(dir.path())).unwrap();
        (dir, d)
    }

    fn ban_secs(d: &Daemon, a: &str) -> Option<u64> {
        let e = d.engine.lock();
        e.bans
            .get(&a.parse().unwrap())
            .map(|b| (b.expires_ms - b.since_ms) / 1000)
    }

    #[test]
    fn udp_and_tcp_frames_ban_and_repeat_offenders_escalate() {
        let (_dir, d) = daemon();
        let opt = b"OPTIONS sip:x SIP/2.0\r\nUser-Agent: t\r\n\r\n";
        for _ in 0..2 {
            d.frame(1, &udp_frame([198, 51, 100, 1], opt));
        }
        assert_eq!(ban_secs(&d, "198.51.100.1"), Some(10));
        // TCP carries SIP too.
        for _ in 0..2 {
            d.frame(1, &tcp_frame([198, 51, 100, 2], opt));
        }
        assert_eq!(ban_secs(&d, "198.51.100.2"), Some(10), "{}", d.state_json());
        // Two requests pipelined in one TCP segment count twice.
        let mut two = opt.to_vec();
        two.extend_from_slice(opt);
        d.frame(1, &tcp_frame([198, 51, 100, 3], &two));
        assert_eq!(ban_secs(&d, "198.51.100.3"), Some(10), "{}", d.state_json());
        // Repeat offence: 10 s * 3 = 30 s, then capped at 50 s.
        d.unban("198.51.100.1".parse().unwrap()).unwrap();
        for _ in 0..2 {
            d.frame(1, &udp_frame([198, 51, 100, 1], opt));
        }
        assert_eq!(ban_secs(&d, "198.51.100.1"), Some(30));
        d.unban("198.51.100.1".parse().unwrap()).unwrap();
        for _ in 0..2 {
            d.frame(1, &udp_frame([198, 51, 100, 1], opt));
        }
        assert_eq!(ban_secs(&d, "198.51.100.1"), Some(50));
        assert!(d.unban("198.51.100.9".parse().unwrap()).is_err());
    }

    #[test]
    fn garbage_is_counted_and_skipped() {
        let (_dir, d) = daemon();
        d.frame(1, &udp_frame([198, 51, 100, 1], b"\x00\x01garbage"));
        d.frame(1, &[0u8; 7]);
        d.frame(999, &[1, 2, 3]);
        let s = d.state_json();
        assert_eq!(s["besip-security:security"]["statistics"]["malformed"], "3");
        assert_eq!(s["besip-security:security"]["bans"]["ban"], json!([]));
    }

    #[test]
    fn bans_survive_a_restart_through_sqlite() {
        let (dir, d) = daemon();
        let opt = b"OPTIONS sip:x SIP/2.0\r\n\r\n";
        d.frame(1, &udp_frame([198, 51, 100, 3], opt));
        d.frame(1, &udp_frame([198, 51, 100, 3], opt));
        drop(d);
        let again = Daemon::start(Layout::new(dir.path())).unwrap();
        assert!(ban_secs(&again, "198.51.100.3").is_some());
    }

    #[test]
    fn spoofed_scanners_cannot_grow_the_ban_table() {
        let (_dir, d) = daemon();
        let scan = b"OPTIONS sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n";
        for i in 0..1100u32 {
            let b = (0x0a00_0000 + i).to_be_bytes();
            d.frame(1, &udp_frame(b, scan));
        }
        let e = d.engine.lock();
        assert_eq!(e.bans.len(), 1000);
        assert_eq!(e.counters.bans_refused, 100);
    }
}
