//! Secrets in the configuration (password hashes, SIP passwords): schema nodes
//! marked `nacm:default-deny-all` (RFC 8341 §3.2.3). Readers outside the admin
//! group get every read with these nodes removed.
//!
//! A reader with configured NACM rules (besip-netconfd's nacm module) gets a
//! read pruner instead: while `with_read_pruner` runs, every
//! `ReadAccess::WithoutSecrets` read calls that pruner in place of the
//! built-in secret removal. It is a scoped thread-local so the datastore API
//! (and its no-rules fast path) stays as it is.

use yang2::data::{DataNodeRef, DataTree};
use yang2::schema::SchemaNode;

/// Removes from a reply tree what the reader may not see.
pub type ReadPruner = dyn Fn(&mut DataTree<'static>);

thread_local! {
    static PRUNER: std::cell::RefCell<Option<Box<ReadPruner>>> = const { std::cell::RefCell::new(None) };
}

/// Run `read` (a synchronous datastore read with `ReadAccess::WithoutSecrets`)
/// with `pruner` deciding what is removed from the reply.
pub fn with_read_pruner<R>(pruner: Box<ReadPruner>, read: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PRUNER.with(|p| p.borrow_mut().take());
        }
    }
    PRUNER.with(|p| *p.borrow_mut() = Some(pruner));
    let _reset = Reset;
    read()
}

/// Who is reading: decides whether secrets stay in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadAccess {
    /// Everything (the admin group; internal use).
    #[default]
    Everything,
    /// Nodes marked `nacm:default-deny-all` are left out.
    WithoutSecrets,
}

/// Is this schema node marked `nacm:default-deny-all`?
pub fn is_secret(schema: &SchemaNode<'_>) -> bool {
    crate::libyang::has_extension(schema, "ietf-netconf-acm", "default-deny-all")
}

/// Remove every secret node from `tree`.
/// (Or apply the pruner installed by `with_read_pruner`.)
pub fn remove_secrets(tree: &mut DataTree<'static>) {
    let pruned = PRUNER.with(|p| match p.borrow().as_ref() {
        Some(pruner) => {
            pruner(tree);
            true
        }
        None => false,
    });
    if pruned {
        return;
    }
    let mut doomed = Vec::new();
    if let Some(first) = tree.reference() {
        for top in first.inclusive_siblings() {
            collect(&top, &mut doomed);
        }
    }
    crate::libyang::free_nodes(tree, &doomed);
}

fn collect(node: &DataNodeRef<'_, 'static>, doomed: &mut Vec<usize>) {
    if is_secret(&node.schema()) {
        doomed.push(node.as_raw() as usize);
        return;
    }
    for child in node.children() {
        collect(&child, doomed);
    }
}

/// A rule path as libyang stores it: XML prefixes (`/pbx:pbx/pbx:trunk`
/// with `xmlns:pbx="urn:besip:pbx"`) become module names, written only where
/// the module changes (`/besip-pbx:pbx/trunk`). `module_of` maps a prefix
/// in scope to its module; an unknown prefix is taken as a module name.
pub fn json_path(path: &str, module_of: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(path.len());
    let mut current: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.-".contains(chars[i])) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            if chars.get(i) == Some(&':') && chars.get(i + 1) != Some(&':') {
                let module = module_of(&ident).unwrap_or(ident);
                if current.as_deref() != Some(module.as_str()) {
                    out.push_str(&module);
                    out.push(':');
                }
                if depth == 0 {
                    current = Some(module);
                }
                i += 1;
            } else {
                out.push_str(&ident);
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}
