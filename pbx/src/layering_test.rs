//! Guards the layering of pbx/src (see lib.rs): a file of a lower layer
//! must not name a module of a higher one. Read from the sources, so a new
//! back-arrow fails here before anyone draws the import graph.

use std::path::{Path, PathBuf};

/// Layers from the bottom; a file may name its own layer and those before it.
const LAYERS: &[(&str, &[&str])] = &[
    ("sip", &["sip/"]),
    // The typed configuration: named by every layer above, names none of them.
    ("config", &["config.rs", "config/"]),
    ("transport", &["transport/"]),
    ("stun", &["stun/"]),
    ("auth", &["auth/"]),
    ("transaction", &["transaction/"]),
    ("call", &["call/"]),
    ("features", &["features/"]),
    // The IPC face of the daemon, over everything.
    ("control", &["control.rs"]),
];

/// What names each layer in a path (`crate::call::…`, `crate::{call}`).
fn names_of(layer: &str) -> Vec<String> {
    vec![
        format!("crate::{layer}::"),
        format!("crate::{layer};"),
        format!("crate::{layer}}}"),
    ]
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_lower_layer_file_names_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut back_arrows = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some(level) = LAYERS
            .iter()
            .position(|(_, dirs)| dirs.iter().any(|d| rel.starts_with(d)))
        else {
            continue; // lib.rs, fuzzing.rs, bin/: outside the stack
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (higher, _) in &LAYERS[level + 1..] {
            for name in names_of(higher) {
                for (n, line) in text.lines().enumerate() {
                    if line.contains(&name) && !line.trim_start().starts_with("//") {
                        back_arrows.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        back_arrows.is_empty(),
        "lower layers naming higher ones:\n{}",
        back_arrows.join("\n")
    );
}

#[test]
fn the_layers_are_where_the_test_looks() {
    // A renamed folder must not make the check above vacuous.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (_, dirs) in LAYERS {
        for d in *dirs {
            assert!(src.join(d).exists(), "{d} is not in pbx/src");
        }
    }
}
