//! RFC 6470 base notifications (module ietf-netconf-notifications) and where
//! the server raises them:
//! - `netconf-config-change` on every change of running: a commit (its edit
//!   records), and a confirmed commit rolled back by `<cancel-commit>`, by the
//!   end of its session, or by its timeout (one edit per changed top-level
//!   node, found by comparing running before and after);
//! - `netconf-confirmed-commit` (RFC 6241 §8.4): start, extend, complete,
//!   cancel, timeout;
//! - `netconf-session-start` / `netconf-session-end`.
//!
//! `netconf-capability-change` is never sent: the capabilities do not change
//! while the server runs.

use crate::reply::xml_error_path;
use crate::server::Server;
use crate::session::SessionCtx;
use besip_core::datastore::{ChangeRecord, Datastore, Source, WithDefaults};
use besip_core::schema::Schema;
use besip_core::xml::escape;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const NC_NOTIF_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications";

/// RFC 6470 `common-session-parms`: who did it.
#[derive(Debug, Clone, Copy)]
pub struct SessionParams<'a> {
    pub user: &'a str,
    pub session_id: u32,
    /// The peer's address; left out when it is not an IP address.
    pub source_host: &'a str,
}

impl<'a> From<&'a SessionCtx> for SessionParams<'a> {
    fn from(ctx: &'a SessionCtx) -> SessionParams<'a> {
        SessionParams {
            user: &ctx.user,
            session_id: ctx.id,
            source_host: &ctx.source_host,
        }
    }
}

impl SessionParams<'_> {
    fn xml(&self) -> String {
        let mut out = format!(
            "<username>{}</username><session-id>{}</session-id>",
            escape(self.user),
            self.session_id
        );
        if self.source_host.parse::<std::net::IpAddr>().is_ok() {
            out.push_str(&format!(
                "<source-host>{}</source-host>",
                escape(self.source_host)
            ));
        }
        out
    }
}

/// The `confirm-event` of `netconf-confirmed-commit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmEvent {
    Start { timeout: Duration },
    Extend { timeout: Duration },
    Complete,
    Cancel,
    Timeout,
}

impl ConfirmEvent {
    fn name(&self) -> &'static str {
        match self {
            ConfirmEvent::Start { .. } => "start",
            ConfirmEvent::Extend { .. } => "extend",
            ConfirmEvent::Complete => "complete",
            ConfirmEvent::Cancel => "cancel",
            ConfirmEvent::Timeout => "timeout",
        }
    }

    /// What a successful `<commit>` did to the confirmed-commit procedure:
    /// `pending_before` is whether one was pending when it started.
    pub fn of_commit(confirm_timeout: Option<Duration>, pending_before: bool) -> Option<Self> {
        match (confirm_timeout, pending_before) {
            (Some(timeout), false) => Some(ConfirmEvent::Start { timeout }),
            (Some(timeout), true) => Some(ConfirmEvent::Extend { timeout }),
            (None, true) => Some(ConfirmEvent::Complete),
            (None, false) => None,
        }
    }
}

/// `netconf-confirmed-commit`; the session parameters are left out of a
/// timeout (the erratum's `when "confirm-event != 'timeout'"`).
pub fn confirmed_commit(event: ConfirmEvent, by: Option<SessionParams>) -> String {
    let session = match (event, by) {
        (ConfirmEvent::Timeout, _) | (_, None) => String::new(),
        (_, Some(by)) => by.xml(),
    };
    let timeout = match event {
        ConfirmEvent::Start { timeout } | ConfirmEvent::Extend { timeout } => {
            format!("<timeout>{}</timeout>", timeout.as_secs())
        }
        _ => String::new(),
    };
    format!(
        "<netconf-confirmed-commit xmlns=\"{NC_NOTIF_NS}\">{session}<confirm-event>{}</confirm-event>{timeout}</netconf-confirmed-commit>",
        event.name()
    )
}

/// `netconf-config-change` of running; `by` `None`: the server did it (a timeout).
pub fn config_change(by: Option<SessionParams>, changes: &[ChangeRecord]) -> String {
    let changed_by = match by {
        Some(by) => by.xml(),
        None => "<server/>".to_owned(),
    };
    let mut edits = String::new();
    for change in changes {
        let (target, decls) = xml_error_path(&change.path);
        edits.push_str(&format!(
            "<edit><target{decls}>{}</target><operation>{}</operation></edit>",
            escape(&target),
            change.operation
        ));
    }
    format!(
        "<netconf-config-change xmlns=\"{NC_NOTIF_NS}\"><changed-by>{changed_by}</changed-by><datastore>running</datastore>{edits}</netconf-config-change>"
    )
}

pub fn session_start(session: SessionParams) -> String {
    format!(
        "<netconf-session-start xmlns=\"{NC_NOTIF_NS}\">{}</netconf-session-start>",
        session.xml()
    )
}

/// Why a session ended (`termination-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Closed,
    Killed,
    Dropped,
    Timeout,
    BadHello,
    Other,
}

impl Termination {
    fn name(&self) -> &'static str {
        match self {
            Termination::Closed => "closed",
            Termination::Killed => "killed",
            Termination::Dropped => "dropped",
            Termination::Timeout => "timeout",
            Termination::BadHello => "bad-hello",
            Termination::Other => "other",
        }
    }
}

pub fn session_end(session: SessionParams, reason: Termination, killed_by: Option<u32>) -> String {
    let killed_by = match (reason, killed_by) {
        (Termination::Killed, Some(id)) => format!("<killed-by>{id}</killed-by>"),
        _ => String::new(),
    };
    format!(
        "<netconf-session-end xmlns=\"{NC_NOTIF_NS}\">{}{killed_by}<termination-reason>{}</termination-reason></netconf-session-end>",
        session.xml(),
        reason.name()
    )
}

/// Running as it was before a rollback, to tell afterwards what changed.
pub struct RunningBefore(String);

impl RunningBefore {
    pub fn take(store: &Datastore) -> RunningBefore {
        RunningBefore(store.print(Source::Running, WithDefaults::Explicit))
    }

    /// One edit per top-level node the rollback created, replaced or deleted.
    pub fn changes_to(&self, store: &Datastore) -> Vec<ChangeRecord> {
        top_node_changes(
            &self.0,
            &store.print(Source::Running, WithDefaults::Explicit),
        )
    }
}

/// Compare two printed configurations top-level node by top-level node.
fn top_node_changes(before: &str, after: &str) -> Vec<ChangeRecord> {
    type Nodes = BTreeMap<(String, String), Vec<String>>;
    let nodes = |xml: &str| -> Nodes {
        let mut nodes = Nodes::new();
        for e in besip_core::xml::parse(xml).unwrap_or_default() {
            let text = e.to_xml();
            nodes.entry((e.namespace, e.name)).or_default().push(text);
        }
        nodes
    };
    let (before, after) = (nodes(before), nodes(after));
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let operation = match (before.get(key), after.get(key)) {
                (old, new) if old == new => return None,
                (None, _) => "create",
                (_, None) => "delete",
                _ => "replace",
            };
            Some(ChangeRecord {
                path: top_node_path(&key.0, &key.1),
                operation,
            })
        })
        .collect()
}

/// `/module:name` of a top-level node (the form `xml_error_path` converts).
fn top_node_path(namespace: &str, name: &str) -> String {
    let module = Schema::get()
        .ok()
        .and_then(|s| s.module_by_namespace(namespace))
        .map(|m| m.name().to_owned());
    match module {
        Some(module) => format!("/{module}:{name}"),
        None => format!("/{name}"),
    }
}

/// How a pending confirmed commit was rolled back.
#[derive(Debug, Clone, Copy)]
pub enum Rollback<'a> {
    /// `<cancel-commit>`, or the end of the session that owned it.
    Cancel(SessionParams<'a>),
    /// Its confirm-timeout expired: the server did it.
    Timeout,
}

/// Publish a rollback: the config change (if running changed), then the
/// confirmed-commit event.
pub fn publish_rollback(server: &Server, rollback: Rollback, changes: &[ChangeRecord]) {
    let (event, by) = match rollback {
        Rollback::Cancel(by) => (ConfirmEvent::Cancel, Some(by)),
        Rollback::Timeout => (ConfirmEvent::Timeout, None),
    };
    if !changes.is_empty() {
        server.publish(&config_change(by, changes));
    }
    server.publish(&confirmed_commit(event, by));
}

#[cfg(test)]
#[path = "base_notifications_tests.rs"]
mod tests;
