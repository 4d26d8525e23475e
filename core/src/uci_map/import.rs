//! UCI package -> YANG tree (`besip import`): every section and option
//! finds its schema node by the same naming rule the renderer uses; a fault
//! names the file, the line and the YANG path.

use super::{data_children, uci_name};
use crate::edit::predicate_value;
use crate::schema::ModuleInfo;
use crate::uci::Package;
use std::collections::HashMap;
use yang2::data::DataTree;
use yang2::schema::{DataValueType, SchemaNode, SchemaNodeKind};

/// An import fault: the file, the line, and the YANG path it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciImportError {
    pub file: String,
    pub line: usize,
    pub yang_path: String,
    pub message: String,
}

impl std::fmt::Display for UciImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} (YANG path {})",
            self.file, self.line, self.message, self.yang_path
        )
    }
}

impl std::error::Error for UciImportError {}

/// Where a UCI option or section type lands in the schema.
enum Target {
    Leaf(SchemaNode<'static>),
    LeafList(SchemaNode<'static>),
}

/// Option name -> target, for the options of one section (leaves of a
/// container or list entry, with inner containers flattened).
fn option_targets(
    node: &SchemaNode<'static>,
    prefix: &str,
    relative: &str,
    out: &mut HashMap<String, (String, Target)>,
) {
    for child in data_children(node) {
        if !child.is_config() {
            continue;
        }
        let name = uci_name(child.name());
        let step = format!("{relative}/{}", child.name());
        match child.kind() {
            SchemaNodeKind::Leaf => {
                out.insert(format!("{prefix}{name}"), (step, Target::Leaf(child)));
            }
            SchemaNodeKind::LeafList => {
                out.insert(format!("{prefix}{name}"), (step, Target::LeafList(child)));
            }
            SchemaNodeKind::Container => {
                option_targets(&child, &format!("{prefix}{name}_"), &step, out)
            }
            _ => {}
        }
    }
}

/// Section type -> (list schema node, schema path from the top container with
/// containers in between, parent list's section type).
fn list_types(
    node: &SchemaNode<'static>,
    type_prefix: &str,
    relative: &str,
    parent_type: Option<&str>,
    out: &mut HashMap<String, (SchemaNode<'static>, String, Option<String>)>,
) {
    for child in data_children(node) {
        if !child.is_config() {
            continue;
        }
        let name = uci_name(child.name());
        let step = format!("{relative}/{}", child.name());
        match child.kind() {
            SchemaNodeKind::Container => list_types(
                &child,
                &format!("{type_prefix}{name}_"),
                &step,
                parent_type,
                out,
            ),
            SchemaNodeKind::List => {
                let section_type = format!("{type_prefix}{name}");
                list_types(
                    &child,
                    &format!("{section_type}_"),
                    "",
                    Some(&section_type),
                    out,
                );
                out.insert(section_type, (child, step, parent_type.map(str::to_owned)));
            }
            _ => {}
        }
    }
}

fn yang_value(target: &SchemaNode<'static>, raw: &str) -> Option<String> {
    match target.leaf_type().map(|t| t.base_type()) {
        Some(DataValueType::Bool) => crate::uci::parse_bool(raw).map(|b| b.to_string()),
        Some(DataValueType::Empty) => Some(String::new()),
        _ => Some(raw.to_owned()),
    }
}

/// Build a module's configuration from its UCI package into `tree` (which
/// should not hold that module's data yet). `lines` records YANG path -> line
/// so that a later validation error can be traced back to the file.
pub fn import_package(
    tree: &mut DataTree<'static>,
    package: &Package,
    module: &ModuleInfo,
    lines: &mut HashMap<String, usize>,
) -> Result<(), UciImportError> {
    let schema = crate::schema::Schema::get().map_err(|e| UciImportError {
        file: package.name.clone(),
        line: 0,
        yang_path: String::new(),
        message: e.to_string(),
    })?;
    let Some(schema_module) = schema.module_by_name(&module.name) else {
        return Err(UciImportError {
            file: package.name.clone(),
            line: 0,
            yang_path: String::new(),
            message: format!("module {} is not loaded", module.name),
        });
    };
    let tops: Vec<SchemaNode<'static>> = schema_module
        .data()
        .filter(|n| n.kind() == SchemaNodeKind::Container)
        .collect();
    let top_by_type: HashMap<String, &SchemaNode<'static>> =
        tops.iter().map(|t| (uci_name(t.name()), t)).collect();
    let mut lists = HashMap::new();
    let mut top_of_list = HashMap::new();
    for top in &tops {
        let mut found = HashMap::new();
        list_types(top, "", "", None, &mut found);
        for (ty, entry) in found {
            top_of_list.insert(ty.clone(), top.name().to_owned());
            lists.insert(ty, entry);
        }
    }
    // Keys of every list entry seen, by section type and parent key value, to resolve nested lists.
    let mut entry_paths: HashMap<(String, String), String> = HashMap::new();
    for section in &package.sections {
        let fault = |line: usize, yang_path: &str, message: String| UciImportError {
            file: section.file.clone(),
            line,
            yang_path: yang_path.to_owned(),
            message,
        };
        let (base_path, targets_of) = if let Some(top) = top_by_type.get(&section.kind) {
            (format!("/{}:{}", module.name, top.name()), (*top).clone())
        } else if let Some((list, relative, parent_type)) = lists.get(&section.kind) {
            let top_name = top_of_list.get(&section.kind).cloned().unwrap_or_default();
            let parent_path = match parent_type {
                None => format!("/{}:{}", module.name, top_name),
                Some(pt) => {
                    let parent_key = section.get(&uci_name(pt)).unwrap_or_default();
                    let Some(p) = entry_paths.get(&(pt.clone(), parent_key.to_owned())) else {
                        return Err(fault(section.line, "", format!("section '{}' names parent {pt} '{parent_key}', which is not defined before it", section.name)));
                    };
                    p.clone()
                }
            };
            let mut path = format!("{parent_path}{relative}");
            let mut key_values = Vec::new();
            for key in list.list_keys() {
                let Some(value) = section.get(&uci_name(key.name())) else {
                    return Err(fault(
                        section.line,
                        &path,
                        format!(
                            "section '{}' lacks its key option '{}'",
                            section.name,
                            uci_name(key.name())
                        ),
                    ));
                };
                let Some(quoted) = predicate_value(value) else {
                    return Err(fault(
                        section.line,
                        &path,
                        "key value contains both ' and \"".into(),
                    ));
                };
                path.push_str(&format!("[{}={quoted}]", key.name()));
                key_values.push(value.to_owned());
            }
            if let Err(e) = tree.new_path(&path, None, false) {
                return Err(fault(section.line, &path, crate::schema::describe(&e)));
            }
            lines.insert(path.clone(), section.line);
            entry_paths.insert((section.kind.clone(), key_values.join(" ")), path.clone());
            (path, list.clone())
        } else {
            return Err(fault(
                section.line,
                "",
                format!(
                    "section type '{}' is not part of module {}",
                    section.kind, module.name
                ),
            ));
        };
        let mut targets = HashMap::new();
        option_targets(&targets_of, "", "", &mut targets);
        let parent_option = lists
            .get(&section.kind)
            .and_then(|(_, _, p)| p.as_ref())
            .map(|p| uci_name(p));
        for option in &section.options {
            if parent_option.as_deref() == Some(option.name.as_str()) {
                continue;
            }
            let Some((relative, target)) = targets.get(&option.name) else {
                return Err(fault(
                    option.line,
                    &base_path,
                    format!("option '{}' is not part of {}", option.name, section.kind),
                ));
            };
            let (node, is_list) = match target {
                Target::Leaf(n) => (n, false),
                Target::LeafList(n) => (n, true),
            };
            if node.is_list_key() {
                continue;
            }
            let leaf_path = format!("{base_path}{relative}");
            for raw in &option.values {
                let Some(value) = yang_value(node, raw) else {
                    return Err(fault(
                        option.line,
                        &leaf_path,
                        format!("'{raw}' is not a boolean (use 1 or 0)"),
                    ));
                };
                let result = if is_list {
                    let Some(quoted) = predicate_value(&value) else {
                        return Err(fault(
                            option.line,
                            &leaf_path,
                            "value contains both ' and \"".into(),
                        ));
                    };
                    tree.new_path(&format!("{leaf_path}[.={quoted}]"), None, false)
                        .map(|_| ())
                } else {
                    tree.new_path(&leaf_path, Some(&value), false).map(|_| ())
                };
                if let Err(e) = result {
                    return Err(fault(
                        option.line,
                        &leaf_path,
                        e.msg.clone().unwrap_or_else(|| "invalid value".into()),
                    ));
                }
                lines.insert(leaf_path.clone(), option.line);
            }
        }
    }
    Ok(())
}

/// The line that best matches a libyang error path: the longest recorded prefix.
pub fn line_for_path(lines: &HashMap<String, usize>, path: &str) -> usize {
    let mut best = (0usize, 0usize);
    for (recorded, line) in lines {
        if path.starts_with(recorded.as_str()) && recorded.len() > best.0 {
            best = (recorded.len(), *line);
        }
    }
    best.1
}
