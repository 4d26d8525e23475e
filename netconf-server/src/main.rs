//! besip-netconfd: the NETCONF over SSH server of the box.

use besip_core::daemon::{shutdown_signal, CommonArgs, PidFile, StartError};
use besip_core::datastore::Datastore;
use besip_netconf::server::Server;
use besip_netconf::{confirm_timer, metrics, modrpc, ssh, ssh_accept, uci_import, users};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "besip-netconfd",
    about = "NETCONF over SSH server of the BESIP box"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// ADDR:PORT to listen on (repeatable); default: besip-system netconf settings.
    #[arg(long)]
    listen: Vec<String>,
    /// ADDR:PORT for RESTCONF over HTTPS (repeatable); default: besip-system restconf settings.
    #[arg(long)]
    restconf_listen: Vec<std::net::SocketAddr>,
    /// Password of the first admin when the box has no users (default: random, printed once).
    #[arg(long, env = "BESIP_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    besip_core::daemon::run("besip-netconfd", &args.common, None, run(&args))
}

/// netconfd serves no IPC socket (it is the daemons' client): the skeleton
/// gives it the command line, logging, runtime, pid file and signals.
async fn run(args: &Args) -> Result<(), StartError> {
    let layout = args.common.layout();
    let mut store = Datastore::open(layout.clone())?;
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
            reason = %reason,
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
    let _pid = PidFile::create(&layout.pid_file("netconf"))
        .map_err(|e| format!("cannot write the pid file: {e}"))?;

    confirm_timer::spawn(server.clone());
    metrics::follow_running(server.clone());
    modrpc::forward_daemon_notifications(server.clone());
    let _uci_import = uci_import::listen(server.clone())
        .await
        .map_err(|e| e.to_string())?;
    besip_netconf::restconf::serve(server.clone(), args.restconf_listen.clone()).await?;
    for listener in listeners {
        tokio::spawn(ssh_accept::serve(server.clone(), config.clone(), listener));
    }
    shutdown_signal().await;
    tracing::info!("stopping");
    Ok(())
}
