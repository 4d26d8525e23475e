//! The commit's side of the two-phase reload: every affected daemon checks
//! the staged packages (prepare) before any switches (apply); one refusal
//! and all abort, nothing is installed. And the confirmed-commit events the
//! commit reports.

mod common;
use besip_core::datastore::{
    CommitOptions, ConfirmEvent, Confirmed, NoReload, Reloader, Source, WithDefaults,
};
use besip_core::paths::Layout;
use besip_core::reload::{Prepared, ReloadError, StagedPackage};
use common::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Records every call; `refuse` names a daemon that refuses in prepare.
#[derive(Default)]
struct Recording {
    refuse: Option<&'static str>,
    calls: Mutex<Vec<String>>,
}

impl Recording {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Reloader for Recording {
    async fn prepare(
        &self,
        daemon: &str,
        staged: &[StagedPackage],
    ) -> Result<Prepared, ReloadError> {
        for s in staged {
            // The staged file is what the daemon reads: it exists at prepare.
            let text = std::fs::read_to_string(&s.path).unwrap();
            assert!(!text.is_empty(), "{}", s.path.display());
            assert!(s.path.is_absolute(), "{}", s.path.display());
        }
        let packages: Vec<&str> = staged.iter().map(|s| s.package.as_str()).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("prepare {daemon} {}", packages.join(",")));
        if self.refuse == Some(daemon) {
            return Err(ReloadError::Refused {
                daemon: daemon.to_owned(),
                reason: "port 5060 is taken".into(),
            });
        }
        Ok(Prepared::Pending)
    }
    async fn apply(&self, daemon: &str) -> Result<(), ReloadError> {
        self.calls.lock().unwrap().push(format!("apply {daemon}"));
        Ok(())
    }
    async fn abort(&self, daemon: &str) -> Result<(), ReloadError> {
        self.calls.lock().unwrap().push(format!("abort {daemon}"));
        Ok(())
    }
    async fn reload(&self, daemon: &str) -> Result<(), ReloadError> {
        self.calls.lock().unwrap().push(format!("reload {daemon}"));
        Ok(())
    }
}

const PBX_AND_SECURITY: &str = "<pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><password>pw</password></extension></pbx>\
     <security xmlns=\"urn:besip:security\"><rule><name>pike</name><count>17</count></rule></security>";

#[tokio::test]
async fn one_refusal_in_prepare_and_no_daemon_applies() {
    let (dir, mut store) = open();
    let layout = Layout::new(dir.path());
    let running_before = store.print(Source::Running, WithDefaults::Explicit);
    let xml_before = std::fs::read_to_string(layout.running_config()).unwrap();
    let pbx_before = std::fs::read_to_string(layout.uci_package("besip_pbx")).unwrap();
    let security_before = std::fs::read_to_string(layout.uci_package("besip_security")).unwrap();

    edit(&mut store, PBX_AND_SECURITY).unwrap();
    let reloader = Recording {
        refuse: Some("security"),
        ..Default::default()
    };
    let errors = store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap_err();
    assert_eq!(errors.0[0].app_tag.as_deref(), Some("daemon-refused"));
    assert!(errors.0[0].message.contains("security"), "{errors}");
    assert!(errors.0[0].message.contains("5060"), "{errors}");
    let calls = reloader.calls();
    assert_eq!(
        calls,
        [
            "prepare pbx besip_pbx",
            "prepare security besip_security",
            "abort pbx"
        ],
        "the PBX prepared, the security daemon refused, the PBX aborted; nobody applied"
    );
    assert_eq!(
        store.print(Source::Running, WithDefaults::Explicit),
        running_before
    );
    assert_eq!(
        std::fs::read_to_string(layout.running_config()).unwrap(),
        xml_before
    );
    assert_eq!(
        std::fs::read_to_string(layout.uci_package("besip_pbx")).unwrap(),
        pbx_before
    );
    assert_eq!(
        std::fs::read_to_string(layout.uci_package("besip_security")).unwrap(),
        security_before
    );
    // The refused staged files are gone.
    let staged = layout.config_dir().join(".staged");
    for package in ["besip_pbx", "besip_security"] {
        assert!(!staged.join(package).exists(), "{package} left staged");
    }

    // Once both agree: both prepare, then both apply, and the files are in place.
    let reloader = Recording::default();
    store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap();
    assert_eq!(
        reloader.calls(),
        [
            "prepare pbx besip_pbx",
            "prepare security besip_security",
            "apply pbx",
            "apply security"
        ]
    );
    assert!(std::fs::read_to_string(layout.uci_package("besip_pbx"))
        .unwrap()
        .contains("extension_100"));
    assert!(
        std::fs::read_to_string(layout.uci_package("besip_security"))
            .unwrap()
            .contains("17")
    );
}

#[tokio::test]
async fn confirmed_commit_reports_its_events() {
    let (_dir, mut store) = open();
    let timeout = Duration::from_secs(600);
    let confirmed = |timeout| CommitOptions {
        confirmed: Some(Confirmed {
            timeout,
            persist: None,
        }),
        ..Default::default()
    };

    edit(&mut store, &user("a", "admin")).unwrap();
    let outcome = store.commit(confirmed(timeout), &NoReload).await.unwrap();
    assert_eq!(
        outcome.confirm_event,
        Some(ConfirmEvent::Started { timeout })
    );
    let outcome = store
        .commit(confirmed(Duration::from_secs(300)), &NoReload)
        .await
        .unwrap();
    assert_eq!(
        outcome.confirm_event,
        Some(ConfirmEvent::Extended {
            timeout: Duration::from_secs(300)
        })
    );
    let outcome = store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    assert_eq!(outcome.confirm_event, Some(ConfirmEvent::Completed));
    let outcome = store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .unwrap();
    assert_eq!(
        outcome.confirm_event, None,
        "no confirmed commit was pending"
    );

    edit(&mut store, &user("b", "admin")).unwrap();
    store.commit(confirmed(timeout), &NoReload).await.unwrap();
    let outcome = store.cancel_commit(None, &NoReload).await.unwrap();
    assert_eq!(outcome.confirm_event, Some(ConfirmEvent::Cancelled));

    edit(&mut store, &user("c", "admin")).unwrap();
    store
        .commit(confirmed(Duration::from_millis(1)), &NoReload)
        .await
        .unwrap();
    let outcome = store
        .revert_if_expired(Instant::now() + Duration::from_secs(1), &NoReload)
        .await
        .expect("expired")
        .unwrap();
    assert_eq!(outcome.confirm_event, Some(ConfirmEvent::TimedOut));
    assert!(!store.confirm_pending());
}

/// A PBX daemon stand-in speaking the IPC wire protocol (JSON-RPC lines)
/// with prepare/apply/abort; records each method with what the staged
/// besip_pbx held at prepare.
async fn fake_pbx_daemon(
    socket: std::path::PathBuf,
    refuse: bool,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let request: serde_json::Value = serde_json::from_str(&line).unwrap();
                let method = request["method"].as_str().unwrap().to_owned();
                let mut entry = method.clone();
                if method == "prepare" {
                    let path = request["params"]["packages"]["besip_pbx"].as_str().unwrap();
                    assert!(path.contains("/.staged/"), "{path}");
                    let staged = std::fs::read_to_string(path).unwrap();
                    entry = format!("prepare extension_100={}", staged.contains("extension_100"));
                }
                record.lock().unwrap().push(entry);
                let answer = if method == "prepare" && refuse {
                    serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32000, "message": "port 5060 is taken"}})
                } else {
                    serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "result": {}})
                };
                let mut bytes = serde_json::to_vec(&answer).unwrap();
                bytes.push(b'\n');
                write.write_all(&bytes).await.unwrap();
            }
        }
    });
    (task, seen)
}

#[tokio::test]
async fn the_ipc_reloader_speaks_prepare_apply_abort() {
    let (dir, mut store) = open();
    let layout = Layout::new(dir.path());
    let reloader = besip_core::reload::IpcReloader::new(layout.clone());
    let extension = "<pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><password>pw</password></extension></pbx>";
    let pbx_before = std::fs::read_to_string(layout.uci_package("besip_pbx")).unwrap();

    let (daemon, seen) = fake_pbx_daemon(layout.socket("pbx"), true).await;
    edit(&mut store, extension).unwrap();
    let errors = store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap_err();
    assert!(errors.0[0].message.contains("5060"), "{errors}");
    assert_eq!(*seen.lock().unwrap(), ["prepare extension_100=true"]);
    assert_eq!(
        std::fs::read_to_string(layout.uci_package("besip_pbx")).unwrap(),
        pbx_before
    );
    daemon.abort();

    let (_daemon, seen) = fake_pbx_daemon(layout.socket("pbx"), false).await;
    store
        .commit(CommitOptions::default(), &reloader)
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["prepare extension_100=true", "apply"]
    );
    assert!(std::fs::read_to_string(layout.uci_package("besip_pbx"))
        .unwrap()
        .contains("extension_100"));
}
