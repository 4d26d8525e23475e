//! Whole-box export/import with `besip` between two besip-netconfd
//! instances (different roots and ports), and every kind of bad file.

use besip_tests::cli::{admin, besip, uci_files};
use besip_tests::netconf::{NetconfServer, ADMIN_PASSWORD};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn configure_box_a(port: u16) {
    admin(
        port,
        &[
            "set system hostname branch-a",
            "set pbx mode b2bua",
            "set pbx extension 100 password \"s3cret with space\"",
            "set pbx extension 101 password two",
            "commit comment box a",
        ],
    );
}

fn export(port: u16, user: &str, pw: &str, file: &Path, format: &str) {
    let out = besip(
        port,
        user,
        pw,
        &["export", "--format", format, file.to_str().unwrap()],
        "",
    );
    assert_eq!(out.code, 0, "export: {}", out.stderr);
}

fn import(port: u16, file: &Path) -> besip_tests::cli::Output {
    besip(
        port,
        "admin",
        ADMIN_PASSWORD,
        &["import", file.to_str().unwrap()],
        "",
    )
}

#[test]
fn export_from_a_import_on_b_gives_identical_box() {
    let a = NetconfServer::start();
    let b = NetconfServer::start();
    configure_box_a(a.port);
    let dir = tempfile::tempdir().unwrap();
    for format in ["xml", "json"] {
        let file = dir.path().join(format!("box.{format}"));
        export(a.port, "admin", ADMIN_PASSWORD, &file, format);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("s3cret with space"), "{text}");
        assert!(text.contains("branch-a"), "{text}");
        let out = import(b.port, &file);
        assert_eq!(out.code, 0, "import {format}: {}{}", out.stdout, out.stderr);
        if format == "xml" {
            assert!(
                out.stdout.contains("+ set pbx mode b2bua"),
                "{}",
                out.stdout
            );
            assert!(out.stdout.contains("committed"), "{}", out.stdout);
        } else {
            assert!(out.stdout.contains("No changes"), "{}", out.stdout);
        }
        assert_eq!(
            admin(a.port, &["show configuration running"]),
            admin(b.port, &["show configuration running"])
        );
        assert_eq!(uci_files(a.root_path()), uci_files(b.root_path()));
    }
    assert!(!uci_files(b.root_path()).is_empty());
}

#[test]
fn bad_files_are_refused_with_line_and_path_and_change_nothing() {
    let a = NetconfServer::start();
    let b = NetconfServer::start();
    configure_box_a(a.port);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xml");
    export(a.port, "admin", ADMIN_PASSWORD, &good, "xml");
    let text = std::fs::read_to_string(&good).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let before = admin(b.port, &["show configuration running"]);
    let uci_before = uci_files(b.root_path());
    let cases: Vec<(&str, String, String)> = vec![
        (
            "malformed",
            text.replace("</extension>", "</extensio>"),
            "malformed XML at line".into(),
        ),
        (
            "wrong value",
            text.replace("<mode>b2bua</mode>", "<mode>bogus</mode>"),
            format!("wrong value.xml:{}:", line_of("<mode>")),
        ),
        (
            "unknown node",
            text.replace("<hostname>", "<colour>red</colour><hostname>"),
            "colour".into(),
        ),
        (
            "other box's users",
            text.replace("<name>admin</name>", "<name>someone</name>"),
            "would lock you out".into(),
        ),
    ];
    for (name, content, expected) in cases {
        let file = dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, &content).unwrap();
        let out = import(b.port, &file);
        assert_eq!(out.code, 1, "{name}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&expected),
            "{name}: expected '{expected}' in {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(file.to_str().unwrap()) || name == "other box's users",
            "{name}: {}",
            out.stderr
        );
        assert_eq!(
            admin(b.port, &["show configuration running"]),
            before,
            "{name}"
        );
        assert_eq!(uci_files(b.root_path()), uci_before, "{name}");
        assert_eq!(admin(b.port, &["compare"]).trim(), "No changes.", "{name}");
    }
    // The wrong value also names the YANG path.
    let file = dir.path().join("wrong value.xml");
    let out = import(b.port, &file);
    assert!(
        out.stderr.contains("(path /besip-pbx:pbx/") && out.stderr.contains("mode)"),
        "{}",
        out.stderr
    );
}

#[test]
fn secrets_are_exported_only_for_admins() {
    let a = NetconfServer::start();
    let hash = besip_core::password::hash("op-pw").unwrap();
    admin(
        a.port,
        &[
            &format!("set system user oper password-hash {hash}"),
            "set system user oper group operator",
            "commit",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let by_admin = dir.path().join("admin.xml");
    export(a.port, "admin", ADMIN_PASSWORD, &by_admin, "xml");
    assert!(std::fs::read_to_string(&by_admin)
        .unwrap()
        .contains("password-hash"));
    let by_oper = dir.path().join("oper.xml");
    // An export file that exists world-readable is narrowed, not reused as is.
    std::fs::write(&by_oper, "old").unwrap();
    std::fs::set_permissions(&by_oper, std::fs::Permissions::from_mode(0o644)).unwrap();
    export(a.port, "oper", "op-pw", &by_oper, "xml");
    let text = std::fs::read_to_string(&by_oper).unwrap();
    assert!(!text.contains("password-hash"), "{text}");
    assert!(!text.contains("$argon2"), "{text}");
    assert!(text.contains("<name>oper</name>"), "{text}");
    // Exports hold SIP passwords (and an admin's, password hashes).
    for file in [&by_admin, &by_oper] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

/// The server's own `<copy-config>` from a `file://` URL takes a `besip
/// export` file: box B ends up with box A's configuration.
#[test]
fn exported_file_loads_through_copy_config_url() {
    let a = NetconfServer::start();
    let b = NetconfServer::start();
    configure_box_a(a.port);
    // file:// URLs name files in B's besip-system netconf/files-directory only.
    let files = b.root_path().join("var/lib/besip/files");
    std::fs::create_dir_all(&files).unwrap();
    let file = files.join("box.xml");
    export(a.port, "admin", ADMIN_PASSWORD, &file, "xml");
    let (ok, out) = besip_tests::netconf::python(
        b.port,
        ADMIN_PASSWORD,
        &format!(
            "from ncclient.xml_ import to_ele\nm = connect()\n\
             m.dispatch(to_ele('<copy-config xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><target><candidate/></target><source><url>file://{}</url></source></copy-config>'))\n\
             m.commit()\nprint('DONE')",
            file.display()
        ),
    );
    assert!(ok && out.contains("DONE"), "{out}");
    assert_eq!(
        admin(a.port, &["show configuration running"]),
        admin(b.port, &["show configuration running"])
    );
    assert_eq!(uci_files(a.root_path()), uci_files(b.root_path()));
}
