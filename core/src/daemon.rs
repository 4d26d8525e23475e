//! The skeleton every daemon runs on (DESIGN.md §9): the common command
//! line, logging, the runtime, the IPC socket with the start-up catch-up, the
//! pid file, signals, and the pending slot of the two-phase reload.
//!
//! A daemon's main is: parse its args (flattening [`CommonArgs`]), then
//! [`run`] its start-up future, which builds its state, [`DaemonIpc::bind`]s
//! its handler, hands out the notifier, calls [`DaemonIpc::ready`] and waits
//! for [`shutdown_signal`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use snafu::{ResultExt, Snafu};

use crate::ipc::{Handler, HandlerError, IpcError, IpcServer, Notifier};
use crate::paths::Layout;

/// The command line every daemon accepts (`#[command(flatten)]` it).
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Root of the box's file tree (configuration, database, sockets); tests use a scratch directory.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Log filter, e.g. info or besip_pbx=debug.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Stay in the foreground (the daemons never fork; accepted for a uniform command line).
    #[arg(long)]
    pub foreground: bool,
}

impl CommonArgs {
    pub fn layout(&self) -> Layout {
        Layout::new(self.root.clone())
    }
}

/// Why a daemon could not start; its main prints it and exits with 1.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What the skeleton itself can fail at.
#[derive(Debug, Snafu)]
pub enum DaemonError {
    #[snafu(display("cannot start the runtime: {source}"))]
    Runtime { source: std::io::Error },
    #[snafu(display("{source}"))]
    Ipc { source: IpcError },
    #[snafu(display("cannot write the pid file {}: {source}", path.display()))]
    Pid {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Logging on, a multi-threaded runtime (`worker_threads`: its size, default
/// one per core), `start` run to its end. An error is logged, printed as
/// `program: reason` and ends the process with exit code 1.
pub fn run<F>(
    program: &str,
    common: &CommonArgs,
    worker_threads: Option<usize>,
    start: F,
) -> ExitCode
where
    F: Future<Output = Result<(), StartError>>,
{
    init_tracing(&common.log_level);
    let outcome = build_runtime(worker_threads).map(|rt| rt.block_on(start));
    let error: StartError = match outcome {
        Ok(Ok(())) => return ExitCode::SUCCESS,
        Ok(Err(e)) => e,
        Err(e) => Box::new(e),
    };
    tracing::error!("{error}");
    eprintln!("{program}: {error}");
    ExitCode::FAILURE
}

fn build_runtime(worker_threads: Option<usize>) -> Result<tokio::runtime::Runtime, DaemonError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n.max(1));
    }
    builder.build().context(RuntimeSnafu)
}

/// A daemon's IPC socket, bound and answering, before start-up is done.
pub struct DaemonIpc<H: Handler> {
    name: &'static str,
    layout: Layout,
    handler: Arc<H>,
    server: IpcServer,
}

impl<H: Handler> DaemonIpc<H> {
    /// Serves `handler` on the socket of daemon `name` (`pbx`, `security`, ...).
    pub async fn bind(
        layout: &Layout,
        name: &'static str,
        handler: Arc<H>,
    ) -> Result<DaemonIpc<H>, DaemonError> {
        let server = IpcServer::bind(&layout.socket(name), handler.clone())
            .await
            .context(IpcSnafu)?;
        Ok(DaemonIpc {
            name,
            layout: layout.clone(),
            handler,
            server,
        })
    }

    pub fn notifier(&self) -> Notifier {
        self.server.notifier()
    }

    /// Start-up is done: a commit that landed after `snapshot` was taken
    /// (and found no socket to send to) is caught up with a reload, then the
    /// pid file says the daemon runs. Keep the result until shutdown.
    pub async fn ready(self, snapshot: &ConfigSnapshot) -> Result<Running, DaemonError> {
        if snapshot.changed() {
            if let Err(e) = self.handler.reload().await {
                tracing::error!(error = %e, "the configuration committed during start-up is refused");
            }
        }
        let path = self.layout.pid_file(self.name);
        let pid = PidFile::create(&path).context(PidSnafu { path })?;
        Ok(Running {
            _ipc: self.server,
            _pid: pid,
        })
    }
}

/// A started daemon: dropping it closes the IPC socket and removes the pid file.
pub struct Running {
    _ipc: IpcServer,
    _pid: PidFile,
}

/// The configuration a daemon prepared and has not applied yet.
/// The lock is held only to swap the value in or out, never across an await.
pub struct Pending<T> {
    slot: std::sync::Mutex<Option<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            slot: std::sync::Mutex::new(None),
        }
    }
}

impl<T> Pending<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // A panic while swapping leaves a valid Option behind.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `prepared`, dropping an older pending configuration.
    pub fn put(&self, prepared: T) {
        *self.lock() = Some(prepared);
    }

    /// Drops the pending configuration first (a new prepare replaces it, and
    /// what it holds, e.g. bound sockets, must be released before preparing again).
    pub fn clear(&self) {
        let old = self.lock().take();
        drop(old);
    }

    /// The pending configuration, for `apply`; refused when none is pending.
    pub fn take(&self) -> Result<T, HandlerError> {
        self.lock()
            .take()
            .ok_or_else(HandlerError::nothing_prepared)
    }

    pub fn is_pending(&self) -> bool {
        self.lock().is_some()
    }
}

/// Structured logs to stderr; `level` is a tracing filter such as `info` or `besip_pbx=debug`.
pub fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Resolves on SIGTERM or SIGINT (clean stop, exit code 0).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can only be killed; wait forever.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        _ = int.recv() => tracing::info!("SIGINT received, stopping"),
    }
}

/// A pid file that is removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The bytes of a daemon's UCI packages as it read them at start-up. A
/// commit landing between that read and the bind of the IPC socket finds no
/// daemon to reload (netconfd takes a missing socket for "not running"), so
/// the daemon compares once its socket is up and reloads if they changed.
pub struct ConfigSnapshot {
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl ConfigSnapshot {
    /// The snapshot of the UCI packages `packages` under `layout`.
    pub fn of_packages(layout: &Layout, packages: &[&str]) -> ConfigSnapshot {
        let paths: Vec<PathBuf> = packages.iter().map(|p| layout.uci_package(p)).collect();
        ConfigSnapshot::take(&paths)
    }

    pub fn take(paths: &[PathBuf]) -> ConfigSnapshot {
        ConfigSnapshot {
            files: paths
                .iter()
                .map(|p| (p.clone(), std::fs::read(p).ok()))
                .collect(),
        }
    }

    /// Whether any package differs from the snapshot now.
    pub fn changed(&self) -> bool {
        self.files
            .iter()
            .any(|(path, bytes)| std::fs::read(path).ok() != *bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{IpcClient, StagedPackages, CODE_INVALID_PARAMS, CODE_REFUSED};
    use serde_json::{json, Value};

    /// A daemon whose whole configuration is the text of its package
    /// `besip_test`; "bad" does not parse.
    struct TextDaemon {
        layout: Layout,
        running: std::sync::Mutex<String>,
        pending: Pending<String>,
    }

    impl Handler for TextDaemon {
        async fn prepare(&self, staged: &StagedPackages) -> Result<(), HandlerError> {
            self.pending.clear();
            let path = staged.path(&self.layout, "besip_test");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| HandlerError::refused(format!("{}: {e}", path.display())))?;
            if text.trim() == "bad" {
                return Err(HandlerError::refused("bad configuration"));
            }
            self.pending.put(text);
            Ok(())
        }
        async fn apply(&self) -> Result<(), HandlerError> {
            *self.running.lock().unwrap() = self.pending.take()?;
            Ok(())
        }
        async fn abort(&self) -> Result<(), HandlerError> {
            self.pending.clear();
            Ok(())
        }
        async fn state(&self) -> Result<Value, HandlerError> {
            Ok(
                json!({"running": *self.running.lock().unwrap(), "pending": self.pending.is_pending()}),
            )
        }
        async fn rpc(&self, name: &str, _input: Value) -> Result<Value, HandlerError> {
            Err(HandlerError::unknown_rpc(name))
        }
    }

    fn refused_code(e: IpcError) -> i64 {
        match e {
            IpcError::Remote { code, .. } => code,
            other => panic!("not a refusal: {other}"),
        }
    }

    #[tokio::test]
    async fn prepare_apply_abort_and_reload_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.config_dir()).unwrap();
        std::fs::write(layout.uci_package("besip_test"), "one").unwrap();
        let daemon = Arc::new(TextDaemon {
            layout: layout.clone(),
            running: std::sync::Mutex::new("one".into()),
            pending: Pending::default(),
        });
        let ipc = DaemonIpc::bind(&layout, "test", daemon.clone())
            .await
            .unwrap();
        let snapshot = ConfigSnapshot::of_packages(&layout, &["besip_test"]);
        let _running = ipc.ready(&snapshot).await.unwrap();
        assert!(layout.pid_file("test").exists());
        let client = IpcClient::connect(&layout.socket("test")).await.unwrap();
        let state = || async { client.call("state", json!({})).await.unwrap() };

        let staged = dir.path().join("staged");
        std::fs::write(&staged, "two").unwrap();
        let params = json!({"packages": {"besip_test": staged}});
        assert_eq!(
            client.call("prepare", params.clone()).await.unwrap(),
            json!({})
        );
        assert_eq!(state().await, json!({"running": "one", "pending": true}));
        client.call("apply", json!({})).await.unwrap();
        assert_eq!(state().await, json!({"running": "two", "pending": false}));
        let again = client.call("apply", json!({})).await.unwrap_err();
        assert_eq!(refused_code(again), CODE_REFUSED);

        client.call("prepare", params.clone()).await.unwrap();
        client.call("abort", json!({})).await.unwrap();
        assert_eq!(state().await, json!({"running": "two", "pending": false}));
        client.call("abort", json!({})).await.unwrap();

        // A refused prepare keeps nothing, not even an older pending one.
        client.call("prepare", params).await.unwrap();
        std::fs::write(&staged, "bad").unwrap();
        let bad = json!({"packages": {"besip_test": staged}});
        let refused = client.call("prepare", bad).await.unwrap_err();
        assert_eq!(refused_code(refused), CODE_REFUSED);
        assert_eq!(state().await, json!({"running": "two", "pending": false}));

        let relative = json!({"packages": {"besip_test": "staged"}});
        let invalid = client.call("prepare", relative).await.unwrap_err();
        assert_eq!(refused_code(invalid), CODE_INVALID_PARAMS);

        // reload = prepare from the live files + apply.
        std::fs::write(layout.uci_package("besip_test"), "three").unwrap();
        client.call("reload", json!({})).await.unwrap();
        assert_eq!(state().await, json!({"running": "three", "pending": false}));
    }

    #[tokio::test]
    async fn ready_catches_up_a_commit_made_while_starting() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.config_dir()).unwrap();
        std::fs::write(layout.uci_package("besip_test"), "one").unwrap();
        let snapshot = ConfigSnapshot::of_packages(&layout, &["besip_test"]);
        std::fs::write(layout.uci_package("besip_test"), "two").unwrap();
        let daemon = Arc::new(TextDaemon {
            layout: layout.clone(),
            running: std::sync::Mutex::new("one".into()),
            pending: Pending::default(),
        });
        let ipc = DaemonIpc::bind(&layout, "test", daemon.clone())
            .await
            .unwrap();
        let _running = ipc.ready(&snapshot).await.unwrap();
        assert_eq!(*daemon.running.lock().unwrap(), "two");
    }
}
