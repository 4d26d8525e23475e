//! besip-secd: watches SIP on the wire and bans offenders in the kernel.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use besip_core::daemon::{
    init_tracing, shutdown_signal, CommonArgs, ConfigSnapshot, DaemonIpc, StartError,
};
use besip_security::daemon::Daemon;
use besip_security::ipc::IpcHandler;
use clap::Parser;

#[derive(Parser)]
#[command(name = "besip-secd", about = "BESIP SIP security guard")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
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
    match &cli.command {
        None => besip_core::daemon::run("besip-secd", &cli.common, Some(2), run(&cli)),
        Some(Cmd::Replay { file, config }) => replay(&cli.common, file, config.as_deref()),
        Some(Cmd::Teardown) => teardown(&cli.common),
    }
}

/// Offline: a capture file through the detector; exit 2 when it cannot run.
fn replay(common: &CommonArgs, file: &Path, config: Option<&Path>) -> ExitCode {
    init_tracing(&common.log_level);
    let path = config
        .map(Path::to_owned)
        .unwrap_or_else(|| common.layout().uci_package("besip_security"));
    let result = besip_security::config::Config::load(&path)
        .map_err(|e| e.to_string())
        .and_then(|cfg| besip_security::replay::replay(cfg, file));
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("besip-secd: {e}");
            ExitCode::from(2)
        }
    }
}

/// Package removal: the configured backend's rules and sets go.
fn teardown(common: &CommonArgs) -> ExitCode {
    init_tracing(&common.log_level);
    let path = common.layout().uci_package("besip_security");
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("besip-secd: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> Result<(), StartError> {
    let layout = cli.common.layout();
    let snapshot = ConfigSnapshot::of_packages(&layout, &["besip_security", "besip_pbx"]);
    let daemon = tokio::task::spawn_blocking({
        let layout = layout.clone();
        move || Daemon::start(layout)
    })
    .await??;
    let ipc = DaemonIpc::bind(
        &layout,
        "security",
        Arc::new(IpcHandler::new(daemon.clone())),
    )
    .await?;
    daemon.set_notifier(ipc.notifier());
    let cfg = daemon.config();
    daemon.start_captures(&cfg)?;
    let running = ipc.ready(&snapshot).await?;
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
    drop(running);
    Ok(())
}
