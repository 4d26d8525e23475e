//! The daemon's state answer checked against the besip-pbx YANG module.

use super::Pbx;

/// The state answer checked against the YANG module by yanglint.
pub fn assert_state_valid(pbx: &Pbx, state: &serde_json::Value) {
    if std::process::Command::new("yanglint")
        .arg("-v")
        .output()
        .is_err()
    {
        return;
    }
    let file = pbx.root.path().join("state.json");
    std::fs::write(&file, serde_json::to_vec(state).expect("json")).expect("write");
    let yang = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../yang");
    let out = std::process::Command::new("yanglint")
        .arg("-p")
        .arg(&yang)
        .arg("-p")
        .arg(yang.join("ietf"))
        .args(["-t", "data", "-f", "json"])
        .arg(yang.join("besip-pbx.yang"))
        .arg(&file)
        .output()
        .expect("run yanglint");
    assert!(
        out.status.success(),
        "yanglint rejects the state:\n{}\n{state}",
        String::from_utf8_lossy(&out.stderr)
    );
}
