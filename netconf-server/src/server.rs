//! State shared by all sessions: the datastore, sessions, locks, counters,
//! and the notification stream.

use crate::nacm::{Rules, View};
use crate::subscription::{Event, ReplayLog};
use besip_core::datastore::Datastore;
use besip_core::datastore::Source;
use besip_core::paths::Layout;
use besip_core::reload::IpcReloader;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

pub use besip_core::access::Group;

/// Limits of the SSH/NETCONF front end (besip-system `netconf` container).
#[derive(Debug, Clone)]
pub struct Settings {
    pub idle_timeout: Option<Duration>,
    pub max_sessions: usize,
    pub max_message_size: usize,
    /// Elements one NETCONF message may hold (memory per message is bounded).
    pub max_message_elements: usize,
    /// An SSH connection not logged in within this time is closed.
    pub login_grace_time: Duration,
    /// Connections not yet logged in, per source address (IPv6: per /64).
    pub max_unauthenticated_per_source: usize,
}

#[derive(Default)]
pub struct Counters {
    pub in_rpcs: AtomicU64,
    pub in_bad_rpcs: AtomicU64,
    pub out_rpc_errors: AtomicU64,
    pub out_notifications: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// RFC 8341 `/nacm` counters since the server started.
#[derive(Default)]
pub struct NacmCounters {
    pub operations: AtomicU64,
    pub data_writes: AtomicU64,
    pub notifications: AtomicU64,
}

pub struct SessionEntry {
    pub user: String,
    pub group: Group,
    pub source_host: String,
    pub login_time: String,
    pub counters: Arc<Counters>,
    /// Signalled by kill-session.
    pub kill: Arc<Notify>,
    /// The session that sent the kill-session (0: none yet), for RFC 6470 killed-by.
    pub killed_by: Arc<AtomicU32>,
}

#[derive(Default)]
pub struct Locks {
    pub running: Option<(u32, String)>,
    pub candidate: Option<(u32, String)>,
}

pub struct Server {
    pub layout: Layout,
    pub store: tokio::sync::Mutex<Datastore>,
    pub reloader: IpcReloader,
    pub sessions: Mutex<HashMap<u32, SessionEntry>>,
    pub locks: Mutex<Locks>,
    /// SSH connections logged in (limited by max-sessions).
    pub connections: AtomicU32,
    /// SSH connections not logged in yet, per source.
    pub unauthenticated: crate::ssh_accept::Unauthenticated,
    /// Delays after failed password logins, per source and user.
    pub login_throttle: crate::login_throttle::LoginThrottle,
    next_session: AtomicU32,
    pub settings: Settings,
    pub start_time: String,
    pub totals: Counters,
    pub in_sessions: AtomicU64,
    pub in_bad_hellos: AtomicU64,
    pub dropped_sessions: AtomicU64,
    /// Published notifications, live, for subscribed sessions.
    pub notifications: broadcast::Sender<Arc<Event>>,
    /// The same, kept for replay (RFC 5277 startTime).
    pub replay: ReplayLog,
    pub nacm_denied: NacmCounters,
    /// `/nacm` of running, re-read whenever running may have changed.
    nacm: RwLock<Arc<Rules>>,
    /// Wakes the confirmed-commit timer (main.rs) when running changed.
    pub confirm_deadline_changed: tokio::sync::Notify,
    /// Wakes the metrics endpoint (main.rs) when running changed.
    pub metrics_settings_changed: tokio::sync::Notify,
    pub commits: crate::metrics::CommitMetrics,
    /// Version of running (RESTCONF ETag, Last-Modified; its endpoint follows it).
    pub running_version: tokio::sync::watch::Sender<besip_restconf::Version>,
    /// `--restconf-listen`: where RESTCONF is served whatever the config says.
    pub restconf_fixed: std::sync::OnceLock<Vec<std::net::SocketAddr>>,
}

impl Server {
    pub fn new(layout: Layout, store: Datastore, settings: Settings) -> Server {
        let (notifications, _) = broadcast::channel(256);
        let nacm = RwLock::new(Arc::new(Rules::from_tree(store.tree(Source::Running))));
        Server {
            nacm,
            nacm_denied: NacmCounters::default(),
            confirm_deadline_changed: tokio::sync::Notify::new(),
            metrics_settings_changed: tokio::sync::Notify::new(),
            commits: Default::default(),
            running_version: tokio::sync::watch::Sender::new(besip_restconf::Version {
                generation: 0,
                modified: std::time::SystemTime::now(),
            }),
            reloader: IpcReloader::new(layout.clone()),
            layout,
            store: tokio::sync::Mutex::new(store),
            sessions: Mutex::new(HashMap::new()),
            locks: Mutex::new(Locks::default()),
            connections: AtomicU32::new(0),
            unauthenticated: Default::default(),
            login_throttle: Default::default(),
            next_session: AtomicU32::new(1),
            settings,
            start_time: besip_core::ipc::now_rfc3339(),
            totals: Counters::default(),
            in_sessions: AtomicU64::new(0),
            in_bad_hellos: AtomicU64::new(0),
            dropped_sessions: AtomicU64::new(0),
            notifications,
            replay: ReplayLog::default(),
            restconf_fixed: std::sync::OnceLock::new(),
        }
    }

    pub fn register(&self, entry: SessionEntry) -> u32 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.in_sessions.fetch_add(1, Ordering::Relaxed);
        lock(&self.sessions).insert(id, entry);
        id
    }

    /// Forget a session and release its locks.
    pub fn unregister(&self, id: u32) {
        lock(&self.sessions).remove(&id);
        self.release_locks(id);
    }

    pub fn release_locks(&self, id: u32) {
        let mut locks = lock(&self.locks);
        if locks.running.as_ref().map(|l| l.0) == Some(id) {
            locks.running = None;
        }
        if locks.candidate.as_ref().map(|l| l.0) == Some(id) {
            locks.candidate = None;
        }
    }

    /// After running changed (commit, cancel, revert): re-read `/nacm`, and
    /// let the confirmed-commit timer look at the (maybe new) deadline.
    pub fn running_changed(&self, store: &Datastore) {
        self.confirm_deadline_changed.notify_one();
        self.metrics_settings_changed.notify_one();
        self.running_version.send_modify(|v| {
            v.generation += 1;
            v.modified = std::time::SystemTime::now();
        });
        let rules = Rules::from_tree(store.tree(Source::Running));
        let mut current = self.nacm.write().unwrap_or_else(|e| e.into_inner());
        if **current != rules {
            tracing::info!(
                rule_lists = rules.lists.len(),
                enabled = rules.enabled,
                "NACM rules loaded"
            );
            *current = Arc::new(rules);
        }
    }

    /// The NACM rules that apply to a user.
    pub fn nacm_view(&self, user: &str, group: Group) -> View {
        let rules = self.nacm.read().unwrap_or_else(|e| e.into_inner()).clone();
        View::new(&rules, user, group)
    }

    pub fn publish(&self, event_xml: &str) {
        let event = self.replay.record(event_xml);
        let _ = self.notifications.send(event);
    }
}

/// A poisoned std mutex only means another task panicked; the data is still usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
