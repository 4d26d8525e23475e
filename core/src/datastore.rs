//! The datastore: running and candidate trees, edits, validation, an
//! all-or-nothing commit (persist, history, UCI, daemon reload), confirmed
//! commits, rollback, and reads with filters and with-defaults.

use crate::edit::{DefaultOperation, EditSummary, Editor, ErrorOption};
use crate::error::{ConfigError, ConfigErrors, ErrorTag};
use crate::filter::{self, Filter};
use crate::history::{CommitRecord, History};
use crate::paths::Layout;
use crate::persist::write_atomically;
use crate::render_cache::{self, Dirty, RenderCache};
use crate::schema::{describe, Schema};
use crate::uci_map;
use crate::xml::Element;
use snafu::{ResultExt, Snafu};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};
use yang2::data::{
    Data, DataFormat, DataParserFlags, DataPrinterFlags, DataTree, DataValidationFlags,
};

/// The configuration a box starts with when it has none.
const DEFAULT_CONFIG: &str = include_str!("../default-config.xml");

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

    fn printer_flags(self) -> DataPrinterFlags {
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
pub use crate::secrets::ReadAccess;

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
}

/// Tells a daemon to re-read its UCI package. Implemented over IPC by
/// `IpcReloader`; tests may use their own.
pub trait Reloader: Send + Sync {
    /// `Ok` if the daemon applied it (or no daemon owns/runs this package),
    /// `Err(reason)` if the daemon refused.
    fn reload(&self, package: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// Reloads nothing (no daemons), e.g. for offline tools.
pub struct NoReload;

impl Reloader for NoReload {
    async fn reload(&self, _package: &str) -> Result<(), String> {
        Ok(())
    }
}

/// One successful `<edit-config>` of the candidate, kept for replay at commit.
struct EditRecord {
    config: Vec<Element>,
    default_operation: DefaultOperation,
    error_option: ErrorOption,
}

struct PendingConfirm {
    backup_xml: String,
    deadline: Instant,
    persist: Option<String>,
    session_id: Option<u32>,
}

pub struct Datastore {
    schema: &'static Schema,
    layout: Layout,
    running: DataTree<'static>,
    candidate: DataTree<'static>,
    /// Modules changed in the candidate since it was last equal to running.
    touched: BTreeSet<String>,
    changes: Vec<ChangeRecord>,
    /// The edits that turn running into the candidate, when known: commit
    /// replays them onto running instead of copying the whole tree. `None`
    /// after wholesale changes (copy-config, rollback, import).
    replay: Option<Vec<EditRecord>>,
    /// Whether the changes since running was last valid need libyang's full
    /// validation, or were all harmless value updates (validation_scope).
    full_validation_needed: bool,
    /// Text last written for each UCI package.
    rendered: HashMap<String, String>,
    renderer: uci_map::TextRenderer,
    /// Rendered top-level list entries of running (None: rebuild at the next commit).
    section_cache: Option<RenderCache>,
    /// New list entries (since running) that are validated on their own at
    /// commit instead of by full validation (validation_scope).
    new_entries: Vec<String>,
    /// `changes` holds every change since running (not capped), so the
    /// commit may re-render only the entries they touched.
    changes_complete: bool,
    history: History,
    pending: Option<PendingConfirm>,
}

const MAX_CHANGE_RECORDS: usize = 1000;
/// Beyond this many new entries a commit validates the whole tree instead.
const MAX_ENTRIES_CHECKED_ALONE: usize = 16;

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
        let backup_path = Self::confirm_backup_path(&layout);
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
            touched: BTreeSet::new(),
            changes: Vec::new(),
            replay: Some(Vec::new()),
            full_validation_needed: false,
            rendered: HashMap::new(),
            renderer: uci_map::TextRenderer::new(),
            section_cache: None,
            new_entries: Vec::new(),
            changes_complete: true,
            history,
            pending: None,
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

    fn confirm_backup_path(layout: &Layout) -> std::path::PathBuf {
        layout.etc_dir().join("running.xml.unconfirmed-backup")
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
        !self.touched.is_empty()
    }

    /// Write every package whose text differs from the file on disk.
    fn render_all_to_disk(&mut self) -> Result<(), DatastoreError> {
        for module in self.schema.besip_modules() {
            let package_name = module.uci_package().unwrap_or_default();
            let text = self.renderer.render(&self.running, module);
            let path = self.layout.uci_package(&package_name);
            let on_disk = std::fs::read_to_string(&path).ok();
            if on_disk.as_deref() != Some(text.as_str()) {
                crate::persist::replace_derived(&path, text.as_bytes()).context(WriteSnafu {
                    path: path.display().to_string(),
                })?;
            } else {
                crate::persist::restrict_to_owner(&path).context(WriteSnafu {
                    path: path.display().to_string(),
                })?;
            }
            self.rendered.insert(package_name, text);
        }
        Ok(())
    }

    /// Apply an `<edit-config>` payload to the candidate. Nothing is changed
    /// unless the whole edit succeeds (continue-on-error keeps what succeeded).
    pub fn edit_candidate(
        &mut self,
        config: &[Element],
        default_operation: DefaultOperation,
        error_option: ErrorOption,
        test_option: TestOption,
    ) -> Result<EditSummary, ConfigErrors> {
        let editor = Editor::new(&mut self.candidate, error_option)?;
        let (summary, errors, undo) = editor.apply(config, default_operation);
        let keep_partial = error_option == ErrorOption::ContinueOnError;
        if !errors.is_empty() && !keep_partial {
            undo.revert(&mut self.candidate);
            return Err(ConfigErrors(errors));
        }
        // Full validation of the candidate happens at <validate> and <commit>
        // (RFC 6241 §8.3): a candidate may pass through states that are invalid
        // on their own, e.g. a leafref to an entry added by the next edit.
        // Types, keys and structure were checked by the edit itself.
        if test_option == TestOption::TestOnly {
            let result = self.candidate.validate(validation_flags());
            undo.revert(&mut self.candidate);
            return match result {
                Err(e) => Err(ConfigError::from_validation(&e).into()),
                Ok(()) if errors.is_empty() => Ok(summary),
                Ok(()) => Err(ConfigErrors(errors)),
            };
        }
        if summary.changes > 0 {
            self.touched.extend(summary.modules.iter().cloned());
            let room = MAX_CHANGE_RECORDS.saturating_sub(self.changes.len());
            if summary.edits.len() < summary.changes || summary.edits.len() > room {
                self.changes_complete = false;
            }
            self.changes
                .extend(summary.edits.iter().take(room).cloned());
            self.full_validation_needed |= summary.needs_full_validation;
            self.new_entries.extend(summary.new_entries.iter().cloned());
            // Checking many entries one by one costs more than one full validation.
            if self.new_entries.len() > MAX_ENTRIES_CHECKED_ALONE {
                self.full_validation_needed = true;
            }
            if let Some(replay) = self.replay.as_mut() {
                replay.push(EditRecord {
                    config: config.to_vec(),
                    default_operation,
                    error_option,
                });
            }
        }
        if errors.is_empty() {
            Ok(summary)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Replace the whole candidate with `config` (copy-config to candidate).
    pub fn replace_candidate(&mut self, config: &[Element]) -> Result<(), ConfigErrors> {
        let mut fresh = DataTree::new(self.schema.context());
        let (_, errors, _) = Editor::new(&mut fresh, ErrorOption::StopOnError)?
            .apply(config, DefaultOperation::Merge);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        self.candidate = fresh;
        self.replay = None;
        self.touched
            .extend(self.schema.besip_modules().map(|m| m.name.clone()));
        self.touched.insert("*".into());
        Ok(())
    }

    /// Throw away uncommitted changes.
    pub fn discard_changes(&mut self) -> Result<(), ConfigError> {
        self.candidate = self
            .running
            .duplicate()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
        self.touched.clear();
        self.changes.clear();
        self.new_entries.clear();
        self.changes_complete = true;
        self.replay = Some(Vec::new());
        self.full_validation_needed = false;
        Ok(())
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

    /// Commit the candidate: validate, persist running.xml, render UCI,
    /// reload the daemons whose package changed, record history. All or
    /// nothing: a refusal puts running.xml and the packages back.
    pub async fn commit<R: Reloader>(
        &mut self,
        options: CommitOptions,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        let confirmed_pending = self.pending.is_some();
        if let Some(pending) = &self.pending {
            if pending.persist.is_some()
                && options.confirmed.is_none()
                && pending.persist != options.persist_id
            {
                return Err(ConfigError::protocol(
                    ErrorTag::InvalidValue,
                    "a persistent confirmed commit is pending: confirm it with the matching persist-id",
                )
                .into());
            }
        }
        let previous_xml = if self.pending.is_none() && options.confirmed.is_some() {
            Some(self.print(Source::Running, WithDefaults::Explicit))
        } else {
            None
        };
        let mut outcome = self.apply_candidate(&options, reloader).await?;
        match (options.confirmed, previous_xml) {
            (Some(confirmed), backup) => {
                // A new confirmed commit, or one extending a pending one (keeps the first backup).
                let backup_xml = match (backup, self.pending.take()) {
                    (Some(b), _) => b,
                    (None, Some(p)) => p.backup_xml,
                    (None, None) => self.print(Source::Running, WithDefaults::Explicit),
                };
                let path = Self::confirm_backup_path(&self.layout);
                write_atomically(&path, backup_xml.as_bytes()).map_err(|e| {
                    ConfigError::new(
                        ErrorTag::OperationFailed,
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
                self.pending = Some(PendingConfirm {
                    backup_xml,
                    deadline: Instant::now() + confirmed.timeout,
                    persist: confirmed.persist,
                    session_id: options.session_id,
                });
            }
            (None, _) => {
                if self.pending.take().is_some() {
                    let _ = std::fs::remove_file(Self::confirm_backup_path(&self.layout));
                }
            }
        }
        outcome.confirmed_pending = confirmed_pending;
        Ok(outcome)
    }

    async fn apply_candidate<R: Reloader>(
        &mut self,
        options: &CommitOptions,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        let (mut new_running, printed) = self.prepare_new_running()?;
        let validated: &DataTree<'static> = match &new_running {
            NewRunning::Replayed(_) => &self.running,
            NewRunning::Copied(tree) => tree,
        };

        let all_modules = self.touched.contains("*");
        // Re-render only the touched entries when running was edited in place
        // and every change is on record (render_cache.rs). The cache is taken
        // out here and put back only when the commit succeeds.
        let replayed = matches!(new_running, NewRunning::Replayed(_));
        let mut cache = match self.section_cache.take() {
            Some(cache) if replayed => cache,
            _ => RenderCache::default(),
        };
        let dirty = if replayed && self.changes_complete && !all_modules {
            render_cache::dirty_entries(self.schema.context(), validated, &self.changes)
        } else {
            Dirty::All
        };
        let xml = match printed {
            Some(xml) => xml,
            None => cache.print_xml(validated, &dirty, WithDefaults::Explicit.printer_flags()),
        };
        // The new running.xml is written and fsynced on another thread while
        // the packages are rendered; it is renamed into place before any
        // package is written. The thread hands the text back.
        let running_path = self.layout.running_config();
        let staging = {
            let path = running_path.clone();
            std::thread::spawn(move || (crate::persist::stage(&path, xml.as_bytes()), xml))
        };
        let mut changed: Vec<(String, String, String)> = Vec::new(); // (module, package, text)
        for module in self.schema.besip_modules() {
            if !all_modules && !self.touched.contains(&module.name) {
                continue;
            }
            let package_name = module.uci_package().unwrap_or_default();
            let sections = cache.packages.entry(package_name.clone()).or_default();
            let text = self
                .renderer
                .render_cached(validated, module, sections, &dirty);
            if self.rendered.get(&package_name) != Some(&text) {
                changed.push((module.name.clone(), package_name, text));
            }
        }
        // The durable record comes first: running.xml is in place before any
        // package or daemon sees the new configuration, so a crash at any
        // later point leaves daemons on a configuration running.xml holds
        // (start-up re-renders the packages and reloads every daemon).
        let (staged, xml) = match staging.join() {
            Ok(staged_and_xml) => staged_and_xml,
            Err(_) => (
                Err(std::io::Error::other("the thread writing it panicked")),
                String::new(),
            ),
        };
        if let Err(e) = staged.and_then(crate::persist::StagedFile::install) {
            self.abandon(&mut new_running);
            return Err(ConfigError::new(
                ErrorTag::OperationFailed,
                format!("cannot write {}: {e}", running_path.display()),
            )
            .into());
        }
        // Write the changed packages, then ask their daemons to apply them.
        let mut written: Vec<(String, Option<String>)> = Vec::new();
        let mut reloaded: Vec<String> = Vec::new();
        let mut failure: Option<ConfigError> = None;
        for (_, package, text) in &changed {
            let path = self.layout.uci_package(package);
            if let Err(e) = crate::persist::replace_derived(&path, text.as_bytes()) {
                failure = Some(ConfigError::new(
                    ErrorTag::OperationFailed,
                    format!("cannot write {}: {e}", path.display()),
                ));
                break;
            }
            written.push((package.clone(), self.rendered.get(package).cloned()));
        }
        if failure.is_none() {
            for (_, package, _) in &changed {
                match reloader.reload(package).await {
                    Ok(()) => reloaded.push(package.clone()),
                    Err(reason) => {
                        failure = Some(
                            ConfigError::new(ErrorTag::OperationFailed, format!("the daemon for {package} refused the new configuration: {reason}"))
                                .with_app_tag("daemon-refused"),
                        );
                        break;
                    }
                }
            }
        }
        if let Some(error) = failure {
            // Back to the previous running.xml first, then every written
            // package, then the daemons that took the new one.
            self.abandon(&mut new_running);
            // Printed as a commit prints running.xml, so the file comes back
            // byte for byte, not merely equivalent.
            let previous = RenderCache::default().print_xml(
                &self.running,
                &Dirty::All,
                WithDefaults::Explicit.printer_flags(),
            );
            if let Err(e) = write_atomically(&running_path, previous.as_bytes()) {
                tracing::error!(error = %e, "cannot restore running.xml after a refused commit");
            }
            for (package, old) in &written {
                if let Some(old) = old {
                    let _ = crate::persist::replace_derived(
                        &self.layout.uci_package(package),
                        old.as_bytes(),
                    );
                }
            }
            for package in &reloaded {
                if let Err(reason) = reloader.reload(package).await {
                    tracing::error!(
                        package,
                        reason,
                        "daemon refused its previous configuration during commit rollback"
                    );
                }
            }
            return Err(error.into());
        }
        let nothing_changed = changed.is_empty() && self.touched.is_empty();
        // The commit is durable once running.xml is written; a history
        // failure (disk full, locked database) is logged, not fatal.
        let id = if nothing_changed {
            None
        } else {
            match self.history.record(&options.user, &options.comment, xml) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::error!(error = %e, "commit applied but not recorded in the history");
                    None
                }
            }
        };
        let changed_packages: Vec<String> = changed.iter().map(|(_, p, _)| p.clone()).collect();
        for (_, package, text) in changed {
            self.rendered.insert(package, text);
        }
        if let NewRunning::Copied(tree) = new_running {
            let old = std::mem::replace(&mut self.running, tree);
            free_in_background(old);
        }
        self.replay = Some(Vec::new());
        self.full_validation_needed = false;
        self.new_entries.clear();
        self.section_cache = Some(cache);
        self.changes_complete = true;
        let changed_modules = if all_modules {
            self.schema
                .besip_modules()
                .map(|m| m.name.clone())
                .collect()
        } else {
            self.touched.iter().cloned().collect()
        };
        self.touched.clear();
        Ok(CommitOutcome {
            id,
            changed_packages,
            changed_modules,
            confirmed_pending: false,
            changes: std::mem::take(&mut self.changes),
        })
    }

    /// Bring a validated new running configuration into being: replay the
    /// candidate's edits onto running when they are known (microseconds, and
    /// no copy of 10,000 extensions), else validate and copy the candidate
    /// (whose XML is printed here; a replayed running is printed from the
    /// render cache).
    fn prepare_new_running(&mut self) -> Result<(NewRunning, Option<String>), ConfigError> {
        if let Some(records) = self.replay.take() {
            match self.replay_onto_running(&records) {
                Ok(Some(undos)) => return Ok((NewRunning::Replayed(undos), None)),
                Ok(None) => {}
                Err(error) => {
                    self.replay = Some(records);
                    return Err(error);
                }
            }
        }
        // Wholesale changes: validate the candidate (adding implicit defaults) and copy it.
        self.candidate
            .validate(validation_flags())
            .map_err(|e| ConfigError::from_validation(&e))?;
        let copy = self
            .candidate
            .duplicate()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
        let xml = print_tree(&copy, WithDefaults::Explicit);
        Ok((NewRunning::Copied(copy), Some(xml)))
    }

    /// Replay the candidate's edits onto running and validate it. `Ok(None)`:
    /// the replay did not apply (running changed behind our back), use a copy.
    fn replay_onto_running(
        &mut self,
        records: &[EditRecord],
    ) -> Result<Option<Vec<crate::edit::EditUndo>>, ConfigError> {
        let mut undos = Vec::with_capacity(records.len());
        for record in records {
            let editor = Editor::new(&mut self.running, record.error_option)?;
            let (_, errors, undo) = editor.apply(&record.config, record.default_operation);
            undos.push(undo);
            if !errors.is_empty() && record.error_option != ErrorOption::ContinueOnError {
                tracing::warn!("replaying the candidate's edits onto running failed; copying the candidate instead");
                revert_all(&mut self.running, undos);
                return Ok(None);
            }
        }
        if self.full_validation_needed || !self.new_entries_valid_alone() {
            if let Err(e) = self.running.validate(validation_flags()) {
                let error = ConfigError::from_validation(&e);
                revert_all(&mut self.running, undos);
                return Err(error);
            }
        }
        Ok(Some(undos))
    }

    /// Check each new self-contained list entry of running on its own: give it
    /// its default nodes (as full validation would) and validate a copy of it
    /// with its parents. `false` (also for anything unexpected) means: do the
    /// full validation, which then gives the authoritative error.
    fn new_entries_valid_alone(&mut self) -> bool {
        for path in &self.new_entries {
            let Ok(entry) = self.running.find_path(path) else {
                return false;
            };
            // SAFETY: `entry` is a node of `self.running`, alive and exclusively
            // ours (&mut self); libyang only adds children under it.
            let added = unsafe {
                yang2::ffi::lyd_new_implicit_tree(
                    entry.as_raw(),
                    yang2::ffi::LYD_IMPLICIT_NO_STATE,
                    std::ptr::null_mut(),
                )
            };
            if added != yang2::ffi::LY_ERR::LY_SUCCESS {
                return false;
            }
            let Ok(mut alone) = entry.duplicate(true) else {
                return false;
            };
            if alone
                .validate(DataValidationFlags::NO_STATE | DataValidationFlags::PRESENT)
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Undo a prepared-but-not-committed new running configuration.
    fn abandon(&mut self, new_running: &mut NewRunning) {
        match new_running {
            NewRunning::Replayed(undos) => {
                let undos = std::mem::take(undos);
                revert_all(&mut self.running, undos);
                // The candidate's edits are still the way from running to candidate.
                self.replay = None;
            }
            NewRunning::Copied(_) => {}
        }
    }

    /// Is a confirmed commit waiting for its confirmation?
    pub fn confirm_pending(&self) -> bool {
        self.pending.is_some()
    }

    pub fn confirm_deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// The session a non-persistent pending confirmed commit belongs to.
    pub fn confirm_session(&self) -> Option<u32> {
        self.pending
            .as_ref()
            .filter(|p| p.persist.is_none())
            .and_then(|p| p.session_id)
    }

    /// `<cancel-commit>` or an expired timer: go back to the configuration
    /// before the confirmed commit. Uncommitted candidate changes are dropped.
    pub async fn cancel_commit<R: Reloader>(
        &mut self,
        persist_id: Option<&str>,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        let Some(pending) = &self.pending else {
            return Err(ConfigError::protocol(
                ErrorTag::OperationFailed,
                "no confirmed commit is pending",
            )
            .into());
        };
        if pending.persist.is_some() && pending.persist.as_deref() != persist_id {
            return Err(ConfigError::protocol(
                ErrorTag::InvalidValue,
                "persist-id does not match the pending confirmed commit",
            )
            .into());
        }
        let backup = pending.backup_xml.clone();
        let tree = parse_config_tree(self.schema, &backup).map_err(ConfigErrors::from)?;
        self.candidate = tree;
        self.replay = None;
        self.touched.insert("*".into());
        let options = CommitOptions {
            user: "system".into(),
            comment: "confirmed commit reverted".into(),
            ..Default::default()
        };
        let outcome = self.apply_candidate(&options, reloader).await?;
        self.pending = None;
        let _ = std::fs::remove_file(Self::confirm_backup_path(&self.layout));
        Ok(outcome)
    }

    /// Revert the pending confirmed commit if its time is up.
    pub async fn revert_if_expired<R: Reloader>(
        &mut self,
        now: Instant,
        reloader: &R,
    ) -> Option<Result<CommitOutcome, ConfigErrors>> {
        let deadline = self.pending.as_ref()?.deadline;
        if now < deadline {
            return None;
        }
        let persist = self.pending.as_ref().and_then(|p| p.persist.clone());
        Some(self.cancel_commit(persist.as_deref(), reloader).await)
    }

    /// Load the configuration of the commit `back` steps ago into the candidate.
    pub fn rollback_candidate(&mut self, back: usize) -> Result<(), ConfigError> {
        let xml = self
            .history
            .config_back(back)
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, e.to_string()))?
            .ok_or_else(|| {
                ConfigError::new(
                    ErrorTag::InvalidValue,
                    format!(
                        "there is no commit {back} steps back (at most {} are kept)",
                        crate::history::KEEP
                    ),
                )
            })?;
        self.candidate = parse_config_tree(self.schema, &xml)?;
        self.replay = None;
        self.touched.insert("*".into());
        Ok(())
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

    /// The whole datastore as XML (children of `<data>`/`<config>`).
    pub fn print(&self, source: Source, with_defaults: WithDefaults) -> String {
        print_tree(self.tree(source), with_defaults)
    }

    /// `<get-config>`: the filtered datastore as XML.
    pub fn get_config(
        &self,
        source: Source,
        filter: &Filter,
        with_defaults: WithDefaults,
    ) -> Result<String, ConfigError> {
        self.get_config_as(source, filter, with_defaults, ReadAccess::Everything)
    }

    /// `<get-config>` for a reader that may not see secrets
    /// (`nacm:default-deny-all` nodes such as password hashes).
    pub fn get_config_as(
        &self,
        source: Source,
        filter: &Filter,
        with_defaults: WithDefaults,
        access: ReadAccess,
    ) -> Result<String, ConfigError> {
        if access == ReadAccess::WithoutSecrets {
            // What the reader may not see goes first: a filter evaluated on
            // the whole tree (`starts-with(password, 'a')`) would otherwise
            // answer questions about the secrets it then hides.
            let mut tree = self
                .tree(source)
                .duplicate()
                .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
            crate::secrets::remove_secrets(&mut tree);
            if let Some(xpaths) = filter::to_xpaths(filter)? {
                tree = filter::select(&tree, &xpaths)?;
            }
            return Ok(print_tree(&tree, with_defaults));
        }
        match filter::to_xpaths(filter)? {
            None => Ok(self.print(source, with_defaults)),
            Some(xpaths) => {
                if let Some(text) = print_single_top_node(self.tree(source), &xpaths, with_defaults)
                {
                    return Ok(text);
                }
                let selected = filter::select(self.tree(source), &xpaths)?;
                Ok(print_tree(&selected, with_defaults))
            }
        }
    }

    /// `<get>`: configuration plus state. `states` are RFC 7951 JSON documents
    /// from the daemons; documents that do not fit the schema are skipped (and logged).
    pub fn get_with_state(
        &self,
        filter: &Filter,
        with_defaults: WithDefaults,
        states: &[String],
    ) -> Result<String, ConfigError> {
        self.get_with_state_as(filter, with_defaults, states, ReadAccess::Everything)
    }

    /// `<get>` for a reader that may not see secrets.
    pub fn get_with_state_as(
        &self,
        filter: &Filter,
        with_defaults: WithDefaults,
        states: &[String],
        access: ReadAccess,
    ) -> Result<String, ConfigError> {
        let mut tree = self
            .running
            .duplicate()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
        for state in states {
            match DataTree::parse_string(
                self.schema.context(),
                state,
                DataFormat::JSON,
                DataParserFlags::NO_VALIDATION,
                DataValidationFlags::empty(),
            ) {
                Ok(state_tree) => {
                    if let Err(e) = tree.merge(&state_tree) {
                        tracing::warn!(error = %describe(&e), "daemon state does not merge");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "daemon state does not fit the YANG schema")
                }
            }
        }
        if access == ReadAccess::WithoutSecrets {
            crate::secrets::remove_secrets(&mut tree);
        }
        match filter::to_xpaths(filter)? {
            None => Ok(print_tree(&tree, with_defaults)),
            Some(xpaths) => Ok(print_tree(&filter::select(&tree, &xpaths)?, with_defaults)),
        }
    }

    /// Import a hand-edited UCI package into the candidate, replacing that
    /// module's configuration. On error nothing changes and the error names
    /// file, line and YANG path.
    pub fn import_uci(
        &mut self,
        package: &crate::uci::Package,
    ) -> Result<(), uci_map::UciImportError> {
        let module = self
            .schema
            .besip_modules()
            .find(|m| m.uci_package().as_deref() == Some(package.name.as_str()))
            .ok_or_else(|| uci_map::UciImportError {
                file: package.name.clone(),
                line: 0,
                yang_path: String::new(),
                message: format!("'{}' is not a BESIP UCI package", package.name),
            })?;
        let internal = |message: String| uci_map::UciImportError {
            file: package.name.clone(),
            line: 0,
            yang_path: String::new(),
            message,
        };
        let mut work = self
            .candidate
            .duplicate()
            .map_err(|e| internal(describe(&e)))?;
        // Drop the module's current configuration, then build it from the file.
        let tops: Vec<String> = work
            .reference()
            .map(|first| {
                first
                    .inclusive_siblings()
                    .filter(|n| n.schema().module().name() == module.name)
                    .map(|n| n.path())
                    .collect()
            })
            .unwrap_or_default();
        for path in tops {
            crate::tree_ops::remove_path(&mut work, &path).map_err(|e| internal(describe(&e)))?;
        }
        let mut lines = HashMap::new();
        uci_map::import_package(&mut work, package, module, &mut lines)?;
        let mut check = work.duplicate().map_err(|e| internal(describe(&e)))?;
        if let Err(e) = check.validate(validation_flags()) {
            let path = e.path.clone().unwrap_or_default();
            let file = package
                .sections
                .first()
                .map(|s| s.file.clone())
                .unwrap_or_else(|| package.name.clone());
            return Err(uci_map::UciImportError {
                file,
                line: uci_map::line_for_path(&lines, &path),
                yang_path: path,
                message: e.msg.clone().unwrap_or_else(|| "validation failed".into()),
            });
        }
        self.candidate = check;
        self.replay = None;
        self.touched.insert(module.name.clone());
        Ok(())
    }

    /// The UCI text of a module as commit writes it.
    pub fn render_text(&mut self, source: Source, module_name: &str) -> Option<String> {
        let module = self
            .schema
            .besip_modules()
            .find(|m| m.name == module_name)?;
        let tree = match source {
            Source::Running => &self.running,
            Source::Candidate => &self.candidate,
        };
        Some(self.renderer.render(tree, module))
    }

    /// Cross-check used by tests and `besip import`: the running tree rendered to UCI.
    pub fn render_package(&self, source: Source, module_name: &str) -> Option<crate::uci::Package> {
        let module = self
            .schema
            .besip_modules()
            .find(|m| m.name == module_name)?;
        Some(uci_map::render_module(self.tree(source), module))
    }
}

/// How commit produced the new running tree.
enum NewRunning {
    /// Running itself was edited; the undo logs take it back.
    Replayed(Vec<crate::edit::EditUndo>),
    /// A validated copy of the candidate.
    Copied(DataTree<'static>),
}

fn revert_all(tree: &mut DataTree<'static>, undos: Vec<crate::edit::EditUndo>) {
    for undo in undos.into_iter().rev() {
        undo.revert(tree);
    }
}

/// Freeing 10,000 extensions takes milliseconds; do it off the commit path.
fn free_in_background(tree: DataTree<'static>) {
    std::thread::spawn(move || drop(tree));
}

/// Print a tree as XML (no XML declaration; siblings included).
pub fn print_tree(tree: &DataTree<'static>, with_defaults: WithDefaults) -> String {
    if tree.reference().is_none() {
        return String::new();
    }
    tree.print_string(DataFormat::XML, with_defaults.printer_flags())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A filter that selects exactly one whole top-level node (e.g. all of /pbx)
/// is printed straight from the tree, without copying 10,000 entries first.
fn print_single_top_node(
    tree: &DataTree<'static>,
    xpaths: &[String],
    with_defaults: WithDefaults,
) -> Option<String> {
    let [xpath] = xpaths else {
        return None;
    };
    let set = tree.find_xpath(xpath).ok()?;
    let mut nodes = set.into_iter();
    let node = nodes.next()?;
    if nodes.next().is_some() || yang2::iter::NodeIterable::parent(&node).is_some() {
        return None;
    }
    let flags = with_defaults.printer_flags() - DataPrinterFlags::WITH_SIBLINGS;
    node.print_string(DataFormat::XML, flags).ok().flatten()
}

/// Parse a stored/imported configuration document (children of `<config>`, or
/// a document wrapped in `<config>`/`<data>`) into a validated tree.
pub fn parse_config_tree(
    schema: &'static Schema,
    text: &str,
) -> Result<DataTree<'static>, ConfigError> {
    let elements = crate::xml::parse(text)
        .map_err(|e| ConfigError::protocol(ErrorTag::MalformedMessage, e.to_string()))?;
    let content: Vec<Element> = match elements.as_slice() {
        [wrapper] if wrapper.name == "config" || wrapper.name == "data" => wrapper.children.clone(),
        _ => elements,
    };
    let mut tree = DataTree::new(schema.context());
    let (_, errors, _) =
        Editor::new(&mut tree, ErrorOption::StopOnError)?.apply(&content, DefaultOperation::Merge);
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    tree.validate(validation_flags())
        .map_err(|e| ConfigError::from_validation(&e))?;
    Ok(tree)
}
