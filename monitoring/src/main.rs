//! besip-monitord: the call-quality daemon, and `analyze FILE` for an offline report.

use std::path::PathBuf;
use std::process::ExitCode;

use besip_monitoring::analyzer::{Analyzer, Settings};
use besip_monitoring::{offline, report};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "besip-monitord", about = "BESIP call-quality monitor")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Root directory of the box (daemon mode).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    #[arg(long, default_value = "info")]
    log_level: String,
    #[arg(long)]
    foreground: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse a capture file and print per-stream and per-call quality.
    Analyze {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// E-model variant (itu-g107 | besip-simplified).
        #[arg(long, default_value = "itu-g107")]
        emodel: String,
        /// Interval length for MOS, in seconds.
        #[arg(long, default_value_t = 10)]
        interval: u32,
        /// One-way delay assumed without RTCP, in ms.
        #[arg(long, default_value_t = 0)]
        delay: u32,
        /// SIP ports (repeatable).
        #[arg(long = "sip-port", default_values_t = vec![5060u16])]
        sip_ports: Vec<u16>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Analyze {
            file,
            format,
            emodel,
            interval,
            delay,
            sip_ports,
        }) => {
            let Some(variant) = besip_monitoring::emodel::Variant::parse(&emodel) else {
                eprintln!(
                    "besip-monitord: unknown E-model '{emodel}': use itu-g107 or besip-simplified"
                );
                return ExitCode::from(2);
            };
            if interval == 0 {
                eprintln!("besip-monitord: --interval must be at least 1 second");
                return ExitCode::from(2);
            }
            let settings = Settings {
                variant,
                interval_s: f64::from(interval),
                default_delay_ms: f64::from(delay),
                sip_ports,
                ..Settings::default()
            };
            let mut analyzer = Analyzer::new(settings);
            let outcome = match offline::read_file(&file, &mut analyzer) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("besip-monitord: {e}");
                    return ExitCode::from(1);
                }
            };
            if let Some(why) = &outcome.stopped_early {
                eprintln!("besip-monitord: warning: {} is damaged after frame {}: {why}; reporting what came before", file.display(), outcome.frames);
            }
            let r = report::build(&analyzer);
            let text = match format {
                Format::Table => report::to_table(&r),
                Format::Json => report::to_json(&r),
                Format::Csv => report::to_csv(&r),
            };
            println!("{text}");
            ExitCode::SUCCESS
        }
        None => daemon_main(cli.root, &cli.log_level),
    }
}

fn daemon_main(root: PathBuf, log_level: &str) -> ExitCode {
    besip_core::daemon::init_tracing(log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("besip-monitord: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(root)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("besip-monitord: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(root: PathBuf) -> Result<(), String> {
    use besip_monitoring::config::MonitorConfig;
    use besip_monitoring::daemon::{self, Monitor};
    use besip_monitoring::store::Store;
    use std::sync::Arc;

    let layout = besip_core::paths::Layout::new(root);
    layout.create_dirs().map_err(|e| {
        format!(
            "cannot create the directories under {}: {e}",
            layout.root().display()
        )
    })?;
    let snapshot = besip_core::daemon::ConfigSnapshot::take(&[
        layout.uci_package("besip_monitoring"),
        layout.uci_package("besip_system"),
    ]);
    let config =
        MonitorConfig::load(&layout.uci_package("besip_monitoring")).map_err(|e| e.to_string())?;
    let store = Store::open(&layout.lib_dir().join("monitoring.db")).map_err(|e| e.to_string())?;
    let monitor = Arc::new(Monitor::start(layout.clone(), config, store)?);
    let service = Arc::new(besip_monitoring::service::Service {
        monitor: monitor.clone(),
        web: Arc::new(besip_monitoring::web::Web::new(monitor.clone())),
    });
    // The panel is part of the box, not of call monitoring: a bad
    // besip_system or a busy port is logged and the daemon monitors anyway.
    match service.web_settings() {
        Ok(None) => tracing::info!("no besip_system package: web panel off"),
        Ok(settings) => {
            if let Err(e) = service.web.apply(settings).await {
                tracing::error!(error = %e, "web panel not started");
            }
        }
        Err(e) => tracing::error!(error = %e, "web panel not started"),
    }
    let ipc = besip_core::ipc::IpcServer::bind(&layout.socket("monitoring"), service.clone())
        .await
        .map_err(|e| e.to_string())?;
    monitor.set_notifier(ipc.notifier());
    if snapshot.changed() {
        // A commit came while starting and found no socket to reload.
        use besip_core::ipc::Handler;
        if let Err(e) = service.reload().await {
            tracing::error!(error = %e, "the configuration committed during start-up is refused");
        }
    }
    let _pid =
        besip_core::daemon::PidFile::create(&layout.pid_file("monitoring")).map_err(|e| {
            format!(
                "cannot write pid file {}: {e}",
                layout.pid_file("monitoring").display()
            )
        })?;
    tracing::info!(root = %layout.root().display(), "besip-monitord running");
    daemon::run(monitor, besip_core::daemon::shutdown_signal()).await;
    drop(ipc);
    tracing::debug!("IPC closed");
    Ok(())
}
