//! besip-secd: watches SIP on the wire and bans offenders in the kernel.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use besip_core::daemon::{init_tracing, shutdown_signal, PidFile};
use besip_core::ipc::IpcServer;
use besip_core::paths::Layout;
use besip_security::daemon::Daemon;
use besip_security::ipc::IpcHandler;
use clap::Parser;

#[derive(Parser)]
#[command(name = "besip-secd", about = "BESIP SIP security guard")]
struct Cli {
    /// Root directory of the box.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Stay in the foreground (the daemon never forks; accepted for symmetry).
    #[arg(long)]
    foreground: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Run a capture file through the detector offline (bans nothing) and print a JSON summary.
    Replay {
        file: PathBuf,
        /// UCI file with the rules (default: ROOT/etc/config/besip_security).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove the firewall rules and sets of the configured backend (for
    /// package removal); bans in them are lifted.
    Teardown,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    if let Some(Cmd::Replay { file, config }) = &cli.command {
        let path = config
            .clone()
            .unwrap_or_else(|| Layout::new(cli.root.clone()).uci_package("besip_security"));
        let result = besip_security::config::Config::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| besip_security::replay::replay(cfg, file));
        return match result {
            Ok(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("besip-secd: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(Cmd::Teardown) = &cli.command {
        let path = Layout::new(cli.root.clone()).uci_package("besip_security");
        let result = besip_security::config::Config::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| {
                besip_security::firewall::Firewall::new(
                    cfg.backend,
                    &cfg.set_name,
                    besip_security::firewall::Ports::default(),
                )
                .teardown()
                .map_err(|e| e.to_string())
            });
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("besip-secd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("besip-secd: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let layout = Layout::new(cli.root);
    let daemon = tokio::task::spawn_blocking({
        let layout = layout.clone();
        move || Daemon::start(layout)
    })
    .await
    .map_err(|e| e.to_string())??;
    let _pid = PidFile::create(&layout.pid_file("security"))
        .map_err(|e| format!("cannot write pid file: {e}"))?;
    let server = IpcServer::bind(
        &layout.socket("security"),
        Arc::new(IpcHandler(daemon.clone())),
    )
    .await
    .map_err(|e| e.to_string())?;
    daemon.set_notifier(server.notifier());
    let cfg = daemon.config();
    daemon.start_captures(&cfg)?;
    tracing::info!(backend = ?daemon.backend(), "besip-secd started");
    let ticker = {
        let d = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for round in 1u64.. {
                tick.tick().await;
                let d = d.clone();
                // Own addresses and the PBX's trunks and ports every 5 s.
                let _ = tokio::task::spawn_blocking(move || {
                    d.expire();
                    if round % 25 == 0 {
                        d.housekeeping();
                    }
                })
                .await;
            }
        })
    };
    shutdown_signal().await;
    ticker.abort();
    let d = daemon.clone();
    let _ = tokio::task::spawn_blocking(move || d.stop_captures()).await;
    drop(server);
    Ok(())
}
