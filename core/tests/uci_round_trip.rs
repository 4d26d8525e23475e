//! The generic YANG<->UCI rule read both ways: random valid configurations
//! rendered to UCI and imported back give the same tree; a hand-edited file
//! with a bad value is rejected with file, line and YANG path, changing nothing.

mod common;
use besip_core::datastore::{Datastore, Source, WithDefaults};
use besip_core::paths::Layout;
use besip_core::uci::Package;
use common::*;
use proptest::prelude::*;

fn round_trip_all_modules(store: &mut Datastore) {
    let dir = tempfile::tempdir().unwrap();
    let mut other = Datastore::open(Layout::new(dir.path())).unwrap();
    for module in store.schema().besip_modules() {
        let package = store
            .render_package(Source::Candidate, &module.name)
            .unwrap();
        let text = package.render();
        assert_eq!(
            store.render_text(Source::Candidate, &module.name).unwrap(),
            text,
            "fast renderer disagrees for {}",
            module.name
        );
        let parsed = Package::parse(&package.name, &text).unwrap();
        other
            .import_uci(&parsed)
            .unwrap_or_else(|e| panic!("import of {}: {e}\n{text}", package.name));
        let again = other
            .render_package(Source::Candidate, &module.name)
            .unwrap()
            .render();
        assert_eq!(
            text, again,
            "UCI text of {} changed in the round trip",
            module.name
        );
    }
    assert_eq!(
        store.print(Source::Candidate, WithDefaults::ReportAll),
        other.print(Source::Candidate, WithDefaults::ReportAll),
        "trees differ after YANG -> UCI -> YANG"
    );
}

#[test]
fn defaults_of_every_module_round_trip() {
    let (_d, mut store) = open();
    round_trip_all_modules(&mut store);
}

fn xml_escape(s: &str) -> String {
    besip_core::xml::escape(s)
}

prop_compose! {
    fn arb_user()(name in "[a-z_][a-z0-9_-]{0,12}",
                  group in prop::sample::select(vec!["admin", "operator", "monitor"]),
                  full_name in prop::option::of("[A-Za-z '\"&<>_.-]{0,20}"),
                  keys in prop::collection::vec("[A-Za-z0-9+/]{8,30}", 0..3)) -> String {
        let mut xml = format!("<user><name>{name}</name><group>{group}</group>");
        if let Some(full) = full_name {
            xml.push_str(&format!("<full-name>{}</full-name>", xml_escape(&full)));
        }
        for key in keys {
            xml.push_str(&format!("<ssh-key>ssh-ed25519 {key} user@host</ssh-key>"));
        }
        xml.push_str("<password-hash>$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA</password-hash></user>");
        xml
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn random_system_configurations_round_trip(
        hostname in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        users in prop::collection::vec(arb_user(), 0..6),
        port in 1024u16..60000,
        idle in prop::sample::select(vec![0u32, 30, 600, 86400]),
        addresses in prop::collection::vec((1u8..255, 0u8..255), 0..3),
        web_enabled in any::<bool>(),
        level in prop::sample::select(vec!["error", "warn", "info", "debug", "trace"]),
    ) {
        prop_assume!(port != 8080);
        let (_d, mut store) = open();
        let mut xml = format!("<system xmlns=\"{SYS}\"><hostname>{hostname}</hostname>");
        for u in &users { xml.push_str(u); }
        xml.push_str(&format!("<netconf><port>{port}</port><idle-timeout>{idle}</idle-timeout>"));
        for (a, b) in &addresses { xml.push_str(&format!("<listen-address>127.{a}.{b}.1</listen-address>")); }
        xml.push_str(&format!("</netconf><web><enabled>{web_enabled}</enabled></web><logging><level>{level}</level></logging></system>"));
        edit(&mut store, &xml).unwrap();
        round_trip_all_modules(&mut store);
    }
}

#[tokio::test]
async fn hand_edited_bad_value_names_file_line_and_path_and_changes_nothing() {
    let (dir, mut store) = open();
    edit(&mut store, &user("ops", "operator")).unwrap();
    store
        .commit(Default::default(), &besip_core::datastore::NoReload)
        .await
        .unwrap();
    let running_before = store.print(Source::Running, WithDefaults::Explicit);
    let path = dir.path().join("etc/config/besip_system");
    let text = std::fs::read_to_string(&path).unwrap();
    let line_no = text
        .lines()
        .position(|l| l.contains("option group 'operator'"))
        .unwrap()
        + 1;
    std::fs::write(
        &path,
        text.replace("option group 'operator'", "option group 'wizard'"),
    )
    .unwrap();

    let package = Package::load(&path).unwrap();
    let err = store.import_uci(&package).unwrap_err();
    assert_eq!(err.file, path.display().to_string());
    assert_eq!(err.line, line_no, "{err}");
    assert_eq!(err.yang_path, "/besip-system:system/user[name='ops']/group");
    assert!(err.to_string().contains("wizard"), "{err}");
    assert_eq!(
        store.print(Source::Running, WithDefaults::Explicit),
        running_before
    );
    assert!(
        !store.candidate_modified(),
        "a rejected import must not touch the candidate"
    );

    // A must-violation found only by whole-tree validation still names the line.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("option group 'wizard'", "option group 'operator'");
    let text = text.replace("option netconf_port '830'", "option netconf_port '8080'");
    std::fs::write(&path, &text).unwrap();
    let err = store
        .import_uci(&Package::load(&path).unwrap())
        .unwrap_err();
    let expected_line = text
        .lines()
        .position(|l| l.contains("option web_port"))
        .unwrap()
        + 1;
    assert!(err.message.contains("same port"), "{err}");
    assert!(
        err.line == expected_line || err.yang_path.contains("web"),
        "{err}"
    );
    assert!(!store.candidate_modified());
}

#[test]
fn import_refuses_unknown_options_and_sections() {
    let (_d, mut store) = open();
    let pkg = Package::parse(
        "besip_system",
        "config system 'main'\n\toption hostname 'a'\n\toption colour 'blue'\n",
    )
    .unwrap();
    let err = store.import_uci(&pkg).unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    let pkg = Package::parse("besip_system", "config gizmo 'x'\n").unwrap();
    let err = store.import_uci(&pkg).unwrap_err();
    assert_eq!(err.line, 1, "{err}");
    assert!(!store.candidate_modified());
}
