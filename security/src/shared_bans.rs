//! Bans shared by the boxes of a cluster (the PBX's /pbx/cluster database):
//! a ban this box raises is written to the shared database with a NOTIFY;
//! the bans other boxes raised are read at once on their NOTIFY (and twice
//! a second anyway) and applied here as bans of rule `cluster:<box>:<rule>`
//! for the time they have left, through the same path as a local ban (the
//! whitelist, protected sessions and the ban table's limits apply). Bans
//! applied from the cluster are not written back. While the database is
//! away bans queue (bounded) and are written when it returns.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::bans::unix_ms;
use crate::config::Scope;

const MIGRATIONS: &[&str] = &[
    // 1: bans, one row per ban raised at a box.
    "CREATE TABLE besip_ban (
       id BIGSERIAL PRIMARY KEY,
       box TEXT NOT NULL,
       address TEXT NOT NULL,
       rule TEXT NOT NULL,
       reason TEXT NOT NULL,
       scope TEXT NOT NULL,
       expires_ms BIGINT NOT NULL);
     CREATE INDEX besip_ban_expires ON besip_ban (expires_ms);",
];

const CHANNEL: &str = "besip_ban";
const TICK: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bans waiting for the database, at most (the oldest are dropped).
const MAX_QUEUED: usize = 10_000;
/// Remote bans read per round, at most.
const MAX_READ: i64 = 10_000;
/// The prefix of the rule of a ban applied from another box.
pub const CLUSTER_RULE: &str = "cluster:";

/// The database and this box's name in it (from /pbx/cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database: String,
    /// /pbx/cluster/database-ca (PEM).
    pub database_ca: Option<String>,
    pub box_name: String,
}

/// A ban raised here, to be written.
pub struct Raised {
    pub address: IpAddr,
    pub rule: String,
    pub reason: String,
    pub scope: Scope,
    pub expires_ms: u64,
}

/// What sharing needs of the daemon (`daemon::Daemon`): where its sharing
/// state lives, and how a ban raised by another box is applied.
pub trait BanHost: Send + Sync + 'static {
    fn shared_bans(&self) -> &SharedBans;
    /// A ban another box of the cluster raised, for `seconds` more.
    fn apply_shared_ban(
        &self,
        address: IpAddr,
        rule: String,
        reason: String,
        scope: Scope,
        seconds: u32,
    );
}

#[derive(Default)]
pub struct SharedBans {
    running: Mutex<Option<(Settings, JoinHandle<()>)>>,
    queue: Mutex<VecDeque<Raised>>,
    connected: Mutex<bool>,
}

impl SharedBans {
    /// Queues a ban raised here (not one applied from the cluster).
    pub fn raised(&self, ban: Raised) {
        if ban.rule.starts_with(CLUSTER_RULE) || self.running.lock().is_none() {
            return;
        }
        let mut q = self.queue.lock();
        if q.len() >= MAX_QUEUED {
            q.pop_front();
        }
        q.push_back(ban);
    }

    pub fn connected(&self) -> Option<bool> {
        self.running.lock().as_ref().map(|_| *self.connected.lock())
    }
}

/// Starts, restarts or stops sharing as /pbx/cluster says.
pub fn reconcile<H: BanHost>(daemon: &Arc<H>, want: Option<Settings>) {
    let shared = daemon.shared_bans();
    let mut running = shared.running.lock();
    if running.as_ref().map(|(s, _)| s) == want.as_ref() {
        return;
    }
    if let Some((_, task)) = running.take() {
        task.abort();
        *shared.connected.lock() = false;
    }
    let Some(settings) = want else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no runtime: bans are not shared");
        return;
    };
    tracing::info!(box_name = %settings.box_name, "sharing bans with the cluster");
    let task = runtime.spawn(keep_in_sync(settings.clone(), daemon.clone()));
    *running = Some((settings, task));
}

async fn keep_in_sync<H: BanHost>(settings: Settings, daemon: Arc<H>) {
    // The newest remote ban applied: only newer ones are read (at first,
    // every live one, whenever it was raised).
    let mut last_id: i64 = 0;
    loop {
        if let Err(e) = session(&settings, &daemon, &mut last_id).await {
            let shared = daemon.shared_bans();
            if std::mem::replace(&mut *shared.connected.lock(), false) {
                tracing::warn!(error = %e, "ban database unavailable; bans queue here");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn session<H: BanHost>(
    settings: &Settings,
    daemon: &Arc<H>,
    last_id: &mut i64,
) -> Result<(), String> {
    let mut db = besip_core::shared_db::Connection::open(
        &settings.database,
        settings.database_ca.as_deref(),
        CONNECT_TIMEOUT,
        "bans",
        MIGRATIONS,
        CHANNEL,
    )
    .await?;
    *daemon.shared_bans().connected.lock() = true;
    loop {
        write_queued(&mut db.client, settings, daemon.as_ref()).await?;
        read_others(&db.client, settings, daemon.as_ref(), last_id).await?;
        db.wait(TICK).await?;
    }
}

async fn write_queued<H: BanHost>(
    client: &mut tokio_postgres::Client,
    settings: &Settings,
    daemon: &H,
) -> Result<(), String> {
    let batch: Vec<Raised> = daemon.shared_bans().queue.lock().drain(..).collect();
    if batch.is_empty() {
        return Ok(());
    }
    let outcome = async {
        let tx = client.transaction().await?;
        for b in &batch {
            let expires = i64::try_from(b.expires_ms).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO besip_ban (box, address, rule, reason, scope, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &settings.box_name,
                    &b.address.to_string(),
                    &b.rule,
                    &b.reason,
                    &b.scope.as_str(),
                    &expires,
                ],
            )
            .await?;
        }
        tx.execute(&format!("NOTIFY {CHANNEL}"), &[]).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = outcome {
        // Back in the queue, in front, for the next connection.
        let mut q = daemon.shared_bans().queue.lock();
        for b in batch.into_iter().rev() {
            if q.len() < MAX_QUEUED {
                q.push_front(b);
            }
        }
        return Err(e.to_string());
    }
    Ok(())
}

async fn read_others<H: BanHost>(
    client: &tokio_postgres::Client,
    settings: &Settings,
    daemon: &H,
    last_id: &mut i64,
) -> Result<(), String> {
    let now = i64::try_from(unix_ms()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT id, box, address, rule, reason, scope, expires_ms FROM besip_ban
             WHERE box <> $1 AND id > $2 AND expires_ms > $3 ORDER BY id LIMIT $4",
            &[&settings.box_name, &*last_id, &now, &MAX_READ],
        )
        .await
        .map_err(|e| e.to_string())?;
    for r in rows {
        *last_id = (*last_id).max(r.get::<_, i64>(0));
        let Ok(address) = r.get::<_, String>(2).parse::<IpAddr>() else {
            continue;
        };
        let from_box: String = r.get(1);
        let rule: String = r.get(3);
        let left_ms = u64::try_from(r.get::<_, i64>(6) - now).unwrap_or(0);
        let scope = Scope::parse(&r.get::<_, String>(5)).unwrap_or(Scope::Sip);
        daemon.apply_shared_ban(
            address,
            format!("{CLUSTER_RULE}{from_box}:{rule}"),
            r.get(4),
            scope,
            u32::try_from(left_ms.div_ceil(1000))
                .unwrap_or(u32::MAX)
                .max(1),
        );
    }
    Ok(())
}
