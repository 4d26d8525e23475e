//! Copies each program's `main.rs` into OUT_DIR as a module body: inner doc
//! comments and attributes (`//!`, `#![...]`) are dropped because they cannot
//! appear in an included module, and `mod x;` lines get an absolute `#[path]`
//! so the program's own submodules still resolve. The programs stay the
//! single source of their `main`; nothing in their crates changes for this.

use std::path::Path;

const PROGRAMS: [(&str, &str); 5] = [
    ("netconfd", "../../netconf-server/src/main.rs"),
    ("pbxd", "../../pbx/src/bin/besip-pbxd.rs"),
    ("secd", "../../security/src/main.rs"),
    ("monitord", "../../monitoring/src/main.rs"),
    ("cli", "../../cli/src/main.rs"),
];

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for (name, relative) in PROGRAMS {
        let source = Path::new(&manifest_dir).join(relative);
        println!("cargo:rerun-if-changed={}", source.display());
        let source_dir = source.parent().expect("a main file has a directory");
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let mut body = String::new();
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//!") || trimmed.starts_with("#![") {
                continue;
            }
            if let Some(module) = trimmed
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'))
            {
                let file = source_dir.join(format!("{module}.rs"));
                let file = if file.exists() {
                    file
                } else {
                    source_dir.join(module).join("mod.rs")
                };
                body.push_str(&format!("#[path = {:?}]\n", file.display().to_string()));
            }
            body.push_str(line);
            body.push('\n');
        }
        std::fs::write(Path::new(&out_dir).join(format!("{name}.rs")), body)
            .unwrap_or_else(|e| panic!("cannot write {name}.rs: {e}"));
    }
}
