//! The inverse of an edit, recorded while it is applied.

use crate::libyang::set_default_flag;
use yang2::data::{Data, DataTree};

/// How to take one change back.
pub(super) enum UndoStep {
    /// The node at this path did not exist before.
    Remove(String),
    /// The leaf had this value before.
    SetValue(String, String),
    /// This subtree (with its parents) was removed.
    Restore(DataTree<'static>),
    /// This leaf-list value was a YANG default before it was made explicit.
    MarkDefault(String),
    /// This user-ordered entry was moved: back after that sibling (None:
    /// first).
    MoveBack(String, Option<String>),
}

/// The inverse of an edit, so a failed edit can be taken back without copying
/// the whole candidate first (a copy costs milliseconds at 10,000 extensions).
#[derive(Default)]
pub struct EditUndo {
    pub(super) steps: Vec<UndoStep>,
}

impl EditUndo {
    /// Take every change back, newest first.
    pub fn revert(self, tree: &mut DataTree<'static>) {
        for step in self.steps.into_iter().rev() {
            let result = match step {
                UndoStep::Remove(path) => {
                    if tree.find_path(&path).is_ok() {
                        crate::libyang::remove_path(tree, &path)
                    } else {
                        Ok(())
                    }
                }
                UndoStep::SetValue(path, value) => {
                    tree.new_path(&path, Some(&value), false).map(|_| ())
                }
                UndoStep::Restore(subtree) => tree.merge(&subtree),
                UndoStep::MarkDefault(path) => {
                    if let Ok(node) = tree.find_path(&path) {
                        set_default_flag(&node, true);
                    }
                    Ok(())
                }
                UndoStep::MoveBack(path, previous) => {
                    move_back(tree, &path, previous.as_deref());
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %crate::schema::describe(&e), "cannot take an edit back");
            }
        }
    }
}

/// Puts the entry at `path` back after `previous` (first among its kind
/// when None).
fn move_back(tree: &DataTree<'static>, path: &str, previous: Option<&str>) {
    let Ok(node) = tree.find_path(path) else {
        return;
    };
    let anchor = match previous {
        Some(p) => tree.find_path(p).ok().map(|a| (a.as_raw(), false)),
        None => crate::libyang::instances_beside(tree, &node)
            .first()
            .map(|a| (a.as_raw(), true)),
    };
    let Some((anchor, before)) = anchor.filter(|(a, _)| *a != node.as_raw()) else {
        return;
    };
    // SAFETY: both are live siblings of `tree` of one schema node.
    unsafe {
        if before {
            yang2::ffi::lyd_insert_before(anchor, node.as_raw());
        } else {
            yang2::ffi::lyd_insert_after(anchor, node.as_raw());
        }
    }
}
