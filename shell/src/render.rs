//! From resolved paths to NETCONF XML, and from configuration XML back to
//! set-style lines (`set pbx extension 100 password s3cret`).

use super::path::Step;
use super::ShellError;
use besip_core::schema::{data_child, Schema};
use besip_core::xml::{escape, Element};
use yang2::schema::{SchemaNode, SchemaNodeKind};

pub const NC_NS: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";

/// Split a command line into words: double or single quotes group, a
/// backslash escapes inside double quotes, an unquoted `|` is its own word
/// (returned as `None` so a quoted "|" stays a value).
pub fn split_words(line: &str) -> Result<Vec<Option<String>>, ShellError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '|' {
            chars.next();
            out.push(None);
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '|' {
                break;
            }
            chars.next();
            match c {
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => word.push(e),
                            None => return unterminated(),
                        },
                        Some(ch) => word.push(ch),
                        None => return unterminated(),
                    }
                },
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return unterminated(),
                    }
                },
                _ => word.push(c),
            }
        }
        out.push(Some(word));
    }
    Ok(out)
}

fn unterminated<T>() -> Result<T, ShellError> {
    Err(ShellError::Command {
        message: "unterminated quote: close it with the same quote character".into(),
    })
}

/// Quote a word for a set-style line when it needs it.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\' | '|'));
    if plain {
        return value.to_owned();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn open(out: &mut String, node: &SchemaNode<'static>, parent_ns: &str, attrs: &str) {
    let ns = node.module().namespace().to_owned();
    out.push('<');
    out.push_str(node.name());
    if ns != parent_ns {
        out.push_str(&format!(" xmlns=\"{}\"", escape(&ns)));
    }
    out.push_str(attrs);
    out.push('>');
}

/// XML for a path. `operation`: an `nc:operation` put on the last node;
/// `with_values`: leaf values are written (edits) or left out (filters).
pub fn steps_to_xml(steps: &[Step], operation: Option<&str>, with_values: bool) -> String {
    let mut out = String::new();
    let mut closes: Vec<String> = Vec::new();
    let mut parent_ns = String::new();
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let attrs = match (last, operation) {
            (true, Some(op)) => format!(" xmlns:nc=\"{NC_NS}\" nc:operation=\"{op}\""),
            _ => String::new(),
        };
        let node = step.node();
        open(&mut out, node, &parent_ns, &attrs);
        let ns = node.module().namespace().to_owned();
        match step {
            Step::Entry(list, values) => {
                for (key, value) in list.list_keys().zip(values) {
                    out.push_str(&format!("<{0}>{1}</{0}>", key.name(), escape(value)));
                }
            }
            Step::Leaf(_, Some(value))
                if with_values || node.kind() == SchemaNodeKind::LeafList =>
            {
                out.push_str(&escape(value));
            }
            _ => {}
        }
        closes.push(format!("</{}>", node.name()));
        parent_ns = ns;
    }
    while let Some(c) = closes.pop() {
        out.push_str(&c);
    }
    out
}

fn module_name(namespace: &str) -> Option<String> {
    let schema = Schema::get().ok()?;
    schema
        .module_by_namespace(namespace)
        .map(|m| m.name().to_owned())
}

/// Schema node of a top-level element.
fn top_node(element: &Element) -> Option<SchemaNode<'static>> {
    let schema = Schema::get().ok()?;
    let module = schema.module_by_namespace(&element.namespace)?;
    schema.top_node(&module, &element.name)
}

/// Set-style lines (without the `set ` prefix) of data elements: one line per
/// leaf value, one per empty container or list entry.
pub fn data_lines(elements: &[Element]) -> Vec<String> {
    let mut out = Vec::new();
    for element in elements {
        match top_node(element) {
            Some(node) => walk(element, &node, element.name.clone(), &mut out),
            None => out.push(format!("{} (not in the schema)", element.name)),
        }
    }
    out
}

fn walk(element: &Element, node: &SchemaNode<'static>, prefix: String, out: &mut Vec<String>) {
    match node.kind() {
        SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
            let value = element.trimmed_text();
            let is_empty = node
                .leaf_type()
                .map(|t| t.base_type() == yang2::schema::DataValueType::Empty)
                .unwrap_or(false);
            if is_empty {
                out.push(prefix);
            } else {
                out.push(format!("{prefix} {}", quote(value)));
            }
        }
        SchemaNodeKind::List => {
            let keys: Vec<SchemaNode<'static>> = node.list_keys().collect();
            let mut line = prefix;
            for key in &keys {
                let value = element
                    .child(key.name())
                    .map(|k| k.trimmed_text().to_owned())
                    .unwrap_or_default();
                line.push(' ');
                line.push_str(&quote(&value));
            }
            let before = out.len();
            children(element, node, &line, out, &keys);
            if out.len() == before {
                out.push(line);
            }
        }
        _ => {
            let before = out.len();
            children(element, node, &prefix, out, &[]);
            if out.len() == before {
                out.push(prefix);
            }
        }
    }
}

fn children(
    element: &Element,
    node: &SchemaNode<'static>,
    prefix: &str,
    out: &mut Vec<String>,
    keys: &[SchemaNode<'static>],
) {
    for child in &element.children {
        if keys.iter().any(|k| k.name() == child.name) {
            continue;
        }
        let module = module_name(&child.namespace).unwrap_or_default();
        match data_child(node, &module, &child.name) {
            Some(schema_child) => walk(
                child,
                &schema_child,
                format!("{prefix} {}", child.name),
                out,
            ),
            None => out.push(format!("{prefix} {} (not in the schema)", child.name)),
        }
    }
}

/// `+`/`-` lines between two sets of set-style lines (order of `new`, then removals).
pub fn diff(old: &[String], new: &[String]) -> Vec<String> {
    let old_set: std::collections::HashSet<&String> = old.iter().collect();
    let new_set: std::collections::HashSet<&String> = new.iter().collect();
    let mut out = Vec::new();
    for line in old {
        if !new_set.contains(line) {
            out.push(format!("- set {line}"));
        }
    }
    for line in new {
        if !old_set.contains(line) {
            out.push(format!("+ set {line}"));
        }
    }
    out
}
