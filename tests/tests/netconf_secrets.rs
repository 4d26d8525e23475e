//! Issue 13: secrets stay secret (filters cannot probe what a user may not
//! read), the admin data stays the admin's (operator and monitor limits),
//! file:// URLs stay in their directory, and the files that hold secrets are
//! readable by their owner only. ncclient sessions against a server of its
//! own (tests/netconf/secrets_cases.py).

use besip_tests::netconf::{run_pytest, suite_dir, NetconfServer, PytestRun};
use std::os::unix::fs::PermissionsExt;

#[test]
fn secrets_and_admin_data_are_guarded() {
    let server = NetconfServer::start();
    let PytestRun {
        success,
        stdout,
        stderr,
    } = run_pytest(&server, &suite_dir().join("secrets_cases.py"), &[]);
    assert!(
        success,
        "secrets cases failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    assert!(stdout.contains("13 passed"), "{stdout}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    // The rendered packages that hold password hashes and SIP passwords,
    // and running.xml, are readable by their owner only.
    let root = server.root_path();
    for file in [
        "etc/config/besip_system",
        "etc/config/besip_pbx",
        "etc/besip/running.xml",
    ] {
        let meta = std::fs::metadata(root.join(file)).expect(file);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
    }
    let pbx = std::fs::read_to_string(root.join("etc/config/besip_pbx")).unwrap();
    assert!(
        pbx.contains("Ext-secret-100"),
        "the package holds the secret: {pbx}"
    );
}
