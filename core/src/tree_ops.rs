//! Safe wrappers for libyang tree operations that yang2 gets wrong.

use yang2::data::{Data, DataTree};
use yang2::iter::NodeIterable;
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
    drop(node);
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
