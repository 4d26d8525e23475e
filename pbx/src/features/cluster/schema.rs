//! The shared database's schema, versioned: each migration runs once, in
//! order, in one transaction under an advisory lock, so boxes starting
//! together do not race and a box with newer code brings the schema up.

use tokio_postgres::Client;

/// The migrations; the schema version is how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: boxes and their phones' bindings.
    "CREATE TABLE besip_box (
       name TEXT PRIMARY KEY,
       sip_address TEXT NOT NULL,
       seen_at BIGINT NOT NULL);
     CREATE TABLE besip_location (
       box TEXT NOT NULL,
       aor TEXT NOT NULL,
       contact TEXT NOT NULL,
       expires_at BIGINT NOT NULL,
       user_agent TEXT NOT NULL,
       PRIMARY KEY (box, aor, contact));
     CREATE INDEX besip_location_expires ON besip_location (expires_at);",
];

/// Any number: the advisory lock of the migrations.
const MIGRATION_LOCK: i64 = 0x6265_7369_7001;

/// Brings the schema to the newest version; returns it.
pub async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS besip_schema (version INTEGER NOT NULL)")
        .await?;
    let row = tx
        .query_opt("SELECT version FROM besip_schema", &[])
        .await?;
    let current = match row {
        Some(r) => usize::try_from(r.get::<_, i32>(0)).unwrap_or(0),
        None => {
            tx.execute("INSERT INTO besip_schema VALUES (0)", &[]).await?;
            0
        }
    };
    for (i, m) in MIGRATIONS.iter().enumerate().skip(current) {
        tracing::info!(version = i + 1, "shared database: migrating");
        tx.batch_execute(m).await?;
    }
    let newest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    tx.execute("UPDATE besip_schema SET version = $1", &[&newest])
        .await?;
    tx.commit().await?;
    Ok(MIGRATIONS.len())
}
