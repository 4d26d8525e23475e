//! The live daemon: capture threads feeding the analyzer, periodic flushes
//! to SQLite, and the IPC handler (state, erase-reports, low-mos; the
//! reload is `Service`'s).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use besip_core::capture::LiveCapture as Capture;
use besip_core::ipc::{Handler, HandlerError, Notifier};
use besip_core::paths::Layout;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::analyzer::Analyzer;
use crate::config::MonitorConfig;
use crate::report::{self, CallReport, StreamReport};
use crate::store::Store;

/// A stream with no packet for this long has ended.
const IDLE_S: f64 = 5.0;
/// Signalling without media is forgotten after this long.
const SIGNALLING_TTL_S: f64 = 3600.0;

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub struct Monitor {
    layout: Layout,
    config: Mutex<MonitorConfig>,
    pub analyzer: Arc<Mutex<Analyzer>>,
    store: Mutex<Store>,
    /// `None` while capture is stopped (stop-capture).
    captures: Mutex<Option<Vec<Capture>>>,
    notifier: Mutex<Option<Notifier>>,
    /// Calls (or orphan streams) already reported by low-mos, so an alarm is raised once.
    alarmed: Mutex<std::collections::HashSet<String>>,
    last_rotation: Mutex<f64>,
    /// MOS of each call report stored, and streams reported (metrics).
    call_mos: besip_core::metrics::Histogram,
    streams_reported: std::sync::atomic::AtomicU64,
    /// Kernel drops of captures already closed (a reload or stop-capture
    /// replaces them; the counter must not go back).
    closed_captures_dropped: std::sync::atomic::AtomicU64,
    /// /monitoring/hep: where stream reports are copied, and how many were.
    hep: Mutex<Option<HepExport>>,
    hep_sent: std::sync::atomic::AtomicU64,
    hep_dropped: std::sync::atomic::AtomicU64,
    /// Call quality shared with the other boxes of a cluster.
    pub sites: crate::sites::Sites,
}

struct HepExport {
    settings: (std::net::SocketAddr, u32),
    sender: besip_core::hep::Sender,
}

/// The export `want` asks for, reusing `current` when it is the same.
fn hep_export(
    current: Option<HepExport>,
    want: Option<(std::net::SocketAddr, u32)>,
) -> Option<HepExport> {
    let want = want?;
    if let Some(c) = current.filter(|c| c.settings == want) {
        return Some(c);
    }
    match besip_core::hep::Sender::open(want.0) {
        Ok(sender) => {
            tracing::info!(collector = %want.0, "HEP export of stream reports");
            Some(HepExport {
                settings: want,
                sender,
            })
        }
        Err(e) => {
            tracing::error!(collector = %want.0, error = %e, "no HEP export: cannot open a socket");
            None
        }
    }
}

/// Upper bounds of the MOS histogram: ITU-T G.107 user-satisfaction bands
/// (nearly all dissatisfied < 2.6 < many < 3.1 < some < 3.6 < satisfied <
/// 4.0 < very satisfied 4.3) and the G.711 ceiling about 4.4.
const MOS_BUCKETS: [f64; 8] = [1.5, 2.0, 2.6, 3.1, 3.6, 4.0, 4.3, 4.5];

fn start_captures(
    cfg: &MonitorConfig,
    analyzer: &Arc<Mutex<Analyzer>>,
) -> Result<Vec<Capture>, String> {
    cfg.interfaces
        .iter()
        .map(|i| {
            let analyzer = analyzer.clone();
            Capture::start(i, &cfg.capture_filter, move |linktype, ts, frame| {
                analyzer.lock().frame(ts, linktype, frame)
            })
        })
        .collect()
}

impl Monitor {
    pub fn start(layout: Layout, config: MonitorConfig, store: Store) -> Result<Monitor, String> {
        let analyzer = Arc::new(Mutex::new(Analyzer::new(config.settings.clone())));
        let captures = start_captures(&config, &analyzer)?;
        let hep = hep_export(None, config.hep);
        Ok(Monitor {
            layout,
            config: Mutex::new(config),
            analyzer,
            store: Mutex::new(store),
            captures: Mutex::new(Some(captures)),
            notifier: Mutex::new(None),
            last_rotation: Mutex::new(now()),
            alarmed: Mutex::new(std::collections::HashSet::new()),
            call_mos: besip_core::metrics::histogram(&MOS_BUCKETS),
            streams_reported: Default::default(),
            closed_captures_dropped: Default::default(),
            hep: Mutex::new(hep),
            hep_sent: Default::default(),
            hep_dropped: Default::default(),
            sites: Default::default(),
        })
    }

    /// Sends the report of each ended stream to the HEP collector, if any.
    fn export_reports(&self, ended: &[StreamReport]) {
        use std::sync::atomic::Ordering;
        let hep = self.hep.lock();
        let Some(hep) = hep.as_ref() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for r in ended {
            let addr = |ip: &str, port: u16| {
                ip.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| std::net::SocketAddr::new(ip, port))
            };
            let (Some(source), Some(destination)) = (
                addr(&r.source_address, r.source_port),
                addr(&r.destination_address, r.destination_port),
            ) else {
                self.hep_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let json = serde_json::to_vec(r).unwrap_or_default();
            let packet = besip_core::hep::Packet {
                source,
                destination,
                ip_protocol: 17,
                time: now,
                payload_type: besip_core::hep::Payload::QualityReportJson,
                capture_id: hep.settings.1,
                correlation_id: Some(r.call_id.as_deref().unwrap_or(&r.id).as_bytes()),
                payload: &json,
            };
            let counter = match hep.sender.send(&packet) {
                true => &self.hep_sent,
                false => &self.hep_dropped,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Replaces the running captures (None: stops them), keeping the
    /// kernel drops of the closed ones.
    fn swap_captures(&self, new: Option<Vec<Capture>>) -> Option<Vec<Capture>> {
        let old = std::mem::replace(&mut *self.captures.lock(), new);
        let lost: u64 = old.iter().flatten().map(Capture::kernel_dropped).sum();
        self.closed_captures_dropped
            .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
        old
    }

    /// OpenMetrics text of the monitoring daemon's families
    /// (`besip_monitoring_*`, without `# EOF`).
    pub fn metrics(&self) -> String {
        use besip_core::metrics::{counter, families, gauge, MetricsRegistry};
        use std::sync::atomic::Ordering;
        let captured = self.analyzer.lock().counters.clone();
        let live_streams = self.analyzer.lock().streams.len();
        let kernel = self.closed_captures_dropped.load(Ordering::Relaxed)
            + self
                .captures
                .lock()
                .iter()
                .flatten()
                .map(Capture::kernel_dropped)
                .sum::<u64>();
        let mut r = MetricsRegistry::with_prefix("besip_monitoring");
        counter(
            &mut r,
            "frames_captured",
            "Frames the capture delivered.",
            captured.frames,
        );
        counter(
            &mut r,
            "frames_dropped_by_kernel",
            "Frames the kernel dropped before the capture read them.",
            kernel,
        );
        counter(
            &mut r,
            "frames_malformed",
            "Captured frames that could not be parsed.",
            captured.malformed,
        );
        counter(
            &mut r,
            "sip_messages",
            "SIP messages seen.",
            captured.sip_messages,
        );
        counter(
            &mut r,
            "rtp_packets",
            "RTP packets measured.",
            captured.rtp_packets,
        );
        counter(
            &mut r,
            "rtcp_packets",
            "RTCP packets seen.",
            captured.rtcp_packets,
        );
        counter(
            &mut r,
            "rtp_untracked",
            "RTP packets of streams past the stream limit (not measured).",
            captured.untracked_rtp,
        );
        counter(
            &mut r,
            "fragments_dropped",
            "IPv4 fragments dropped by the reassembly limits.",
            captured.fragments_dropped,
        );
        counter(
            &mut r,
            "streams_reported",
            "RTP streams ended and stored with their report.",
            self.streams_reported.load(Ordering::Relaxed),
        );
        gauge(
            &mut r,
            "streams",
            "RTP streams being measured.",
            i64::try_from(live_streams).unwrap_or(i64::MAX),
        );
        gauge(
            &mut r,
            "capture_running",
            "1 while the daemon captures, 0 after stop-capture.",
            i64::from(self.capture_running()),
        );
        r.register(
            "call_mos",
            "MOS (E-model) of each call report stored.",
            self.call_mos.clone(),
        );
        counter(
            &mut r,
            "hep_sent",
            "Stream reports sent to the HEP collector.",
            self.hep_sent.load(Ordering::Relaxed),
        );
        counter(
            &mut r,
            "hep_dropped",
            "Stream reports not sent to the HEP collector.",
            self.hep_dropped.load(Ordering::Relaxed),
        );
        families(&r)
    }

    /// Switches to a checked configuration (the apply of a two-phase reload).
    pub fn apply_config(&self, new: MonitorConfig) -> Result<(), HandlerError> {
        let restart = {
            let old = self.config.lock();
            old.interfaces != new.interfaces || old.capture_filter != new.capture_filter
        };
        // A stopped capture stays stopped; start-capture uses the new settings.
        if restart && self.capture_running() {
            // Open the new captures before dropping the old ones: a bad
            // interface or filter is refused with the old capture intact.
            let fresh = start_captures(&new, &self.analyzer).map_err(HandlerError::refused)?;
            self.swap_captures(Some(fresh));
        }
        {
            let mut hep = self.hep.lock();
            let current = hep.take();
            *hep = hep_export(current, new.hep);
        }
        self.analyzer.lock().settings = new.settings.clone();
        *self.config.lock() = new;
        tracing::info!("configuration applied");
        Ok(())
    }

    pub fn set_notifier(&self, n: Notifier) {
        *self.notifier.lock() = Some(n);
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn mos_threshold(&self) -> f64 {
        self.config.lock().mos_threshold
    }

    pub fn capture_running(&self) -> bool {
        self.captures.lock().is_some()
    }

    /// rpc start-capture (also the web panel's button): opens the
    /// configured captures unless they run already.
    pub fn start_capture(&self) -> Result<bool, String> {
        let cfg = self.config.lock().clone();
        let mut captures = self.captures.lock();
        if captures.is_none() {
            *captures = Some(start_captures(&cfg, &self.analyzer)?);
            tracing::info!("capture started on request");
        }
        Ok(true)
    }

    /// rpc stop-capture: closes the captures; streams seen so far end and
    /// are stored by the flush loop as usual.
    pub fn stop_capture(&self) -> bool {
        if self.swap_captures(None).is_some() {
            tracing::info!("capture stopped on request");
        }
        false
    }

    /// rpc erase-reports: deletes reports that ended before `before`
    /// (seconds since the epoch; infinity for all).
    pub fn erase_reports(&self, before: f64) -> Result<u64, String> {
        let erased = self
            .store
            .lock()
            .erase_before(before)
            .map_err(|e| e.to_string())?;
        tracing::info!(erased, "reports erased on request");
        Ok(erased)
    }

    /// Stores ended streams and their calls; every rotation interval also
    /// snapshots active streams and prunes reports past retention.
    pub fn flush(&self, force_all: bool) {
        let t = now();
        let (threshold, rotation, retention) = {
            let c = self.config.lock();
            (
                c.mos_threshold,
                c.rotation_interval_s as f64,
                c.retention_days as f64 * 86400.0,
            )
        };
        let (ended, calls, active) = {
            let mut a = self.analyzer.lock();
            let (before, now) = if force_all {
                (f64::INFINITY, f64::INFINITY)
            } else {
                (t - IDLE_S, t)
            };
            let taken = a.take_idle(before, now);
            let ended: Vec<StreamReport> = taken
                .iter()
                .filter(|s| s.seq.validated() && s.main_pt.is_some())
                .map(|s| StreamReport::from_stream(&a, s))
                .collect();
            let mut ids: Vec<&str> = ended.iter().filter_map(|s| s.call_id.as_deref()).collect();
            ids.sort_unstable();
            ids.dedup();
            let calls: Vec<CallReport> = ids
                .iter()
                .map(|id| match a.call(id) {
                    Some(c) => report::call_report(id, &c.from, &c.to, c.start, &ended),
                    None => report::call_report(id, "", "", t, &ended),
                })
                .collect();
            let rotate = t - *self.last_rotation.lock() >= rotation;
            let active: Vec<StreamReport> = if rotate {
                a.forget_signalling(t - SIGNALLING_TTL_S);
                a.streams
                    .values()
                    .filter(|s| s.seq.validated() && s.main_pt.is_some())
                    .map(|s| StreamReport::from_stream(&a, s))
                    .collect()
            } else {
                Vec::new()
            };
            // Live alarms: the last finished interval of an active stream.
            let mut live = Vec::new();
            for s in a.streams.values() {
                if let Some(i) = s.intervals.last().filter(|i| i.mos < threshold) {
                    let id = a
                        .call_of(s)
                        .map_or_else(|| StreamReport::from_stream(&a, s).id, str::to_string);
                    live.push((id, i.mos));
                }
            }
            for (id, mos) in live {
                self.low_mos(&id, mos, threshold);
            }
            (ended, calls, active)
        };
        for c in &calls {
            if let Some(mos) = c.mos {
                self.call_mos.observe(mos);
            }
        }
        self.streams_reported
            .fetch_add(ended.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.export_reports(&ended);
        self.sites.follow(&self.layout.uci_package("besip_pbx"));
        self.sites.stored(&calls);
        let mut store = self.store.lock();
        if !ended.is_empty() || !calls.is_empty() {
            if let Err(e) = store.save(t, &ended, &calls) {
                tracing::error!(error = %e, "cannot store reports");
            }
        }
        if !active.is_empty() {
            if let Err(e) = store.save(t, &active, &[]) {
                tracing::error!(error = %e, "cannot store snapshots");
            }
        }
        if t - *self.last_rotation.lock() >= rotation {
            *self.last_rotation.lock() = t;
            match store.erase_before(t - retention) {
                Ok(n) if n > 0 => tracing::info!(erased = n, "reports past retention deleted"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot prune reports"),
            }
        }
        drop(store);
        for c in &calls {
            tracing::info!(call_id = %c.call_id, mos = ?c.mos, streams = c.stream_count, "call quality stored");
            if let Some(m) = c.mos.filter(|m| *m < threshold) {
                self.low_mos(&c.call_id, m, threshold);
            }
        }
        for s in ended
            .iter()
            .filter(|s| s.call_id.is_none() && s.mos < threshold)
        {
            self.low_mos(&s.id, s.mos, threshold);
        }
        // Ended calls and streams may alarm again if their id ever comes back.
        let mut alarmed = self.alarmed.lock();
        for c in &calls {
            alarmed.remove(&c.call_id);
        }
        for s in &ended {
            alarmed.remove(&s.id);
        }
    }

    /// Raises low-mos once per call (or orphan stream).
    fn low_mos(&self, id: &str, mos: f64, threshold: f64) {
        if !self.alarmed.lock().insert(id.to_string()) {
            return;
        }
        tracing::warn!(call_id = id, mos, threshold, "low MOS");
        if let Some(n) = self.notifier.lock().as_ref() {
            n.notify("besip-monitoring:low-mos", json!({"call-id": id, "mos": format!("{:.2}", mos.clamp(1.0, 5.0)), "threshold": format!("{threshold:.2}")}));
        }
    }
}

fn dec(v: f64, digits: usize) -> Value {
    Value::String(format!("{v:.digits$}"))
}

/// RFC 7951 form of a stream (64-bit and decimal64 values as strings).
fn stream_state(s: &StreamReport) -> Value {
    let mut v = json!({
        "id": s.id, "ssrc": s.ssrc, "source-address": s.source_address, "source-port": s.source_port,
        "destination-address": s.destination_address, "destination-port": s.destination_port,
        "codec": s.codec, "first-seen": s.first_seen, "last-seen": s.last_seen,
        "packets": s.packets.to_string(), "expected": s.expected.to_string(), "lost": s.lost.to_string(),
        "loss-percent": dec(s.loss_percent, 2), "duplicates": s.duplicates.to_string(),
        "out-of-order": s.out_of_order.to_string(), "jitter-ms": dec(s.jitter_ms, 3),
        "max-jitter-ms": dec(s.max_jitter_ms, 3), "max-delta-ms": dec(s.max_delta_ms, 3),
        "burst-ratio": dec(s.burst_ratio, 3), "burst-count": s.burst_count.min(u64::from(u32::MAX)),
        "burst-density": dec(s.burst_density, 2), "gap-density": dec(s.gap_density, 2), "one-way-delay-ms": dec(s.one_way_delay_ms, 1),
        "r-factor": dec(s.r_factor, 2), "mos": dec(s.mos, 2), "min-mos": dec(s.min_mos, 2),
    });
    if let Some(pt) = s.payload_type {
        v["payload-type"] = json!(pt);
    }
    if let Some(c) = &s.call_id {
        v["call-id"] = json!(c);
    }
    v
}

fn call_state(c: &CallReport) -> Value {
    let mut v = json!({"call-id": c.call_id, "stream-count": c.stream_count});
    for (k, s) in [
        ("from", &c.from),
        ("to", &c.to),
        ("start-time", &c.start_time),
    ] {
        if !s.is_empty() {
            v[k] = json!(s);
        }
    }
    for (k, x) in [
        ("r-factor", c.r_factor),
        ("mos", c.mos),
        ("min-mos", c.min_mos),
    ] {
        if let Some(x) = x {
            v[k] = dec(x, 2);
        }
    }
    v
}

impl Handler for Monitor {
    async fn state(&self) -> Result<Value, HandlerError> {
        let streams: Vec<Value> = {
            let a = self.analyzer.lock();
            a.streams
                .values()
                .filter(|s| s.seq.validated() && s.main_pt.is_some())
                .map(|s| stream_state(&StreamReport::from_stream(&a, s)))
                .collect()
        };
        let calls = self
            .store
            .lock()
            .recent_calls(100)
            .map_err(|e| HandlerError::refused(e.to_string()))?;
        let mut top = serde_json::Map::new();
        top.insert("capture-running".into(), json!(self.capture_running()));
        if !streams.is_empty() {
            top.insert("streams".into(), json!({"stream": streams}));
        }
        if !calls.is_empty() {
            top.insert(
                "calls".into(),
                json!({"call": calls.iter().map(call_state).collect::<Vec<_>>()}),
            );
        }
        Ok(json!({"besip-monitoring:monitoring": top}))
    }

    async fn metrics(&self) -> Result<Value, HandlerError> {
        Ok(Value::String(Monitor::metrics(self)))
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        match name {
            "besip-monitoring:start-capture" => {
                let running = self.start_capture().map_err(HandlerError::refused)?;
                Ok(json!({"capture-running": running}))
            }
            "besip-monitoring:stop-capture" => Ok(json!({"capture-running": self.stop_capture()})),
            "besip-monitoring:erase-reports" => {
                let before = erase_before_param(&input)?;
                let erased = self.erase_reports(before).map_err(HandlerError::refused)?;
                Ok(json!({"erased": erased.min(u64::from(u32::MAX))}))
            }
            _ => Err(HandlerError::unknown_rpc(name)),
        }
    }
}

/// The optional `before` input of erase-reports, in seconds since the epoch.
fn erase_before_param(input: &Value) -> Result<f64, HandlerError> {
    match input
        .get("before")
        .or_else(|| input.get("besip-monitoring:before"))
    {
        None | Some(Value::Null) => Ok(f64::INFINITY),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis() as f64 / 1000.0)
            .map_err(|e| {
                HandlerError::invalid_params(format!(
                    "'before' must be a date-and-time such as 2026-11-23T13:00:00Z: {e}"
                ))
            }),
        Some(other) => Err(HandlerError::invalid_params(format!(
            "'before' must be a date-and-time string, not {other}"
        ))),
    }
}

/// Flush loop: once a second until `stop` resolves, then a final flush of everything.
pub async fn run(monitor: Arc<Monitor>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let m = monitor.clone();
                let _ = tokio::task::spawn_blocking(move || m.flush(false)).await;
            }
        }
    }
    tracing::debug!("stopping captures");
    monitor.captures.lock().take();
    tracing::debug!("final flush");
    monitor.flush(true);
    tracing::debug!("flushed");
}
