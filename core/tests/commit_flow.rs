//! Commit flow across the IPC boundary and confirmed-commit timer semantics.

mod common;
use besip_core::datastore::{CommitOptions, Confirmed, Datastore, NoReload, Source, WithDefaults};
use besip_core::ipc::{Handler, HandlerError, IpcServer, StagedPackages};
use besip_core::paths::Layout;
use besip_core::reload::IpcReloader;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A daemon stand-in on a real socket that counts the configurations it is
/// asked to check (prepare, also the first half of reload) and can refuse them.
struct CountingDaemon {
    reloads: AtomicUsize,
    refuse: AtomicBool,
}

impl Handler for CountingDaemon {
    async fn prepare(&self, _staged: &StagedPackages) -> Result<(), HandlerError> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        if self.refuse.load(Ordering::SeqCst) {
            return Err(HandlerError::refused("listen port 5060 is taken"));
        }
        Ok(())
    }
    async fn apply(&self) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(json!({}))
    }
    async fn rpc(&self, name: &str, _input: Value) -> Result<Value, HandlerError> {
        Err(HandlerError::unknown_rpc(name))
    }
}

#[tokio::test]
async fn reload_goes_to_the_owning_daemon_only_and_a_refusal_rolls_back() {
    let (dir, mut store) = open();
    let layout = Layout::new(dir.path());
    // Stand in for the PBX daemon on its socket; besip_system changes must not reach it.
    let daemon = Arc::new(CountingDaemon {
        reloads: AtomicUsize::new(0),
        refuse: AtomicBool::new(false),
    });
    let _server = IpcServer::bind(&layout.socket("pbx"), daemon.clone())
        .await
        .unwrap();
    let reloader = IpcReloader::new(layout.clone());

    edit(&mut store, &user("ipc", "admin")).unwrap();
    let outcome = store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap();
    assert_eq!(outcome.changed_packages, vec!["besip_system".to_string()]);
    assert_eq!(
        daemon.reloads.load(Ordering::SeqCst),
        0,
        "system changes are not the PBX's business"
    );

    // The routing table says which daemon owns which package.
    assert_eq!(
        besip_core::reload::daemon_for_package("besip_pbx"),
        Some("pbx")
    );
    assert_eq!(
        besip_core::reload::daemon_for_package("besip_security"),
        Some("security")
    );
    assert_eq!(
        besip_core::reload::daemon_for_package("besip_monitoring"),
        Some("monitoring")
    );

    // A daemon that refuses: the real client sees the refusal as an error.
    daemon.refuse.store(true, Ordering::SeqCst);
    let refused = besip_core::datastore::Reloader::reload(&reloader, "pbx")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("5060"), "{refused}");
    assert_eq!(daemon.reloads.load(Ordering::SeqCst), 1);
    // A daemon that is not running is not an error: it reads the file when it starts.
    besip_core::datastore::Reloader::reload(&reloader, "security")
        .await
        .unwrap();
}

#[tokio::test]
async fn confirmed_commit_reverts_unless_confirmed() {
    let (_d, mut store) = open();
    let before = store.print(Source::Running, WithDefaults::Explicit);
    edit(&mut store, &user("tentative", "admin")).unwrap();
    let confirmed = Some(Confirmed {
        timeout: Duration::from_millis(200),
        persist: None,
    });
    store
        .commit(
            CommitOptions {
                confirmed,
                session_id: Some(7),
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    assert!(store.confirm_pending());
    assert_eq!(store.confirm_session(), Some(7));
    assert!(store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("tentative"));
    assert!(
        store
            .revert_if_expired(Instant::now(), &NoReload)
            .await
            .is_none(),
        "not yet expired"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    store
        .revert_if_expired(Instant::now(), &NoReload)
        .await
        .unwrap()
        .unwrap();
    assert!(!store.confirm_pending());
    assert_eq!(store.print(Source::Running, WithDefaults::Explicit), before);
    assert_eq!(
        store.print(Source::Candidate, WithDefaults::Explicit),
        before
    );
}

#[tokio::test]
async fn confirming_commit_keeps_the_change_and_cancel_reverts() {
    let (_d, mut store) = open();
    edit(&mut store, &user("keeper", "admin")).unwrap();
    let confirmed = Some(Confirmed {
        timeout: Duration::from_secs(600),
        persist: None,
    });
    store
        .commit(
            CommitOptions {
                confirmed,
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    let outcome = store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    assert!(outcome.confirmed_pending);
    assert!(!store.confirm_pending());
    assert!(store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("keeper"));

    edit(&mut store, &user("doomed", "admin")).unwrap();
    let confirmed = Some(Confirmed {
        timeout: Duration::from_secs(600),
        persist: None,
    });
    store
        .commit(
            CommitOptions {
                confirmed,
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    store.cancel_commit(None, &NoReload).await.unwrap();
    let running = store.print(Source::Running, WithDefaults::Explicit);
    assert!(
        running.contains("keeper") && !running.contains("doomed"),
        "{running}"
    );
}

#[tokio::test]
async fn persistent_confirmed_commit_needs_its_persist_id() {
    let (_d, mut store) = open();
    edit(&mut store, &user("p", "admin")).unwrap();
    let confirmed = Some(Confirmed {
        timeout: Duration::from_secs(600),
        persist: Some("token-1".into()),
    });
    store
        .commit(
            CommitOptions {
                confirmed,
                session_id: Some(3),
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    assert_eq!(
        store.confirm_session(),
        None,
        "a persistent commit outlives its session"
    );
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap_err();
    store
        .cancel_commit(Some("wrong"), &NoReload)
        .await
        .unwrap_err();
    store
        .commit(
            CommitOptions {
                persist_id: Some("token-1".into()),
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    assert!(!store.confirm_pending());
    assert!(store
        .print(Source::Running, WithDefaults::Explicit)
        .contains("<name>p</name>"));
}

#[tokio::test]
async fn an_unconfirmed_commit_is_reverted_after_a_restart() {
    let (dir, mut store) = open();
    let before = store.print(Source::Running, WithDefaults::Explicit);
    edit(&mut store, &user("crashy", "admin")).unwrap();
    let confirmed = Some(Confirmed {
        timeout: Duration::from_secs(600),
        persist: None,
    });
    store
        .commit(
            CommitOptions {
                confirmed,
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    drop(store); // the box restarts before anyone confirms
    let store = Datastore::open(Layout::new(dir.path())).unwrap();
    assert_eq!(store.print(Source::Running, WithDefaults::Explicit), before);
    assert!(!store.confirm_pending());
    let uci = std::fs::read_to_string(dir.path().join("etc/config/besip_system")).unwrap();
    assert!(
        !uci.contains("crashy"),
        "UCI must follow the reverted configuration: {uci}"
    );
}

#[tokio::test]
async fn commit_history_is_served_as_state() {
    let (_d, mut store) = open();
    edit(&mut store, &user("hist", "admin")).unwrap();
    store
        .commit(
            CommitOptions {
                user: "alice".into(),
                comment: "add hist".into(),
                ..Default::default()
            },
            &NoReload,
        )
        .await
        .unwrap();
    let json = store.history_state_json().unwrap();
    let filter = besip_core::filter::Filter::Subtree(
        besip_core::xml::parse("<commit-history xmlns=\"urn:besip:system\"/>").unwrap(),
    );
    let xml = store
        .get_with_state(&filter, WithDefaults::Explicit, &[json])
        .unwrap();
    assert!(
        xml.contains("<comment>add hist</comment>") && xml.contains("<user>alice</user>"),
        "{xml}"
    );
    assert!(xml.contains("<back>0</back>"), "{xml}");
}

#[tokio::test]
async fn a_pbx_change_reloads_the_pbx_daemon_once_and_its_refusal_rolls_the_commit_back() {
    let (dir, mut store) = open();
    let layout = Layout::new(dir.path());
    let pbx = Arc::new(CountingDaemon {
        reloads: AtomicUsize::new(0),
        refuse: AtomicBool::new(false),
    });
    let security = Arc::new(CountingDaemon {
        reloads: AtomicUsize::new(0),
        refuse: AtomicBool::new(false),
    });
    let _pbx_server = IpcServer::bind(&layout.socket("pbx"), pbx.clone())
        .await
        .unwrap();
    let _sec_server = IpcServer::bind(&layout.socket("security"), security.clone())
        .await
        .unwrap();
    let reloader = IpcReloader::new(layout.clone());
    let extension = |n: u32| {
        format!("<pbx xmlns=\"urn:besip:pbx\"><extension><number>{n}</number><password>pw{n}</password></extension></pbx>")
    };

    edit(&mut store, &extension(100)).unwrap();
    let outcome = store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap();
    assert_eq!(outcome.changed_packages, vec!["besip_pbx".to_string()]);
    assert_eq!(
        pbx.reloads.load(Ordering::SeqCst),
        1,
        "exactly one reload for the PBX"
    );
    assert_eq!(
        security.reloads.load(Ordering::SeqCst),
        0,
        "the security daemon's package did not change"
    );
    let uci_path = layout.uci_package("besip_pbx");
    let uci_before = std::fs::read_to_string(&uci_path).unwrap();
    assert!(
        uci_before.contains("config extension 'extension_100'"),
        "{uci_before}"
    );
    let running_before = store.print(Source::Running, WithDefaults::Explicit);

    pbx.refuse.store(true, Ordering::SeqCst);
    edit(&mut store, &extension(101)).unwrap();
    let errors = store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap_err();
    assert!(errors.0[0].message.contains("5060"), "{errors}");
    assert_eq!(errors.0[0].app_tag.as_deref(), Some("daemon-refused"));
    assert_eq!(
        store.print(Source::Running, WithDefaults::Explicit),
        running_before
    );
    assert_eq!(
        std::fs::read_to_string(&uci_path).unwrap(),
        uci_before,
        "the old UCI file is back"
    );
    // Reload #2 was the refused one. A daemon that refused still runs its old
    // configuration, so it is not asked again; only daemons that had accepted
    // the new file are told to go back to the old one.
    assert_eq!(pbx.reloads.load(Ordering::SeqCst), 2);

    pbx.refuse.store(false, Ordering::SeqCst);
    store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap();
    assert!(std::fs::read_to_string(&uci_path)
        .unwrap()
        .contains("extension_101"));
}
