//! The edit stage: changes to the candidate (`<edit-config>`, copy-config,
//! rollback, UCI import) and `PendingEdits`, the record of what the candidate
//! has over running that the commit stage replays and re-renders from.

use super::{parse_config_tree, validation_flags, Datastore, TestOption};
use crate::edit::{ChangeRecord, DefaultOperation, EditSummary, Editor, ErrorOption};
use crate::error::{ConfigError, ConfigErrors, ErrorTag};
use crate::schema::describe;
use crate::uci_map;
use crate::xml::Element;
use std::collections::{BTreeSet, HashMap};
use yang2::data::DataTree;

const MAX_CHANGE_RECORDS: usize = 1000;
/// Beyond this many new entries a commit validates the whole tree instead.
const MAX_ENTRIES_CHECKED_ALONE: usize = 16;
/// In `PendingEdits::touched`: every module may have changed.
pub(super) const ALL_MODULES: &str = "*";

/// One successful `<edit-config>` of the candidate, kept for replay at commit.
pub(super) struct EditRecord {
    pub config: Vec<Element>,
    pub default_operation: DefaultOperation,
    pub error_option: ErrorOption,
}

/// What the candidate has over running.
pub(super) struct PendingEdits {
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
    /// New list entries (since running) that are validated on their own at
    /// commit instead of by full validation (validation_scope).
    new_entries: Vec<String>,
    /// `changes` holds every change since running (not capped), so the
    /// commit may re-render only the entries they touched.
    changes_complete: bool,
}

impl Default for PendingEdits {
    /// The candidate equals running.
    fn default() -> Self {
        PendingEdits {
            touched: BTreeSet::new(),
            changes: Vec::new(),
            replay: Some(Vec::new()),
            full_validation_needed: false,
            new_entries: Vec::new(),
            changes_complete: true,
        }
    }
}

impl PendingEdits {
    pub fn modified(&self) -> bool {
        !self.touched.is_empty()
    }

    pub fn all_modules_touched(&self) -> bool {
        self.touched.contains(ALL_MODULES)
    }

    /// May `module`'s configuration differ from running?
    pub fn touched(&self, module: &str) -> bool {
        self.all_modules_touched() || self.touched.contains(module)
    }

    /// Every change since running, when all are on record and no module
    /// was replaced wholesale: a commit may re-render just their entries.
    pub fn complete_changes(&self) -> Option<&[ChangeRecord]> {
        (self.changes_complete && !self.all_modules_touched()).then_some(&self.changes[..])
    }

    /// The edits from running to the candidate, for replay (None: unknown).
    pub fn take_replay(&mut self) -> Option<Vec<EditRecord>> {
        self.replay.take()
    }

    /// Give back the edits `take_replay` took (the commit did not happen).
    pub fn keep_replay(&mut self, records: Vec<EditRecord>) {
        self.replay = Some(records);
    }

    /// Running was put back after a replay: the edits taken are spent.
    pub fn forget_replay(&mut self) {
        self.replay = None;
    }

    pub fn full_validation_needed(&self) -> bool {
        self.full_validation_needed
    }

    /// New list entries a commit may validate one by one.
    pub fn new_entries(&self) -> &[String] {
        &self.new_entries
    }

    /// The committed state: the modules touched and the change records.
    pub fn into_committed(self) -> (BTreeSet<String>, Vec<ChangeRecord>) {
        (self.touched, self.changes)
    }

    /// An edit that changed something.
    fn record(&mut self, summary: &EditSummary, record: EditRecord) {
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
            replay.push(record);
        }
    }

    /// `module` (or `ALL_MODULES`) was replaced by a new tree: the edits are
    /// no longer the way from running to the candidate.
    pub fn replaced_wholesale(&mut self, module: &str) {
        self.replay = None;
        self.touched.insert(module.to_owned());
    }
}

impl Datastore {
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
            self.edits.record(
                &summary,
                EditRecord {
                    config: config.to_vec(),
                    default_operation,
                    error_option,
                },
            );
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
        for module in self.schema.besip_modules() {
            self.edits.replaced_wholesale(&module.name);
        }
        self.edits.replaced_wholesale(ALL_MODULES);
        Ok(())
    }

    /// Throw away uncommitted changes.
    pub fn discard_changes(&mut self) -> Result<(), ConfigError> {
        self.candidate = self
            .running
            .duplicate()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, describe(&e)))?;
        self.edits = PendingEdits::default();
        Ok(())
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
        self.edits.replaced_wholesale(ALL_MODULES);
        Ok(())
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
            crate::libyang::remove_path(&mut work, &path).map_err(|e| internal(describe(&e)))?;
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
        self.edits.replaced_wholesale(&module.name);
        Ok(())
    }
}
