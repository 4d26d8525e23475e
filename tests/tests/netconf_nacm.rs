//! NACM rules configured under `/nacm` (RFC 8341) take effect in
//! besip-netconfd: ncclient sessions of admin, operator and monitor users
//! against a server of its own (tests/netconf/nacm_cases.py).

use besip_tests::netconf::{suite_dir, NetconfServer, ADMIN_PASSWORD};
use std::process::Command;

#[test]
fn nacm_rules_take_effect() {
    let server = NetconfServer::start();
    let output = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
        ])
        .arg(suite_dir().join("nacm_cases.py"))
        .env("BESIP_NC_PORT", server.port.to_string())
        .env("BESIP_NC_PASSWORD", ADMIN_PASSWORD)
        .env("BESIP_NC_ROOT", server.root_path())
        .output()
        .expect("run /usr/bin/python3 -m pytest (apt install python3-pytest python3-ncclient)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "NACM cases failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    assert!(stdout.contains("8 passed"), "{stdout}");
    // The daemon survived every rule, good or bad.
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
