//! besip-pbxd: the SIP PBX daemon (DESIGN.md §7, §9).

use std::process::ExitCode;
use std::sync::Arc;

use besip_core::daemon::{shutdown_signal, CommonArgs, ConfigSnapshot, DaemonIpc, StartError};
use besip_pbx::call::location::Location;
use besip_pbx::call::{local_sockets, EngineSink};
use besip_pbx::config::Config;
use besip_pbx::control::Control;
use besip_pbx::features::Engine;
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
    #[command(flatten)]
    common: CommonArgs,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Receive threads per UDP socket (default: one per core).
    #[arg(long)]
    udp_readers: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    besip_core::daemon::run("besip-pbxd", &args.common, args.threads, run(&args))
}

async fn run(args: &Args) -> Result<(), StartError> {
    let layout = args.common.layout();
    let snapshot = ConfigSnapshot::of_packages(&layout, &["besip_pbx"]);
    let config = Config::load(&layout.uci_package("besip_pbx"))?;
    besip_pbx::transport::kernel_forward::configure(config.rtp_kernel_forwarding);
    std::fs::create_dir_all(layout.lib_dir())
        .map_err(|e| format!("cannot create {}: {e}", layout.lib_dir().display()))?;
    let location = Arc::new(Location::open(&layout.lib_dir().join("pbx.db"))?);
    let transports = Transports::new(args.udp_readers);
    transports.apply_tls(besip_pbx::transport::tls::plan(&config, &layout.etc_dir())?);
    let bound = Transports::bind(&config.listens).await?;
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
    tokio::spawn(besip_pbx::call::run_timers(engine.clone()));
    tokio::spawn(besip_pbx::features::dispatcher::prober(engine.clone()));
    engine.accounting().open(
        &layout.lib_dir().join("accounting.db"),
        &engine.config().accounting,
    )?;
    tokio::spawn(besip_pbx::features::accounting::cutter(engine.clone()));
    engine
        .forwarding()
        .open(&layout.lib_dir().join("forwarding.json"))?;
    engine
        .media()
        .voicemail
        .open(&layout.lib_dir().join("voicemail"))
        .map_err(|e| format!("cannot create the voicemail directory: {e}"))?;
    engine
        .media()
        .prompts
        .open(
            &layout.lib_dir().join("prompts"),
            &layout.share_dir().join("prompts"),
        )
        .map_err(|e| format!("cannot create the prompt directory: {e}"))?;
    engine
        .media()
        .recordings
        .open(&layout.lib_dir().join("recordings"))
        .map_err(|e| format!("cannot create the recordings directory: {e}"))?;
    besip_pbx::features::dns::reconcile(&engine);
    besip_pbx::features::hep::reconcile(&engine);
    besip_pbx::features::cluster::reconcile(&engine);
    besip_pbx::features::trunk_registration::reconcile(&engine);
    let control = Arc::new(Control::new(engine.clone(), layout.clone()));
    control.start_stun().map_err(|e| e.to_string())?;
    let ipc = DaemonIpc::bind(&layout, "pbx", control).await?;
    engine.fraud().set_notifier(ipc.notifier());
    engine.media().mailer.set_notifier(ipc.notifier());
    let _running = ipc.ready(&snapshot).await?;
    for s in engine.sockets() {
        tracing::info!(transport = ?s.transport, addr = %s.bound, "listening");
    }
    shutdown_signal().await;
    besip_pbx::transport::kernel_forward::shutdown();
    besip_pbx::features::trunk_registration::shutdown(&engine).await;
    location.flush();
    Ok(())
}
