//! Several boxes on one location service (/pbx/cluster): each box copies
//! its own phones' bindings to a shared PostgreSQL database and reads the
//! others' (`sync`). A call to an extension with no binding here but one at
//! another box is sent to that box's SIP address (`remote_targets`), and
//! that box, which holds the phone's connection and NAT mapping, delivers
//! it. The bindings stay in memory and SQLite as before: a box that loses
//! the database keeps serving its own phones, and when the database returns
//! it writes all its bindings again, so no registration made during the
//! outage is lost (`/pbx/cluster-state` reports the outage). Each box's
//! CDRs are copied too, read from its own store after the last one the
//! database has, so none is lost however long the database was away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::call::Target;
use crate::config::{ClusterSettings, Transport};
use crate::features::state::Engine;

mod schema;
mod sync;

/// A binding another box holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBinding {
    pub box_name: String,
    /// Where that box takes calls for its phones.
    pub sip: SocketAddr,
    pub contact: String,
    pub expires_at: u64,
}

/// How the database connection has fared.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub connected: bool,
    pub last_error: Option<String>,
    /// Unix time the current outage began (None while connected).
    pub outage_since: Option<u64>,
    pub outages: u64,
    /// Binding changes of this box written to the database.
    pub written: u64,
    /// CDRs of this box copied to the database.
    pub cdrs_written: u64,
}

/// What the sync task and the call path share.
#[derive(Default)]
struct Shared {
    /// The other boxes' live bindings, by address of record.
    remote: RwLock<HashMap<String, Vec<RemoteBinding>>>,
    /// The other boxes, by the address they send calls from and take them on.
    boxes: RwLock<HashMap<SocketAddr, String>>,
    status: Mutex<Status>,
}

/// The cluster membership of the daemon: follows /pbx/cluster.
#[derive(Default)]
pub struct Cluster {
    running: Mutex<Option<(ClusterSettings, JoinHandle<()>)>>,
    shared: Arc<Shared>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.get_mut().take() {
            task.abort();
        }
    }
}

/// Starts, restarts or stops the sync task as the running configuration
/// says (at start and after each reload).
pub fn reconcile(engine: &Arc<Engine>) {
    let want = engine.config().cluster.clone();
    let cluster = engine.cluster();
    let mut running = cluster.running.lock();
    if running.as_ref().map(|(s, _)| s) == want.as_ref() {
        return;
    }
    if let Some((_, task)) = running.take() {
        task.abort();
        engine.location().follow_changes(false);
        cluster.shared.remote.write().clear();
        cluster.shared.boxes.write().clear();
        *cluster.shared.status.lock() = Status::default();
    }
    let Some(settings) = want else {
        return;
    };
    tracing::info!(box_name = %settings.box_name, sip = %settings.sip, "sharing the location service");
    let task = tokio::spawn(sync::keep_in_sync(
        settings.clone(),
        Arc::downgrade(engine),
        cluster.shared.clone(),
    ));
    *running = Some((settings, task));
}

/// Targets for a call to `aor` registered at other boxes: one per box,
/// to its SIP address, the box's own lookup finding the phone.
pub fn remote_targets(engine: &Engine, aor: &str) -> Vec<Target> {
    let now = crate::call::location::unix_now();
    let remote = engine.cluster().shared.remote.read();
    let Some(list) = remote.get(aor) else {
        return Vec::new();
    };
    let mut boxes: Vec<SocketAddr> = list
        .iter()
        .filter(|b| b.expires_at > now)
        .map(|b| b.sip)
        .collect();
    boxes.sort();
    boxes.dedup();
    boxes
        .into_iter()
        .map(|sip| Target {
            ruri: format!(
                "sip:{aor}@{}:{}",
                crate::sip::format_host(&sip.ip()),
                sip.port()
            ),
            dest: sip,
            transport: Transport::Udp,
            routes: vec![],
            trunk: None,
            contact: true,
        })
        .collect()
}

/// The name of the other box of the cluster whose SIP socket is `source`:
/// a call it sends was authenticated there (boxes trust each other as
/// trusted peers, by address), so it is not challenged again here.
pub fn box_at(engine: &Engine, source: SocketAddr) -> Option<String> {
    engine.cluster().shared.boxes.read().get(&source).cloned()
}

/// RFC 7951 JSON of /pbx/cluster-state (None without a cluster).
pub fn state_json(engine: &Engine) -> Option<Value> {
    let running = engine.cluster().running.lock();
    let (settings, _) = running.as_ref()?;
    let s = engine.cluster().shared.status.lock().clone();
    let remote = engine.cluster().shared.remote.read();
    let mut v = json!({
        "box-name": settings.box_name,
        "database-connected": s.connected,
        "outages": s.outages.to_string(),
        "bindings-written": s.written.to_string(),
        "cdrs-written": s.cdrs_written.to_string(),
        "remote-bindings": u32::try_from(remote.values().map(Vec::len).sum::<usize>()).unwrap_or(u32::MAX),
    });
    if let Some(e) = s.last_error {
        v["last-error"] = json!(e);
    }
    if let Some(t) = s.outage_since {
        v["outage-since"] = json!(besip_core::ipc::rfc3339_from_unix(t));
    }
    Some(v)
}
