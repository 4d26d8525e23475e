//! How a commit hands its changed UCI packages to the daemons: the two-phase
//! reload (DESIGN.md, "two-phase reload"). The packages are staged in
//! `<config dir>/.staged/<package>`; every affected daemon checks them
//! (`prepare`) before any switches (`apply`); if one refuses, the others
//! `abort` and nothing is installed. Between the phases the commit installs
//! running.xml, then the packages.

use crate::error::{ConfigError, ErrorTag};
use crate::paths::Layout;
use crate::persist::StagedFile;
use crate::reload::{daemon_for_package, Prepared, ReloadError, Reloader, StagedPackage};
use std::collections::HashMap;

/// The error a commit reports when a daemon does not take its packages.
fn refusal(daemon: &str, packages: &[String], error: &ReloadError) -> ConfigError {
    ConfigError::new(
        ErrorTag::OperationFailed,
        format!(
            "daemon {daemon} refused the new configuration of {}: {error}",
            packages.join(", ")
        ),
    )
    .with_app_tag("daemon-refused")
}

/// Changed packages written to their staged files, not yet shown to anyone.
pub(super) struct Staged {
    files: Vec<(String, StagedFile)>,
}

/// Where the staged copy of `package` waits.
fn staged_path(layout: &Layout, package: &str) -> std::path::PathBuf {
    layout.config_dir().join(".staged").join(package)
}

/// Write each `(package, text)` to its staged file.
pub(super) fn stage(layout: &Layout, changed: &[(&str, &str)]) -> Result<Staged, ConfigError> {
    let mut files = Vec::with_capacity(changed.len());
    for (package, text) in changed {
        let staged = staged_path(layout, package);
        match crate::persist::stage_derived(&layout.uci_package(package), &staged, text.as_bytes())
        {
            Ok(file) => files.push(((*package).to_owned(), file)),
            Err(e) => {
                discard(files);
                return Err(ConfigError::new(
                    ErrorTag::OperationFailed,
                    format!("cannot write {}: {e}", staged.display()),
                ));
            }
        }
    }
    Ok(Staged { files })
}

fn discard(files: Vec<(String, StagedFile)>) {
    for (_, file) in files {
        file.discard();
    }
}

/// The affected daemons, each with the packages of its own, in commit order.
fn by_daemon(files: &[(String, StagedFile)]) -> Vec<(&'static str, Vec<StagedPackage>)> {
    let mut daemons: Vec<(&'static str, Vec<StagedPackage>)> = Vec::new();
    for (package, file) in files {
        let Some(daemon) = daemon_for_package(package) else {
            continue;
        };
        let staged = StagedPackage {
            package: package.clone(),
            path: file.staged_path().to_owned(),
        };
        match daemons.iter_mut().find(|(d, _)| *d == daemon) {
            Some((_, packages)) => packages.push(staged),
            None => daemons.push((daemon, vec![staged])),
        }
    }
    daemons
}

/// Every affected daemon has checked the staged packages.
pub(super) struct Checked {
    files: Vec<(String, StagedFile)>,
    /// Daemons holding the new configuration pending.
    pending: Vec<&'static str>,
}

/// A failure after running.xml was installed: what must be put back.
pub(super) struct Unwind {
    pub error: ConfigError,
    /// Packages already renamed into place.
    installed: Vec<String>,
    pending: Vec<&'static str>,
}

impl Staged {
    /// Phase one: each affected daemon checks its staged packages. On a
    /// refusal the daemons that prepared abort and the staged files go.
    pub async fn prepare<R: Reloader>(self, reloader: &R) -> Result<Checked, ConfigError> {
        let mut checked = Checked {
            pending: Vec::new(),
            files: Vec::new(),
        };
        for (daemon, staged) in by_daemon(&self.files) {
            match reloader.prepare(daemon, &staged).await {
                Ok(Prepared::Pending) => checked.pending.push(daemon),
                Ok(Prepared::NotRunning) => {}
                Err(error) => {
                    let packages: Vec<String> = staged.into_iter().map(|s| s.package).collect();
                    let refused = refusal(daemon, &packages, &error);
                    abort_all(reloader, &checked.pending).await;
                    discard(self.files);
                    return Err(refused);
                }
            }
        }
        checked.files = self.files;
        Ok(checked)
    }
}

async fn abort_all<R: Reloader>(reloader: &R, daemons: &[&'static str]) {
    for daemon in daemons {
        if let Err(e) = reloader.abort(daemon).await {
            tracing::error!(daemon, error = %e, "abort of a prepared configuration failed");
        }
    }
}

impl Checked {
    /// The commit cannot go on (running.xml could not be written): nobody switches.
    pub async fn abort<R: Reloader>(self, reloader: &R) {
        abort_all(reloader, &self.pending).await;
        discard(self.files);
    }

    /// Phase two, once running.xml is installed: rename the packages into
    /// place, then tell the prepared daemons to apply.
    pub async fn install_and_apply<R: Reloader>(self, reloader: &R) -> Result<(), Unwind> {
        let mut unwind = Unwind {
            error: ConfigError::new(ErrorTag::OperationFailed, String::new()),
            installed: Vec::new(),
            pending: self.pending,
        };
        for (package, file) in self.files {
            let target = file.target().display().to_string();
            if let Err(e) = file.install_derived() {
                unwind.error = ConfigError::new(
                    ErrorTag::OperationFailed,
                    format!("cannot write {target}: {e}"),
                );
                return Err(unwind);
            }
            unwind.installed.push(package);
        }
        // A daemon that prepared has checked everything it could: a failure
        // here leaves it on its old configuration until its next reload
        // (at the latest the start-up reconciliation).
        for daemon in &unwind.pending {
            if let Err(e) = reloader.apply(daemon).await {
                tracing::error!(daemon, error = %e, "daemon failed to apply a configuration it had prepared");
            }
        }
        Ok(())
    }
}

impl Unwind {
    /// Put the installed packages back to `previous` (their texts before the
    /// commit; the caller has restored running.xml) and abort the prepared
    /// daemons. Returns the error to report.
    pub async fn roll_back<R: Reloader>(
        self,
        layout: &Layout,
        previous: &HashMap<String, String>,
        reloader: &R,
    ) -> ConfigError {
        for package in &self.installed {
            if let Some(old) = previous.get(package) {
                let path = layout.uci_package(package);
                if let Err(e) = crate::persist::replace_derived(&path, old.as_bytes()) {
                    tracing::error!(path = %path.display(), error = %e, "cannot restore a package after a refused commit");
                }
            }
        }
        abort_all(reloader, &self.pending).await;
        self.error
    }
}
