//! Emits one generated enum (part of build/typed.rs).

use std::fmt::Write as _;

use super::{camel, EnumDef};

pub fn emit_enum(out: &mut String, e: &EnumDef) {
    let variants: Vec<String> = e.members.iter().map(|m| camel(m)).collect();
    let _ = writeln!(
        out,
        "/// Enumeration of `{}`.\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum {} {{",
        e.yang_path, e.name
    );
    for (m, v) in e.members.iter().zip(&variants) {
        let _ = writeln!(out, "    /// `{m}`\n    {v},");
    }
    let _ = writeln!(out, "}}\n\nimpl {} {{", e.name);
    let _ = writeln!(
        out,
        "    /// Every member, in YANG order.\n    pub const ALL: &'static [{}] = &[{}];\n",
        e.name,
        variants
            .iter()
            .map(|v| format!("{}::{v}", e.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "    /// The YANG name.\n    pub fn as_str(self) -> &'static str {{\n        match self {{"
    );
    for (m, v) in e.members.iter().zip(&variants) {
        let _ = writeln!(out, "            {}::{v} => {m:?},", e.name);
    }
    let _ = writeln!(out, "        }}\n    }}\n}}\n");
    let _ = writeln!(
        out,
        "impl std::fmt::Display for {0} {{\n    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\n        f.write_str(self.as_str())\n    }}\n}}\n",
        e.name
    );
    let _ = writeln!(
        out,
        "impl crate::model::LeafValue for {0} {{\n    fn parse_leaf(text: &str) -> Option<Self> {{\n        Self::ALL.iter().copied().find(|v| v.as_str() == text)\n    }}\n}}\n",
        e.name
    );
}
