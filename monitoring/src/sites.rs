//! Call quality of every box of a cluster (the PBX's /pbx/cluster database,
//! read from besip_pbx, which this daemon re-reads when the file changes):
//! each stored call report of this box is written to the shared database,
//! and the newest reports of all boxes are kept here for the panel's
//! /sites page (with a site column). Reports wait in a bounded queue while
//! the database is away.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use besip_core::model::pbx::Pbx;
use besip_core::uci::Package;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::report::CallReport;

const MIGRATIONS: &[&str] = &[
    // 1: every box's call reports.
    "CREATE TABLE besip_call_quality (
       box TEXT NOT NULL,
       call_id TEXT NOT NULL,
       from_uri TEXT NOT NULL,
       to_uri TEXT NOT NULL,
       start_time TEXT NOT NULL,
       stream_count INTEGER NOT NULL,
       mos DOUBLE PRECISION,
       min_mos DOUBLE PRECISION,
       r_factor DOUBLE PRECISION,
       PRIMARY KEY (box, call_id));
     CREATE INDEX besip_call_quality_start ON besip_call_quality (start_time);",
];
const CHANNEL: &str = "besip_call_quality";
const TICK: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_QUEUED: usize = 10_000;
/// Reports of all sites kept for the panel.
pub const SHOWN: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database: String,
    /// /pbx/cluster/database-ca (PEM).
    pub database_ca: Option<String>,
    pub box_name: String,
}

/// One call of some box, as the panel shows it.
#[derive(Debug, Clone)]
pub struct SiteCall {
    pub site: String,
    pub from: String,
    pub to: String,
    pub start_time: String,
    pub mos: Option<f64>,
}

#[derive(Default)]
pub struct Sites {
    /// besip_pbx's modification time when last read, and its cluster.
    pbx: Mutex<(Option<SystemTime>, Option<Settings>)>,
    running: Mutex<Option<(Settings, JoinHandle<()>)>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<CallReport>>,
    recent: Mutex<Vec<SiteCall>>,
    connected: Mutex<bool>,
}

impl Drop for Sites {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.get_mut().take() {
            task.abort();
        }
    }
}

/// /pbx/cluster of the besip_pbx package at `path` (None: none, or no file).
fn cluster_of(path: &Path) -> Option<Settings> {
    let package = Package::load(path).ok()?;
    let pbx = Pbx::from_package(&package).ok()?;
    let database = pbx.cluster.database?;
    Some(Settings {
        database,
        database_ca: pbx.cluster.database_ca,
        box_name: pbx.cluster.box_name,
    })
}

impl Sites {
    /// Follows besip_pbx at `path`: starts, moves or stops the sharing when
    /// its cluster changed (cheap when the file did not).
    pub fn follow(&self, path: &PathBuf) {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let want = {
            let mut pbx = self.pbx.lock();
            if pbx.0 == modified && modified.is_some() {
                return;
            }
            *pbx = (modified, cluster_of(path));
            pbx.1.clone()
        };
        let mut running = self.running.lock();
        if running.as_ref().map(|(s, _)| s) == want.as_ref() {
            return;
        }
        if let Some((_, task)) = running.take() {
            task.abort();
            *self.shared.connected.lock() = false;
            self.shared.recent.lock().clear();
        }
        let Some(settings) = want else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::info!(box_name = %settings.box_name, "sharing call quality with the cluster");
        let task = runtime.spawn(keep_in_sync(settings.clone(), self.shared.clone()));
        *running = Some((settings, task));
    }

    /// Call reports this box just stored.
    pub fn stored(&self, calls: &[CallReport]) {
        if self.running.lock().is_none() || calls.is_empty() {
            return;
        }
        let mut q = self.shared.queue.lock();
        for c in calls {
            if q.len() >= MAX_QUEUED {
                q.pop_front();
            }
            q.push_back(c.clone());
        }
    }

    /// None outside a cluster; else whether the database is reachable and
    /// the newest calls of every box.
    pub fn view(&self) -> Option<(String, bool, Vec<SiteCall>)> {
        let running = self.running.lock();
        let (settings, _) = running.as_ref()?;
        Some((
            settings.box_name.clone(),
            *self.shared.connected.lock(),
            self.shared.recent.lock().clone(),
        ))
    }
}

async fn keep_in_sync(settings: Settings, shared: Arc<Shared>) {
    loop {
        if let Err(e) = session(&settings, &shared).await {
            if std::mem::replace(&mut *shared.connected.lock(), false) {
                tracing::warn!(error = %e, "call quality database unavailable; reports queue here");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn session(settings: &Settings, shared: &Shared) -> Result<(), String> {
    let mut db = besip_core::shared_db::Connection::open(
        &settings.database,
        settings.database_ca.as_deref(),
        CONNECT_TIMEOUT,
        "quality",
        MIGRATIONS,
        CHANNEL,
    )
    .await?;
    *shared.connected.lock() = true;
    loop {
        write_queued(&mut db.client, settings, shared).await?;
        read_all(&db.client, shared).await?;
        db.wait(TICK).await?;
    }
}

async fn write_queued(
    client: &mut tokio_postgres::Client,
    settings: &Settings,
    shared: &Shared,
) -> Result<(), String> {
    let batch: Vec<CallReport> = shared.queue.lock().drain(..).collect();
    if batch.is_empty() {
        return Ok(());
    }
    let outcome = async {
        let tx = client.transaction().await?;
        for c in &batch {
            tx.execute(
                "INSERT INTO besip_call_quality VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (box, call_id) DO UPDATE SET stream_count = $6, mos = $7, min_mos = $8, r_factor = $9",
                &[
                    &settings.box_name,
                    &c.call_id,
                    &c.from,
                    &c.to,
                    &c.start_time,
                    &i32::try_from(c.stream_count).unwrap_or(i32::MAX),
                    &c.mos,
                    &c.min_mos,
                    &c.r_factor,
                ],
            )
            .await?;
        }
        tx.execute(&format!("NOTIFY {CHANNEL}"), &[]).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = outcome {
        let mut q = shared.queue.lock();
        for c in batch.into_iter().rev() {
            if q.len() < MAX_QUEUED {
                q.push_front(c);
            }
        }
        return Err(e.to_string());
    }
    Ok(())
}

async fn read_all(client: &tokio_postgres::Client, shared: &Shared) -> Result<(), String> {
    let rows = client
        .query(
            "SELECT box, from_uri, to_uri, start_time, mos FROM besip_call_quality
             ORDER BY start_time DESC LIMIT $1",
            &[&SHOWN],
        )
        .await
        .map_err(|e| e.to_string())?;
    *shared.recent.lock() = rows
        .iter()
        .map(|r| SiteCall {
            site: r.get(0),
            from: r.get(1),
            to: r.get(2),
            start_time: r.get(3),
            mos: r.get(4),
        })
        .collect();
    Ok(())
}
