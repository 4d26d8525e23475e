//! Words of a command line resolved against the YANG schema: `pbx extension
//! 100 password s3cret` -> container `pbx`, list `extension` with key `100`,
//! leaf `password` = `s3cret`. Nothing here is hand-written per node.

use super::ShellError;
use besip_core::schema::Schema;
use besip_core::uci_map::data_children;
use yang2::schema::{DataValueType, SchemaNode, SchemaNodeKind};

/// One resolved step of a path.
#[derive(Clone)]
pub enum Step {
    Container(SchemaNode<'static>),
    /// A list entry: the list node and its key values in key order.
    Entry(SchemaNode<'static>, Vec<String>),
    /// A whole list (no keys given; only valid at the end of a path).
    List(SchemaNode<'static>),
    /// A leaf or leaf-list, with its value when one was given.
    Leaf(SchemaNode<'static>, Option<String>),
}

impl Step {
    pub fn node(&self) -> &SchemaNode<'static> {
        match self {
            Step::Container(n) | Step::Entry(n, _) | Step::List(n) | Step::Leaf(n, _) => n,
        }
    }
}

/// Which nodes a command may walk through.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Scope {
    /// Configuration nodes only (`set`, `delete`, `show configuration`).
    Config,
    /// Configuration and state (`show <top> ...` operational).
    All,
}

fn schema() -> Result<&'static Schema, ShellError> {
    Schema::get().map_err(|e| ShellError::Usage {
        message: format!("the YANG schema does not load: {e}"),
    })
}

/// The top containers of the besip modules (`system`, `pbx`, ...).
pub fn top_nodes() -> Vec<SchemaNode<'static>> {
    let Ok(schema) = schema() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for info in schema.besip_modules() {
        if let Some(module) = schema.module_by_name(&info.name) {
            out.extend(
                module
                    .data()
                    .filter(|n| n.kind() == SchemaNodeKind::Container),
            );
        }
    }
    out
}

fn visible(node: &SchemaNode<'static>, scope: Scope) -> bool {
    scope == Scope::All || node.is_config()
}

/// Children a user may name after `node` (keys of a list entry excluded).
pub fn child_nodes(node: &SchemaNode<'static>, scope: Scope) -> Vec<SchemaNode<'static>> {
    data_children(node)
        .into_iter()
        .filter(|c| visible(c, scope) && !c.is_list_key())
        .collect()
}

/// Enumeration values of a leaf's type, with their descriptions.
pub fn enum_values(node: &SchemaNode<'static>) -> Vec<(String, String)> {
    let Some(ty) = node.leaf_type() else {
        return Vec::new();
    };
    let ty = if ty.base_type() == DataValueType::LeafRef {
        match ty.leafref_real_type() {
            Some(t) => t,
            None => return Vec::new(),
        }
    } else {
        ty
    };
    match ty.base_type() {
        DataValueType::Bool => vec![
            ("true".into(), String::new()),
            ("false".into(), String::new()),
        ],
        DataValueType::Enum => {
            let mut out = Vec::new();
            // SAFETY: the schema lives for the whole process; a libyang sized
            // array keeps its length (u64) just before its first item.
            unsafe {
                let raw = ty.as_raw() as *const yang2::ffi::lysc_type_enum;
                let items = (*raw).enums;
                if items.is_null() {
                    return out;
                }
                let count = *(items as *const u64).offset(-1);
                for i in 0..count as usize {
                    let item = &*items.add(i);
                    out.push((cstr(item.name), cstr(item.dsc)));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libyang strings are NUL-terminated and live with the context.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// A node's description on one line (for help and completion).
pub fn summary(node: &SchemaNode<'static>) -> String {
    let text = node.description().unwrap_or("");
    let one: Vec<&str> = text.split_whitespace().collect();
    let mut s = one.join(" ");
    if let Some(end) = s.find(". ") {
        s.truncate(end + 1);
    }
    s
}

/// Suggestions for a misspelt word: close names first, else all of them.
pub fn suggest(word: &str, names: &[String]) -> String {
    let mut close: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(word) || edit_distance(word, n) <= 2.max(word.len() / 3))
        .collect();
    if close.is_empty() {
        close = names.iter().collect();
    }
    close
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev[j - 2.min(j)] + 1);
            }
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown(word: &str, after: &str, names: Vec<String>) -> ShellError {
    let place = if after.is_empty() {
        String::new()
    } else {
        format!(" after '{after}'")
    };
    ShellError::Command {
        message: format!(
            "unknown word '{word}'{place}; did you mean: {}?",
            suggest(word, &names)
        ),
    }
}

/// Resolve `words` into steps. `need_value`: a final leaf must carry a value
/// (`set`); otherwise the value is optional (`delete`, `show`).
pub fn resolve(words: &[String], scope: Scope, need_value: bool) -> Result<Vec<Step>, ShellError> {
    let mut steps: Vec<Step> = Vec::new();
    let mut i = 0;
    let Some(first) = words.first() else {
        return Ok(steps);
    };
    let tops = top_nodes();
    let top = tops
        .iter()
        .find(|n| n.name() == first)
        .cloned()
        .ok_or_else(|| {
            unknown(
                first,
                "",
                tops.iter().map(|n| n.name().to_owned()).collect(),
            )
        })?;
    steps.push(Step::Container(top));
    i += 1;
    while i < words.len() {
        let parent = steps.last().map(|s| s.node().clone());
        let Some(parent) = parent else { break };
        if matches!(steps.last(), Some(Step::Leaf(..))) {
            return Err(ShellError::Command {
                message: format!(
                    "unexpected word '{}' after the value of '{}'",
                    words[i],
                    parent.name()
                ),
            });
        }
        let word = &words[i];
        let children = child_nodes(&parent, scope);
        let Some(child) = children.iter().find(|c| c.name() == word).cloned() else {
            return Err(unknown(
                word,
                &words[i - 1],
                children.iter().map(|c| c.name().to_owned()).collect(),
            ));
        };
        i += 1;
        match child.kind() {
            SchemaNodeKind::List => {
                let keys: Vec<SchemaNode<'static>> = child.list_keys().collect();
                if i >= words.len() {
                    steps.push(Step::List(child));
                    continue;
                }
                if i + keys.len() > words.len() {
                    let names: Vec<&str> = keys.iter().map(|k| k.name()).collect();
                    return Err(ShellError::Command {
                        message: format!(
                            "'{}' needs its key{} {} after it",
                            child.name(),
                            if keys.len() > 1 { "s" } else { "" },
                            names.join(" ")
                        ),
                    });
                }
                let values = words[i..i + keys.len()].to_vec();
                i += keys.len();
                steps.push(Step::Entry(child, values));
            }
            SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
                let is_empty_type = child
                    .leaf_type()
                    .map(|t| t.base_type() == DataValueType::Empty)
                    .unwrap_or(false);
                if i < words.len() {
                    steps.push(Step::Leaf(child, Some(words[i].clone())));
                    i += 1;
                } else if need_value && !is_empty_type {
                    return Err(ShellError::Command {
                        message: format!(
                            "'{}' needs a value: {}",
                            child.name(),
                            value_hint(&child)
                        ),
                    });
                } else {
                    steps.push(Step::Leaf(child, None));
                }
            }
            _ => steps.push(Step::Container(child)),
        }
    }
    Ok(steps)
}

/// What a leaf accepts, for messages and `?` help.
pub fn value_hint(node: &SchemaNode<'static>) -> String {
    let enums = enum_values(node);
    if !enums.is_empty() {
        let names: Vec<&str> = enums.iter().map(|(n, _)| n.as_str()).collect();
        return format!("one of {}", names.join(", "));
    }
    let ty = node
        .leaf_type()
        .and_then(|t| t.typedef_name())
        .unwrap_or_else(|| "value".into());
    format!("<{ty}>")
}
