//! Incremental UCI rendering for commits.
//!
//! A commit that adds one extension to 1,000 would re-render 1,000 UCI
//! sections that did not change. The text of every top-level list entry (a
//! list entry not inside another list entry, with its nested sections) is kept
//! from the last commit under its node identity; a commit re-renders only the
//! entries its edits touched. Which entries those are follows from the edit
//! records' paths, read against the new running tree. Anything the rule cannot
//! pin to one entry (a container replaced, records capped, a wholesale change)
//! means `Dirty::All`: a full render that also rebuilds the cache.
//! Entries are told apart by node identity, which is stable because running
//! is edited in place between commits. The same cache serves the XML of
//! running.xml and the history, which would otherwise print every entry.

use crate::edit::ChangeRecord;
use std::collections::{HashMap, HashSet};

/// Node identities are hashed once per entry per commit (10,000 times at
/// 10,000 extensions): a fast fixed hash, not SipHash; the keys are our own
/// pointers, nothing an outsider can choose.
pub(crate) type IdentityHash = foldhash::fast::FixedState;
use yang2::context::Context;
use yang2::data::{Data, DataFormat, DataNodeRef, DataPrinterFlags, DataTree};
use yang2::schema::SchemaNodeKind;

/// Which top-level list entries a commit must re-render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dirty {
    All,
    /// Node identities (`lyd_node` addresses) of the touched entries.
    Entries(HashSet<usize, IdentityHash>),
}

impl Dirty {
    pub fn is_dirty(&self, node: &DataNodeRef<'_, 'static>) -> bool {
        match self {
            Dirty::All => true,
            Dirty::Entries(set) => set.contains(&(node.as_raw() as usize)),
        }
    }
}

/// What the last commit rendered, for the next one to reuse.
#[derive(Default)]
pub struct RenderCache {
    /// UCI text of top-level list entries, per package, by node identity.
    pub packages: HashMap<String, EntryTexts>,
    /// XML of the list entries directly under top-level containers, by node identity.
    xml_entries: EntryTexts,
}

/// The rendered text of entries by node identity, kept from one render to
/// the next. A render marks each entry it reuses or stores; `finish` drops
/// the rest (entries that are gone). One map and one lookup per entry.
#[derive(Default)]
pub struct EntryTexts {
    texts: HashMap<usize, (String, u64), IdentityHash>,
    render: u64,
    touched: usize,
}

impl EntryTexts {
    pub fn begin(&mut self) {
        self.render += 1;
        self.touched = 0;
    }

    /// The kept text of `node`, unless the render must redo it.
    pub fn reuse(&mut self, node: &DataNodeRef<'_, 'static>, dirty: &Dirty) -> Option<&str> {
        if dirty.is_dirty(node) {
            return None;
        }
        let (text, render) = self.texts.get_mut(&(node.as_raw() as usize))?;
        if *render != self.render {
            *render = self.render;
            self.touched += 1;
        }
        Some(text)
    }

    pub fn store(&mut self, node: &DataNodeRef<'_, 'static>, text: String) {
        let render = self.render;
        let previous = self.texts.insert(node.as_raw() as usize, (text, render));
        if !matches!(previous, Some((_, r)) if r == render) {
            self.touched += 1;
        }
    }

    pub fn finish(&mut self) {
        if self.touched != self.texts.len() {
            let render = self.render;
            self.texts.retain(|_, (_, r)| *r == render);
        }
    }
}

impl RenderCache {
    /// The configuration as XML (running.xml and the history), printing only
    /// the dirty entries. Each cached entry is a standalone libyang print of
    /// that node (it carries its own xmlns), so the document parses back to
    /// the same tree a whole-tree print gives.
    pub fn print_xml(
        &mut self,
        tree: &DataTree<'static>,
        dirty: &Dirty,
        flags: DataPrinterFlags,
    ) -> String {
        // One node at a time (DataPrinterFlags is not Copy: keep its bits).
        let bits = (flags - DataPrinterFlags::WITH_SIBLINGS).bits();
        let print = |node: &DataNodeRef<'_, 'static>| print_node(node, bits);
        let entries = &mut self.xml_entries;
        entries.begin();
        let mut out = String::with_capacity(1 << 16);
        let Some(first) = tree.reference() else {
            entries.finish();
            return out;
        };
        for top in first.inclusive_siblings() {
            let schema = top.schema();
            if schema.kind() != SchemaNodeKind::Container {
                out.push_str(&print(&top));
                continue;
            }
            out.push('<');
            out.push_str(schema.name());
            out.push_str(" xmlns=\"");
            out.push_str(schema.module().namespace());
            out.push_str("\">");
            for child in top.children() {
                if child.schema().kind() != SchemaNodeKind::List {
                    out.push_str(&print(&child));
                    continue;
                }
                match entries.reuse(&child, dirty) {
                    Some(text) => out.push_str(text),
                    None => {
                        let text = print(&child);
                        out.push_str(&text);
                        entries.store(&child, text);
                    }
                }
            }
            out.push_str("</");
            out.push_str(schema.name());
            out.push('>');
        }
        entries.finish();
        out
    }
}

fn print_node(node: &DataNodeRef<'_, 'static>, flag_bits: u32) -> String {
    node.print_string(
        DataFormat::XML,
        DataPrinterFlags::from_bits_retain(flag_bits),
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Work out the dirty entries of `tree` (the new running) from the records.
pub fn dirty_entries(
    context: &Context,
    tree: &DataTree<'static>,
    changes: &[ChangeRecord],
) -> Dirty {
    let mut entries = HashSet::default();
    for change in changes {
        match entry_of_change(context, tree, &change.path) {
            Touch::Entry(node) => {
                entries.insert(node);
            }
            Touch::MainSectionOnly => {}
            Touch::Unknown => return Dirty::All,
        }
    }
    Dirty::Entries(entries)
}

enum Touch {
    /// Inside (or the whole of) this top-level list entry.
    Entry(usize),
    /// Only options of a `config <module> 'main'` section, re-rendered anyway,
    /// or a top-level entry that no longer exists (its section just goes).
    MainSectionOnly,
    Unknown,
}

fn entry_of_change(context: &Context, tree: &DataTree<'static>, path: &str) -> Touch {
    if let Ok(node) = tree.find_path(path) {
        if let Some(entry) = outermost_list_entry(&node) {
            return Touch::Entry(entry);
        }
        return match node.schema().kind() {
            SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => Touch::MainSectionOnly,
            _ => Touch::Unknown,
        };
    }
    // Deleted: the nearest surviving ancestor tells where it was.
    let Ok(schema) = context.find_path(&strip_predicates(path)) else {
        return Touch::Unknown;
    };
    let mut current = path;
    while let Some(parent) = parent_path(current) {
        current = parent;
        if let Ok(ancestor) = tree.find_path(current) {
            if let Some(entry) = outermost_list_entry(&ancestor) {
                return Touch::Entry(entry);
            }
            break;
        }
    }
    match schema.kind() {
        SchemaNodeKind::Leaf | SchemaNodeKind::LeafList | SchemaNodeKind::List => {
            Touch::MainSectionOnly
        }
        _ => Touch::Unknown,
    }
}

/// The list entry closest to the root among `node` and its ancestors.
fn outermost_list_entry(node: &DataNodeRef<'_, 'static>) -> Option<usize> {
    node.inclusive_ancestors()
        .filter(|n| n.schema().kind() == SchemaNodeKind::List)
        .last()
        .map(|n| n.as_raw() as usize)
}

/// Byte offsets of the `/` that start each step, outside predicates and quotes.
fn step_starts(path: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, b) in path.bytes().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b'/' if depth == 0 => starts.push(i),
                _ => {}
            },
        }
    }
    starts
}

/// The path one step up; `None` at the top.
fn parent_path(path: &str) -> Option<&str> {
    let starts = step_starts(path);
    match starts.len() {
        0 | 1 => None,
        n => Some(&path[..starts[n - 1]]),
    }
}

/// The schema path of a data path: predicates removed.
fn strip_predicates(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in path.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' if depth > 0 => quote = Some(c),
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ if depth == 0 => out.push(c),
                _ => {}
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_ignore_slashes_inside_predicates() {
        let path = "/besip-pbx:pbx/route[pattern='a/b]c']/target";
        assert_eq!(
            parent_path(path),
            Some("/besip-pbx:pbx/route[pattern='a/b]c']")
        );
        assert_eq!(
            parent_path("/besip-pbx:pbx/route[pattern='a/b]c']"),
            Some("/besip-pbx:pbx")
        );
        assert_eq!(parent_path("/besip-pbx:pbx"), None);
        assert_eq!(strip_predicates(path), "/besip-pbx:pbx/route/target");
    }
}
