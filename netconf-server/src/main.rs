//! besip-netconfd: the NETCONF over SSH server of the box.

use besip_core::datastore::Datastore;
use besip_core::paths::Layout;
use besip_netconf::server::Server;
use besip_netconf::{modrpc, ssh, ssh_accept, uci_import, users};
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "besip-netconfd",
    about = "NETCONF over SSH server of the BESIP box"
)]
struct Args {
    /// Root of the box's file tree (tests and `besip up` use a scratch directory).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Stay in the foreground (the only mode; accepted for a uniform command line).
    #[arg(long)]
    foreground: bool,
    /// ADDR:PORT to listen on (repeatable); default: besip-system netconf settings.
    #[arg(long)]
    listen: Vec<String>,
    /// Password of the first admin when the box has no users (default: random, printed once).
    #[arg(long, env = "BESIP_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn main() {
    let args = Args::parse();
    besip_core::daemon::init_tracing(&args.log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(run(args)) {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let layout = Layout::new(args.root.clone());
    let mut store = Datastore::open(layout.clone()).map_err(|e| e.to_string())?;
    let reloader = besip_core::reload::IpcReloader::new(layout.clone());
    if let Some(password) =
        users::ensure_admin(&mut store, args.admin_password.clone(), &reloader).await?
    {
        if args.admin_password.is_none() {
            // The one time this password is shown; only its hash is stored.
            tracing::warn!("created the first administrator: user admin, password {password} (shown only this once; only its hash is stored)");
        } else {
            tracing::info!(
                user = "admin",
                "created the first administrator with the given password"
            );
        }
    }
    // Datastore::open rendered the packages from running.xml; bring the
    // daemons that are already running in line with them.
    for (daemon, reason) in reloader.reload_every_daemon().await {
        tracing::error!(
            daemon,
            reason,
            "daemon refused the running configuration at start-up"
        );
    }
    let (settings, addresses, port) = users::settings(&store);
    let listen: Vec<String> = if !args.listen.is_empty() {
        args.listen.clone()
    } else if addresses.is_empty() {
        vec![format!("0.0.0.0:{port}")]
    } else {
        addresses
            .iter()
            .map(|a| {
                if a.contains(':') {
                    format!("[{a}]:{port}")
                } else {
                    format!("{a}:{port}")
                }
            })
            .collect()
    };
    let key = ssh::host_key(&layout.etc_dir().join("ssh_host_ed25519_key"))?;
    let server = Arc::new(Server::new(layout.clone(), store, settings));
    let config = Arc::new(ssh::config(key, &server));

    let mut listeners = Vec::new();
    for addr in &listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!("cannot listen on {addr}: {e}; choose another --listen or stop what uses it")
        })?;
        tracing::info!(address = %addr, "NETCONF over SSH listening");
        listeners.push(listener);
    }
    let _pid = besip_core::daemon::PidFile::create(&layout.pid_file("netconf"))
        .map_err(|e| format!("cannot write the pid file: {e}"))?;

    spawn_confirm_timer(server.clone());
    modrpc::forward_daemon_notifications(server.clone());
    let _uci_import = uci_import::listen(server.clone())
        .await
        .map_err(|e| e.to_string())?;
    for listener in listeners {
        tokio::spawn(ssh_accept::serve(server.clone(), config.clone(), listener));
    }
    besip_core::daemon::shutdown_signal().await;
    tracing::info!("stopping");
    Ok(())
}

/// Reverts an unconfirmed confirmed-commit when its timeout expires: sleeps
/// until the pending commit's deadline, or until running changes (a new,
/// extended, confirmed or cancelled commit), then looks again.
fn spawn_confirm_timer(server: Arc<Server>) {
    tokio::spawn(async move {
        loop {
            let deadline = server.store.lock().await.confirm_deadline();
            let Some(deadline) = deadline else {
                server.confirm_deadline_changed.notified().await;
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
                _ = server.confirm_deadline_changed.notified() => continue,
            }
            let mut store = server.store.lock().await;
            if let Some(result) = store
                .revert_if_expired(Instant::now(), &server.reloader)
                .await
            {
                server.running_changed(&store);
                match result {
                    Ok(_) => tracing::warn!("confirmed commit not confirmed in time: reverted"),
                    Err(e) => tracing::error!(error = %e, "reverting the confirmed commit failed"),
                }
            }
        }
    });
}
