//! The datastore: running and candidate trees and the stages between them.
//! This file is the facade (opening, the trees, history); the stages live in
//! their own modules, each owning its part of the state:
//! - `candidate` (edit): edits of the candidate and the record of them that
//!   commit replays onto running (`PendingEdits`);
//! - `render`: UCI text and XML of the trees, the caches that make a commit
//!   re-render only what changed (`Rendering`), reads with filters;
//! - `commit`: the transaction — validate, persist running.xml, history —
//!   and `publish`, the two-phase reload of the daemons it calls;
//! - `confirmed`: confirmed commits (RFC 6241 §8.4): deadline, backup,
//!   cancel, revert on timeout, and the events they report (`ConfirmEvent`).

mod candidate;
mod commit;
mod confirmed;
mod publish;
mod render;

use crate::error::{ConfigError, ErrorTag};
use crate::history::{CommitRecord, History};
use crate::paths::Layout;
use crate::persist::write_atomically;
use crate::schema::{describe, Schema};
use candidate::PendingEdits;
use confirmed::ConfirmState;
use render::Rendering;
use snafu::{ResultExt, Snafu};
use std::time::Duration;
use yang2::data::{DataPrinterFlags, DataTree, DataValidationFlags};

/// The configuration a box starts with when it has none.
const DEFAULT_CONFIG: &str = include_str!("../../default-config.xml");

#[derive(Debug, Snafu)]
pub enum DatastoreError {
    #[snafu(display("{source}"))]
    Schema { source: crate::schema::SchemaError },
    #[snafu(display("cannot create the storage directories under {root}: {source}"))]
    Dirs {
        root: String,
        source: std::io::Error,
    },
    #[snafu(display("cannot read {path}: {source}"))]
    ReadRunning {
        path: String,
        source: std::io::Error,
    },
    #[snafu(display("stored configuration {path} is not valid: {message}; restore it from the commit history or remove it to start from defaults"))]
    InvalidRunning { path: String, message: String },
    #[snafu(display("{source}"))]
    History {
        source: crate::history::HistoryError,
    },
    #[snafu(display("cannot write {path}: {source}"))]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Running,
    Candidate,
}

/// RFC 6243 with-defaults retrieval modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WithDefaults {
    /// Only nodes set explicitly (the server's basic mode).
    #[default]
    Explicit,
    ReportAll,
    ReportAllTagged,
    Trim,
}

impl WithDefaults {
    pub fn parse(value: &str) -> Option<WithDefaults> {
        Some(match value {
            "explicit" => WithDefaults::Explicit,
            "report-all" => WithDefaults::ReportAll,
            "report-all-tagged" => WithDefaults::ReportAllTagged,
            "trim" => WithDefaults::Trim,
            _ => return None,
        })
    }

    pub(crate) fn printer_flags(self) -> DataPrinterFlags {
        let mode = match self {
            WithDefaults::Explicit => DataPrinterFlags::WD_EXPLICIT,
            WithDefaults::ReportAll => DataPrinterFlags::WD_ALL,
            // libyang's LYD_PRINT_WD_ALL_TAG, not exported by yang2's flags.
            WithDefaults::ReportAllTagged => DataPrinterFlags::from_bits_retain(0x40),
            WithDefaults::Trim => DataPrinterFlags::WD_TRIM,
        };
        mode | DataPrinterFlags::WITH_SIBLINGS | DataPrinterFlags::SHRINK
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestOption {
    #[default]
    TestThenSet,
    Set,
    TestOnly,
}

/// A confirmed commit (RFC 6241 §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub timeout: Duration,
    /// `<persist>`: the commit survives its session and is confirmed by this id.
    pub persist: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    pub user: String,
    pub comment: String,
    pub confirmed: Option<Confirmed>,
    /// `<persist-id>` given with a confirming commit.
    pub persist_id: Option<String>,
    /// Session that issued the commit (a non-persist confirmed commit is
    /// cancelled when this session ends).
    pub session_id: Option<u32>,
}

pub use crate::edit::ChangeRecord;
pub use crate::reload::{NoReload, Reloader};
pub use crate::secrets::ReadAccess;
pub use confirmed::ConfirmEvent;
pub use render::{parse_config_tree, print_tree};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// History id, None when the commit changed nothing.
    pub id: Option<i64>,
    /// UCI packages whose text changed (and were written).
    pub changed_packages: Vec<String>,
    pub changed_modules: Vec<String>,
    /// True when the commit confirmed a pending confirmed commit.
    pub confirmed_pending: bool,
    /// What the committed edits did (for netconf-config-change), capped.
    pub changes: Vec<ChangeRecord>,
    /// What happened to a confirmed commit (for netconf-confirmed-commit).
    pub confirm_event: Option<ConfirmEvent>,
}

pub struct Datastore {
    schema: &'static Schema,
    layout: Layout,
    running: DataTree<'static>,
    candidate: DataTree<'static>,
    /// What the candidate has over running (edit stage).
    edits: PendingEdits,
    /// The UCI texts on disk and the caches that render them (render stage).
    rendering: Rendering,
    history: History,
    /// A confirmed commit waiting for its confirmation.
    confirm: ConfirmState,
}

fn validation_flags() -> DataValidationFlags {
    DataValidationFlags::NO_STATE
}

impl Datastore {
    /// Open the datastore under `layout`: load the running configuration (or
    /// the built-in default), render every UCI package, revert an unconfirmed
    /// commit left by a crash.
    pub fn open(layout: Layout) -> Result<Datastore, DatastoreError> {
        let schema = Schema::get().context(SchemaSnafu)?;
        layout.create_dirs().context(DirsSnafu {
            root: layout.root().display().to_string(),
        })?;
        let running_path = layout.running_config();
        let backup_path = confirmed::backup_path(&layout);
        // A confirmed commit that was never confirmed before a restart is reverted (RFC 6241 §8.4.1).
        let (text, reverted) = if backup_path.exists() {
            let text = std::fs::read_to_string(&backup_path).context(ReadRunningSnafu {
                path: backup_path.display().to_string(),
            })?;
            (text, true)
        } else if running_path.exists() {
            (
                std::fs::read_to_string(&running_path).context(ReadRunningSnafu {
                    path: running_path.display().to_string(),
                })?,
                false,
            )
        } else {
            (DEFAULT_CONFIG.to_owned(), false)
        };
        let running =
            parse_config_tree(schema, &text).map_err(|e| DatastoreError::InvalidRunning {
                path: running_path.display().to_string(),
                message: e.to_string(),
            })?;
        let candidate = running
            .duplicate()
            .map_err(|e| DatastoreError::InvalidRunning {
                path: running_path.display().to_string(),
                message: describe(&e),
            })?;
        let history = History::open(&layout.lib_dir().join("history.db")).context(HistorySnafu)?;
        let mut store = Datastore {
            schema,
            layout,
            running,
            candidate,
            edits: PendingEdits::default(),
            rendering: Rendering::default(),
            history,
            confirm: ConfirmState::default(),
        };
        let xml = store.print(Source::Running, WithDefaults::Explicit);
        if reverted || !running_path.exists() {
            write_atomically(&running_path, xml.as_bytes()).context(WriteSnafu {
                path: running_path.display().to_string(),
            })?;
            let comment = if reverted {
                "reverted unconfirmed commit after restart"
            } else {
                "initial configuration"
            };
            store
                .history
                .record("system", comment, &xml)
                .context(HistorySnafu)?;
            let _ = std::fs::remove_file(&backup_path);
        } else {
            store.record_commit_lost_in_crash(&text, &xml);
        }
        crate::persist::restrict_to_owner(&running_path).context(WriteSnafu {
            path: running_path.display().to_string(),
        })?;
        store.render_all_to_disk()?;
        Ok(store)
    }

    /// A crash between installing running.xml and the history writer's
    /// insert loses the commit's record: put it on record now, so the
    /// newest history entry is always the running configuration.
    fn record_commit_lost_in_crash(&self, running_text: &str, running_printed: &str) {
        let newest = match self.history.config_back(0) {
            Ok(newest) => newest,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the commit history");
                return;
            }
        };
        let same = newest.as_deref().is_some_and(|newest| {
            newest == running_text
                || parse_config_tree(self.schema, newest)
                    .is_ok_and(|tree| print_tree(&tree, WithDefaults::Explicit) == running_printed)
        });
        if !same {
            tracing::warn!("running.xml is newer than the commit history (a crash during a commit): recording it");
            if let Err(e) =
                self.history
                    .record("system", "commit recorded after a restart", running_text)
            {
                tracing::error!(error = %e, "cannot record the running configuration in the history");
            }
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    pub fn tree(&self, source: Source) -> &DataTree<'static> {
        match source {
            Source::Running => &self.running,
            Source::Candidate => &self.candidate,
        }
    }

    /// Whether the candidate holds changes not yet committed.
    pub fn candidate_modified(&self) -> bool {
        self.edits.modified()
    }

    /// Full YANG validation of a datastore.
    /// Validating the candidate also adds its implicit defaults (as libyang
    /// does), so what it shows and renders is complete; running is always valid.
    pub fn validate(&mut self, source: Source) -> Result<(), ConfigError> {
        let tree = match source {
            Source::Running => &mut self.running,
            Source::Candidate => &mut self.candidate,
        };
        tree.validate(validation_flags())
            .map_err(|e| ConfigError::from_validation(&e))
    }

    /// The commit history as RFC 7951 JSON of `/besip-system:commit-history`
    /// (merged into `<get>` replies with `get_with_state`).
    pub fn history_state_json(&self) -> Result<String, ConfigError> {
        let commits: Vec<serde_json::Value> = self
            .history()?
            .into_iter()
            .enumerate()
            .map(|(back, c)| {
                serde_json::json!({"id": c.id.to_string(), "back": back, "time": c.time, "user": c.user, "comment": c.comment})
            })
            .collect();
        Ok(serde_json::json!({"besip-system:commit-history": {"commit": commits}}).to_string())
    }

    pub fn history(&self) -> Result<Vec<CommitRecord>, ConfigError> {
        self.history
            .list()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, e.to_string()))
    }
}
