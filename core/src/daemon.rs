//! What every daemon does the same way (DESIGN.md §9): logging, signals, pid file.

use std::path::{Path, PathBuf};

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
