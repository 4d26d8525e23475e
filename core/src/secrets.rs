//! Secrets in the configuration (password hashes, SIP passwords): schema nodes
//! marked `nacm:default-deny-all` (RFC 8341 §3.2.3). Readers outside the admin
//! group get every read with these nodes removed.

use yang2::data::{DataNodeRef, DataTree};
use yang2::schema::SchemaNode;

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
    // SAFETY: reading the compiled schema, which lives as long as the
    // context; `exts` is a libyang sized array (count stored just before it).
    unsafe {
        let exts = (*schema.as_raw()).exts;
        if exts.is_null() {
            return false;
        }
        let count = *(exts as *const u64).offset(-1);
        for i in 0..count as usize {
            let def = (*exts.add(i)).def;
            if def.is_null() || (*def).name.is_null() || (*def).module.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr((*def).name);
            let module = std::ffi::CStr::from_ptr((*(*def).module).name);
            if name.to_bytes() == b"default-deny-all" && module.to_bytes() == b"ietf-netconf-acm" {
                return true;
            }
        }
        false
    }
}

/// Remove every secret node from `tree`.
pub fn remove_secrets(tree: &mut DataTree<'static>) {
    let mut doomed = Vec::new();
    if let Some(first) = tree.reference() {
        for top in first.inclusive_siblings() {
            collect(&top, &mut doomed);
        }
    }
    crate::tree_ops::free_nodes(tree, &doomed);
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
