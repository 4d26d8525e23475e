//! Embeds every YANG module under `yang/` into the binary, so the box needs no
//! module files at run time and the NETCONF server serves exactly what it validates with;
//! and generates the typed configuration of the besip modules (build/typed.rs).

#[path = "build/typed.rs"]
mod typed;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "yang") {
            out.push(path);
        }
    }
}

fn revision_of(text: &str) -> Option<String> {
    text.lines().map(str::trim).find_map(|line| {
        let rest = line.strip_prefix("revision")?.trim_start();
        let date: String = rest.trim_start_matches('"').chars().take(10).collect();
        (date.len() == 10 && date.as_bytes()[4] == b'-').then_some(date)
    })
}

fn main() {
    let yang_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../yang");
    println!("cargo:rerun-if-changed={}", yang_dir.display());
    let mut files = Vec::new();
    collect(&yang_dir, &mut files);
    files.sort();
    let mut code = String::from("/// (module name, revision, text) of every embedded YANG module.\npub static EMBEDDED: &[(&str, Option<&str>, &str)] = &[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file).expect("read YANG module");
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("module file name");
        let name = stem.split('@').next().expect("module name");
        let revision = match revision_of(&text) {
            Some(r) => format!("Some({r:?})"),
            None => "None".into(),
        };
        let abs = file.canonicalize().expect("canonical path");
        writeln!(
            code,
            "    ({name:?}, {revision}, include_str!({:?})),",
            abs.display().to_string()
        )
        .expect("write");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_yang.rs");
    std::fs::write(out, code).expect("write embedded_yang.rs");
    println!("cargo:rerun-if-changed=build");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    typed::generate(&yang_dir, &out_dir);
}
