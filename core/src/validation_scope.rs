//! When may a commit skip libyang's full-tree validation?
//!
//! Full validation costs ~13 ms at 10,000 extensions and is redundant when every
//! change since the last valid state only updated the value of an existing
//! leaf whose type libyang already checked when the value was set, and whose
//! name no `must`, `when`, `path` (leafref) or `unique` expression of any
//! module mentions. Such a change cannot make mandatory, min/max-elements,
//! unique, must, when or leafref checks fail. Anything else — a node created or
//! deleted, a leafref/instance-identifier/union typed leaf, a name that appears
//! in an expression, or any expression with a wildcard step — means full
//! validation. The test is conservative: it scans the YANG sources, so a name
//! mentioned anywhere (even in an unrelated module) counts as referenced.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use yang2::schema::{DataValueType, SchemaNode};

struct References {
    names: HashSet<String>,
    /// Names in must/when/unique only (not leafref paths): what a new list
    /// entry could make false. A new entry can only add leafref targets.
    constraint_names: HashSet<String>,
    /// An expression uses `*`, `//` or a descendant axis: any change may matter.
    unbounded: bool,
}

static REFERENCES: OnceLock<References> = OnceLock::new();

fn references() -> &'static References {
    REFERENCES.get_or_init(|| {
        let mut refs = References {
            names: HashSet::new(),
            constraint_names: HashSet::new(),
            unbounded: false,
        };
        for module in crate::schema::Schema::get()
            .map(|s| s.modules())
            .unwrap_or(&[])
        {
            scan_module(module.text, &mut refs);
        }
        refs
    })
}

/// Which bytes of a YANG text lie inside a quoted string (descriptions mention
/// "when" and "path" in prose; only statement keywords count).
fn quoted_mask(bytes: &[u8]) -> Vec<bool> {
    let mut mask = vec![false; bytes.len()];
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') if b == b'\\' => {
                mask[i] = true;
                if i + 1 < bytes.len() {
                    mask[i + 1] = true;
                }
                i += 2;
                continue;
            }
            Some(q) if b == q => quote = None,
            Some(_) => mask[i] = true,
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None => {}
        }
        i += 1;
    }
    mask
}

/// Collect identifiers from the arguments of must/when/path/unique statements.
fn scan_module(text: &str, refs: &mut References) {
    let bytes = text.as_bytes();
    let quoted = quoted_mask(bytes);
    for keyword in ["must", "when", "path", "unique"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(keyword) {
            let start = from + found;
            from = start + keyword.len();
            if quoted[start] {
                continue;
            }
            let before_ok = start == 0
                || bytes[start - 1].is_ascii_whitespace()
                || bytes[start - 1] == b'{'
                || bytes[start - 1] == b';';
            let after_ok = bytes.get(from).is_some_and(|b| b.is_ascii_whitespace());
            if !before_ok || !after_ok {
                continue;
            }
            // The argument runs to the statement's `;` or `{` outside quotes.
            let mut argument = String::new();
            let mut quote: Option<u8> = None;
            let mut i = from;
            while i < bytes.len() {
                let b = bytes[i];
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => argument.push(b as char),
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b';' || b == b'{' => break,
                    None => argument.push(b as char),
                }
                i += 1;
            }
            if argument.contains('*') || argument.contains("//") || argument.contains("descendant")
            {
                refs.unbounded = true;
            }
            for word in argument.split(|c: char| {
                !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.' || c == ':')
            }) {
                if word.is_empty() {
                    continue;
                }
                // Drop a module prefix (`pbx:extension` -> `extension`).
                let name = word.rsplit(':').next().unwrap_or(word);
                refs.names.insert(name.to_owned());
                if keyword != "path" {
                    refs.constraint_names.insert(name.to_owned());
                }
            }
        }
    }
}

/// Can a value update of a leaf named `name` with base type `base` skip full validation?
pub fn update_needs_no_full_validation(name: &str, base: Option<DataValueType>) -> bool {
    let refs = references();
    if refs.unbounded {
        return false;
    }
    let type_checked_on_set = !matches!(
        base,
        None | Some(DataValueType::LeafRef)
            | Some(DataValueType::InstanceId)
            | Some(DataValueType::Union)
    );
    type_checked_on_set && !refs.names.contains(name)
}

/// Can a new entry of `list` be checked on its own instead of by libyang's
/// full-tree validation? Yes when nothing outside the entry can be affected by
/// its arrival and nothing inside it looks outside: no must/when/unique of any
/// module names the list or anything in it, the list has no min/max-elements,
/// and no node in it has a must, a when, or a leafref/instance-identifier/union
/// type with a default (a new entry that sets such a reference is validated in
/// full: `refers_outside`). The entry itself (mandatory nodes, defaults) is then checked alone
/// (`Datastore` validates a copy of it), and leafrefs elsewhere can only gain
/// targets.
/// Whether a leaf of this type may point outside its list entry (leafref,
/// instance-identifier, or a union that may hold either): setting one in a new
/// entry asks for full validation.
pub fn refers_outside(base: Option<DataValueType>) -> bool {
    matches!(
        base,
        Some(DataValueType::LeafRef) | Some(DataValueType::InstanceId) | Some(DataValueType::Union)
    )
}

pub fn list_entry_is_self_contained(list: &SchemaNode<'static>) -> bool {
    static DECIDED: OnceLock<Mutex<HashMap<usize, bool>>> = OnceLock::new();
    let decided = DECIDED.get_or_init(|| Mutex::new(HashMap::new()));
    let key = list.as_raw() as usize;
    if let Some(&answer) = decided.lock().ok().as_ref().and_then(|d| d.get(&key)) {
        return answer;
    }
    let answer = decide_self_contained(list);
    if let Ok(mut d) = decided.lock() {
        d.insert(key, answer);
    }
    answer
}

fn decide_self_contained(list: &SchemaNode<'static>) -> bool {
    let refs = references();
    if refs.unbounded || list.min_elements().is_some() || list.max_elements().is_some() {
        return false;
    }
    list.traverse().all(|node| {
        let has_must = node.musts().is_some_and(|m| m.count() > 0);
        let has_when = node.whens().count() > 0;
        // A reference inside the entry is resolved only by full validation:
        // the edit asks for it when a new entry sets such a leaf
        // (`refers_outside`, Edit::set). One with a default would be set
        // implicitly, without any edit naming it, so it rules the list out.
        let implicit_reference =
            refers_outside(node.leaf_type().map(|t| t.base_type())) && node.has_default();
        !has_must
            && !has_when
            && !implicit_reference
            && !refs.constraint_names.contains(node.name())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_expressions_are_referenced() {
        let mut refs = References {
            names: HashSet::new(),
            constraint_names: HashSet::new(),
            unbounded: false,
        };
        scan_module(
            "container a { must \"x < y\" { error-message \"no\"; } leaf b { type leafref { path \"/p:pbx/p:extension/p:number\"; } } list l { unique \"u v\"; } }",
            &mut refs,
        );
        for name in ["x", "y", "pbx", "extension", "number", "u", "v"] {
            assert!(refs.names.contains(name), "{name}");
        }
        assert!(!refs.names.contains("b"));
        // A leafref path does not constrain the creation of its targets.
        assert!(!refs.constraint_names.contains("extension"));
        assert!(refs.constraint_names.contains("x") && refs.constraint_names.contains("u"));
        assert!(!refs.unbounded);
        scan_module(
            "leaf z { description \"used when the path is long\"; }",
            &mut refs,
        );
        assert!(
            !refs.names.contains("long"),
            "prose in descriptions is not an expression"
        );
        scan_module("must 'count(*) > 1';", &mut refs);
        assert!(refs.unbounded);
    }

    #[test]
    fn real_schema_decisions() {
        // Referenced by besip-system's must on the web container.
        assert!(!update_needs_no_full_validation(
            "port",
            Some(DataValueType::Uint16)
        ));
        // A free-text leaf nobody refers to.
        assert!(update_needs_no_full_validation(
            "full-name",
            Some(DataValueType::String)
        ));
        // Leafrefs are resolved only by validation.
        assert!(!update_needs_no_full_validation(
            "full-name",
            Some(DataValueType::LeafRef)
        ));
        let context = crate::schema::Schema::get().unwrap().context();
        let list = |path: &str| context.find_path(path).unwrap();
        // Extensions: targets of alias leafrefs, and their own call-class
        // leafrefs have no default; a new one is checked alone unless it
        // sets a call class.
        assert!(list_entry_is_self_contained(&list(
            "/besip-pbx:pbx/besip-pbx:extension"
        )));
        // Aliases point at extensions (a leafref without default): the list
        // qualifies, but setting that leafref in a new alias asks for full
        // validation (Edit), as every alias must.
        assert!(list_entry_is_self_contained(&list(
            "/besip-pbx:pbx/besip-pbx:alias"
        )));
        let target = list("/besip-pbx:pbx/besip-pbx:alias/besip-pbx:extension");
        assert!(refers_outside(target.leaf_type().map(|t| t.base_type())));
    }
}
