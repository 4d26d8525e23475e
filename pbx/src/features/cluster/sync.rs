//! The sync task of one box: connect, migrate, write this box's bindings
//! (all of them after each (re)connection, then what changed, twice a
//! second), read the other boxes' (on their NOTIFY or twice a second), and
//! on any failure note the outage and start over a second later.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_postgres::Client;

use super::{RemoteBinding, Shared};
use crate::call::location::{unix_now, Binding, Location};
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

/// Without a NOTIFY, the others' bindings are read every this many ticks.
const READ_EVERY: u32 = 10;

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
        settings.database_ca.as_deref(),
        CONNECT_TIMEOUT,
        "location",
        super::schema::MIGRATIONS,
        CHANNEL,
    )
    .await?;
    // Changes from now on are kept; everything before is in the full write.
    location.follow_changes(true);
    write_all(&mut db.client, settings, location, shared).await?;
    let mut last_cdr = copied_cdrs(&db.client, settings).await?;
    {
        let mut s = shared.status.lock();
        if !s.connected {
            tracing::info!(box_name = %settings.box_name, "shared location database connected");
        }
        s.connected = true;
        s.outage_since = None;
        s.last_error = None;
    }
    let mut read_due = true;
    let mut ticks = 0u32;
    loop {
        write_changes(&mut db.client, settings, location, shared).await?;
        // The others' bindings when one of them (or we) notified, and every
        // few seconds in case a NOTIFY was missed.
        ticks = ticks.wrapping_add(1);
        if read_due || ticks % READ_EVERY == 0 {
            read_others(&db.client, settings, shared).await?;
        }
        copy_cdrs(&mut db.client, settings, engine, shared, &mut last_cdr).await?;
        read_due = db.wait(TICK).await?;
    }
}

/// After a (re)connection: this box's rows replaced by what it holds now
/// (bindings made while the database was away included).
async fn write_all(
    client: &mut Client,
    settings: &ClusterSettings,
    location: &Location,
    shared: &Shared,
) -> Result<(), String> {
    let _ = location.take_changes();
    let now: Vec<Binding> = location.all();
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
    upsert(&tx, &settings.box_name, &now).await?;
    tx.execute(&format!("NOTIFY {CHANNEL}"), &[])
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    shared.status.lock().written += now.len() as u64;
    Ok(())
}

/// `bindings` written in one statement (arrays unnested by the server).
async fn upsert(
    tx: &tokio_postgres::Transaction<'_>,
    box_name: &str,
    bindings: &[Binding],
) -> Result<(), String> {
    if bindings.is_empty() {
        return Ok(());
    }
    let aors: Vec<&str> = bindings.iter().map(|b| b.aor.as_str()).collect();
    let contacts: Vec<&str> = bindings.iter().map(|b| b.contact.as_str()).collect();
    let expires: Vec<i64> = bindings
        .iter()
        .map(|b| i64::try_from(b.expires_at).unwrap_or(i64::MAX))
        .collect();
    let agents: Vec<&str> = bindings.iter().map(|b| b.user_agent.as_str()).collect();
    tx.execute(
        "INSERT INTO besip_location
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[])
         ON CONFLICT (box, aor, contact) DO UPDATE
         SET expires_at = EXCLUDED.expires_at, user_agent = EXCLUDED.user_agent",
        &[&box_name, &aors, &contacts, &expires, &agents],
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// What changed here since the last write (the location's change set), in
/// one transaction of two statements at most.
async fn write_changes(
    client: &mut Client,
    settings: &ClusterSettings,
    location: &Location,
    shared: &Shared,
) -> Result<(), String> {
    let changes = location.take_changes();
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let seen = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    tx.execute(
        "UPDATE besip_box SET seen_at = $2 WHERE name = $1",
        &[&settings.box_name, &seen],
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut live = Vec::new();
    let (mut gone_aors, mut gone_contacts) = (Vec::new(), Vec::new());
    for ((aor, contact), binding) in &changes {
        match binding {
            Some(b) => live.push(b.clone()),
            None => {
                gone_aors.push(aor.as_str());
                gone_contacts.push(contact.as_str());
            }
        }
    }
    upsert(&tx, &settings.box_name, &live).await?;
    if !gone_aors.is_empty() {
        tx.execute(
            "DELETE FROM besip_location WHERE box = $1 AND (aor, contact) IN
             (SELECT * FROM unnest($2::text[], $3::text[]))",
            &[&settings.box_name, &gone_aors, &gone_contacts],
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    if !changes.is_empty() {
        tx.execute(&format!("NOTIFY {CHANNEL}"), &[])
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    shared.status.lock().written += changes.len() as u64;
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
    // Nothing new since the last copy: no need to read the store.
    if engine.accounting().last_id() <= *last {
        return Ok(());
    }
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
