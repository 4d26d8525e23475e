//! Every edit operation and error tag of RFC 6241 §7.2 against the real schema.

mod common;
use besip_core::datastore::{CommitOptions, NoReload, Source, WithDefaults};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::error::ErrorTag;
use besip_core::filter::Filter;
use common::*;

fn candidate(store: &besip_core::datastore::Datastore) -> String {
    store.print(Source::Candidate, WithDefaults::Explicit)
}

fn first_tag(result: Result<(), besip_core::error::ConfigErrors>) -> (ErrorTag, Option<String>) {
    let errors = result.unwrap_err();
    (errors.0[0].tag, errors.0[0].path.clone())
}

#[test]
fn merge_creates_and_updates() {
    let (_d, mut store) = open();
    edit(&mut store, &user("alice", "operator")).unwrap();
    assert!(candidate(&store).contains("<name>alice</name>"));
    edit(&mut store, &user("alice", "admin")).unwrap();
    let text = candidate(&store);
    assert!(text.contains("<group>admin</group>"), "{text}");
    assert_eq!(text.matches("<name>alice</name>").count(), 1);
}

#[test]
fn create_on_existing_is_data_exists() {
    let (_d, mut store) = open();
    edit(&mut store, &user("bob", "monitor")).unwrap();
    let xml = format!(
        "<system xmlns=\"{SYS}\"><user nc:operation=\"create\"><name>bob</name></user></system>"
    );
    let (tag, path) = first_tag(edit(&mut store, &xml));
    assert_eq!(tag, ErrorTag::DataExists);
    assert_eq!(
        path.as_deref(),
        Some("/besip-system:system/besip-system:user[name='bob']")
    );
}

#[test]
fn delete_of_missing_is_data_missing_and_remove_is_silent() {
    let (_d, mut store) = open();
    let xml = format!(
        "<system xmlns=\"{SYS}\"><user nc:operation=\"delete\"><name>ghost</name></user></system>"
    );
    assert_eq!(first_tag(edit(&mut store, &xml)).0, ErrorTag::DataMissing);
    let xml = format!(
        "<system xmlns=\"{SYS}\"><user nc:operation=\"remove\"><name>ghost</name></user></system>"
    );
    edit(&mut store, &xml).unwrap();
}

#[test]
fn delete_removes_entry_and_leaf() {
    let (_d, mut store) = open();
    edit(&mut store, &format!("<system xmlns=\"{SYS}\"><user><name>c</name><full-name>Carol</full-name></user></system>")).unwrap();
    edit(&mut store, &format!("<system xmlns=\"{SYS}\"><user><name>c</name><full-name nc:operation=\"delete\"/></user></system>")).unwrap();
    assert!(!candidate(&store).contains("Carol"));
    edit(
        &mut store,
        &format!(
            "<system xmlns=\"{SYS}\"><user nc:operation=\"delete\"><name>c</name></user></system>"
        ),
    )
    .unwrap();
    assert!(!candidate(&store).contains("<name>c</name>"));
}

#[test]
fn replace_drops_children_not_given() {
    let (_d, mut store) = open();
    edit(&mut store, &format!("<system xmlns=\"{SYS}\"><user><name>d</name><full-name>Dave</full-name><group>admin</group></user></system>")).unwrap();
    edit(&mut store, &format!("<system xmlns=\"{SYS}\"><user nc:operation=\"replace\"><name>d</name><group>operator</group></user></system>")).unwrap();
    let text = candidate(&store);
    assert!(!text.contains("Dave"), "{text}");
    assert!(text.contains("<group>operator</group>"));
}

#[test]
fn default_operation_none_needs_explicit_operations() {
    let (_d, mut store) = open();
    edit_with(
        &mut store,
        &user("e", "admin"),
        DefaultOperation::None,
        ErrorOption::StopOnError,
    )
    .unwrap();
    assert!(
        !candidate(&store).contains("<name>e</name>"),
        "none must not create"
    );
    let xml = format!(
        "<system xmlns=\"{SYS}\"><user nc:operation=\"merge\"><name>e</name></user></system>"
    );
    edit_with(
        &mut store,
        &xml,
        DefaultOperation::None,
        ErrorOption::StopOnError,
    )
    .unwrap();
    assert!(candidate(&store).contains("<name>e</name>"));
}

#[test]
fn invalid_value_unknown_element_unknown_namespace_bad_attribute() {
    let (_d, mut store) = open();
    let before = candidate(&store);
    let (tag, path) = first_tag(edit(&mut store, &user("f", "superuser")));
    assert_eq!(tag, ErrorTag::InvalidValue);
    assert_eq!(
        path.as_deref(),
        Some("/besip-system:system/besip-system:user[name='f']/besip-system:group")
    );
    let (tag, path) = first_tag(edit(
        &mut store,
        &format!("<system xmlns=\"{SYS}\"><frobnicate>1</frobnicate></system>"),
    ));
    assert_eq!(tag, ErrorTag::UnknownElement);
    assert_eq!(
        path.as_deref(),
        Some("/besip-system:system/besip-system:frobnicate")
    );
    assert_eq!(
        first_tag(edit(&mut store, "<system xmlns=\"urn:nowhere\"/>")).0,
        ErrorTag::UnknownNamespace
    );
    let xml = format!(
        "<system xmlns=\"{SYS}\"><hostname nc:operation=\"obliterate\">x</hostname></system>"
    );
    assert_eq!(first_tag(edit(&mut store, &xml)).0, ErrorTag::BadAttribute);
    let xml = format!("<system xmlns=\"{SYS}\"><user><group>admin</group></user></system>");
    assert_eq!(
        first_tag(edit(&mut store, &xml)).0,
        ErrorTag::MissingElement
    );
    assert_eq!(
        candidate(&store),
        before,
        "failed edits must change nothing"
    );
}

#[test]
fn stop_on_error_is_all_or_nothing_and_continue_keeps_the_good_part() {
    let (_d, mut store) = open();
    let xml = format!("{}{}", user("good", "admin"), user("bad", "nope"));
    edit_with(
        &mut store,
        &xml,
        DefaultOperation::Merge,
        ErrorOption::StopOnError,
    )
    .unwrap_err();
    assert!(!candidate(&store).contains("<name>good</name>"));
    edit_with(
        &mut store,
        &xml,
        DefaultOperation::Merge,
        ErrorOption::RollbackOnError,
    )
    .unwrap_err();
    assert!(!candidate(&store).contains("<name>good</name>"));
    let errors = edit_with(
        &mut store,
        &xml,
        DefaultOperation::Merge,
        ErrorOption::ContinueOnError,
    )
    .unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(candidate(&store).contains("<name>good</name>"));
}

#[tokio::test]
async fn must_violation_is_reported_at_validate_and_commit_and_running_is_untouched() {
    let (_d, mut store) = open();
    let running_before = store.print(Source::Running, WithDefaults::Explicit);
    let xml = format!("<system xmlns=\"{SYS}\"><netconf><port>8080</port></netconf></system>");
    // The candidate may be invalid for a while (RFC 6241 §8.3) ...
    edit(&mut store, &xml).unwrap();
    // ... but <validate> and <commit> refuse it.
    let error = store.validate(Source::Candidate).unwrap_err();
    assert_eq!(error.tag, ErrorTag::OperationFailed);
    assert_eq!(error.app_tag.as_deref(), Some("must-violation"));
    assert!(error.message.contains("same port"), "{}", error.message);
    assert!(
        error.path.as_deref().unwrap_or("").contains("web"),
        "{error}"
    );
    let errors = store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap_err();
    assert_eq!(errors.0[0].app_tag.as_deref(), Some("must-violation"));
    assert_eq!(
        store.print(Source::Running, WithDefaults::Explicit),
        running_before
    );
    // Fixing the candidate makes the same commit go through.
    edit(
        &mut store,
        &format!("<system xmlns=\"{SYS}\"><netconf><port>8830</port></netconf></system>"),
    )
    .unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    assert!(store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("<port>8830</port>"));
}

#[test]
fn test_only_validates_and_changes_nothing() {
    use besip_core::datastore::TestOption;
    let (_d, mut store) = open();
    let before = candidate(&store);
    let doc = format!(
        "<config><system xmlns=\"{SYS}\"><netconf><port>8080</port></netconf></system></config>"
    );
    let elements = besip_core::xml::parse(&doc).unwrap();
    let errors = store
        .edit_candidate(
            &elements[0].children,
            DefaultOperation::Merge,
            ErrorOption::StopOnError,
            TestOption::TestOnly,
        )
        .unwrap_err();
    assert_eq!(errors.0[0].app_tag.as_deref(), Some("must-violation"));
    assert_eq!(candidate(&store), before);
    let doc = format!("<config>{}</config>", user("t1", "admin"));
    let elements = besip_core::xml::parse(&doc).unwrap();
    store
        .edit_candidate(
            &elements[0].children,
            DefaultOperation::Merge,
            ErrorOption::StopOnError,
            TestOption::TestOnly,
        )
        .unwrap();
    assert_eq!(candidate(&store), before);
}

#[tokio::test]
async fn commit_discard_and_rollback() {
    let (dir, mut store) = open();
    edit(&mut store, &user("g", "admin")).unwrap();
    assert!(store.candidate_modified());
    assert!(!store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("<name>g</name>"));
    let outcome = store
        .commit(
            CommitOptions {
                user: "t".into(),
                comment: "add g".into(),
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    assert_eq!(outcome.changed_packages, vec!["besip_system".to_string()]);
    let uci = std::fs::read_to_string(dir.path().join("etc/config/besip_system")).unwrap();
    assert!(uci.contains("config user 'user_g'"), "{uci}");
    assert!(
        std::fs::read_to_string(dir.path().join("etc/besip/running.xml"))
            .unwrap()
            .contains("<name>g</name>")
    );

    edit(&mut store, &user("h", "admin")).unwrap();
    store.discard_changes().unwrap();
    assert!(!store
        .print(Source::Candidate, WithDefaults::Explicit)
        .contains("<name>h</name>"));

    store.rollback_candidate(1).unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    assert!(!store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("<name>g</name>"));
    assert_eq!(store.history().unwrap()[1].comment, "add g");
}

#[test]
fn with_defaults_modes() {
    let (_d, store) = open();
    let explicit = store.print(Source::Running, WithDefaults::Explicit);
    assert!(!explicit.contains("<port>830</port>"), "{explicit}");
    let all = store.print(Source::Running, WithDefaults::ReportAll);
    assert!(all.contains("<port>830</port>"), "{all}");
    let tagged = store.print(Source::Running, WithDefaults::ReportAllTagged);
    assert!(tagged.contains("default=\"true\""), "{tagged}");
    let trim = store.print(Source::Running, WithDefaults::Trim);
    assert!(!trim.contains("<hostname>besip</hostname>"), "{trim}");
}

#[test]
fn subtree_and_xpath_filters() {
    let (_d, mut store) = open();
    edit(
        &mut store,
        &format!("{}{}", user("x1", "admin"), user("x2", "monitor")),
    )
    .unwrap();
    let filter = Filter::Subtree(
        besip_core::xml::parse(&format!(
            "<system xmlns=\"{SYS}\"><user><name>x2</name></user></system>"
        ))
        .unwrap(),
    );
    let out = store
        .get_config(Source::Candidate, &filter, WithDefaults::Explicit)
        .unwrap();
    assert!(out.contains("x2") && !out.contains("x1"), "{out}");
    assert!(
        out.contains("<group>monitor</group>"),
        "content match returns the whole entry: {out}"
    );
    let filter = Filter::Subtree(
        besip_core::xml::parse(&format!("<system xmlns=\"{SYS}\"><hostname/></system>")).unwrap(),
    );
    let out = store
        .get_config(Source::Candidate, &filter, WithDefaults::Explicit)
        .unwrap();
    assert!(
        out.contains("<hostname>besip</hostname>") && !out.contains("x1"),
        "{out}"
    );
    let filter = Filter::XPath {
        select: "/s:system/s:user[s:group='admin']".into(),
        namespaces: vec![("s".into(), SYS.into())],
    };
    let out = store
        .get_config(Source::Candidate, &filter, WithDefaults::Explicit)
        .unwrap();
    assert!(out.contains("x1") && !out.contains("x2"), "{out}");
}

#[tokio::test]
async fn deleting_a_whole_module_configuration_is_safe() {
    // Regression: removing the first top-level node used to leave a dangling root (SIGSEGV).
    let (_d, mut store) = open();
    edit(&mut store, &user("z", "admin")).unwrap();
    edit(
        &mut store,
        &format!("<system xmlns=\"{SYS}\" nc:operation=\"delete\"/>"),
    )
    .unwrap();
    assert!(!candidate(&store).contains("<name>z</name>"));
    edit(&mut store, &user("z2", "admin")).unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    assert!(store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("<name>z2</name>"));
}

#[test]
fn a_failed_edit_takes_back_deletes_replaces_and_validation_failures() {
    let (_d, mut store) = open();
    edit(
        &mut store,
        &format!("{}{}", user("keep1", "admin"), user("keep2", "operator")),
    )
    .unwrap();
    let before = candidate(&store);
    // delete + replace succeed, then an invalid value fails: everything comes back.
    let xml = format!(
        "<system xmlns=\"{SYS}\"><user nc:operation=\"delete\"><name>keep1</name></user>\
         <user nc:operation=\"replace\"><name>keep2</name><group>monitor</group></user>\
         <hostname>ok-name</hostname><user><name>bad</name><group>nope</group></user></system>"
    );
    edit(&mut store, &xml).unwrap_err();
    assert_eq!(candidate(&store), before);
}

#[tokio::test]
async fn commit_replays_edits_onto_running_and_a_refused_reload_takes_everything_back() {
    struct Refuse;
    use besip_core::reload::{Prepared, ReloadError, StagedPackage};
    impl besip_core::datastore::Reloader for Refuse {
        async fn prepare(
            &self,
            daemon: &str,
            staged: &[StagedPackage],
        ) -> Result<Prepared, ReloadError> {
            Err(ReloadError::Refused {
                daemon: daemon.to_owned(),
                reason: format!("{}: no thanks", staged[0].package),
            })
        }
        async fn apply(&self, _: &str) -> Result<(), ReloadError> {
            Ok(())
        }
        async fn abort(&self, _: &str) -> Result<(), ReloadError> {
            Ok(())
        }
        async fn reload(&self, _: &str) -> Result<(), ReloadError> {
            Ok(())
        }
    }
    let (dir, mut store) = open();
    edit(&mut store, &user("r1", "admin")).unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    let running_before = store.print(Source::Running, WithDefaults::Explicit);
    let uci_before = std::fs::read_to_string(dir.path().join("etc/config/besip_system")).unwrap();
    let xml_before = std::fs::read_to_string(dir.path().join("etc/besip/running.xml")).unwrap();
    edit(
        &mut store,
        &format!(
            "<system xmlns=\"{SYS}\"><user nc:operation=\"delete\"><name>r1</name></user></system>"
        ),
    )
    .unwrap();
    edit(&mut store, &user("r2", "monitor")).unwrap();
    let errors = store
        .commit(CommitOptions::default(), &Refuse)
        .await
        .unwrap_err();
    assert!(errors.0[0].message.contains("no thanks"), "{errors}");
    assert_eq!(
        store.print(Source::Running, WithDefaults::Explicit),
        running_before
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/config/besip_system")).unwrap(),
        uci_before
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/besip/running.xml")).unwrap(),
        xml_before
    );
    // The candidate keeps its changes and commits once the daemon agrees.
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    let running = store.print(Source::Running, WithDefaults::Explicit);
    assert!(
        running.contains("<name>r2</name>") && !running.contains("<name>r1</name>"),
        "{running}"
    );
    assert_eq!(
        running,
        store.print(Source::Candidate, WithDefaults::Explicit)
    );
}

#[tokio::test]
async fn value_updates_that_a_must_refers_to_are_still_fully_validated() {
    let (_d, mut store) = open();
    // Make the port an explicit leaf first, so the next edit is a pure value update.
    edit(
        &mut store,
        &format!("<system xmlns=\"{SYS}\"><netconf><port>8830</port></netconf></system>"),
    )
    .unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    edit(
        &mut store,
        &format!("<system xmlns=\"{SYS}\"><netconf><port>8080</port></netconf></system>"),
    )
    .unwrap();
    let errors = store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap_err();
    assert_eq!(
        errors.0[0].app_tag.as_deref(),
        Some("must-violation"),
        "{errors}"
    );
    assert!(store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("<port>8830</port>"));
    // A free-text leaf nobody refers to commits on the fast path and lands.
    store.discard_changes().unwrap();
    edit(&mut store, &format!("<system xmlns=\"{SYS}\"><user><name>f</name><full-name>First</full-name></user></system>")).unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    edit(&mut store, &format!("<system xmlns=\"{SYS}\"><user><name>f</name><full-name>Second</full-name></user></system>")).unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    let running = store.print(Source::Running, WithDefaults::Explicit);
    assert!(
        running.contains("Second") && !running.contains("First"),
        "{running}"
    );
}

#[test]
fn secrets_are_left_out_for_readers_without_admin_rights() {
    use besip_core::datastore::ReadAccess;
    let (_d, mut store) = open();
    let xml = format!(
        "<system xmlns=\"{SYS}\"><user><name>s</name><group>admin</group><password-hash>$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA</password-hash></user></system>\
         <pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><password>sip-secret</password><display-name>Desk</display-name></extension></pbx>"
    );
    edit(&mut store, &xml).unwrap();
    let admin = store
        .get_config_as(
            Source::Candidate,
            &Filter::All,
            WithDefaults::Explicit,
            ReadAccess::Everything,
        )
        .unwrap();
    assert!(
        admin.contains("$argon2id$") && admin.contains("sip-secret"),
        "{admin}"
    );
    let filters = [
        Filter::All,
        Filter::Subtree(
            besip_core::xml::parse(&format!("<system xmlns=\"{SYS}\"><user/></system>")).unwrap(),
        ),
        Filter::XPath {
            select: "/p:pbx/p:extension/p:password".into(),
            namespaces: vec![("p".into(), "urn:besip:pbx".into())],
        },
    ];
    for filter in &filters {
        let other = store
            .get_config_as(
                Source::Candidate,
                filter,
                WithDefaults::ReportAll,
                ReadAccess::WithoutSecrets,
            )
            .unwrap();
        assert!(
            !other.contains("argon2") && !other.contains("sip-secret"),
            "{filter:?}: {other}"
        );
    }
    let other = store
        .get_config_as(
            Source::Candidate,
            &Filter::All,
            WithDefaults::Explicit,
            ReadAccess::WithoutSecrets,
        )
        .unwrap();
    assert!(
        other.contains("<name>s</name>") && other.contains("Desk"),
        "the rest stays: {other}"
    );
    let state = store
        .get_with_state_as(
            &Filter::All,
            WithDefaults::Explicit,
            &[],
            ReadAccess::WithoutSecrets,
        )
        .unwrap();
    assert!(!state.contains("argon2"), "{state}");
}

/// A new extension is checked alone (fast path) unless it sets a reference
/// that points outside it: its call classes must exist, so full validation
/// catches a dangling one (validation_scope::refers_outside).
#[test]
fn a_new_entry_with_a_reference_outside_it_is_validated_in_full() {
    let (_d, mut store) = open();
    let pbx = "urn:besip:pbx";
    edit(
        &mut store,
        &format!("<pbx xmlns=\"{pbx}\"><extension><number>700</number><password>pw-700</password><outbound><call-class>premium</call-class></outbound></extension></pbx>"),
    )
    .unwrap();
    let error = store.validate(Source::Candidate).unwrap_err();
    assert!(
        error.path.as_deref().unwrap_or("").contains("call-class"),
        "{error}"
    );
    edit(
        &mut store,
        &format!("<pbx xmlns=\"{pbx}\"><outbound><call-class><name>premium</name><prefix>900</prefix></call-class></outbound></pbx>"),
    )
    .unwrap();
    store.validate(Source::Candidate).unwrap();
    // A new alias always sets its extension reference: a dangling one is refused.
    edit(
        &mut store,
        &format!("<pbx xmlns=\"{pbx}\"><alias><alias>reception</alias><extension>799</extension></alias></pbx>"),
    )
    .unwrap();
    let error = store.validate(Source::Candidate).unwrap_err();
    assert!(
        error.path.as_deref().unwrap_or("").contains("alias"),
        "{error}"
    );
}

/// RFC 7950 §7.8.6: `insert` (first, last, before, after with `key`) puts
/// an entry of a user-ordered list where it is asked, for a new entry and
/// for one that exists (a move); a missing anchor is bad-attribute with
/// missing-instance and changes nothing; on a list ordered by the system
/// it is bad-attribute; a failed edit puts a moved entry back.
#[test]
fn insert_orders_user_ordered_entries() {
    let (_d, mut store) = open();
    const PBX: &str = "urn:besip:pbx";
    const Y: &str = "urn:ietf:params:xml:ns:yang:1";
    let group = |members: &str| {
        format!("<pbx xmlns=\"{PBX}\" xmlns:yang=\"{Y}\"><ring-group><number>600</number>{members}</ring-group></pbx>")
    };
    let order = |store: &besip_core::datastore::Datastore| -> Vec<String> {
        let text = candidate(store);
        let start = text.find("<ring-group>").expect("the group");
        let text = &text[start..];
        let end = text.find("</ring-group>").expect("its end");
        text[..end]
            .split("<member>")
            .skip(1)
            .filter_map(|m| {
                m.split("<number>")
                    .nth(1)?
                    .split('<')
                    .next()
                    .map(str::to_owned)
            })
            .collect()
    };
    edit(
        &mut store,
        &group("<member><number>101</number></member><member><number>102</number></member>"),
    )
    .unwrap();
    assert_eq!(order(&store), ["101", "102"]);
    edit(
        &mut store,
        &group("<member yang:insert=\"first\"><number>103</number></member>"),
    )
    .unwrap();
    assert_eq!(order(&store), ["103", "101", "102"]);
    edit(
        &mut store,
        &group("<member yang:insert=\"after\" yang:key=\"[number='101']\"><number>104</number></member>"),
    )
    .unwrap();
    assert_eq!(order(&store), ["103", "101", "104", "102"]);
    // An existing entry moves.
    edit(
        &mut store,
        &group("<member yang:insert=\"before\" yang:key=\"[pbx:number='103']\" xmlns:pbx=\"urn:besip:pbx\"><number>102</number></member>"),
    )
    .unwrap();
    assert_eq!(order(&store), ["102", "103", "101", "104"]);
    edit(
        &mut store,
        &group("<member yang:insert=\"last\"><number>102</number></member>"),
    )
    .unwrap();
    assert_eq!(order(&store), ["103", "101", "104", "102"]);
    // No such anchor: refused, nothing changed.
    let e = edit(
        &mut store,
        &group("<member yang:insert=\"after\" yang:key=\"[number='999']\"><number>105</number></member>"),
    )
    .unwrap_err();
    assert_eq!(e.0[0].tag, ErrorTag::BadAttribute);
    assert_eq!(e.0[0].app_tag.as_deref(), Some("missing-instance"));
    assert_eq!(order(&store), ["103", "101", "104", "102"]);
    // Before/after without a key; a word that is no place.
    let e = edit(
        &mut store,
        &group("<member yang:insert=\"before\"><number>105</number></member>"),
    )
    .unwrap_err();
    assert_eq!(e.0[0].tag, ErrorTag::MissingAttribute);
    let e = edit(
        &mut store,
        &group("<member yang:insert=\"middle\"><number>105</number></member>"),
    )
    .unwrap_err();
    assert_eq!(e.0[0].tag, ErrorTag::BadAttribute);
    // A move, then a fault in the same edit: the move is taken back.
    let e = edit(
        &mut store,
        &format!("<pbx xmlns=\"{PBX}\" xmlns:yang=\"{Y}\"><ring-group><number>600</number><member yang:insert=\"first\"><number>102</number></member><no-such-leaf/></ring-group></pbx>"),
    )
    .unwrap_err();
    assert_eq!(e.0[0].tag, ErrorTag::UnknownElement);
    assert_eq!(order(&store), ["103", "101", "104", "102"]);
    // Users are ordered by the system: insert does not apply.
    let e = edit(
        &mut store,
        &format!("<system xmlns=\"{SYS}\" xmlns:yang=\"{Y}\"><user yang:insert=\"first\"><name>zed</name></user></system>"),
    )
    .unwrap_err();
    assert_eq!(e.0[0].tag, ErrorTag::BadAttribute);
}
