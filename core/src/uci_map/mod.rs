//! The one generic YANG <-> UCI rule (DESIGN.md §4, pinned in docs/CONTRACTS.md).
//! No per-module code: a new leaf in YANG flows to UCI and back unchanged.
//! Here the names both directions share; `render` (YANG tree -> UCI text)
//! and `import` (UCI package -> YANG tree) hold the two directions.

mod import;
mod render;

pub use import::{import_package, line_for_path, UciImportError};
pub use render::{render_module, TextRenderer};

use yang2::schema::{SchemaNode, SchemaNodeKind};

/// YANG identifier -> UCI name (`-` and `.` become `_`).
pub fn uci_name(identifier: &str) -> String {
    identifier.replace(['-', '.'], "_")
}

/// Reversible escaping of a key value into a UCI section name fragment:
/// `[A-Za-z0-9]` stay, every other byte becomes `_` + two hex digits.
pub fn escape_key(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

pub fn unescape_key(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Children that carry data, looking through choices and cases.
pub fn data_children(node: &SchemaNode<'static>) -> Vec<SchemaNode<'static>> {
    let mut out = Vec::new();
    for child in node.children() {
        match child.kind() {
            SchemaNodeKind::Choice | SchemaNodeKind::Case => out.extend(data_children(&child)),
            SchemaNodeKind::Rpc | SchemaNodeKind::Action | SchemaNodeKind::Notification => {}
            _ => out.push(child),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_escaping_round_trips() {
        for key in ["100", "sip:10.0.0.1:5060", "a_b", "192.168.1.0/24", "Ü"] {
            let escaped = escape_key(key);
            assert!(crate::uci::is_valid_name(&escaped), "{escaped}");
            assert_eq!(unescape_key(&escaped).as_deref(), Some(key));
        }
        assert_eq!(escape_key("a_b"), "a_5fb");
    }
}
