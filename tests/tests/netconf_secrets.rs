//! Issue 13: secrets stay secret (filters cannot probe what a user may not
//! read), the admin data stays the admin's (operator and monitor limits),
//! file:// URLs stay in their directory, and the files that hold secrets are
//! readable by their owner only. ncclient sessions against a server of its
//! own (tests/netconf/secrets_cases.py).

use besip_tests::netconf::{run_pytest, suite_dir, NetconfServer, PytestRun};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    assert!(stdout.contains("14 passed"), "{stdout}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    // The rendered packages that hold password hashes and SIP passwords,
    // and running.xml, are readable by their owner only.
    let owner_only = |root: &Path| {
        for file in SECRET_FILES {
            let meta = std::fs::metadata(root.join(file)).expect(file);
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    };
    owner_only(server.root_path());
    let pbx = std::fs::read_to_string(server.root_path().join("etc/config/besip_pbx")).unwrap();
    assert!(
        pbx.contains("Ext-secret-100"),
        "the package holds the secret: {pbx}"
    );
    // A box upgraded from a release that wrote them world-readable: the
    // server narrows them at start, though their contents do not change.
    let root = server.stop();
    for file in SECRET_FILES {
        std::fs::set_permissions(
            root.path().join(file),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let server = NetconfServer::start_in(root);
    owner_only(server.root_path());
}

const SECRET_FILES: [&str; 3] = [
    "etc/config/besip_system",
    "etc/config/besip_pbx",
    "etc/besip/running.xml",
];
