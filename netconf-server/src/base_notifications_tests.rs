use super::*;
use besip_core::yang2::{
    self,
    data::{DataFormat, DataOperation, DataTree},
    ffi,
};

const BY: SessionParams = SessionParams {
    user: "admin",
    session_id: 7,
    source_host: "127.0.0.1",
};

/// Parse a notification as a libyang client does and validate it against
/// ietf-netconf-notifications (types, `when`, `mandatory`).
fn check(xml: &str) -> Result<(), String> {
    check_against(xml, None)
}

/// [`check`], with the configuration the edit targets must exist in.
fn check_against(xml: &str, running: Option<&DataTree<'static>>) -> Result<(), String> {
    let context = Schema::get().map_err(|e| e.to_string())?.context();
    // libyang reads the input up to a NUL.
    let tree = DataTree::parse_op_string(
        context,
        format!("{xml}\0"),
        DataFormat::XML,
        DataOperation::NotificationYang,
    )
    .map_err(|e| format!("{e}"))?;
    let root = tree.reference().ok_or("no notification parsed")?.as_raw();
    let dependencies = running
        .and_then(|t| t.reference())
        .map_or(std::ptr::null(), |n| n.as_raw().cast_const());
    // SAFETY: `root` and `dependencies` are top nodes of trees that live
    // across the call (or null); libyang returns no diff (null out-pointer).
    let result = unsafe {
        ffi::lyd_validate_op(
            root,
            dependencies,
            ffi::lyd_type::LYD_TYPE_NOTIF_YANG,
            std::ptr::null_mut(),
        )
    };
    if result == ffi::LY_ERR::LY_SUCCESS {
        Ok(())
    } else {
        Err(yang2::Error::new(context).to_string())
    }
}

#[test]
fn every_confirmed_commit_event_validates() {
    let timeout = Duration::from_secs(30);
    for event in [
        ConfirmEvent::Start { timeout },
        ConfirmEvent::Extend { timeout },
        ConfirmEvent::Complete,
        ConfirmEvent::Cancel,
    ] {
        let xml = confirmed_commit(event, Some(BY));
        assert!(xml.contains("<username>admin</username>"), "{xml}");
        check(&xml).unwrap_or_else(|e| panic!("{xml}: {e}"));
    }
    let start = confirmed_commit(ConfirmEvent::Start { timeout }, Some(BY));
    assert!(start.contains("<timeout>30</timeout>"), "{start}");
    let complete = confirmed_commit(ConfirmEvent::Complete, Some(BY));
    assert!(!complete.contains("<timeout>"), "{complete}");
    // A timeout is the server's: no session parameters, even if one is given.
    let timed_out = confirmed_commit(ConfirmEvent::Timeout, Some(BY));
    assert!(!timed_out.contains("username"), "{timed_out}");
    check(&timed_out).unwrap_or_else(|e| panic!("{timed_out}: {e}"));
}

#[test]
fn the_yang_check_can_fail() {
    // The erratum's `when`: session parameters on a timeout are refused.
    let with_session = confirmed_commit(ConfirmEvent::Cancel, Some(BY))
        .replace("<confirm-event>cancel", "<confirm-event>timeout");
    assert!(check(&with_session).is_err(), "{with_session}");
    // `username` is mandatory on the other events.
    let anonymous =
        confirmed_commit(ConfirmEvent::Cancel, Some(BY)).replace("<username>admin</username>", "");
    assert!(check(&anonymous).is_err(), "{anonymous}");
    // `timeout` only with start and extend.
    let cancel_with_timeout = confirmed_commit(ConfirmEvent::Cancel, Some(BY))
        .replace("</confirm-event>", "</confirm-event><timeout>3</timeout>");
    assert!(
        check(&cancel_with_timeout).is_err(),
        "{cancel_with_timeout}"
    );
}

/// Running with a user bob, /pbx and /security (edit targets resolve in it).
fn running() -> DataTree<'static> {
    let schema = Schema::get().unwrap();
    besip_core::datastore::parse_config_tree(
        schema,
        "<system xmlns=\"urn:besip:system\"><hostname>box</hostname><user><name>bob</name><group>monitor</group></user></system>\
         <pbx xmlns=\"urn:besip:pbx\"/>\
         <security xmlns=\"urn:besip:security\"/>",
    )
    .unwrap()
}

#[test]
fn config_changes_validate() {
    let changes = [
        ChangeRecord {
            path: "/besip-system:system/user[name='bob']".into(),
            operation: "create",
        },
        ChangeRecord {
            path: "/besip-pbx:pbx".into(),
            operation: "replace",
        },
    ];
    for by in [Some(BY), None] {
        let xml = config_change(by, &changes);
        check_against(&xml, Some(&running())).unwrap_or_else(|e| panic!("{xml}: {e}"));
    }
    assert!(config_change(None, &[]).contains("<changed-by><server/></changed-by>"));
    // A session from a peer whose address is not an IP address: no source-host.
    let local = SessionParams {
        source_host: "local",
        ..BY
    };
    let xml = config_change(Some(local), &changes);
    assert!(!xml.contains("source-host"), "{xml}");
    check_against(&xml, Some(&running())).unwrap_or_else(|e| panic!("{xml}: {e}"));
    // The edit target is checked too: a node that does not exist is refused.
    let missing = config_change(
        Some(BY),
        &[ChangeRecord {
            path: "/besip-system:system/user[name='nobody']".into(),
            operation: "delete",
        }],
    );
    assert!(
        check_against(&missing, Some(&running())).is_err(),
        "{missing}"
    );
}

#[test]
fn session_start_and_end_validate() {
    check(&session_start(BY)).unwrap();
    for reason in [
        Termination::Closed,
        Termination::Killed,
        Termination::Dropped,
        Termination::Timeout,
        Termination::BadHello,
        Termination::Other,
    ] {
        let xml = session_end(BY, reason, Some(3));
        check(&xml).unwrap_or_else(|e| panic!("{xml}: {e}"));
        assert_eq!(
            xml.contains("<killed-by>3</killed-by>"),
            reason == Termination::Killed
        );
    }
}

#[test]
fn commit_events_follow_the_pending_state() {
    let timeout = Some(Duration::from_secs(5));
    let five = Duration::from_secs(5);
    assert_eq!(
        ConfirmEvent::of_commit(timeout, false),
        Some(ConfirmEvent::Start { timeout: five })
    );
    assert_eq!(
        ConfirmEvent::of_commit(timeout, true),
        Some(ConfirmEvent::Extend { timeout: five })
    );
    assert_eq!(
        ConfirmEvent::of_commit(None, true),
        Some(ConfirmEvent::Complete)
    );
    assert_eq!(ConfirmEvent::of_commit(None, false), None);
}

#[test]
fn a_rollback_reports_each_changed_top_node() {
    let before = "<system xmlns=\"urn:besip:system\"><hostname>a</hostname></system><pbx xmlns=\"urn:besip:pbx\"><x>1</x></pbx>";
    let after = "<system xmlns=\"urn:besip:system\"><hostname>b</hostname></system><security xmlns=\"urn:besip:security\"/>";
    let changes = top_node_changes(before, after);
    let seen: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.operation))
        .collect();
    assert_eq!(
        seen,
        [
            ("/besip-pbx:pbx", "delete"),
            ("/besip-security:security", "create"),
            ("/besip-system:system", "replace"),
        ]
    );
    assert!(top_node_changes(before, before).is_empty());
    check_against(&config_change(None, &changes), Some(&running())).unwrap();
}
