//! besip-monitord: the call-quality daemon, and `analyze FILE` for an offline report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use besip_core::daemon::{shutdown_signal, CommonArgs, ConfigSnapshot, DaemonIpc, StartError};
use besip_monitoring::analyzer::{Analyzer, Settings};
use besip_monitoring::{offline, report};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "besip-monitord", about = "BESIP call-quality monitor")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: CommonArgs,
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
        None => besip_core::daemon::run("besip-monitord", &cli.common, None, serve(&cli.common)),
    }
}

async fn serve(common: &CommonArgs) -> Result<(), StartError> {
    use besip_monitoring::config::MonitorConfig;
    use besip_monitoring::daemon::{self, Monitor};
    use besip_monitoring::service::Service;
    use besip_monitoring::store::Store;

    let layout = common.layout();
    layout.create_dirs().map_err(|e| {
        format!(
            "cannot create the directories under {}: {e}",
            layout.root().display()
        )
    })?;
    let snapshot = ConfigSnapshot::of_packages(&layout, &["besip_monitoring", "besip_system"]);
    let config = MonitorConfig::load(&layout.uci_package("besip_monitoring"))?;
    let store = Store::open(&layout.lib_dir().join("monitoring.db"))?;
    let monitor = Arc::new(Monitor::start(layout.clone(), config, store)?);
    let web = Arc::new(besip_monitoring::web::Web::new(monitor.clone()));
    let service = Arc::new(Service::new(monitor.clone(), web));
    // The panel is part of the box, not of call monitoring: a bad
    // besip_system or a busy port is logged and the daemon monitors anyway.
    match service.web_settings() {
        Ok(None) => tracing::info!("no besip_system package: web panel off"),
        Ok(settings) => {
            if let Err(e) = service.web().apply(settings).await {
                tracing::error!(error = %e, "web panel not started");
            }
        }
        Err(e) => tracing::error!(error = %e, "web panel not started"),
    }
    let ipc = DaemonIpc::bind(&layout, "monitoring", service).await?;
    monitor.set_notifier(ipc.notifier());
    let running = ipc.ready(&snapshot).await?;
    tracing::info!(root = %layout.root().display(), "besip-monitord running");
    daemon::run(monitor, shutdown_signal()).await;
    drop(running);
    tracing::debug!("IPC closed");
    Ok(())
}
