//! Locating the workspace's built binaries and making throw-away `--root` trees.

use std::path::{Path, PathBuf};

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// Path of a workspace binary built by `cargo build --workspace --bins`
/// (the test command builds all binaries before running the tests).
/// Prefers the profile the tests themselves were built with.
pub fn bin_path(name: &str) -> PathBuf {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let preferred = target_dir().join(profile).join(name);
    if preferred.exists() {
        return preferred;
    }
    let other = target_dir()
        .join(if profile == "debug" {
            "release"
        } else {
            "debug"
        })
        .join(name);
    if other.exists() {
        return other;
    }
    panic!(
        "binary {name} not found under {}: run `cargo build --workspace --bins` first",
        target_dir().display()
    );
}

/// A `--root` directory with the layout of DESIGN.md §6: a temporary one
/// (removed on drop), or an existing one another process already uses.
pub struct TempRoot {
    dir: RootDir,
}

enum RootDir {
    Owned(tempfile::TempDir),
    Existing(PathBuf),
}

impl TempRoot {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("besip-root-")
            .tempdir()
            .expect("create temp root");
        let root = TempRoot {
            dir: RootDir::Owned(dir),
        };
        root.create_layout();
        root
    }

    /// The root of another test object (e.g. a daemon's), shared, not removed on drop.
    pub fn existing(path: &Path) -> Self {
        let root = TempRoot {
            dir: RootDir::Existing(path.to_owned()),
        };
        root.create_layout();
        root
    }

    fn create_layout(&self) {
        for sub in ["etc/besip", "etc/config", "var/lib/besip", "run"] {
            std::fs::create_dir_all(self.path().join(sub)).expect("create root layout");
        }
    }

    pub fn path(&self) -> &Path {
        match &self.dir {
            RootDir::Owned(dir) => dir.path(),
            RootDir::Existing(path) => path,
        }
    }
}

impl Default for TempRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// Polls `done` every 50 ms until it is Some or `secs` pass; panics with `what`.
pub fn wait_for<T>(secs: u64, what: impl Fn() -> String, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Calls `method` of the daemon listening on IPC socket `socket`.
pub fn ipc_call(
    socket: &Path,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = besip_core::ipc::IpcClient::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        client.call(method, params).await.map_err(|e| e.to_string())
    })
}
