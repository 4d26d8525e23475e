//! The parameters of `<edit-config>` (RFC 6241 §7.2) and what an edit reports.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Merge,
    Replace,
    Create,
    Delete,
    Remove,
    None,
}

impl Operation {
    pub fn parse(value: &str) -> Option<Operation> {
        Some(match value {
            "merge" => Operation::Merge,
            "replace" => Operation::Replace,
            "create" => Operation::Create,
            "delete" => Operation::Delete,
            "remove" => Operation::Remove,
            "none" => Operation::None,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultOperation {
    #[default]
    Merge,
    Replace,
    None,
}

impl DefaultOperation {
    pub(super) fn as_operation(self) -> Operation {
        match self {
            DefaultOperation::Merge => Operation::Merge,
            DefaultOperation::Replace => Operation::Replace,
            DefaultOperation::None => Operation::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorOption {
    #[default]
    StopOnError,
    ContinueOnError,
    RollbackOnError,
}

/// One change an edit made, for RFC 6470 netconf-config-change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub path: String,
    /// `create`, `replace` or `delete`.
    pub operation: &'static str,
}

/// Changes recorded per edit for notifications (a bulk edit records the first ones).
const MAX_EDIT_RECORDS: usize = 1000;

/// What an edit touched: the modules whose data changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EditSummary {
    pub modules: BTreeSet<String>,
    pub changes: usize,
    pub edits: Vec<ChangeRecord>,
    /// Some change may affect more than its own value (see validation_scope).
    pub needs_full_validation: bool,
    /// List entries this edit created that can be validated on their own
    /// (validation_scope::list_entry_is_self_contained).
    pub new_entries: Vec<String>,
}

impl EditSummary {
    pub(super) fn record(&mut self, module: &str, path: &str, operation: &'static str) {
        if !self.modules.contains(module) {
            self.modules.insert(module.to_owned());
        }
        self.changes += 1;
        if self.edits.len() < MAX_EDIT_RECORDS {
            self.edits.push(ChangeRecord {
                path: path.to_owned(),
                operation,
            });
        }
    }
}
