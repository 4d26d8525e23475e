//! besip-pbxd: the SIP PBX daemon (DESIGN.md §7, §9).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use besip_core::daemon::{init_tracing, shutdown_signal, ConfigSnapshot, PidFile};
use besip_core::ipc::{Handler, IpcServer};
use besip_core::paths::Layout;
use besip_pbx::config::Config;
use besip_pbx::control::Control;
use besip_pbx::engine::{local_sockets, Engine, EngineSink};
use besip_pbx::location::Location;
use besip_pbx::transport::Transports;
use clap::Parser;

/// Every SIP message is parsed into many small strings; mimalloc's per-thread
/// free lists make those allocations much cheaper than glibc's arenas (the
/// peer, Kamailio, likewise runs on its own pool allocator).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "besip-pbxd", about = "BESIP SIP registrar and proxy")]
struct Args {
    /// Root of the file layout (configuration, database, sockets).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Log filter, e.g. info or besip_pbx=debug.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Stay in the foreground (the daemon never forks; accepted for uniformity).
    #[arg(long)]
    foreground: bool,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Receive threads per UDP socket (default: one per core).
    #[arg(long)]
    udp_readers: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(&args.log_level);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("besip-pbxd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            tracing::error!("{msg}");
            eprintln!("besip-pbxd: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let layout = Layout::new(args.root.clone());
    let config_path = layout.uci_package("besip_pbx");
    let snapshot = ConfigSnapshot::take(std::slice::from_ref(&config_path));
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(layout.lib_dir())
        .map_err(|e| format!("cannot create {}: {e}", layout.lib_dir().display()))?;
    let location =
        Arc::new(Location::open(&layout.lib_dir().join("pbx.db")).map_err(|e| e.to_string())?);
    let transports = Transports::new(args.udp_readers);
    let bound = Transports::bind(&config.listens)
        .await
        .map_err(|e| e.to_string())?;
    let listening: Vec<_> = bound.iter().map(|b| b.local()).collect();
    let sockets = local_sockets(&listening, config.external_address);
    let engine = Arc::new(Engine::new(
        config,
        location.clone(),
        transports.clone(),
        sockets,
    ));
    let sink = Arc::new(EngineSink(engine.clone()));
    transports.set_outbound_sink(sink.clone());
    transports.serve(bound, sink);
    tokio::spawn(engine.clone().sweep_loop());
    tokio::spawn(besip_pbx::timers::run(engine.clone()));
    tokio::spawn(besip_pbx::dispatcher::prober(engine.clone()));
    engine.accounting().open(
        &layout.lib_dir().join("accounting.db"),
        &engine.config().accounting,
    )?;
    tokio::spawn(besip_pbx::accounting::cutter(engine.clone()));
    besip_pbx::trunk_registration::reconcile(&engine);
    let control = Arc::new(Control {
        engine: engine.clone(),
        config_path,
    });
    let _ipc = IpcServer::bind(&layout.socket("pbx"), control.clone())
        .await
        .map_err(|e| e.to_string())?;
    engine.fraud().set_notifier(_ipc.notifier());
    if snapshot.changed() {
        // A commit came while starting and found no socket to reload.
        if let Err(e) = control.reload().await {
            tracing::error!(error = %e, "the configuration committed during start-up is refused");
        }
    }
    let _pid = PidFile::create(&layout.pid_file("pbx"))
        .map_err(|e| format!("cannot write pid file: {e}"))?;
    for s in engine.sockets() {
        tracing::info!(transport = ?s.transport, addr = %s.bound, "listening");
    }
    shutdown_signal().await;
    besip_pbx::trunk_registration::shutdown(&engine).await;
    location.flush();
    Ok(())
}
