//! The database several boxes share (PostgreSQL): each component (the PBX's
//! location, the guard's bans) owns its tables and their migrations, run
//! once, in order, in one transaction under an advisory lock, so boxes
//! starting together do not race and a box with newer code brings its
//! component's schema up. `besip_schema` keeps one version per component.

use tokio_postgres::Client;

/// Any number: the advisory lock of the migrations.
const MIGRATION_LOCK: i64 = 0x6265_7369_7001;

/// Brings `component`'s tables to the newest of `migrations`; returns the
/// version (how many have run).
pub async fn migrate(
    client: &mut Client,
    component: &str,
    migrations: &[&str],
) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS besip_schema (
           component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    )
    .await?;
    let row = tx
        .query_opt(
            "SELECT version FROM besip_schema WHERE component = $1",
            &[&component],
        )
        .await?;
    let current = row.map_or(0, |r| usize::try_from(r.get::<_, i32>(0)).unwrap_or(0));
    for (i, m) in migrations.iter().enumerate().skip(current) {
        tracing::info!(component, version = i + 1, "shared database: migrating");
        tx.batch_execute(m).await?;
    }
    let newest = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO besip_schema VALUES ($1, $2)
         ON CONFLICT (component) DO UPDATE SET version = $2",
        &[&component, &newest],
    )
    .await?;
    tx.commit().await?;
    Ok(migrations.len())
}

/// Connects to `url` within `timeout` and drives the connection in a task
/// of its own; each NOTIFY received wakes `wake`. The task's handle ends
/// (with the reason) when the connection does.
pub async fn connect(
    url: &str,
    timeout: std::time::Duration,
    wake: tokio::sync::mpsc::Sender<()>,
) -> Result<(Client, tokio::task::JoinHandle<String>), String> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, mut connection) = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| format!("cannot connect: {e}"))?;
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    let _ = wake.try_send(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "connection closed".to_owned(),
            }
        }
    });
    Ok((client, driver))
}
