//! A crash never leaves daemons on a configuration that is not in
//! running.xml (issue 13): a short run of tests/bench/reliability/crash.py,
//! which commits over NETCONF (ncclient) while kill -9 hits besip-netconfd,
//! then besip-pbxd, at random points, and after every restart compares
//! running.xml, the rendered besip_pbx, besip-pbxd's own `state` and the
//! newest commit-history record. The full run (1,000 commits) is the script.

use besip_tests::harness::bin_path;
use std::path::Path;
use std::process::Command;

fn crash_run(victim: &str, seed: u32) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/reliability/crash.py");
    let bin_dir = bin_path("besip-netconfd")
        .parent()
        .expect("binary directory")
        .to_owned();
    let output = Command::new("/usr/bin/python3")
        .arg(script)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args(["--commits", "40", "--kill-every", "4", "--victim", victim])
        .arg("--seed")
        .arg(seed.to_string())
        .output()
        .expect("run crash.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "crash.py printed no figures ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn assert_agreement(figures: &serde_json::Value) {
    assert!(
        figures["kills"].as_u64().unwrap_or(0) >= 1,
        "no kill happened: {figures}"
    );
    assert_eq!(
        figures["disagreements"].as_u64(),
        Some(0),
        "running.xml, UCI, daemon and history disagree after a crash: {figures}"
    );
}

#[test]
fn killing_netconfd_during_commits_leaves_everything_in_agreement() {
    assert_agreement(&crash_run("besip-netconfd", 13));
}

#[test]
fn killing_pbxd_during_commits_leaves_everything_in_agreement() {
    assert_agreement(&crash_run("besip-pbxd", 7));
}
