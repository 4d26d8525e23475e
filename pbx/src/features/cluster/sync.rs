//! The sync task of one box: connect, migrate, write this box's bindings
//! (all of them after each (re)connection, then what changed, twice a
//! second), read the other boxes' (on their NOTIFY or twice a second), and
//! on any failure note the outage and start over a second later.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_postgres::Client;

use super::{RemoteBinding, Shared};
use crate::call::location::{unix_now, Location};
use crate::config::ClusterSettings;
use crate::features::accounting::Cdr;
use crate::features::state::Engine;

/// How often changes are written and others' bindings read without a NOTIFY.
const TICK: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Most remote bindings read (the database is trusted, memory still bounded).
const MAX_REMOTE: i64 = 200_000;
const CHANNEL: &str = "besip_location";

type Key = (String, String);
/// What the database holds of this box: (aor, contact) -> (expires, user agent).
type Written = HashMap<Key, (u64, String)>;

/// CDRs copied per round, at most.
const CDR_BATCH: u32 = 500;

pub async fn keep_in_sync(settings: ClusterSettings, engine: Weak<Engine>, shared: Arc<Shared>) {
    loop {
        let Some(location) = engine.upgrade().map(|e| e.location().clone()) else {
            return;
        };
        let outcome = session(&settings, &location, &engine, &shared).await;
        if let Err(e) = outcome {
            let mut s = shared.status.lock();
            if s.connected || s.outage_since.is_none() {
                tracing::warn!(error = %e, "shared location database unavailable; serving this box's phones only");
                s.outages += 1;
                s.outage_since = Some(unix_now());
            }
            s.connected = false;
            s.last_error = Some(e);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One connection's life: returns why it ended.
async fn session(
    settings: &ClusterSettings,
    location: &Location,
    engine: &Weak<Engine>,
    shared: &Shared,
) -> Result<(), String> {
    let mut db = besip_core::shared_db::Connection::open(
        &settings.database,
        CONNECT_TIMEOUT,
        "location",
        super::schema::MIGRATIONS,
        CHANNEL,
    )
    .await?;
    let client = &mut db.client;
    let mut written = Written::new();
    write_all(client, settings, location, shared, &mut written).await?;
    let mut last_cdr = copied_cdrs(client, settings).await?;
    {
        let mut s = shared.status.lock();
        if !s.connected {
            tracing::info!(box_name = %settings.box_name, "shared location database connected");
        }
        s.connected = true;
        s.outage_since = None;
        s.last_error = None;
    }
    loop {
        let client = &mut db.client;
        write_changes(client, settings, location, shared, &mut written).await?;
        read_others(client, settings, shared).await?;
        copy_cdrs(client, settings, engine, shared, &mut last_cdr).await?;
        db.wait(TICK).await?;
    }
}

/// This box's live bindings as the database holds them.
fn local(location: &Location) -> Written {
    location
        .all()
        .into_iter()
        .map(|b| ((b.aor, b.contact), (b.expires_at, b.user_agent)))
        .collect()
}

/// After a (re)connection: this box's rows replaced by what it holds now
/// (bindings made while the database was away included).
async fn write_all(
    client: &mut Client,
    settings: &ClusterSettings,
    location: &Location,
    shared: &Shared,
    written: &mut Written,
) -> Result<(), String> {
    let now = local(location);
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let sip = settings.sip.to_string();
    let seen = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO besip_box VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET sip_address = $2, seen_at = $3",
        &[&settings.box_name, &sip, &seen],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.execute(
        "DELETE FROM besip_location WHERE box = $1",
        &[&settings.box_name],
    )
    .await
    .map_err(|e| e.to_string())?;
    for ((aor, contact), (expires, ua)) in &now {
        upsert(&tx, &settings.box_name, aor, contact, *expires, ua).await?;
    }
    tx.execute(&format!("NOTIFY {CHANNEL}"), &[])
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    shared.status.lock().written += now.len() as u64;
    *written = now;
    Ok(())
}

async fn upsert(
    tx: &tokio_postgres::Transaction<'_>,
    box_name: &str,
    aor: &str,
    contact: &str,
    expires: u64,
    ua: &str,
) -> Result<(), String> {
    let expires = i64::try_from(expires).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO besip_location VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (box, aor, contact) DO UPDATE SET expires_at = $4, user_agent = $5",
        &[&box_name, &aor, &contact, &expires, &ua],
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// What changed here since the last write, written in one transaction.
async fn write_changes(
    client: &mut Client,
    settings: &ClusterSettings,
    location: &Location,
    shared: &Shared,
    written: &mut Written,
) -> Result<(), String> {
    let now = local(location);
    let changed: Vec<(&Key, &(u64, String))> = now
        .iter()
        .filter(|(k, v)| written.get(*k) != Some(*v))
        .collect();
    let gone: Vec<&Key> = written.keys().filter(|k| !now.contains_key(*k)).collect();
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let seen = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    tx.execute(
        "UPDATE besip_box SET seen_at = $2 WHERE name = $1",
        &[&settings.box_name, &seen],
    )
    .await
    .map_err(|e| e.to_string())?;
    for ((aor, contact), (expires, ua)) in &changed {
        upsert(&tx, &settings.box_name, aor, contact, *expires, ua).await?;
    }
    for (aor, contact) in &gone {
        tx.execute(
            "DELETE FROM besip_location WHERE box = $1 AND aor = $2 AND contact = $3",
            &[&settings.box_name, aor, contact],
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let count = changed.len() + gone.len();
    if count > 0 {
        tx.execute(&format!("NOTIFY {CHANNEL}"), &[])
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    shared.status.lock().written += count as u64;
    *written = now;
    Ok(())
}

/// The other boxes' live bindings, replacing what was read before.
async fn read_others(
    client: &Client,
    settings: &ClusterSettings,
    shared: &Shared,
) -> Result<(), String> {
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT l.box, b.sip_address, l.aor, l.contact, l.expires_at
             FROM besip_location l JOIN besip_box b ON b.name = l.box
             WHERE l.box <> $1 AND l.expires_at > $2 LIMIT $3",
            &[&settings.box_name, &now, &MAX_REMOTE],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut remote: HashMap<String, Vec<RemoteBinding>> = HashMap::new();
    for r in rows {
        let Ok(sip) = r.get::<_, String>(1).parse() else {
            continue;
        };
        let binding = RemoteBinding {
            box_name: r.get(0),
            sip,
            contact: r.get(3),
            expires_at: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
        };
        remote.entry(r.get(2)).or_default().push(binding);
    }
    *shared.remote.write() = remote;
    let rows = client
        .query(
            "SELECT name, sip_address FROM besip_box WHERE name <> $1 LIMIT 10000",
            &[&settings.box_name],
        )
        .await
        .map_err(|e| e.to_string())?;
    let boxes = rows
        .iter()
        .filter_map(|r| Some((r.get::<_, String>(1).parse().ok()?, r.get(0))))
        .collect();
    *shared.boxes.write() = boxes;
    Ok(())
}

/// The newest of this box's CDRs the database has (its local id).
async fn copied_cdrs(client: &Client, settings: &ClusterSettings) -> Result<u64, String> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(local_id), 0) FROM besip_cdr WHERE box = $1",
            &[&settings.box_name],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// This box's CDRs after `last`, from its own store, into the database.
async fn copy_cdrs(
    client: &mut Client,
    settings: &ClusterSettings,
    engine: &Weak<Engine>,
    shared: &Shared,
    last: &mut u64,
) -> Result<(), String> {
    let Some(engine) = engine.upgrade() else {
        return Ok(());
    };
    let after = *last;
    let cdrs: Vec<Cdr> =
        tokio::task::spawn_blocking(move || engine.accounting().cdrs_after(after, CDR_BATCH))
            .await
            .map_err(|e| e.to_string())??;
    if cdrs.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    for c in &cdrs {
        let (by, to, reason) = match &c.forwarded {
            Some(f) => (Some(f.by.as_str()), Some(f.to.as_str()), Some(f.reason)),
            None => (None, None, None),
        };
        tx.execute(
            "INSERT INTO besip_cdr VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (box, local_id) DO NOTHING",
            &[
                &settings.box_name,
                &i64::try_from(c.id).unwrap_or(i64::MAX),
                &c.call_id,
                &c.caller,
                &c.callee,
                &c.start,
                &c.answer,
                &c.end,
                &i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
                &c.disposition,
                &i32::from(c.code),
                &c.trunk,
                &c.price,
                &by,
                &to,
                &reason,
                &c.did,
                &c.answered_by,
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    *last = cdrs.last().map_or(after, |c| c.id);
    shared.status.lock().cdrs_written += cdrs.len() as u64;
    Ok(())
}
