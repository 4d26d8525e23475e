//! Every direct (unsafe) use of libyang's C API, behind a safe interface:
//! what yang2 does not offer (node flags, schema extensions, implicit
//! defaults under one node) or gets wrong (freeing a tree's first node).
//! The rest of the workspace goes through yang2 or these functions.

use yang2::data::{Data, DataNodeRef, DataTree};
use yang2::iter::NodeIterable;
use yang2::schema::SchemaNode;
use yang2::utils::Binding;

/// Remove the node at `path` with its subtree.
///
/// yang2's `DataTree::remove` frees the node but keeps pointing at it when it
/// is the tree's first top-level node (use-after-free, seen as SIGSEGV when a
/// whole module's configuration is deleted); here the tree is re-rooted at the
/// next sibling first.
pub fn remove_path(tree: &mut DataTree<'static>, path: &str) -> Result<(), yang2::Error> {
    let node = tree.find_path(path)?;
    let node_raw = node.as_raw();
    let is_root = node.parent().is_none() && node_raw == tree.raw();
    if !is_root {
        return tree.remove(path);
    }
    let context = crate::schema::Schema::get().map_err(|_| yang2::Error {
        errcode: yang2::ffi::LY_ERR::LY_EINT,
        msg: Some("schema unavailable".into()),
        path: None,
        apptag: None,
    })?;
    let context = context.context();
    // SAFETY: node_raw is a live top-level node of `tree`; we detach the tree's
    // ownership (into_raw), free exactly that node, and re-own its next sibling
    // (NULL when it was the only one), which is now the first top-level node.
    unsafe {
        let next = (*node_raw).next;
        let _ = std::mem::replace(tree, DataTree::new(context)).into_raw();
        yang2::ffi::lyd_free_tree(node_raw);
        *tree = DataTree::from_raw(context, next);
    }
    Ok(())
}

/// Free the given nodes (raw pointers of nodes of `tree`, none an ancestor of
/// another), re-rooting the tree when a top-level node goes.
pub fn free_nodes(tree: &mut DataTree<'static>, nodes: &[usize]) {
    if nodes.is_empty() {
        return;
    }
    let Ok(schema) = crate::schema::Schema::get() else {
        return;
    };
    let context = schema.context();
    // SAFETY: every pointer is a live node of `tree` (collected from it just
    // before) and none contains another, so each is freed exactly once; the
    // tree's root is moved to the first surviving top-level node first.
    unsafe {
        let doomed: std::collections::HashSet<usize> = nodes.iter().copied().collect();
        let mut root = std::mem::replace(tree, DataTree::new(context)).into_raw();
        while !root.is_null() && doomed.contains(&(root as usize)) {
            root = (*root).next;
        }
        for &node in nodes {
            yang2::ffi::lyd_free_tree(node as *mut yang2::ffi::lyd_node);
        }
        *tree = DataTree::from_raw(context, root);
    }
}

/// Set or clear libyang's "default node" flag (a node that holds its YANG
/// default and was not set by anyone).
/// The caller must hold the node's tree exclusively (as the editor does).
pub fn set_default_flag(node: &DataNodeRef<'_, 'static>, default: bool) {
    // SAFETY: a live node (the borrow keeps it alive) of a tree nobody else
    // reads meanwhile; only the flag bit changes.
    unsafe {
        let flags = &mut (*node.as_raw()).flags;
        if default {
            *flags |= yang2::ffi::LYD_DEFAULT;
        } else {
            *flags &= !(yang2::ffi::LYD_DEFAULT);
        }
    }
}

/// A node libyang added for its YANG default (not set by anyone).
pub fn is_implicit_default(node: &DataNodeRef<'_, 'static>) -> bool {
    // SAFETY: reading the flags of a live node (kept alive by the borrow).
    unsafe { (*node.as_raw()).flags & yang2::ffi::LYD_DEFAULT != 0 }
}

/// Give the subtree at `path` its implicit default nodes (config only), as
/// full validation would. `false` if there is no such node or libyang failed.
pub fn add_implicit_defaults(tree: &mut DataTree<'static>, path: &str) -> bool {
    let Ok(node) = tree.find_path(path) else {
        return false;
    };
    // SAFETY: `node` is a live node of `tree`, which we hold exclusively
    // (&mut); libyang only adds children under it.
    let added = unsafe {
        yang2::ffi::lyd_new_implicit_tree(
            node.as_raw(),
            yang2::ffi::LYD_IMPLICIT_NO_STATE,
            std::ptr::null_mut(),
        )
    };
    added == yang2::ffi::LY_ERR::LY_SUCCESS
}

/// Does the schema node carry the extension `module:name` (e.g.
/// `ietf-netconf-acm:default-deny-all`)?
pub fn has_extension(schema: &SchemaNode<'_>, module: &str, name: &str) -> bool {
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
            let ext_name = std::ffi::CStr::from_ptr((*def).name);
            let ext_module = std::ffi::CStr::from_ptr((*(*def).module).name);
            if ext_name.to_bytes() == name.as_bytes() && ext_module.to_bytes() == module.as_bytes()
            {
                return true;
            }
        }
        false
    }
}

/// The instances of `node`'s list or leaf-list among its siblings, in
/// order (`node` included). Siblings iterate forward only: from the
/// parent's first child, or the tree's first top node.
pub fn instances_beside<'a>(
    tree: &'a DataTree<'static>,
    node: &DataNodeRef<'a, 'static>,
) -> Vec<DataNodeRef<'a, 'static>> {
    let schema = node.schema().as_raw();
    let first = match node.parent() {
        Some(parent) => parent.first_child(),
        None => tree.reference(),
    };
    first
        .iter()
        .flat_map(|f| f.inclusive_siblings())
        .filter(|n| n.schema().as_raw() == schema)
        .collect()
}
