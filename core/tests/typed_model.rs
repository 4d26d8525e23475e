//! The typed configuration generated from YANG (besip_core::model):
//! every config leaf of every besip module has a field, the rendered UCI
//! package reads back with values and defaults, and no daemon looks a leaf
//! up by a string literal of its own.

mod common;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use besip_core::datastore::Source;
use besip_core::model::{self, pbx, MODULES};
use besip_core::schema::Schema;
use besip_core::yang2::schema::{SchemaNode, SchemaNodeKind, SchemaPathFormat};
use common::*;

fn config_leaves(node: &SchemaNode<'_>, out: &mut BTreeSet<String>) {
    for child in node.children() {
        if !child.is_config() {
            continue;
        }
        match child.kind() {
            SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
                out.insert(child.path(SchemaPathFormat::DATA));
            }
            SchemaNodeKind::Rpc | SchemaNodeKind::Action | SchemaNodeKind::Notification => {}
            _ => config_leaves(&child, out),
        }
    }
}

#[test]
fn every_config_leaf_has_a_generated_field() {
    let schema = Schema::get().unwrap();
    let besip: Vec<_> = schema.besip_modules().collect();
    assert_eq!(
        besip.len(),
        MODULES.len(),
        "a besip module has no generated types"
    );
    for module in besip {
        let table = MODULES
            .iter()
            .find(|m| m.module == module.name)
            .unwrap_or_else(|| panic!("no generated module for {}", module.name));
        assert_eq!(table.namespace, module.namespace);
        assert_eq!(Some(table.package.to_owned()), module.uci_package());
        let mut in_schema = BTreeSet::new();
        let schema_module = schema.module_by_name(&module.name).unwrap();
        for top in schema_module.data() {
            if top.is_config() {
                config_leaves(&top, &mut in_schema);
            }
        }
        let generated: BTreeSet<String> = table.leaves.iter().map(|l| l.path.to_owned()).collect();
        let missing: Vec<_> = in_schema.difference(&generated).collect();
        let extra: Vec<_> = generated.difference(&in_schema).collect();
        assert!(
            missing.is_empty(),
            "{}: leaves without a field: {missing:?}",
            module.name
        );
        assert!(
            extra.is_empty(),
            "{}: fields without a leaf: {extra:?}",
            module.name
        );
        assert!(!in_schema.is_empty(), "{} has no config leaf?", module.name);
    }
}

#[test]
fn rendered_defaults_read_back_as_the_generated_defaults() {
    let (_d, store) = open();
    for table in MODULES {
        let pkg = store
            .render_package(Source::Candidate, table.module)
            .unwrap();
        match table.package {
            pbx::PACKAGE => {
                let read = pbx::Pbx::from_package(&pkg).unwrap();
                assert_eq!(read.registrar, pbx::PbxRegistrar::default());
                assert_eq!(read.tcp, pbx::PbxTcp::default());
                assert_eq!(read.rtp, pbx::PbxRtp::default());
            }
            model::security::PACKAGE => {
                // The default configuration adds rules; leaf-lists come back sorted.
                let read = model::security::Security::from_package(&pkg).unwrap();
                let default = model::security::Security::default();
                assert_eq!(read.auth_failure, default.auth_failure);
                assert_eq!(read.escalation, default.escalation);
                assert_eq!(read.firewall, default.firewall);
                assert_eq!(read.capture, default.capture);
                assert_eq!(read.max_bans, default.max_bans);
                let sorted = |mut v: Vec<String>| {
                    v.sort();
                    v
                };
                assert_eq!(
                    sorted(read.scanner.user_agent.clone()),
                    sorted(default.scanner.user_agent.clone())
                );
                assert_eq!(read.scanner.ban_time, default.scanner.ban_time);
            }
            model::monitoring::PACKAGE => {
                let read = model::monitoring::Monitoring::from_package(&pkg).unwrap();
                assert_eq!(read, model::monitoring::Monitoring::default());
            }
            model::system::PACKAGE => {
                let read = model::system::System::from_package(&pkg).unwrap();
                assert_eq!(read.web, model::system::SystemWeb::default());
            }
            other => panic!("test knows no package {other}"),
        }
    }
}

#[test]
fn a_rendered_pbx_tree_reads_back_typed() {
    let (_d, mut store) = open();
    edit(
        &mut store,
        "<pbx xmlns=\"urn:besip:pbx\">\
           <mode>b2bua</mode>\
           <domain>example.com</domain>\
           <listen><name>tcp6</name><transport>tcp</transport><address>::1</address><port>5070</port></listen>\
           <registrar><min-expires>30</min-expires></registrar>\
           <extension><number>100</number><password>it's</password><enabled>false</enabled><group>sales</group>\
             <outbound><max-spend-per-hour>1.5</max-spend-per-hour></outbound></extension>\
           <extension><number>101</number><password>pw</password></extension>\
           <dispatcher-set><name>gw set</name><algorithm>weighted</algorithm>\
             <destination><uri>sip:10.0.0.1:5060</uri><weight>3</weight></destination>\
             <destination><uri>sip:10.0.0.2:5060</uri></destination></dispatcher-set>\
           <route><name>out</name><match>0</match><dispatcher-set>gw set</dispatcher-set></route>\
           <nat><external-address>192.0.2.1</external-address></nat>\
         </pbx>",
    )
    .unwrap();
    let pkg = store
        .render_package(Source::Candidate, pbx::MODULE)
        .unwrap();
    let p = pbx::Pbx::from_package(&pkg).unwrap();
    assert_eq!(p.mode, pbx::Mode::B2bua);
    assert_eq!(p.domain, ["example.com"]);
    let mut methods = p.allowed_method.clone();
    methods.sort();
    assert_eq!(methods, pbx::AllowedMethod::ALL, "leaf-list defaults");
    let listen = p.listen.iter().find(|l| l.name == "tcp6").unwrap();
    assert_eq!(listen.transport, pbx::Transport::Tcp);
    assert_eq!(listen.address, "::1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(listen.port, Some(5070));
    assert_eq!(p.registrar.min_expires, 30);
    assert_eq!(p.registrar.max_expires, 7200, "YANG default");
    let e100 = p.extension.iter().find(|e| e.number == "100").unwrap();
    assert_eq!(e100.password, "it's");
    assert!(!e100.enabled);
    assert_eq!(e100.group, ["sales"]);
    assert_eq!(
        e100.outbound.max_spend_per_hour,
        Some(model::Decimal64(15_000))
    );
    let e101 = p.extension.iter().find(|e| e.number == "101").unwrap();
    assert!(e101.enabled, "YANG default");
    assert_eq!(e101.outbound.max_spend_per_hour, None);
    let set = &p.dispatcher_set[0];
    assert_eq!(set.name, "gw set");
    assert_eq!(set.algorithm, pbx::DispatcherSetAlgorithm::Weighted);
    let weights: Vec<(String, u16)> = set
        .destination
        .iter()
        .map(|d| (d.uri.clone(), d.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("sip:10.0.0.1:5060".to_owned(), 3),
            ("sip:10.0.0.2:5060".to_owned(), 1)
        ]
    );
    assert_eq!(p.route[0].dispatcher_set.as_deref(), Some("gw set"));
    assert_eq!(p.route[0].trunk, None);
    assert_eq!(p.nat.external_address, Some("192.0.2.1".parse().unwrap()));
}

#[test]
fn bad_values_name_package_section_option_and_value() {
    let pkg = besip_core::uci::Package::parse(
        "besip_pbx",
        "package besip_pbx\n\nconfig pbx 'main'\n\toption rtp_port_min 'low'\n",
    )
    .unwrap();
    let err = pbx::Pbx::from_package(&pkg).unwrap_err().to_string();
    for part in ["besip_pbx", "main", pbx::PbxRtp::OPTION_PORT_MIN, "'low'"] {
        assert!(err.contains(part), "{part} missing in: {err}");
    }
    let pkg = besip_core::uci::Package::parse(
        "besip_pbx",
        "package besip_pbx\n\nconfig pbx 'main'\n\toption rtp_port_min '80'\n",
    )
    .unwrap();
    assert!(matches!(
        pbx::Pbx::from_package(&pkg),
        Err(model::ModelError::OutOfRange { .. })
    ));
    let pkg = besip_core::uci::Package::parse(
        "besip_pbx",
        "package besip_pbx\n\nconfig dispatcher_set_destination 'd'\n\toption dispatcher_set 'none'\n\toption uri 'sip:10.0.0.1'\n",
    )
    .unwrap();
    assert!(matches!(
        pbx::Pbx::from_package(&pkg),
        Err(model::ModelError::Orphan { .. })
    ));
}

/// String literals of a Rust source (enough of the grammar for ours: plain
/// and raw strings, comments skipped), with their line numbers and offsets.
fn string_literals(text: &str) -> Vec<(usize, usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' => {
                // A char literal ('"' included) or a lifetime: skip the quoted char.
                if bytes.get(i + 2) == Some(&b'\'') {
                    i += 3;
                    continue;
                }
                if bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 3) == Some(&b'\'') {
                    i += 4;
                    continue;
                }
            }
            b'r' if bytes.get(i + 1) == Some(&b'#') || bytes.get(i + 1) == Some(&b'"') => {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                if bytes.get(i + 1 + hashes) == Some(&b'"')
                    && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_')
                {
                    let start = i + 2 + hashes;
                    let end_marker = format!("\"{}", "#".repeat(hashes));
                    if let Some(len) = text[start..].find(&end_marker) {
                        let literal = &text[start..start + len];
                        out.push((line, i, literal.to_owned()));
                        line += literal.matches('\n').count();
                        i = start + len + end_marker.len();
                        continue;
                    }
                }
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let literal = &text[start..j.min(bytes.len())];
                out.push((line, i, literal.to_owned()));
                line += literal.matches('\n').count();
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether the literal starting at `offset` is the argument of a UCI lookup
/// (`Section::get/list/get_parsed/get_bool/option`, `Package::section/sections_of`).
fn is_uci_lookup(text: &str, offset: usize) -> bool {
    let before = text[..offset].trim_end();
    [
        ".get(",
        ".list(",
        ".get_parsed(",
        ".get_bool(",
        ".option(",
        "sections_of(",
        ".section(",
    ]
    .iter()
    .any(|a| before.ends_with(a))
        || (before.ends_with(">(")
            && before
                .rfind("get_parsed::<")
                .is_some_and(|p| before.len() - p < 40))
}

/// A daemon reads its configuration through the generated types only. Two
/// rules, so that words that are also leaf names (a JSON key "name", a form
/// field "password", a test's UCI text) stay legal: (1) in a file that uses
/// the UCI API (`besip_core::uci`), no UCI lookup whose literal names an
/// option or section type of any besip module; (2) anywhere, no literal that is an option or section
/// type with a container prefix (`registrar_min_expires`,
/// `dispatcher_set_destination`): such names exist only in UCI.
#[test]
fn daemons_name_no_config_leaf_in_a_string_literal() {
    let mut uci_names = BTreeSet::new();
    let mut prefixed = BTreeSet::new();
    for table in MODULES {
        for leaf in table.leaves {
            let yang_name = leaf.path.rsplit('/').next().unwrap().replace('-', "_");
            uci_names.insert(leaf.option.to_owned());
            uci_names.insert(leaf.section_type.to_owned());
            if leaf.option != yang_name {
                prefixed.insert(leaf.option.to_owned());
            }
            if leaf.section_type.contains('_') {
                prefixed.insert(leaf.section_type.to_owned());
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["pbx/src", "security/src", "monitoring/src"] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(
        files.len() > 20,
        "daemon sources not found under {}",
        root.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let uses_uci = text.contains("besip_core::uci");
        for (line, offset, literal) in string_literals(&text) {
            if prefixed.contains(&literal)
                || (uses_uci && uci_names.contains(&literal) && is_uci_lookup(&text, offset))
            {
                found.push(format!("{}:{line}: \"{literal}\"", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "config leaves named by string literal (use besip_core::model):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_literal_scanner_sees_literals() {
    let lits = string_literals(
        "let a = \"x\"; // \"comment\"\nlet b = r#\"raw \"q\" \"#; let c = '\"'; let d = \"e\\\"f\";\n",
    );
    let texts: Vec<&str> = lits.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, ["x", "raw \"q\" ", "e\\\"f"]);
}
