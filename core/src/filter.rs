//! `<get>`/`<get-config>` filters: subtree filters (RFC 6241 §6) are turned into
//! XPath selections; XPath filters have their XML prefixes mapped to module
//! names (libyang's JSON-style XPath). The selection is copied out with parents.

use crate::edit::predicate_value;
use crate::error::{ConfigError, ErrorTag};
use crate::schema::{data_child, Schema};
use crate::xml::Element;
use std::collections::HashSet;
use yang2::data::{Data, DataTree};
use yang2::iter::NodeIterable;
use yang2::schema::{SchemaNode, SchemaNodeKind};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The whole datastore.
    All,
    /// The children of `<filter type="subtree">`.
    Subtree(Vec<Element>),
    /// An XPath with the prefix -> namespace bindings in scope of the filter element.
    XPath {
        select: String,
        namespaces: Vec<(String, String)>,
    },
}

/// Turn a filter into XPath expressions over the data tree (JSON prefixes).
/// An empty result means "select nothing".
pub fn to_xpaths(filter: &Filter) -> Result<Option<Vec<String>>, ConfigError> {
    match filter {
        Filter::All => Ok(None),
        Filter::XPath { select, namespaces } => {
            Ok(Some(vec![xpath_to_json_prefixes(select, namespaces)?]))
        }
        Filter::Subtree(elements) => {
            let schema = Schema::get()
                .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, e.to_string()))?;
            let mut out = Vec::new();
            for element in elements {
                let modules: Vec<_> = if element.namespace.is_empty() {
                    // A filter without a namespace matches the name in every module.
                    schema
                        .modules()
                        .iter()
                        .filter_map(|m| schema.module_by_name(&m.name))
                        .collect()
                } else {
                    schema
                        .module_by_namespace(&element.namespace)
                        .into_iter()
                        .collect()
                };
                for module in modules {
                    if let Some(node) = schema.top_node(&module, &element.name) {
                        subtree_paths(element, &node, "", &mut out);
                    }
                }
            }
            Ok(Some(out))
        }
    }
}

fn is_content_match(element: &Element, node: &SchemaNode<'static>) -> bool {
    matches!(node.kind(), SchemaNodeKind::Leaf | SchemaNodeKind::LeafList)
        && !element.trimmed_text().is_empty()
}

fn subtree_paths(
    element: &Element,
    node: &SchemaNode<'static>,
    parent: &str,
    out: &mut Vec<String>,
) {
    let module = node.module().name().to_owned();
    let mut path = format!("{parent}/{module}:{}", node.name());
    let mut selections = Vec::new();
    for child in &element.children {
        let child_module = if child.namespace.is_empty() || child.namespace == element.namespace {
            Some(module.clone())
        } else {
            Schema::get()
                .ok()
                .and_then(|s| s.module_by_namespace(&child.namespace))
                .map(|m| m.name().to_owned())
        };
        let Some(child_node) = child_module.and_then(|m| data_child(node, &m, &child.name)) else {
            // Selecting a node the schema does not have selects nothing.
            return;
        };
        if is_content_match(child, &child_node) {
            let Some(quoted) = predicate_value(child.trimmed_text()) else {
                return;
            };
            path.push_str(&format!(
                "[{}:{}={quoted}]",
                child_node.module().name(),
                child_node.name()
            ));
        } else {
            selections.push((child, child_node));
        }
    }
    if node.kind() == SchemaNodeKind::LeafList && !element.trimmed_text().is_empty() {
        if let Some(quoted) = predicate_value(element.trimmed_text()) {
            path.push_str(&format!("[.={quoted}]"));
        }
    }
    if selections.is_empty() {
        out.push(path);
        return;
    }
    // Content-match leaves are part of the answer too (RFC 6241 §6.2.5).
    for child in &element.children {
        if let Some(child_node) = data_child(node, &module, &child.name) {
            if is_content_match(child, &child_node) {
                out.push(format!(
                    "{path}/{}:{}",
                    child_node.module().name(),
                    child_node.name()
                ));
            }
        }
    }
    for (child, child_node) in selections {
        subtree_paths(child, &child_node, &path, out);
    }
}

/// Replace XML prefixes in an XPath (`/p:pbx/p:extension`) by module names.
fn xpath_to_json_prefixes(
    select: &str,
    namespaces: &[(String, String)],
) -> Result<String, ConfigError> {
    let schema =
        Schema::get().map_err(|e| ConfigError::new(ErrorTag::OperationFailed, e.to_string()))?;
    let mut out = String::with_capacity(select.len());
    let mut chars = select.char_indices().peekable();
    let mut in_quote: Option<char> = None;
    let mut token = String::new();
    let flush =
        |token: &mut String, out: &mut String, next: Option<char>| -> Result<(), ConfigError> {
            if next == Some(':') && !token.is_empty() {
                if let Some((_, ns)) = namespaces.iter().find(|(p, _)| p == token) {
                    let module =
                        schema.module_by_namespace(ns).ok_or_else(|| {
                            ConfigError::new(
                        ErrorTag::InvalidValue,
                        format!("no YANG module has the namespace '{ns}' used in the XPath filter"),
                    )
                        })?;
                    out.push_str(module.name());
                    token.clear();
                    return Ok(());
                }
            }
            out.push_str(token);
            token.clear();
            Ok(())
        };
    while let Some((_, c)) = chars.next() {
        if let Some(q) = in_quote {
            out.push(c);
            if c == q {
                in_quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            flush(&mut token, &mut out, None)?;
            in_quote = Some(c);
            out.push(c);
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
            token.push(c);
            continue;
        }
        flush(&mut token, &mut out, Some(c))?;
        out.push(c);
        if c == ':' && chars.peek().map(|(_, n)| *n) == Some(':') {
            // axis separator `::`
            if let Some((_, n)) = chars.next() {
                out.push(n);
            }
        }
    }
    flush(&mut token, &mut out, None)?;
    Ok(out)
}

/// The nodes selected by `xpaths`, with their parents and list keys, as a new tree.
///
/// The tree is copied once and everything that is neither selected, nor an
/// ancestor of a selection, nor a key of a kept list entry is pruned: one copy
/// instead of one copy-and-merge per selected node (75 ms -> ~10 ms when a
/// filter selects 10,000 extensions).
pub fn select(
    tree: &DataTree<'static>,
    xpaths: &[String],
) -> Result<DataTree<'static>, ConfigError> {
    let failed =
        |e: yang2::Error| ConfigError::new(ErrorTag::OperationFailed, crate::schema::describe(&e));
    if let Some(small) = select_at_most_one(tree, xpaths)? {
        return Ok(small);
    }
    let mut copy = tree.duplicate().map_err(failed)?;
    if copy.reference().is_none() {
        return Ok(copy);
    }
    let mut selected: HashSet<usize> = HashSet::new();
    let mut ancestors: HashSet<usize> = HashSet::new();
    for xpath in xpaths {
        let set = copy.find_xpath(xpath).map_err(|e| {
            ConfigError::new(
                ErrorTag::InvalidValue,
                format!("invalid filter: {}", crate::schema::describe(&e)),
            )
        })?;
        for node in set {
            selected.insert(node.as_raw() as usize);
            let mut parent = node.parent();
            while let Some(p) = parent {
                if !ancestors.insert(p.as_raw() as usize) {
                    break;
                }
                parent = p.parent();
            }
        }
    }
    let mut doomed = Vec::new();
    if let Some(first) = copy.reference() {
        for top in first.inclusive_siblings() {
            collect_unselected(&top, &selected, &ancestors, &mut doomed);
        }
    }
    crate::libyang::free_nodes(&mut copy, &doomed);
    Ok(copy)
}

/// Zero or one selected node (a small filter on a big datastore, or one
/// whole top-level container): copy just that node with its parents and
/// list keys, not the whole tree. `None` when more nodes are selected.
fn select_at_most_one(
    tree: &DataTree<'static>,
    xpaths: &[String],
) -> Result<Option<DataTree<'static>>, ConfigError> {
    let mut found = None;
    for xpath in xpaths {
        let set = tree.find_xpath(xpath).map_err(|e| {
            ConfigError::new(
                ErrorTag::InvalidValue,
                format!("invalid filter: {}", crate::schema::describe(&e)),
            )
        })?;
        for node in set {
            if found.is_some() {
                return Ok(None);
            }
            found = Some(node);
        }
    }
    let result = match found {
        None => DataTree::new(tree.context()),
        Some(node) => node.duplicate(true).map_err(|e| {
            ConfigError::new(ErrorTag::OperationFailed, crate::schema::describe(&e))
        })?,
    };
    Ok(Some(result))
}

fn collect_unselected(
    node: &yang2::data::DataNodeRef<'_, 'static>,
    selected: &HashSet<usize>,
    ancestors: &HashSet<usize>,
    doomed: &mut Vec<usize>,
) {
    let raw = node.as_raw() as usize;
    if selected.contains(&raw) {
        return;
    }
    if !ancestors.contains(&raw) {
        doomed.push(raw);
        return;
    }
    for child in node.children() {
        // Keys identify a kept list entry; they stay.
        if !child.schema().is_list_key() {
            collect_unselected(&child, selected, ancestors, doomed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xpath_prefixes_become_module_names() {
        let ns = vec![("s".to_owned(), "urn:besip:system".to_owned())];
        let out = xpath_to_json_prefixes("/s:system/s:user[s:name='a:b']", &ns).unwrap();
        assert_eq!(
            out,
            "/besip-system:system/besip-system:user[besip-system:name='a:b']"
        );
    }
}
