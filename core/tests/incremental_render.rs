//! A commit re-renders only the UCI sections its edits touched
//! (core/src/render_cache.rs). Whatever the edits, the file on disk must be
//! exactly what a full render of running gives.

mod common;
use besip_core::datastore::{
    parse_config_tree, print_tree, CommitOptions, Datastore, NoReload, Reloader, Source,
    WithDefaults,
};
use besip_core::edit::ChangeRecord;
use besip_core::paths::Layout;
use besip_core::reload::{Prepared, ReloadError, StagedPackage};
use besip_core::render_cache::{dirty_entries, Dirty};
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};

const PBX: &str = "urn:besip:pbx";

fn pbx(inner: &str) -> String {
    format!("<pbx xmlns=\"{PBX}\">{inner}</pbx>")
}

fn ext(number: u32, extra: &str) -> String {
    format!(
        "<extension><number>{number}</number><password>pw{number}</password>{extra}</extension>"
    )
}

/// The file written by the commit equals a full render of running.
fn assert_disk_matches_full_render(store: &mut Datastore, dir: &tempfile::TempDir, step: &str) {
    let full = store
        .render_text(Source::Running, "besip-pbx")
        .expect("besip-pbx renders");
    let on_disk = std::fs::read_to_string(Layout::new(dir.path()).uci_package("besip_pbx"))
        .expect("besip_pbx written");
    assert_eq!(
        on_disk, full,
        "after step '{step}' the incremental render differs"
    );
    // running.xml (printed entry by entry from the cache) parses back to running.
    let layout = Layout::new(dir.path());
    let stored = std::fs::read_to_string(layout.running_config()).expect("running.xml");
    let reparsed = parse_config_tree(store.schema(), &stored)
        .unwrap_or_else(|e| panic!("running.xml after '{step}' does not parse: {e:?}\n{stored}"));
    assert_eq!(
        print_tree(&reparsed, WithDefaults::Explicit),
        store.print(Source::Running, WithDefaults::Explicit),
        "after step '{step}' running.xml differs from running"
    );
    // New entries checked on their own carry the same defaults full validation adds.
    assert_eq!(
        print_tree(&reparsed, WithDefaults::ReportAll),
        store.print(Source::Running, WithDefaults::ReportAll),
        "after step '{step}' running lacks defaults a full validation adds"
    );
}

/// Refuses reloads while `refuse` is set (a daemon saying no).
struct Refusing {
    refuse: AtomicBool,
}

impl Reloader for Refusing {
    async fn prepare(&self, daemon: &str, _: &[StagedPackage]) -> Result<Prepared, ReloadError> {
        if self.refuse.load(Ordering::SeqCst) {
            Err(ReloadError::Refused {
                daemon: daemon.to_owned(),
                reason: "refused for the test".into(),
            })
        } else {
            Ok(Prepared::Pending)
        }
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

async fn assert_refused(store: &mut Datastore) {
    assert!(
        store
            .commit(CommitOptions::default(), &NoReload)
            .await
            .is_err(),
        "the commit should have been refused"
    );
}

async fn commit(store: &mut Datastore, dir: &tempfile::TempDir, step: &str) {
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap_or_else(|e| panic!("commit at step '{step}': {e:?}"));
    assert_disk_matches_full_render(store, dir, step);
}

#[tokio::test]
async fn every_kind_of_edit_renders_as_a_full_render_would() {
    let (dir, mut store) = open();
    let steps: Vec<(&str, String)> = vec![
        ("create three", pbx(&format!("{}{}{}", ext(100, ""), ext(101, ""), ext(102, "")))),
        ("change a leaf", pbx(&ext(101, "<display-name>Alice</display-name>"))),
        (
            "delete a leaf",
            pbx("<extension><number>101</number><display-name nc:operation=\"delete\"/></extension>"),
        ),
        (
            "inner container",
            pbx("<extension><number>102</number><forwarding><busy>200</busy></forwarding></extension>"),
        ),
        (
            "leaf-list entry",
            pbx("<extension><number>102</number><group>sales</group><group>support</group></extension>"),
        ),
        (
            "delete an entry",
            pbx("<extension nc:operation=\"delete\"><number>100</number></extension>"),
        ),
        (
            "nested list",
            pbx("<dispatcher-set><name>ds1</name><destination><uri>sip:a@127.0.0.1</uri></destination></dispatcher-set>"),
        ),
        (
            "nested entry added",
            pbx("<dispatcher-set><name>ds1</name><destination><uri>sip:b@127.0.0.1</uri><weight>5</weight></destination></dispatcher-set>"),
        ),
        (
            "nested entry deleted",
            pbx("<dispatcher-set><name>ds1</name><destination nc:operation=\"delete\"><uri>sip:a@127.0.0.1</uri></destination></dispatcher-set>"),
        ),
        (
            "replace an entry",
            pbx("<extension nc:operation=\"replace\"><number>102</number><password>new</password></extension>"),
        ),
        ("main section leaf", pbx("<max-transactions>1000</max-transactions>")),
        (
            "main section leaf-list",
            pbx("<allowed-method nc:operation=\"delete\">MESSAGE</allowed-method>"),
        ),
        (
            "odd key",
            pbx("<extension><number>2.3+a</number><password>x</password></extension>"),
        ),
    ];
    for (step, xml) in &steps {
        edit(&mut store, xml).unwrap_or_else(|e| panic!("edit at step '{step}': {e:?}"));
        commit(&mut store, &dir, step).await;
    }

    // Several edits, one commit; delete and re-create the same entry.
    edit(
        &mut store,
        &pbx(&ext(101, "<display-name>Bob</display-name>")),
    )
    .unwrap();
    edit(
        &mut store,
        &pbx("<extension nc:operation=\"delete\"><number>102</number></extension>"),
    )
    .unwrap();
    edit(
        &mut store,
        &pbx(&ext(102, "<display-name>Again</display-name>")),
    )
    .unwrap();
    edit(&mut store, &pbx(&ext(103, ""))).unwrap();
    commit(&mut store, &dir, "several edits").await;

    // A commit refused by validation, then fixed.
    edit(
        &mut store,
        &pbx("<extension><number>104</number></extension>"),
    )
    .unwrap();
    assert_refused(&mut store).await;
    edit(&mut store, &pbx(&ext(104, ""))).unwrap();
    commit(&mut store, &dir, "after a refused validation").await;

    // A commit refused by the daemon rolls back; the next one still renders right.
    let refusing = Refusing {
        refuse: AtomicBool::new(true),
    };
    edit(&mut store, &pbx(&ext(105, ""))).unwrap();
    assert!(store
        .commit(CommitOptions::default(), &refusing)
        .await
        .is_err());
    assert_disk_matches_full_render(&mut store, &dir, "daemon refused");
    refusing.refuse.store(false, Ordering::SeqCst);
    edit(
        &mut store,
        &pbx(&ext(101, "<display-name>Carol</display-name>")),
    )
    .unwrap();
    store
        .commit(CommitOptions::default(), &refusing)
        .await
        .unwrap();
    assert_disk_matches_full_render(&mut store, &dir, "after the refusal");

    // Discarded changes leave no trace.
    edit(
        &mut store,
        &pbx(&ext(101, "<display-name>Discarded</display-name>")),
    )
    .unwrap();
    store.discard_changes().unwrap();
    edit(&mut store, &pbx(&ext(106, ""))).unwrap();
    commit(&mut store, &dir, "after a discard").await;
    let text = store.render_text(Source::Running, "besip-pbx").unwrap();
    assert!(
        text.contains("Carol") && !text.contains("Discarded"),
        "{text}"
    );
}

#[tokio::test]
async fn changes_are_pinned_to_their_entries() {
    let (_dir, mut store) = open();
    edit(
        &mut store,
        &pbx(&format!("{}{}", ext(100, ""), ext(101, ""))),
    )
    .unwrap();
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    let tree = store.tree(Source::Running);
    let context = store.schema().context();
    let change = |path: &str| ChangeRecord {
        path: path.into(),
        operation: "replace",
    };
    let one = dirty_entries(
        context,
        tree,
        &[change("/besip-pbx:pbx/extension[number='101']/password")],
    );
    assert!(
        matches!(&one, Dirty::Entries(set) if set.len() == 1),
        "{one:?}"
    );
    // A deleted entry (no longer in the tree) touches no surviving entry.
    let gone = dirty_entries(
        context,
        tree,
        &[change("/besip-pbx:pbx/extension[number='999']")],
    );
    assert_eq!(gone, Dirty::Entries(Default::default()));
    // The whole container replaced: everything.
    assert_eq!(
        dirty_entries(context, tree, &[change("/besip-pbx:pbx")]),
        Dirty::All
    );
}

#[tokio::test]
async fn new_entries_checked_alone_are_still_checked() {
    let (dir, mut store) = open();
    edit(&mut store, &pbx(&ext(100, ""))).unwrap();
    commit(&mut store, &dir, "first").await;

    // A new extension without its mandatory password is refused at commit.
    edit(
        &mut store,
        &pbx("<extension><number>101</number></extension>"),
    )
    .unwrap();
    let refused = store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .expect_err("an extension without a password must not commit");
    assert!(format!("{refused:?}").contains("password"), "{refused:?}");
    store.discard_changes().unwrap();

    // A new alias (a leafref: never checked alone) to a missing extension is refused.
    edit(
        &mut store,
        &pbx("<alias><alias>sales</alias><extension>999</extension></alias>"),
    )
    .unwrap();
    assert_refused(&mut store).await;
    store.discard_changes().unwrap();

    // Deleting an extension an alias points to is refused.
    edit(
        &mut store,
        &pbx("<alias><alias>sales</alias><extension>100</extension></alias>"),
    )
    .unwrap();
    commit(&mut store, &dir, "alias").await;
    edit(
        &mut store,
        &pbx("<extension nc:operation=\"delete\"><number>100</number></extension>"),
    )
    .unwrap();
    assert_refused(&mut store).await;
    store.discard_changes().unwrap();

    // A new extension gets its defaults (forwarding timeout, enabled) in running and UCI.
    edit(&mut store, &pbx(&ext(102, ""))).unwrap();
    commit(&mut store, &dir, "defaults").await;
    let uci = store.render_text(Source::Running, "besip-pbx").unwrap();
    let section = uci
        .split("\nconfig ")
        .find(|s| s.contains("'extension_102'"))
        .expect("section of 102");
    assert!(section.contains("option enabled '1'"), "{section}");
    assert!(
        section.contains("option forwarding_no_answer_timeout '30'"),
        "{section}"
    );
}
