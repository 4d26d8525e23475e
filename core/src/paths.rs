//! Where things live on the box (DESIGN.md §6). Every daemon takes `--root DIR`
//! so tests and `besip up` run without touching the host.

use std::path::{Path, PathBuf};

/// The storage layout under one root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn is_system_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Rendered UCI packages (`/etc/config`).
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc/config")
    }

    /// Path of one rendered UCI package, e.g. `besip_pbx`.
    pub fn uci_package(&self, package: &str) -> PathBuf {
        self.config_dir().join(package)
    }

    /// Running configuration and SSH host key (`/etc/besip`).
    pub fn etc_dir(&self) -> PathBuf {
        self.root.join("etc/besip")
    }

    /// The running configuration, the source of truth.
    pub fn running_config(&self) -> PathBuf {
        self.etc_dir().join("running.xml")
    }

    /// SQLite databases: commit history, CDRs, bans, MOS reports.
    pub fn lib_dir(&self) -> PathBuf {
        self.root.join("var/lib/besip")
    }

    /// Read-only data the packages install (`/usr/share/besip`): the
    /// default IVR prompts.
    pub fn share_dir(&self) -> PathBuf {
        self.root.join("usr/share/besip")
    }

    /// IPC sockets and pid files: `/var/run/besip` on the box, `DIR/run` in dev.
    pub fn run_dir(&self) -> PathBuf {
        if self.is_system_root() {
            PathBuf::from("/var/run/besip")
        } else {
            self.root.join("run")
        }
    }

    /// IPC socket of a daemon (`pbx`, `security`, `monitoring`).
    pub fn socket(&self, daemon: &str) -> PathBuf {
        self.run_dir().join(format!("{daemon}.sock"))
    }

    pub fn pid_file(&self, daemon: &str) -> PathBuf {
        self.run_dir().join(format!("{daemon}.pid"))
    }

    /// Create every directory of the layout that does not exist yet.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for dir in [
            self.config_dir(),
            self.etc_dir(),
            self.lib_dir(),
            self.run_dir(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_root_keeps_everything_inside() {
        let layout = Layout::new("/tmp/box");
        assert_eq!(
            layout.uci_package("besip_pbx"),
            PathBuf::from("/tmp/box/etc/config/besip_pbx")
        );
        assert_eq!(layout.socket("pbx"), PathBuf::from("/tmp/box/run/pbx.sock"));
        assert_eq!(
            layout.running_config(),
            PathBuf::from("/tmp/box/etc/besip/running.xml")
        );
    }

    #[test]
    fn system_root_uses_var_run() {
        assert_eq!(
            Layout::new("/").socket("security"),
            PathBuf::from("/var/run/besip/security.sock")
        );
    }
}
