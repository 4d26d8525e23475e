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
        prop_assume!(port != 8080 && port != 8443); // the web panel's default ports
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

prop_compose! {
    fn arb_pbx()(extensions in prop::collection::btree_map("[0-9]{2,5}", (
                    prop::option::of("[A-Za-z '&<>_.:/-]{0,24}"), // no '"': YANG refuses it (header-text)
                    "[A-Za-z0-9!#%'_-]{4,16}",
                    any::<bool>(),
                    prop::collection::btree_set("[a-z]{3,8}", 0..3),
                    prop::option::of("[0-9]{3,6}"),
                 ), 1..8),
                 alias_picks in prop::collection::vec(("[a-z0-9]{1,6}", any::<prop::sample::Index>()), 0..4),
                 trunks in prop::collection::btree_set("[a-z][a-z0-9-]{0,8}", 0..3),
                 dispatchers in prop::collection::btree_map("[a-z][a-z0-9]{0,6}",
                    prop::collection::btree_map((1u8..250, 1000u16..9999), 1u16..1000, 1..4), 0..3),
                 domains in prop::collection::btree_set("[a-z]{1,8}\\.example", 0..3),
                 external in prop::option::of((1u8..224, 0u8..255)),
                 mode in prop::sample::select(vec!["proxy", "b2bua"])) -> String {
        let mut xml = format!("<pbx xmlns=\"urn:besip:pbx\"><mode>{mode}</mode>");
        for d in &domains { xml.push_str(&format!("<domain>{d}</domain>")); }
        let numbers: Vec<&String> = extensions.keys().collect();
        for (number, (display, password, enabled, groups, busy)) in &extensions {
            xml.push_str(&format!("<extension><number>{number}</number><password>{}</password><enabled>{enabled}</enabled>", xml_escape(password)));
            if let Some(d) = display { xml.push_str(&format!("<display-name>{}</display-name>", xml_escape(d))); }
            for g in groups { xml.push_str(&format!("<group>{g}</group>")); }
            if let Some(b) = busy { xml.push_str(&format!("<forwarding><busy>{b}</busy></forwarding>")); }
            xml.push_str("</extension>");
        }
        let mut seen = std::collections::BTreeSet::new();
        for (alias, pick) in &alias_picks {
            let alias = format!("a{alias}");
            if seen.insert(alias.clone()) {
                xml.push_str(&format!("<alias><alias>{alias}</alias><extension>{}</extension></alias>", numbers[pick.index(numbers.len())]));
            }
        }
        for (i, t) in trunks.iter().enumerate() {
            xml.push_str(&format!("<trunk><name>{t}</name><host>gw{i}.example</host></trunk>"));
            xml.push_str(&format!("<route><name>r{i}</name><match>^0{i}</match><trunk>{t}</trunk></route>"));
        }
        for (name, destinations) in &dispatchers {
            xml.push_str(&format!("<dispatcher-set><name>{name}</name>"));
            for ((host, port), weight) in destinations {
                xml.push_str(&format!("<destination><uri>sip:10.0.0.{host}:{port};transport=udp</uri><weight>{weight}</weight></destination>"));
            }
            xml.push_str("</dispatcher-set>");
        }
        if let Some((a, b)) = external {
            xml.push_str(&format!("<nat><external-address>{a}.{b}.0.1</external-address><local-network>192.168.{b}.0/24</local-network></nat>"));
        }
        xml.push_str("</pbx>");
        xml
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn random_pbx_configurations_round_trip(pbx in arb_pbx()) {
        let (_d, mut store) = open();
        prop_assume!(store.schema().besip_modules().any(|m| m.name == "besip-pbx"));
        edit(&mut store, &pbx).unwrap_or_else(|e| panic!("{e}\n{pbx}"));
        store.validate(Source::Candidate).unwrap_or_else(|e| panic!("{e}\n{pbx}"));
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

#[test]
fn the_default_configuration_renders_every_package_with_the_besip_rules() {
    let (dir, _store) = open();
    for package in [
        "besip_system",
        "besip_pbx",
        "besip_security",
        "besip_monitoring",
    ] {
        let path = dir.path().join("etc/config").join(package);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{package} not rendered: {e}"));
        Package::parse(package, &text).unwrap();
    }
    let security = Package::load(&dir.path().join("etc/config/besip_security")).unwrap();
    let register = security
        .section("rule_register_2dflood")
        .expect("the BESIP REGISTER rule");
    assert_eq!(register.get("method"), Some("REGISTER"));
    assert_eq!(register.get_parsed::<u32>("count").unwrap(), Some(50));
    assert_eq!(register.get_parsed::<u32>("window").unwrap(), Some(5));
    assert_eq!(register.get_parsed::<u32>("ban_time").unwrap(), Some(600));
    let pike = security.section("rule_pike").expect("the pike-like rule");
    assert_eq!(
        (pike.get("count"), pike.get("window")),
        (Some("16"), Some("2"))
    );
    assert!(security
        .section("main")
        .unwrap()
        .list("scanner_user_agent")
        .iter()
        .any(|ua| ua == "friendly-scanner"));
}
