//! NETCONF `<edit-config>` semantics (RFC 6241 §7.2) applied to a libyang tree:
//! merge, replace, create, delete, remove and none, with the error tags a
//! client expects (data-exists, data-missing, invalid-value, unknown-element,
//! unknown-namespace, bad-attribute, missing-element) and the data path of the fault.

mod options;
mod undo;

pub use options::{ChangeRecord, DefaultOperation, EditSummary, ErrorOption, Operation};
pub use undo::EditUndo;
use undo::UndoStep;

use crate::error::{ConfigError, ErrorTag};
use crate::libyang::{is_implicit_default, set_default_flag};
use crate::schema::{data_child, Schema};
use crate::xml::Element;
use yang2::data::{Data, DataTree};
use yang2::schema::{DataValueType, SchemaNode, SchemaNodeKind};

pub const NETCONF_BASE_NS: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";
/// The namespace of the `insert`, `key` and `value` attributes (RFC 7950 §7.8.6).
pub const YANG_NS: &str = "urn:ietf:params:xml:ns:yang:1";

/// Where `insert` puts an entry of a user-ordered list or leaf-list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Insert {
    First,
    Last,
    /// Before / after the entry at this data path.
    Before(String),
    After(String),
}

/// Applies one `<config>` payload to a tree.
pub struct Editor<'t> {
    schema: &'static Schema,
    tree: &'t mut DataTree<'static>,
    continue_on_error: bool,
    errors: Vec<ConfigError>,
    summary: EditSummary,
    undo: EditUndo,
    /// Above 0 while the children of a new self-contained list entry are being
    /// set: they are checked with the entry, not by full validation.
    inside_new_entry: usize,
}

impl<'t> Editor<'t> {
    pub fn new(
        tree: &'t mut DataTree<'static>,
        error_option: ErrorOption,
    ) -> Result<Self, ConfigError> {
        let schema = Schema::get()
            .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, e.to_string()))?;
        Ok(Editor {
            schema,
            tree,
            continue_on_error: error_option == ErrorOption::ContinueOnError,
            errors: Vec::new(),
            summary: EditSummary::default(),
            undo: EditUndo::default(),
            inside_new_entry: 0,
        })
    }

    /// Apply the children of `<config>`. Errors are returned all together; with
    /// stop-on-error/rollback-on-error the first one ends the walk.
    pub fn apply(
        mut self,
        config: &[Element],
        default_operation: DefaultOperation,
    ) -> (EditSummary, Vec<ConfigError>, EditUndo) {
        for element in config {
            if self.stopped() {
                break;
            }
            self.apply_top(element, default_operation.as_operation());
        }
        (self.summary, self.errors, self.undo)
    }

    fn stopped(&self) -> bool {
        !self.continue_on_error && !self.errors.is_empty()
    }

    fn fail(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    fn apply_top(&mut self, element: &Element, inherited: Operation) {
        let Some(module) = self.schema.module_by_namespace(&element.namespace) else {
            let error = if element.namespace.is_empty() {
                ConfigError::protocol(
                    ErrorTag::UnknownNamespace,
                    format!("element <{}> has no namespace", element.name),
                )
            } else {
                ConfigError::protocol(
                    ErrorTag::UnknownNamespace,
                    format!("no YANG module has the namespace '{}'", element.namespace),
                )
                .with_info("bad-namespace", element.namespace.clone())
            };
            self.fail(error.with_info("bad-element", element.name.clone()));
            return;
        };
        let Some(node) = self.schema.top_node(&module, &element.name) else {
            self.fail(
                ConfigError::new(
                    ErrorTag::UnknownElement,
                    format!(
                        "module {} has no top-level node '{}'",
                        module.name(),
                        element.name
                    ),
                )
                .at(format!("/{}:{}", module.name(), element.name))
                .with_info("bad-element", element.name.clone()),
            );
            return;
        };
        self.apply_node(element, &node, "", inherited);
    }

    fn operation_of(
        &mut self,
        element: &Element,
        inherited: Operation,
        path: &str,
    ) -> Option<Operation> {
        let Some(raw) = element.attribute(NETCONF_BASE_NS, "operation") else {
            return Some(inherited);
        };
        match Operation::parse(raw) {
            Some(op) => Some(op),
            None => {
                self.fail(
                    ConfigError::protocol(ErrorTag::BadAttribute, format!("'{raw}' is not an edit operation (merge, replace, create, delete, remove)"))
                        .at(path)
                        .with_info("bad-attribute", "operation")
                        .with_info("bad-element", element.name.clone()),
                );
                None
            }
        }
    }

    fn apply_node(
        &mut self,
        element: &Element,
        node: &SchemaNode<'static>,
        parent_path: &str,
        inherited: Operation,
    ) {
        if self.stopped() {
            return;
        }
        let module_name = node.module().name().to_owned();
        let step = format!("{}/{}:{}", parent_path, module_name, node.name());
        if !node.is_config() {
            self.fail(
                ConfigError::new(
                    ErrorTag::InvalidValue,
                    format!(
                        "'{}' is state data (config false) and cannot be configured",
                        node.name()
                    ),
                )
                .at(step)
                .with_info("bad-element", element.name.clone()),
            );
            return;
        }
        let path = match node.kind() {
            SchemaNodeKind::List => match self.list_path(element, node, &step) {
                Some(p) => p,
                None => return,
            },
            SchemaNodeKind::LeafList => match predicate_value(element.text.as_str()) {
                Some(quoted) => format!("{step}[.={quoted}]"),
                None => {
                    self.fail(
                        ConfigError::new(ErrorTag::InvalidValue, "value contains both ' and \"")
                            .at(step),
                    );
                    return;
                }
            },
            _ => step,
        };
        let Some(op) = self.operation_of(element, inherited, &path) else {
            return;
        };
        let Some(insert) = self.insert_of(element, node, parent_path, &path, op) else {
            return;
        };
        let exists = self.tree.find_path(&path).is_ok();
        match node.kind() {
            SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
                self.apply_terminal(element, node, &path, op, exists, &module_name)
            }
            SchemaNodeKind::Container | SchemaNodeKind::List => {
                self.apply_inner(element, node, &path, op, exists, &module_name)
            }
            _ => self.fail(
                ConfigError::new(
                    ErrorTag::OperationNotSupported,
                    format!("'{}' cannot be edited", node.name()),
                )
                .at(path.clone()),
            ),
        }
        if let Some(insert) = insert {
            if !self.stopped() {
                self.move_entry(&path, &insert, exists, &module_name);
            }
        }
    }

    /// The `insert` attribute of an entry of a user-ordered list or
    /// leaf-list (with `key` or `value` for before/after). Some(None): none
    /// given; None: a fault, recorded.
    fn insert_of(
        &mut self,
        element: &Element,
        node: &SchemaNode<'static>,
        parent_path: &str,
        path: &str,
        op: Operation,
    ) -> Option<Option<Insert>> {
        let Some(raw) = element.attribute(YANG_NS, "insert") else {
            return Some(None);
        };
        let bad = |message: String| {
            ConfigError::protocol(ErrorTag::BadAttribute, message)
                .at(path)
                .with_info("bad-attribute", "insert")
                .with_info("bad-element", element.name.clone())
        };
        let ordered = matches!(node.kind(), SchemaNodeKind::List | SchemaNodeKind::LeafList)
            && node.is_user_ordered();
        if !ordered {
            self.fail(bad(format!(
                "'{}' is not ordered by the user: insert does not apply",
                node.name()
            )));
            return None;
        }
        if !matches!(
            op,
            Operation::Create | Operation::Merge | Operation::Replace
        ) {
            return Some(None);
        }
        let step = format!("{}/{}:{}", parent_path, node.module().name(), node.name());
        let anchor = || -> Option<String> {
            if node.kind() == SchemaNodeKind::List {
                // `[name='x']` or `[prefix:name='x']`: our paths name keys bare.
                let key = element.attribute(YANG_NS, "key")?;
                Some(format!("{step}{}", unprefixed_predicates(key)?))
            } else {
                let value = element.attribute(YANG_NS, "value")?;
                Some(format!("{step}[.={}]", predicate_value(value)?))
            }
        };
        let insert = match raw {
            "first" => Insert::First,
            "last" => Insert::Last,
            "before" | "after" => {
                let Some(at) = anchor() else {
                    let what = if node.kind() == SchemaNodeKind::List {
                        "key"
                    } else {
                        "value"
                    };
                    self.fail(
                        ConfigError::protocol(
                            ErrorTag::MissingAttribute,
                            format!("insert=\"{raw}\" needs a well-formed '{what}' attribute"),
                        )
                        .at(path)
                        .with_info("bad-attribute", what)
                        .with_info("bad-element", element.name.clone()),
                    );
                    return None;
                };
                if raw == "before" {
                    Insert::Before(at)
                } else {
                    Insert::After(at)
                }
            }
            other => {
                self.fail(bad(format!(
                    "'{other}' is not a place to insert (first, last, before, after)"
                )));
                return None;
            }
        };
        Some(Some(insert))
    }

    /// Moves the entry at `path` where `insert` says; an entry that was
    /// there before the edit gets its old place back on undo.
    fn move_entry(&mut self, path: &str, insert: &Insert, existed: bool, module: &str) {
        let Ok(node) = self.tree.find_path(path) else {
            return;
        };
        let instances = crate::libyang::instances_beside(self.tree, &node);
        let position = instances.iter().position(|n| n.as_raw() == node.as_raw());
        let previous = position
            .and_then(|i| i.checked_sub(1))
            .map(|i| instances[i].path());
        let anchor_of = |at: &str| self.tree.find_path(at).ok().map(|a| a.as_raw());
        let (anchor, before) = match insert {
            Insert::First => (instances.first().map(|n| n.as_raw()), true),
            Insert::Last => (instances.last().map(|n| n.as_raw()), false),
            Insert::Before(at) | Insert::After(at) => match anchor_of(at) {
                Some(a) => (Some(a), matches!(insert, Insert::Before(_))),
                None => {
                    self.fail(
                        ConfigError::protocol(
                            ErrorTag::BadAttribute,
                            "the entry to insert next to does not exist",
                        )
                        .at(at)
                        .with_app_tag("missing-instance")
                        .with_info("bad-attribute", "key"),
                    );
                    return;
                }
            },
        };
        let Some(anchor) = anchor.filter(|a| *a != node.as_raw()) else {
            return;
        };
        // SAFETY: both nodes are live siblings of this tree (same parent,
        // same schema node); libyang relinks `node` next to `anchor`.
        let result = unsafe {
            if before {
                yang2::ffi::lyd_insert_before(anchor, node.as_raw())
            } else {
                yang2::ffi::lyd_insert_after(anchor, node.as_raw())
            }
        };
        if result != yang2::ffi::LY_ERR::LY_SUCCESS {
            self.fail(
                ConfigError::new(ErrorTag::OperationFailed, "the entry cannot be moved").at(path),
            );
            return;
        }
        if existed {
            self.undo
                .steps
                .push(UndoStep::MoveBack(path.to_owned(), previous));
        }
        self.summary.record(module, path, "replace");
    }

    fn list_path(
        &mut self,
        element: &Element,
        node: &SchemaNode<'static>,
        step: &str,
    ) -> Option<String> {
        let mut path = step.to_owned();
        for key in node.list_keys() {
            let value = element.children.iter().find(|c| {
                c.name == key.name() && (c.namespace == element.namespace || c.namespace.is_empty())
            });
            let Some(value) = value else {
                self.fail(
                    ConfigError::protocol(
                        ErrorTag::MissingElement,
                        format!(
                            "list entry '{}' lacks its key '{}'",
                            node.name(),
                            key.name()
                        ),
                    )
                    .at(step)
                    .with_info("bad-element", key.name().to_owned()),
                );
                return None;
            };
            let Some(quoted) = predicate_value(&value.text) else {
                self.fail(
                    ConfigError::new(ErrorTag::InvalidValue, "key value contains both ' and \"")
                        .at(step),
                );
                return None;
            };
            path.push_str(&format!("[{}={}]", key.name(), quoted));
        }
        Some(path)
    }

    fn apply_terminal(
        &mut self,
        element: &Element,
        node: &SchemaNode<'static>,
        path: &str,
        op: Operation,
        exists: bool,
        module: &str,
    ) {
        if node.is_list_key() {
            // The key is already part of the entry's path; deleting it alone is meaningless.
            if matches!(op, Operation::Delete | Operation::Remove) {
                self.fail(
                    ConfigError::new(
                        ErrorTag::OperationNotSupported,
                        "a list key cannot be deleted on its own; delete the entry",
                    )
                    .at(path),
                );
            }
            return;
        }
        match op {
            Operation::None => {}
            Operation::Delete if !exists => self.fail(data_missing(path)),
            Operation::Delete | Operation::Remove => {
                if exists {
                    self.remove(path, module);
                }
            }
            Operation::Create if exists => self.fail(data_exists(path)),
            Operation::Create | Operation::Merge | Operation::Replace => {
                let value = leaf_value(element, node);
                let value = if node.kind() == SchemaNodeKind::LeafList {
                    None
                } else {
                    Some(value)
                };
                let leaf = (node.kind() == SchemaNodeKind::Leaf).then_some(node);
                // A new entry is checked alone only while nothing in it may
                // point outside it (validation_scope::list_entry_is_self_contained).
                if self.inside_new_entry > 0
                    && crate::validation_scope::refers_outside(
                        node.leaf_type().map(|t| t.base_type()),
                    )
                {
                    self.summary.needs_full_validation = true;
                }
                self.set(path, value.as_deref(), module, leaf);
            }
        }
    }

    fn apply_inner(
        &mut self,
        element: &Element,
        node: &SchemaNode<'static>,
        path: &str,
        op: Operation,
        exists: bool,
        module: &str,
    ) {
        let child_op = match op {
            Operation::Delete if !exists => {
                self.fail(data_missing(path));
                return;
            }
            Operation::Delete | Operation::Remove => {
                if exists {
                    self.remove(path, module);
                }
                return;
            }
            Operation::Create if exists => {
                self.fail(data_exists(path));
                return;
            }
            Operation::Create => {
                self.create_inner(node, path, module);
                Operation::Merge
            }
            Operation::Replace => {
                if exists {
                    self.remove(path, module);
                }
                self.set(path, None, module, None);
                Operation::Merge
            }
            Operation::Merge => {
                if !exists {
                    self.create_inner(node, path, module);
                }
                Operation::Merge
            }
            Operation::None => Operation::None,
        };
        let new_entry = self.summary.new_entries.last().is_some_and(|e| e == path);
        if new_entry {
            self.inside_new_entry += 1;
        }
        for child in &element.children {
            if self.stopped() {
                break;
            }
            let child_module = if child.namespace.is_empty() || child.namespace == element.namespace
            {
                Some(module.to_owned())
            } else {
                self.schema
                    .module_by_namespace(&child.namespace)
                    .map(|m| m.name().to_owned())
            };
            let Some(child_module) = child_module else {
                self.fail(
                    ConfigError::protocol(
                        ErrorTag::UnknownNamespace,
                        format!("no YANG module has the namespace '{}'", child.namespace),
                    )
                    .at(path)
                    .with_info("bad-namespace", child.namespace.clone())
                    .with_info("bad-element", child.name.clone()),
                );
                continue;
            };
            match data_child(node, &child_module, &child.name) {
                Some(child_node) => self.apply_node(child, &child_node, path, child_op),
                None => self.fail(
                    ConfigError::new(
                        ErrorTag::UnknownElement,
                        format!("'{}' has no child '{}'", node.name(), child.name),
                    )
                    .at(format!("{path}/{child_module}:{}", child.name))
                    .with_info("bad-element", child.name.clone()),
                ),
            }
        }
        if new_entry {
            self.inside_new_entry -= 1;
        }
    }

    /// Create a container or list entry. A new list entry that can be checked
    /// on its own is recorded as such instead of asking for full validation.
    fn create_inner(&mut self, node: &SchemaNode<'static>, path: &str, module: &str) {
        let self_contained = node.kind() == SchemaNodeKind::List
            && self.inside_new_entry == 0
            && crate::validation_scope::list_entry_is_self_contained(node);
        if !self_contained {
            self.set(path, None, module, None);
            return;
        }
        let errors_before = self.errors.len();
        self.inside_new_entry += 1;
        self.set(path, None, module, None);
        self.inside_new_entry -= 1;
        if self.errors.len() == errors_before {
            self.summary.new_entries.push(path.to_owned());
        }
    }

    /// Create or update the node at `path`. `leaf` is given for leaves, so a
    /// pure value update can tell whether it needs full validation later.
    fn set(
        &mut self,
        path: &str,
        value: Option<&str>,
        module: &str,
        leaf: Option<&SchemaNode<'static>>,
    ) {
        let step = match self.tree.find_path(path) {
            Err(_) => Some(UndoStep::Remove(path.to_owned())),
            // An implicit default leaf goes back to being implicit.
            Ok(node) if is_implicit_default(&node) => Some(UndoStep::Remove(path.to_owned())),
            Ok(node) => node
                .value_canonical()
                .map(|old| UndoStep::SetValue(path.to_owned(), old)),
        };
        match self.tree.new_path(path, value, false) {
            Ok(_) => {
                let operation = if matches!(step, Some(UndoStep::SetValue(..))) {
                    "replace"
                } else {
                    "create"
                };
                let harmless_update = operation == "replace"
                    && leaf.is_some_and(|l| {
                        crate::validation_scope::update_needs_no_full_validation(
                            l.name(),
                            l.leaf_type().map(|t| t.base_type()),
                        )
                    });
                if !harmless_update && self.inside_new_entry == 0 {
                    self.summary.needs_full_validation = true;
                }
                self.undo.steps.extend(step);
                self.summary.record(module, path, operation);
            }
            Err(e) => {
                let message = e.msg.clone().unwrap_or_else(|| "invalid value".into());
                self.fail(ConfigError::new(ErrorTag::InvalidValue, message).at(path));
            }
        }
    }

    fn remove(&mut self, path: &str, module: &str) {
        self.keep_other_default_values(path);
        let backup = self
            .tree
            .find_path(path)
            .ok()
            .and_then(|node| node.duplicate(true).ok());
        match crate::libyang::remove_path(self.tree, path) {
            Ok(()) => {
                self.undo.steps.extend(backup.map(UndoStep::Restore));
                self.summary.needs_full_validation = true;
                self.summary.record(module, path, "delete");
            }
            Err(e) => self.fail(
                ConfigError::new(ErrorTag::OperationFailed, crate::schema::describe(&e)).at(path),
            ),
        }
    }
}

impl Editor<'_> {
    /// Deleting one value of a leaf-list that holds only its YANG defaults
    /// means "these defaults minus that one": the other values become
    /// explicit, or they would be dropped from running.xml (explicit mode) and
    /// the deleted value would come back at the next start.
    fn keep_other_default_values(&mut self, path: &str) {
        let Ok(node) = self.tree.find_path(path) else {
            return;
        };
        if node.schema().kind() != SchemaNodeKind::LeafList || !is_implicit_default(&node) {
            return;
        }
        let mut marked = Vec::new();
        for sibling in crate::libyang::instances_beside(self.tree, &node) {
            if is_implicit_default(&sibling) {
                marked.push(sibling.path());
                set_default_flag(&sibling, false);
            }
        }
        for ancestor in node.ancestors() {
            set_default_flag(&ancestor, false);
        }
        self.undo
            .steps
            .extend(marked.into_iter().map(UndoStep::MarkDefault));
    }
}

/// A key predicate string (`[name='x'][p:id="y"]`) with the prefixes of
/// the key names dropped; None when it is not one.
fn unprefixed_predicates(key: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = key.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let (name, after) = inner.split_once('=')?;
        let name = name.trim();
        let name = name.rsplit_once(':').map_or(name, |(_, n)| n);
        let after = after.trim_start();
        let quote = after.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let (value, tail) = after[1..].split_once(quote)?;
        let tail = tail.trim_start().strip_prefix(']')?;
        out.push_str(&format!("[{name}={}]", predicate_value(value)?));
        rest = tail.trim_start();
    }
    (!out.is_empty()).then_some(out)
}

fn data_missing(path: &str) -> ConfigError {
    ConfigError::new(ErrorTag::DataMissing, "the data to delete does not exist").at(path)
}

fn data_exists(path: &str) -> ConfigError {
    ConfigError::new(ErrorTag::DataExists, "the data to create already exists").at(path)
}

/// Quote a value for a libyang path predicate.
pub fn predicate_value(value: &str) -> Option<String> {
    if !value.contains('\'') {
        Some(format!("'{value}'"))
    } else if !value.contains('"') {
        Some(format!("\"{value}\""))
    } else {
        None
    }
}

/// The value to give libyang for a leaf element, translating XML prefixes of
/// identityref values into the module names libyang's JSON-style API expects.
fn leaf_value(element: &Element, node: &SchemaNode<'static>) -> String {
    let text = element.text.as_str();
    // NACM rule paths as printed in running.xml/history carry XML prefixes.
    if node.name() == "path" && node.module().name() == "ietf-netconf-acm" {
        let module_of = |prefix: &str| {
            let ns = &element
                .namespace_declarations
                .iter()
                .find(|(p, _)| p == prefix)?
                .1;
            Some(
                Schema::get()
                    .ok()?
                    .module_by_namespace(ns)?
                    .name()
                    .to_owned(),
            )
        };
        return crate::secrets::json_path(text.trim(), &module_of);
    }
    let is_identityref = node
        .leaf_type()
        .is_some_and(|t| t.base_type() == DataValueType::IdentityRef);
    if is_identityref {
        if let Some((prefix, name)) = text.trim().split_once(':') {
            let ns = element
                .namespace_declarations
                .iter()
                .find(|(p, _)| p == prefix)
                .map(|(_, ns)| ns.clone());
            if let Some(module) =
                ns.and_then(|ns| Schema::get().ok().and_then(|s| s.module_by_namespace(&ns)))
            {
                return format!("{}:{}", module.name(), name);
            }
        }
        return text.trim().to_owned();
    }
    text.to_owned()
}
