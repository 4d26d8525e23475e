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

/// A connection to the shared database: the client, the task that drives
/// it, and the wake-ups its NOTIFYs give. Dropping it closes it.
pub struct Connection {
    pub client: Client,
    driver: tokio::task::JoinHandle<String>,
    woken: tokio::sync::mpsc::Receiver<()>,
}

impl Connection {
    /// Connects to `url` within `timeout`, migrates `component` to the newest
    /// of `migrations` and listens on `channel`. With `sslmode=require` in
    /// the URL the connection is TLS, the server's certificate verified for
    /// the URL's host against `ca` (PEM) or the system's CA store.
    pub async fn open(
        url: &str,
        ca: Option<&str>,
        timeout: std::time::Duration,
        component: &str,
        migrations: &[&str],
        channel: &str,
    ) -> Result<Connection, String> {
        let (wake, woken) = tokio::sync::mpsc::channel(1);
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("bad database URL: {e}"))?;
        let (client, driver) = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require
        {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(ca)?);
            let (client, connection) = tokio::time::timeout(timeout, config.connect(tls))
                .await
                .map_err(|_| "connecting timed out".to_owned())?
                .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
            (client, drive(connection, wake))
        } else {
            let (client, connection) =
                tokio::time::timeout(timeout, config.connect(tokio_postgres::NoTls))
                    .await
                    .map_err(|_| "connecting timed out".to_owned())?
                    .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
            (client, drive(connection, wake))
        };
        let mut c = Connection {
            client,
            driver,
            woken,
        };
        migrate(&mut c.client, component, migrations)
            .await
            .map_err(|e| format!("schema: {e}"))?;
        // A channel name is ours (a constant), never input.
        c.client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Waits for a NOTIFY or `tick`, whichever comes first: true when a
    /// NOTIFY came; an error once the connection is gone.
    pub async fn wait(&mut self, tick: std::time::Duration) -> Result<bool, String> {
        if self.driver.is_finished() {
            return Err("connection lost".to_owned());
        }
        Ok(tokio::select! {
            _ = self.woken.recv() => true,
            _ = tokio::time::sleep(tick) => false,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// An error with its cause (tokio-postgres puts the TLS or I/O reason there).
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Drives `connection` in a task of its own; each NOTIFY wakes `wake`. The
/// task ends (with the reason) when the connection does.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    wake: tokio::sync::mpsc::Sender<()>,
) -> tokio::task::JoinHandle<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
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
    })
}

/// The TLS client of the database: `ca` (PEM) or the system's CA store.
fn tls_config(ca: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(pem) => {
            for cert in crate::tls::certificates(pem, "cluster database-ca")? {
                roots.add(cert).map_err(|e| {
                    format!("cluster database-ca: not a usable CA certificate: {e}")
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| e.to_string())
}
