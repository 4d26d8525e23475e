//! The one generic YANG <-> UCI rule (DESIGN.md §4, pinned in docs/CONTRACTS.md).
//! No per-module code: a new leaf in YANG flows to UCI and back unchanged.

use crate::edit::predicate_value;
use crate::render_cache::{Dirty, EntryTexts, IdentityHash};
use crate::schema::ModuleInfo;
use crate::uci::Package;
use std::collections::HashMap;
use yang2::data::{DataNodeRef, DataTree};
use yang2::schema::{DataValueType, SchemaNode, SchemaNodeKind};

/// YANG identifier -> UCI name (`-` and `.` become `_`).
pub fn uci_name(identifier: &str) -> String {
    identifier.replace(['-', '.'], "_")
}

/// Reversible escaping of a key value into a UCI section name fragment:
/// `[A-Za-z0-9]` stay, every other byte becomes `_` + two hex digits.
pub fn escape_key(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

pub fn unescape_key(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Children that carry data, looking through choices and cases.
pub fn data_children(node: &SchemaNode<'static>) -> Vec<SchemaNode<'static>> {
    let mut out = Vec::new();
    for child in node.children() {
        match child.kind() {
            SchemaNodeKind::Choice | SchemaNodeKind::Case => out.extend(data_children(&child)),
            SchemaNodeKind::Rpc | SchemaNodeKind::Action | SchemaNodeKind::Notification => {}
            _ => out.push(child),
        }
    }
    out
}

/// Render one besip module's configuration (with defaults) as its UCI package
/// (the text renderer's output, parsed: one implementation of the rule).
pub fn render_module(tree: &DataTree<'static>, module: &ModuleInfo) -> Package {
    let text = TextRenderer::new().render(tree, module);
    let name = module
        .uci_package()
        .unwrap_or_else(|| uci_name(&module.name));
    // The renderer only writes valid names and quoted values, so this parses;
    // an empty package stands in should that ever not hold.
    Package::parse(&name, &text).unwrap_or_else(|e| {
        tracing::error!(error = %e, "rendered UCI text does not parse");
        Package::new(&name)
    })
}

/// The cached entries a render may reuse, and those it leaves for the next.
struct Reuse<'a> {
    entries: &'a mut EntryTexts,
    dirty: &'a Dirty,
}

/// What the text renderer needs to know of a schema node, computed once per node.
struct NodeFacts {
    /// Option name with container prefixes (leaves), or section type (lists),
    /// or the prefix contribution (containers). Shared: cloned for every node rendered.
    name: std::sync::Arc<str>,
    kind: SchemaNodeKind,
    config: bool,
    base: Option<DataValueType>,
}

/// Renders UCI text straight from the tree: the same output as
/// `render_module(..).render()`, several times faster at 10,000 list entries
/// because names are computed once per schema node, not once per data node.
pub struct TextRenderer {
    facts: HashMap<usize, NodeFacts, IdentityHash>,
}

impl Default for TextRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl TextRenderer {
    pub fn new() -> Self {
        TextRenderer {
            facts: HashMap::default(),
        }
    }

    fn facts(&mut self, schema: &SchemaNode<'_>, prefix: &str) -> &NodeFacts {
        let key = schema.as_raw() as usize;
        self.facts.entry(key).or_insert_with(|| NodeFacts {
            name: format!("{prefix}{}", uci_name(schema.name())).into(),
            kind: schema.kind(),
            config: schema.is_config(),
            base: schema.leaf_type().map(|t| t.base_type()),
        })
    }

    pub fn render(&mut self, tree: &DataTree<'static>, module: &ModuleInfo) -> String {
        self.render_with(tree, module, None)
    }

    /// Render reusing the cached text of top-level list entries that `dirty`
    /// does not name (render_cache.rs); `cache` ends up holding exactly the
    /// entries of this render.
    pub fn render_cached(
        &mut self,
        tree: &DataTree<'static>,
        module: &ModuleInfo,
        cache: &mut EntryTexts,
        dirty: &Dirty,
    ) -> String {
        cache.begin();
        let mut reuse = Reuse {
            entries: cache,
            dirty,
        };
        let text = self.render_with(tree, module, Some(&mut reuse));
        cache.finish();
        text
    }

    fn render_with(
        &mut self,
        tree: &DataTree<'static>,
        module: &ModuleInfo,
        mut reuse: Option<&mut Reuse<'_>>,
    ) -> String {
        let package_name = module
            .uci_package()
            .unwrap_or_else(|| uci_name(&module.name));
        let mut out = String::with_capacity(1 << 16);
        out.push_str("package ");
        push_quoted(&mut out, &package_name);
        out.push('\n');
        let Some(first) = tree.reference() else {
            return out;
        };
        for top in first.inclusive_siblings() {
            let schema = top.schema();
            if schema.module().name() != module.name
                || schema.kind() != SchemaNodeKind::Container
                || !schema.is_config()
            {
                continue;
            }
            let mut lists = String::new();
            out.push_str("\nconfig ");
            out.push_str(&uci_name(schema.name()));
            out.push_str(" 'main'\n");
            self.children(
                &top,
                "",
                "",
                None,
                &mut out,
                &mut lists,
                reuse.as_deref_mut(),
            );
            out.push_str(&lists);
        }
        out
    }

    /// Write the options of `node` into `section_text` and its list entries into `lists`.
    fn children(
        &mut self,
        node: &DataNodeRef<'_, 'static>,
        option_prefix: &str,
        type_prefix: &str,
        parent: Option<(&str, &str, &str)>,
        section_text: &mut String,
        lists: &mut String,
        mut reuse: Option<&mut Reuse<'_>>,
    ) {
        for child in node.children() {
            let schema = child.schema();
            let (kind, config, base, name) = {
                let prefix = if schema.kind() == SchemaNodeKind::List {
                    type_prefix
                } else {
                    option_prefix
                };
                let f = self.facts(&schema, prefix);
                (f.kind, f.config, f.base, f.name.clone())
            };
            if !config {
                continue;
            }
            match kind {
                SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
                    section_text.push_str(if kind == SchemaNodeKind::Leaf {
                        "\toption "
                    } else {
                        "\tlist "
                    });
                    section_text.push_str(&name);
                    section_text.push(' ');
                    match base {
                        Some(DataValueType::Bool) => section_text.push_str(
                            if child.value_canonical().as_deref() == Some("true") {
                                "'1'"
                            } else {
                                "'0'"
                            },
                        ),
                        Some(DataValueType::Empty) => section_text.push_str("'1'"),
                        _ => {
                            push_quoted(section_text, &child.value_canonical().unwrap_or_default())
                        }
                    }
                    section_text.push('\n');
                }
                SchemaNodeKind::Container => {
                    let option_prefix = format!("{option_prefix}{}_", uci_name(schema.name()));
                    let type_prefix = format!("{type_prefix}{}_", uci_name(schema.name()));
                    self.children(
                        &child,
                        &option_prefix,
                        &type_prefix,
                        parent,
                        section_text,
                        lists,
                        reuse.as_deref_mut(),
                    );
                }
                SchemaNodeKind::List => {
                    if let Some(reuse) = reuse.as_deref_mut() {
                        if let Some(text) = reuse.entries.reuse(&child, reuse.dirty) {
                            lists.push_str(text);
                            continue;
                        }
                    }
                    let keys: Vec<String> = child
                        .list_keys()
                        .map(|k| k.value_canonical().unwrap_or_default())
                        .collect();
                    let escaped = keys
                        .iter()
                        .map(|k| escape_key(k))
                        .collect::<Vec<_>>()
                        .join("__");
                    let section_name = match parent {
                        Some((_, parent_section, _)) => format!("{parent_section}__{escaped}"),
                        None => format!("{name}_{escaped}"),
                    };
                    let mut entry = String::with_capacity(128);
                    entry.push_str("\nconfig ");
                    entry.push_str(&name);
                    entry.push(' ');
                    push_quoted(&mut entry, &section_name);
                    entry.push('\n');
                    if let Some((parent_type, _, parent_key)) = parent {
                        entry.push_str("\toption ");
                        entry.push_str(parent_type);
                        entry.push(' ');
                        push_quoted(&mut entry, parent_key);
                        entry.push('\n');
                    }
                    let key_value = keys.join(" ");
                    let mut nested = String::new();
                    self.children(
                        &child,
                        "",
                        &format!("{name}_"),
                        Some((&name, &section_name, &key_value)),
                        &mut entry,
                        &mut nested,
                        None,
                    );
                    lists.push_str(&entry);
                    lists.push_str(&nested);
                    if let Some(reuse) = reuse.as_deref_mut() {
                        if parent.is_none() {
                            entry.push_str(&nested);
                            reuse.entries.store(&child, entry);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn push_quoted(out: &mut String, value: &str) {
    out.push('\'');
    if value.contains('\'') {
        out.push_str(&value.replace('\'', "'\\''"));
    } else {
        out.push_str(value);
    }
    out.push('\'');
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_escaping_round_trips() {
        for key in ["100", "sip:10.0.0.1:5060", "a_b", "192.168.1.0/24", "Ü"] {
            let escaped = escape_key(key);
            assert!(crate::uci::is_valid_name(&escaped), "{escaped}");
            assert_eq!(unescape_key(&escaped).as_deref(), Some(key));
        }
        assert_eq!(escape_key("a_b"), "a_5fb");
    }
}
