//! The commit stage: the transaction that makes the candidate running —
//! a validated new running tree (the candidate's edits replayed onto running,
//! or a copy), running.xml persisted, the changed UCI packages rendered and
//! handed to their daemons (publish.rs), the history recorded. All or
//! nothing: a refusal leaves running, its files and the daemons as they were.

use super::candidate::EditRecord;
use super::publish;
use super::{print_tree, validation_flags, CommitOptions, CommitOutcome, Datastore, WithDefaults};
use crate::edit::{Editor, ErrorOption};
use crate::error::{ConfigError, ConfigErrors, ErrorTag};
use crate::persist::write_atomically;
use crate::reload::Reloader;
use crate::render_cache::{self, Dirty, RenderCache};
use crate::schema::describe;
use yang2::data::{Data, DataTree, DataValidationFlags};

impl Datastore {
    pub(super) async fn apply_candidate<R: Reloader>(
        &mut self,
        options: &CommitOptions,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        let (mut new_running, printed) = self.prepare_new_running()?;
        let validated: &DataTree<'static> = match &new_running {
            NewRunning::Replayed(_) => &self.running,
            NewRunning::Copied(tree) => tree,
        };

        let all_modules = self.edits.all_modules_touched();
        // Re-render only the touched entries when running was edited in place
        // and every change is on record (render_cache.rs). The cache is taken
        // out here and put back only when the commit succeeds.
        let replayed = matches!(new_running, NewRunning::Replayed(_));
        let mut cache = self.rendering.take_cache(replayed);
        let dirty = match self.edits.complete_changes() {
            Some(changes) if replayed => {
                render_cache::dirty_entries(self.schema.context(), validated, changes)
            }
            _ => Dirty::All,
        };
        let xml = match printed {
            Some(xml) => xml,
            None => cache.print_xml(validated, &dirty, WithDefaults::Explicit.printer_flags()),
        };
        // The new running.xml is written and fsynced on another thread while
        // the packages are rendered; it is renamed into place before any
        // package is written. The thread hands the text back.
        let running_path = self.layout.running_config();
        let running_staging = {
            let path = running_path.clone();
            std::thread::spawn(move || (crate::persist::stage(&path, xml.as_bytes()), xml))
        };
        let mut changed: Vec<(String, String, String)> = Vec::new(); // (module, package, text)
        for module in self.schema.besip_modules() {
            if !self.edits.touched(&module.name) {
                continue;
            }
            if let Some((package, text)) = self
                .rendering
                .render_changed(validated, module, &mut cache, &dirty)
            {
                changed.push((module.name.clone(), package, text));
            }
        }
        // Phase one: the daemons check the changed packages while running.xml
        // is still being written.
        let texts: Vec<(&str, &str)> = changed
            .iter()
            .map(|(_, package, text)| (package.as_str(), text.as_str()))
            .collect();
        let checked = match publish::stage(&self.layout, &texts) {
            Ok(staged) => staged.prepare(reloader).await,
            Err(e) => Err(e),
        };
        let (staged_running, xml) = match running_staging.join() {
            Ok(staged_and_xml) => staged_and_xml,
            Err(_) => (
                Err(std::io::Error::other("the thread writing it panicked")),
                String::new(),
            ),
        };
        let checked = match checked {
            Ok(checked) => checked,
            Err(refused) => {
                self.abandon(&mut new_running);
                return Err(refused.into());
            }
        };
        // The durable record comes first: running.xml is in place before any
        // package or daemon switches to the new configuration, so a crash at
        // any later point leaves daemons on a configuration running.xml
        // holds (start-up re-renders the packages and reloads every daemon).
        if let Err(e) = staged_running.and_then(crate::persist::StagedFile::install) {
            checked.abort(reloader).await;
            self.abandon(&mut new_running);
            return Err(ConfigError::new(
                ErrorTag::OperationFailed,
                format!("cannot write {}: {e}", running_path.display()),
            )
            .into());
        }
        // Phase two: the packages go into place and the daemons switch.
        if let Err(unwind) = checked.install_and_apply(reloader).await {
            // Back to the previous running.xml first, then the packages and
            // the daemons.
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
            let error = unwind
                .roll_back(&self.layout, self.rendering.written(), reloader)
                .await;
            return Err(error.into());
        }
        let nothing_changed = changed.is_empty() && !self.edits.modified();
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
            self.rendering.record_written(package, text);
        }
        if let NewRunning::Copied(tree) = new_running {
            let old = std::mem::replace(&mut self.running, tree);
            free_in_background(old);
        }
        self.rendering.keep_cache(cache);
        let (touched, changes) = std::mem::take(&mut self.edits).into_committed();
        let changed_modules = if all_modules {
            self.schema
                .besip_modules()
                .map(|m| m.name.clone())
                .collect()
        } else {
            touched.into_iter().collect()
        };
        Ok(CommitOutcome {
            id,
            changed_packages,
            changed_modules,
            confirmed_pending: false,
            changes,
            confirm_event: None,
        })
    }

    /// Bring a validated new running configuration into being: replay the
    /// candidate's edits onto running when they are known (microseconds, and
    /// no copy of 10,000 extensions), else validate and copy the candidate
    /// (whose XML is printed here; a replayed running is printed from the
    /// render cache).
    fn prepare_new_running(&mut self) -> Result<(NewRunning, Option<String>), ConfigError> {
        if let Some(records) = self.edits.take_replay() {
            match self.replay_onto_running(&records) {
                Ok(Some(undos)) => return Ok((NewRunning::Replayed(undos), None)),
                Ok(None) => {}
                Err(error) => {
                    self.edits.keep_replay(records);
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
        if self.edits.full_validation_needed() || !self.new_entries_valid_alone() {
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
        for path in self.edits.new_entries() {
            if !crate::libyang::add_implicit_defaults(&mut self.running, path) {
                return false;
            }
            let Ok(entry) = self.running.find_path(path) else {
                return false;
            };
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
                self.edits.forget_replay();
            }
            NewRunning::Copied(_) => {}
        }
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
