//! The NETCONF operations (RFC 6241 §7, RFC 6022 get-schema, RFC 5277
//! create-subscription) over besip-core's datastore; access control through
//! `nacm_ops`.

use crate::base_notifications::{self, ConfirmEvent, Rollback, RunningBefore, SessionParams};
use crate::nacm_ops::{
    check_admin_data_kept, check_edit_rules, check_replace_rules, exec_denied, may_edit,
    normalize_nacm_paths, read_as_user, scope_of,
};
use crate::rpc::{
    access_denied, bad_value, base_child, filter, missing, store_arg, text_of, with_defaults,
    Answer, OpResult, Store, MONITORING_NS, NOTIFICATION_NS,
};
use crate::server::{lock, Group};
use crate::session::SessionCtx;
use crate::{files, modrpc, reply::BASE_NS, state};
use besip_core::datastore::{CommitOptions, Confirmed, Source, TestOption, WithDefaults};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::filter::Filter;
use besip_core::xml::{escape, Element};
use std::sync::atomic::Ordering;
use std::time::Duration;

use besip_core::model::system::NAMESPACE as SYSTEM_NS;

pub async fn dispatch(ctx: &mut SessionCtx, rpc: &Element, op: &Element) -> OpResult {
    let e = |err: ConfigError| vec![err];
    // Module RPCs are checked in modrpc, once their module is known.
    let module = match op.namespace.as_str() {
        BASE_NS => Some("ietf-netconf"),
        MONITORING_NS => Some("ietf-netconf-monitoring"),
        NOTIFICATION_NS => Some("notifications"),
        _ => None,
    };
    if let Some(module) = module {
        let view = ctx.server.nacm_view(&ctx.user, ctx.group);
        if !view.may_exec(module, &op.name) {
            return Err(exec_denied(&op.name));
        }
    }
    if op.namespace == BASE_NS {
        return match op.name.as_str() {
            "get" => get(ctx, rpc, op).await,
            "get-config" => get_config(ctx, rpc, op).await,
            "edit-config" => edit_config(ctx, rpc, op).await,
            "copy-config" => copy_config(ctx, op).await,
            "delete-config" => delete_config(ctx, op).await,
            "lock" => lock_op(ctx, op, true).await,
            "unlock" => lock_op(ctx, op, false).await,
            "validate" => validate(ctx, op).await,
            "commit" => commit(ctx, op).await,
            "cancel-commit" => cancel_commit(ctx, op).await,
            "discard-changes" => discard(ctx).await,
            "close-session" => Ok(Answer::Close),
            "kill-session" => kill_session(ctx, op),
            other => Err(e(unsupported(other))),
        };
    }
    if op.namespace == MONITORING_NS && op.name == "get-schema" {
        return get_schema(op);
    }
    if op.namespace == NOTIFICATION_NS && op.name == "create-subscription" {
        return create_subscription(ctx, op);
    }
    if op.namespace.starts_with("urn:besip:") {
        return modrpc::module_rpc(ctx, op).await;
    }
    Err(e(unsupported(&op.name)))
}

fn unsupported(name: &str) -> ConfigError {
    ConfigError::protocol(
        ErrorTag::OperationNotSupported,
        format!("operation <{name}> is not supported by this server"),
    )
    .with_info("bad-element", name)
}

async fn get(ctx: &SessionCtx, rpc: &Element, op: &Element) -> OpResult {
    let filter = filter(rpc, op).map_err(|e| vec![e])?;
    let wd = with_defaults(op).map_err(|e| vec![e])?;
    let mut states = state::daemon_states(&ctx.server).await;
    states.push(state::netconf_state_json(&ctx.server));
    states.push(state::modules_state_json());
    states.push(state::yang_library_json());
    states.push(state::nacm_state_json(&ctx.server));
    let store = ctx.server.store.lock().await;
    let restconf = crate::users::restconf_settings(&store);
    states.extend(state::restconf_state_json(&ctx.server, &restconf));
    if let Ok(history) = store.history_state_json() {
        states.push(history);
    }
    read_as_user(ctx, |access| {
        store.get_with_state_as(&filter, wd, &states, access)
    })
    .map(Answer::Data)
    .map_err(|e| vec![e])
}

fn source_of(store: Store, what: &str) -> Result<Source, ConfigError> {
    match store {
        Store::Running => Ok(Source::Running),
        Store::Candidate => Ok(Source::Candidate),
        _ => Err(ConfigError::protocol(
            ErrorTag::OperationNotSupported,
            format!("{what} works on <running/> or <candidate/> here"),
        )),
    }
}

async fn get_config(ctx: &SessionCtx, rpc: &Element, op: &Element) -> OpResult {
    let source = source_of(store_arg(op, "source").map_err(|e| vec![e])?, "get-config")
        .map_err(|e| vec![e])?;
    let filter = filter(rpc, op).map_err(|e| vec![e])?;
    let wd = with_defaults(op).map_err(|e| vec![e])?;
    let store = ctx.server.store.lock().await;
    let started = std::time::Instant::now();
    let result = read_as_user(ctx, |access| {
        store.get_config_as(source, &filter, wd, access)
    });
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        "get-config"
    );
    result.map(Answer::Data).map_err(|e| vec![e])
}

/// `in-use` if another session holds the lock on a datastore.
fn check_lock(ctx: &SessionCtx, source: Source) -> Result<(), Vec<ConfigError>> {
    let locks = lock(&ctx.server.locks);
    let held = match source {
        Source::Running => &locks.running,
        Source::Candidate => &locks.candidate,
    };
    match held {
        Some((holder, _)) if *holder != ctx.id => Err(vec![ConfigError::protocol(
            ErrorTag::InUse,
            format!("the {source:?} datastore is locked by session {holder}").to_lowercase(),
        )
        .with_info("session-id", holder.to_string())]),
        _ => Ok(()),
    }
}

async fn edit_config(ctx: &SessionCtx, rpc: &Element, op: &Element) -> OpResult {
    let target = store_arg(op, "target").map_err(|e| vec![e])?;
    match target {
        Store::Candidate => {}
        Store::Running => {
            return Err(vec![ConfigError::protocol(
                ErrorTag::OperationNotSupported,
                "running is not writable directly (no :writable-running): edit <candidate/> and <commit/>",
            )])
        }
        _ => return Err(vec![bad_value("target", "edit-config targets <candidate/>")]),
    }
    let default_operation = match text_of(op, "default-operation") {
        None | Some("merge") => DefaultOperation::Merge,
        Some("replace") => DefaultOperation::Replace,
        Some("none") => DefaultOperation::None,
        Some(v) => {
            return Err(vec![bad_value(
                "default-operation",
                format!("default-operation '{v}' is not merge, replace or none"),
            )])
        }
    };
    let test_option = match text_of(op, "test-option") {
        None | Some("test-then-set") => TestOption::TestThenSet,
        Some("set") => TestOption::Set,
        Some("test-only") => TestOption::TestOnly,
        Some(v) => {
            return Err(vec![bad_value(
                "test-option",
                format!("test-option '{v}' is not test-then-set, set or test-only"),
            )])
        }
    };
    let error_option = match text_of(op, "error-option") {
        None | Some("stop-on-error") => ErrorOption::StopOnError,
        Some("continue-on-error") => ErrorOption::ContinueOnError,
        Some("rollback-on-error") => ErrorOption::RollbackOnError,
        Some(v) => {
            return Err(vec![bad_value(
                "error-option",
                format!(
                "error-option '{v}' is not stop-on-error, continue-on-error or rollback-on-error"
            ),
            )])
        }
    };
    let config = if let Some(c) = base_child(op, "config") {
        let mut children = c.children.clone();
        normalize_nacm_paths(&mut children, &scope_of(&[rpc, op, c]));
        children
    } else if let Some(u) = base_child(op, "url") {
        if ctx.group != Group::Admin {
            return Err(access_denied("read files through <url>"));
        }
        files::read_url_config(ctx, u.trimmed_text())
            .await
            .map_err(|e| vec![e])?
    } else {
        return Err(vec![missing("config")]);
    };
    let view = ctx.server.nacm_view(&ctx.user, ctx.group);
    if !view.active() {
        may_edit(ctx, &config)?;
    }
    check_lock(ctx, Source::Candidate)?;
    let mut store = ctx.server.store.lock().await;
    if view.active() {
        check_edit_rules(&view, &store, &config, default_operation, error_option)?;
    } else {
        check_admin_data_kept(ctx, &store, &config, default_operation, error_option)?;
    }
    store
        .edit_candidate(&config, default_operation, error_option, test_option)
        .map(|_| Answer::Ok)
        .map_err(|e| e.0)
}

fn config_document(content: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config xmlns=\"{BASE_NS}\">{content}</config>\n")
}

async fn copy_config(ctx: &SessionCtx, op: &Element) -> OpResult {
    let target = store_arg(op, "target").map_err(|e| vec![e])?;
    let source = store_arg(op, "source").map_err(|e| vec![e])?;
    let uses_url = matches!(target, Store::Url(_)) || matches!(source, Store::Url(_));
    if uses_url && ctx.group != Group::Admin {
        return Err(access_denied("copy configurations"));
    }
    match target {
        Store::Candidate => {
            check_lock(ctx, Source::Candidate)?;
            let content = match source {
                Store::Config(mut c) => {
                    normalize_nacm_paths(&mut c, &scope_of(&[op]));
                    c
                }
                Store::Url(u) => files::read_url_config(ctx, &u).await.map_err(|e| vec![e])?,
                Store::Running => {
                    let mut store = ctx.server.store.lock().await;
                    return store
                        .discard_changes()
                        .map(|_| Answer::Ok)
                        .map_err(|e| vec![e]);
                }
                Store::Candidate => return Ok(Answer::Ok),
                Store::Startup => {
                    return Err(vec![bad_value("source", "there is no startup datastore")])
                }
            };
            if ctx.group != Group::Admin {
                return Err(access_denied(
                    "replace the whole configuration (it holds the users)",
                ));
            }
            let mut store = ctx.server.store.lock().await;
            let view = ctx.server.nacm_view(&ctx.user, ctx.group);
            if view.active() {
                check_replace_rules(&view, &store, &content)?;
            }
            store
                .replace_candidate(&content)
                .map(|_| Answer::Ok)
                .map_err(|e| e.0)
        }
        Store::Url(u) => {
            let path = files::resolve(ctx, &u).await.map_err(|e| vec![e])?;
            let content = match source {
                Store::Running | Store::Candidate => {
                    let s = if matches!(source, Store::Running) {
                        Source::Running
                    } else {
                        Source::Candidate
                    };
                    // What the user may read, as get-config would give it (RFC 8341 §3.4.5).
                    let store = ctx.server.store.lock().await;
                    read_as_user(ctx, |access| {
                        store.get_config_as(s, &Filter::All, WithDefaults::Explicit, access)
                    })
                    .map_err(|e| vec![e])?
                }
                Store::Config(c) => c.iter().map(|e| e.to_xml()).collect(),
                Store::Url(src) => files::read_url_config(ctx, &src)
                    .await
                    .map_err(|e| vec![e])?
                    .iter()
                    .map(|e| e.to_xml())
                    .collect(),
                Store::Startup => {
                    return Err(vec![bad_value("source", "there is no startup datastore")])
                }
            };
            besip_core::persist::write_atomically(&path, config_document(&content).as_bytes())
                .map(|_| Answer::Ok)
                .map_err(|e| {
                    vec![ConfigError::new(
                        ErrorTag::OperationFailed,
                        format!("cannot write {}: {e}", path.display()),
                    )]
                })
        }
        Store::Running => Err(vec![ConfigError::protocol(
            ErrorTag::OperationNotSupported,
            "running is not writable directly: copy to <candidate/> and <commit/>",
        )]),
        _ => Err(vec![bad_value(
            "target",
            "copy-config targets <candidate/> or <url>",
        )]),
    }
}

async fn delete_config(ctx: &SessionCtx, op: &Element) -> OpResult {
    match store_arg(op, "target").map_err(|e| vec![e])? {
        Store::Url(u) => {
            if ctx.group != Group::Admin {
                return Err(access_denied("delete files"));
            }
            let path = files::resolve(ctx, &u).await.map_err(|e| vec![e])?;
            std::fs::remove_file(&path)
                .map(|_| Answer::Ok)
                .map_err(|e| {
                    vec![ConfigError::new(
                        ErrorTag::OperationFailed,
                        format!("cannot delete {}: {e}", path.display()),
                    )]
                })
        }
        Store::Running => Err(vec![ConfigError::protocol(
            ErrorTag::OperationNotSupported,
            "the running configuration cannot be deleted (RFC 6241 §7.4)",
        )]),
        _ => Err(vec![ConfigError::protocol(
            ErrorTag::OperationNotSupported,
            "delete-config deletes a <url> here (there is no startup datastore)",
        )]),
    }
}

async fn lock_op(ctx: &SessionCtx, op: &Element, take: bool) -> OpResult {
    let source =
        source_of(store_arg(op, "target").map_err(|e| vec![e])?, "lock").map_err(|e| vec![e])?;
    // The candidate cannot be locked while it holds someone's uncommitted changes.
    let candidate_dirty =
        take && source == Source::Candidate && ctx.server.store.lock().await.candidate_modified();
    let mut locks = lock(&ctx.server.locks);
    let slot = match source {
        Source::Running => &mut locks.running,
        Source::Candidate => &mut locks.candidate,
    };
    let name = if source == Source::Running {
        "running"
    } else {
        "candidate"
    };
    if take {
        if let Some((holder, _)) = slot {
            return Err(vec![ConfigError::protocol(
                ErrorTag::LockDenied,
                format!("{name} is already locked by session {holder}"),
            )
            .with_info("session-id", holder.to_string())]);
        }
        if candidate_dirty {
            return Err(vec![ConfigError::protocol(
                ErrorTag::LockDenied,
                "the candidate holds uncommitted changes: commit or discard-changes first",
            )
            .with_info("session-id", "0")]);
        }
        *slot = Some((ctx.id, besip_core::ipc::now_rfc3339()));
    } else {
        match slot {
            Some((holder, _)) if *holder == ctx.id => *slot = None,
            _ => {
                return Err(vec![ConfigError::protocol(
                    ErrorTag::OperationFailed,
                    format!("this session holds no lock on {name}"),
                )])
            }
        }
    }
    Ok(Answer::Ok)
}

async fn validate(ctx: &SessionCtx, op: &Element) -> OpResult {
    match store_arg(op, "source").map_err(|e| vec![e])? {
        Store::Config(mut content) => {
            normalize_nacm_paths(&mut content, &scope_of(&[op]));
            let schema = besip_core::schema::Schema::get()
                .map_err(|e| vec![ConfigError::new(ErrorTag::OperationFailed, e.to_string())])?;
            let text: String = content.iter().map(|e| e.to_xml()).collect();
            besip_core::datastore::parse_config_tree(schema, &text)
                .map(|_| Answer::Ok)
                .map_err(|e| vec![e])
        }
        other => {
            let source = source_of(other, "validate").map_err(|e| vec![e])?;
            let mut store = ctx.server.store.lock().await;
            store
                .validate(source)
                .map(|_| Answer::Ok)
                .map_err(|e| vec![e])
        }
    }
}

async fn commit(ctx: &SessionCtx, op: &Element) -> OpResult {
    check_lock(ctx, Source::Running)?;
    check_lock(ctx, Source::Candidate)?;
    let confirmed = if base_child(op, "confirmed").is_some() {
        let timeout = match text_of(op, "confirm-timeout") {
            None => 600,
            Some(t) => t.parse::<u32>().ok().filter(|t| *t > 0).ok_or_else(|| {
                vec![bad_value(
                    "confirm-timeout",
                    format!("confirm-timeout '{t}' is not a positive number of seconds"),
                )]
            })?,
        };
        Some(Confirmed {
            timeout: Duration::from_secs(timeout as u64),
            persist: text_of(op, "persist").map(str::to_owned),
        })
    } else {
        None
    };
    let confirm_timeout = confirmed.as_ref().map(|c| c.timeout);
    let options = CommitOptions {
        user: ctx.user.clone(),
        comment: op
            .child_ns(SYSTEM_NS, "comment")
            .map(|c| c.trimmed_text().to_owned())
            .unwrap_or_default(),
        confirmed,
        persist_id: text_of(op, "persist-id").map(str::to_owned),
        session_id: Some(ctx.id),
    };
    let (outcome, pending_before) = {
        let mut store = ctx.server.store.lock().await;
        let pending_before = store.confirm_pending();
        let started = std::time::Instant::now();
        let outcome = store.commit(options, &ctx.server.reloader).await;
        ctx.server
            .commits
            .record(outcome.is_ok(), started.elapsed());
        let outcome = outcome.map_err(|e| e.0)?;
        ctx.server.running_changed(&store);
        (outcome, pending_before)
    };
    let by = SessionParams::from(ctx);
    if outcome.id.is_some() {
        ctx.server.publish(&base_notifications::config_change(
            Some(by),
            &outcome.changes,
        ));
    }
    if let Some(event) = ConfirmEvent::of_commit(confirm_timeout, pending_before) {
        ctx.server
            .publish(&base_notifications::confirmed_commit(event, Some(by)));
    }
    Ok(Answer::Ok)
}

async fn cancel_commit(ctx: &SessionCtx, op: &Element) -> OpResult {
    let persist_id = text_of(op, "persist-id");
    let mut store = ctx.server.store.lock().await;
    if persist_id.is_none() && store.confirm_session().is_some_and(|s| s != ctx.id) {
        return Err(vec![ConfigError::protocol(
            ErrorTag::OperationFailed,
            "the pending confirmed commit belongs to another session",
        )]);
    }
    let before = store.confirm_pending().then(|| RunningBefore::take(&store));
    let result = store.cancel_commit(persist_id, &ctx.server.reloader).await;
    ctx.server.running_changed(&store);
    result.map_err(|e| e.0)?;
    let changes = before.map(|b| b.changes_to(&store)).unwrap_or_default();
    drop(store);
    base_notifications::publish_rollback(
        &ctx.server,
        Rollback::Cancel(SessionParams::from(ctx)),
        &changes,
    );
    Ok(Answer::Ok)
}

async fn discard(ctx: &SessionCtx) -> OpResult {
    check_lock(ctx, Source::Candidate)?;
    let mut store = ctx.server.store.lock().await;
    store
        .discard_changes()
        .map(|_| Answer::Ok)
        .map_err(|e| vec![e])
}

fn kill_session(ctx: &SessionCtx, op: &Element) -> OpResult {
    let text = text_of(op, "session-id").ok_or_else(|| vec![missing("session-id")])?;
    let id: u32 = text.parse().map_err(|_| {
        vec![bad_value(
            "session-id",
            format!("'{text}' is not a session id"),
        )]
    })?;
    if id == ctx.id {
        return Err(vec![bad_value(
            "session-id",
            "use close-session to end your own session",
        )]);
    }
    let sessions = lock(&ctx.server.sessions);
    let entry = sessions
        .get(&id)
        .ok_or_else(|| vec![bad_value("session-id", format!("there is no session {id}"))])?;
    // Lock-out guard: an administrator's session ends only by an administrator.
    if entry.group == Group::Admin && ctx.group != Group::Admin {
        return Err(access_denied("end an administrator's session"));
    }
    entry.killed_by.store(ctx.id, Ordering::Relaxed);
    entry.kill.notify_one();
    drop(sessions);
    // Its locks are free once the reply is sent (RFC 6241 §7.9); the killed
    // session's own clean-up also reverts its confirmed commit.
    ctx.server.release_locks(id);
    Ok(Answer::Ok)
}

fn get_schema(op: &Element) -> OpResult {
    let identifier = text_of(op, "identifier").ok_or_else(|| vec![missing("identifier")])?;
    tracing::debug!(identifier, "get-schema");
    if let Some(format) = text_of(op, "format") {
        let local = format.rsplit(':').next().unwrap_or(format);
        if local != "yang" {
            return Err(vec![bad_value(
                "format",
                format!("schema format '{format}' is not offered; ask for yang"),
            )]);
        }
    }
    let text = state::schema_text(identifier, text_of(op, "version")).ok_or_else(|| {
        vec![ConfigError::protocol(
            ErrorTag::InvalidValue,
            format!("no schema '{identifier}' in that version"),
        )
        .with_info("bad-element", "identifier")]
    })?;
    Ok(Answer::Body(format!(
        "<data xmlns=\"{MONITORING_NS}\">{}</data>",
        escape(&text)
    )))
}

fn create_subscription(ctx: &mut SessionCtx, op: &Element) -> OpResult {
    if ctx.subscribed {
        return Err(vec![ConfigError::protocol(
            ErrorTag::InUse,
            "this session already has a subscription",
        )]);
    }
    if let Some(stream) = text_of(op, "stream") {
        if stream != "NETCONF" {
            return Err(vec![bad_value(
                "stream",
                format!("there is no stream '{stream}'; use NETCONF"),
            )]);
        }
    }
    let subscription = crate::subscription::Subscription::from_request(op, chrono::Utc::now())
        .map_err(|e| vec![e])?;
    ctx.subscribed = true;
    ctx.new_subscription = Some(subscription);
    Ok(Answer::Ok)
}
