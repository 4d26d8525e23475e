//! Every YANG module of the box passes libyang's yanglint and `pyang --lint`
//! (RFC 8407 guidelines), so the models are usable by any client's tooling.

use std::path::PathBuf;
use std::process::Command;

fn our_modules() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../yang");
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yang"))
        .collect();
    modules.sort();
    assert!(!modules.is_empty());
    modules
}

fn run(tool: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} is not installed ({e}); scripts/install-deps installs it")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn yanglint_accepts_every_module() {
    let yang_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../yang");
    for module in our_modules() {
        let (ok, text) = run(
            "yanglint",
            &[
                "-p",
                yang_dir.to_str().unwrap(),
                "-p",
                yang_dir.join("ietf").to_str().unwrap(),
                module.to_str().unwrap(),
            ],
        );
        assert!(
            ok && !text.contains("err"),
            "yanglint {}: {text}",
            module.display()
        );
    }
}

#[test]
fn pyang_lint_accepts_every_module() {
    let yang_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../yang");
    let path = format!("{}:{}", yang_dir.display(), yang_dir.join("ietf").display());
    for module in our_modules() {
        let (ok, text) = run("pyang", &["--lint", "-p", &path, module.to_str().unwrap()]);
        assert!(
            ok && text.trim().is_empty(),
            "pyang --lint {}: {text}",
            module.display()
        );
    }
}
