//! Kill a committing process at random moments, many times: the stored
//! configuration must always load, whole and valid (write-temp/fsync/rename).

use besip_core::datastore::{parse_config_tree, Datastore, Source, WithDefaults};
use besip_core::paths::Layout;
use besip_core::schema::Schema;
use std::process::Command;
use std::time::Duration;

fn commit_loop_binary() -> std::path::PathBuf {
    // cargo test builds examples next to the test binaries: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("commit_loop")
}

#[test]
fn killed_mid_commit_always_leaves_a_whole_valid_configuration() {
    let binary = commit_loop_binary();
    assert!(
        binary.exists(),
        "{} missing: cargo test builds examples",
        binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let schema = Schema::get().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut last_hostname = String::new();
    let mut changed = 0;
    for round in 0..25 {
        let mut child = Command::new(&binary).arg(dir.path()).spawn().unwrap();
        if round == 0 {
            // The claim is about a configuration that exists: on a loaded
            // machine the first start may not have written one yet.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !layout.running_config().exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(40 + seed % 120));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();

        let text = std::fs::read_to_string(layout.running_config())
            .unwrap_or_else(|e| panic!("round {round}: running.xml unreadable: {e}"));
        parse_config_tree(schema, &text)
            .unwrap_or_else(|e| panic!("round {round}: running.xml torn or invalid: {e}\n{text}"));
        let store = Datastore::open(layout.clone())
            .unwrap_or_else(|e| panic!("round {round}: datastore does not open: {e}"));
        let hostname = store.print(Source::Running, WithDefaults::Explicit);
        if hostname != last_hostname {
            changed += 1;
            last_hostname = hostname;
        }
        let uci = std::fs::read_to_string(layout.uci_package("besip_system")).unwrap();
        besip_core::uci::Package::parse("besip_system", &uci)
            .unwrap_or_else(|e| panic!("round {round}: UCI torn: {e}"));
    }
    // The child must really have been committing when it was killed.
    assert!(
        changed >= 20,
        "only {changed} of 25 rounds committed anything; the test did not exercise commits"
    );
}
