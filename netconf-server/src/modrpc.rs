//! The bridge to the daemons: RPCs of besip modules forwarded over IPC,
//! daemon notifications delivered to subscribers.

use crate::rpc::{Answer, OpResult};
use crate::server::Server;
use crate::session::SessionCtx;
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::ipc::IpcClient;
use besip_core::schema::Schema;
use besip_core::xml::{escape, Element};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub async fn module_rpc(ctx: &SessionCtx, op: &Element) -> OpResult {
    let schema = Schema::get()
        .map_err(|e| vec![ConfigError::new(ErrorTag::OperationFailed, e.to_string())])?;
    let Some(module) = schema.module_by_namespace(&op.namespace) else {
        return Err(vec![ConfigError::protocol(
            ErrorTag::UnknownNamespace,
            format!("no module has the namespace {}", op.namespace),
        )
        .with_info("bad-element", op.name.clone())
        .with_info("bad-namespace", op.namespace.clone())]);
    };
    if !module.rpcs().any(|r| r.name() == op.name) {
        return Err(vec![ConfigError::protocol(
            ErrorTag::OperationNotSupported,
            format!("module {} has no RPC <{}>", module.name(), op.name),
        )
        .with_info("bad-element", op.name.clone())]);
    }
    let module_name = module.name().to_owned();
    if !ctx
        .server
        .nacm_view(&ctx.user, ctx.group)
        .may_exec(&module_name, &op.name)
    {
        return Err(crate::nacm_ops::exec_denied(&op.name));
    }
    if module_name == "besip-system" && op.name == "rollback" {
        let back = op
            .child("back")
            .map(|b| b.trimmed_text())
            .and_then(|b| b.parse::<u8>().ok())
            .filter(|b| *b <= 49)
            .ok_or_else(|| {
                vec![crate::rpc::bad_value(
                    "back",
                    "<back> must be a number 0..49",
                )]
            })?;
        let mut store = ctx.server.store.lock().await;
        let view = ctx.server.nacm_view(&ctx.user, ctx.group);
        if !view.active() && ctx.group == crate::server::Group::Admin {
            return store
                .rollback_candidate(back as usize)
                .map(|_| Answer::Ok)
                .map_err(|e| vec![e]);
        }
        let group = ctx.group;
        return checked_rollback(&mut store, back as usize, |before, after| {
            if view.active() {
                crate::nacm_data::check_replace(&view, before, after)
            } else {
                crate::nacm_ops::check_rollback_kept_admin_data(group, before, after)
            }
        });
    }
    if module_name == "besip-system" && op.name == crate::uci_import::RPC_NAME {
        return import_uci(ctx, op).await;
    }
    // The input checked against the model here, at the edge: a wrong
    // type, pattern, length or a missing mandatory leaf never reaches
    // a daemon.
    valid_input(schema, op)?;
    let daemon = module_name.trim_start_matches("besip-").to_owned();
    let socket = ctx.server.layout.socket(&daemon);
    let client = IpcClient::connect(&socket).await.map_err(|_| {
        vec![ConfigError::new(
            ErrorTag::OperationFailed,
            format!(
                "besip-{daemon}d is not running (no socket {}); start it and retry",
                socket.display()
            ),
        )]
    })?;
    let client = client.with_timeout(Duration::from_secs(30));
    let input = Value::Object(children_to_json(&op.children));
    let params = serde_json::json!({"name": format!("{module_name}:{}", op.name), "input": input});
    match client.call("rpc", params).await {
        Ok(Value::Object(out)) if out.is_empty() => Ok(Answer::Ok),
        Ok(Value::Null) => Ok(Answer::Ok),
        Ok(out) => {
            let ns = op.namespace.clone();
            let mut body = String::new();
            json_to_xml(&out, &ns, true, &mut body);
            Ok(Answer::Body(body))
        }
        Err(besip_core::ipc::IpcError::Remote { message, .. }) => {
            Err(vec![ConfigError::new(ErrorTag::OperationFailed, message)])
        }
        Err(e) => Err(vec![ConfigError::new(
            ErrorTag::OperationFailed,
            e.to_string(),
        )]),
    }
}

/// Parses and validates `op` as the RPC's input in the YANG schema
/// (libyang: types, patterns, lengths, ranges, mandatory leaves).
fn valid_input(schema: &'static Schema, op: &Element) -> Result<(), Vec<ConfigError>> {
    use besip_core::yang2::{self, data, ffi};
    let context = schema.context();
    let invalid = |message: String| {
        vec![ConfigError::new(
            ErrorTag::InvalidValue,
            format!("<{}>: {}", op.name, shorten_quoted(&message)),
        )]
    };
    // libyang reads the input up to a NUL.
    let tree = data::DataTree::parse_op_string(
        context,
        format!("{}\0", op.to_xml()),
        data::DataFormat::XML,
        data::DataOperation::RpcYang,
    )
    .map_err(|e| invalid(e.to_string()))?;
    let Some(root) = tree.reference() else {
        return Err(invalid("no input parsed".into()));
    };
    // SAFETY: `root` is the top node of `tree`, alive across the call;
    // no dependency tree and no diff (null pointers).
    let result = unsafe {
        ffi::lyd_validate_op(
            root.as_raw(),
            std::ptr::null(),
            ffi::lyd_type::LYD_TYPE_RPC_YANG,
            std::ptr::null_mut(),
        )
    };
    if result == ffi::LY_ERR::LY_SUCCESS {
        Ok(())
    } else {
        Err(invalid(yang2::Error::new(context).to_string()))
    }
}

/// libyang quotes the offending value whole: a 2 MB upload would come
/// back in the error. Quoted runs over 64 characters are cut.
fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    for (i, part) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        let quoted = i % 2 == 1;
        if quoted && part.chars().count() > 64 {
            out.extend(part.chars().take(32));
            out.push_str(&format!("… ({} characters)", part.chars().count()));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// `besip-system:import-uci`: a hand-edited UCI package through the datastore.
async fn import_uci(ctx: &SessionCtx, op: &Element) -> OpResult {
    let package = op
        .child("package")
        .map(|p| p.trimmed_text().to_owned())
        .ok_or_else(|| vec![crate::rpc::bad_value("package", "<package> is missing")])?;
    match crate::uci_import::import(&ctx.server, &package, &ctx.user).await {
        Ok(imported) => {
            let result = match imported {
                crate::uci_import::Imported::Unchanged => "unchanged",
                crate::uci_import::Imported::Committed(_) => "committed",
            };
            Ok(Answer::Body(format!(
                "<result xmlns=\"{}\">{result}</result>",
                escape(&op.namespace)
            )))
        }
        Err(refusal) => Err(vec![crate::uci_import::to_config_error(&refusal)]),
    }
}

/// A rollback for a user with NACM rules or outside the admin group:
/// `check` must permit the difference it makes to the candidate, else the
/// candidate is put back.
fn checked_rollback(
    store: &mut besip_core::datastore::Datastore,
    back: usize,
    check: impl FnOnce(
        &besip_core::yang2::data::DataTree<'static>,
        &besip_core::yang2::data::DataTree<'static>,
    ) -> Result<(), ConfigError>,
) -> OpResult {
    use besip_core::datastore::Source;
    let failed = |e: String| vec![ConfigError::new(ErrorTag::OperationFailed, e)];
    let was_modified = store.candidate_modified();
    let before = store
        .tree(Source::Candidate)
        .duplicate()
        .map_err(|e| failed(e.to_string()))?;
    store.rollback_candidate(back).map_err(|e| vec![e])?;
    let Err(denied) = check(&before, store.tree(Source::Candidate)) else {
        return Ok(Answer::Ok);
    };
    let restored = if was_modified {
        let xml = besip_core::datastore::print_tree(
            &before,
            besip_core::datastore::WithDefaults::Explicit,
        );
        besip_core::xml::parse(&xml)
            .map_err(|e| e.to_string())
            .and_then(|c| store.replace_candidate(&c).map_err(|e| format!("{e:?}")))
    } else {
        store.discard_changes().map_err(|e| e.to_string())
    };
    if let Err(e) = restored {
        tracing::error!(error = %e, "putting the candidate back after a denied rollback failed");
    }
    Err(vec![denied])
}

/// RPC input as RFC 7951-ish JSON: leaves as strings, repeated names as arrays.
fn children_to_json(children: &[Element]) -> Map<String, Value> {
    let mut map = Map::new();
    for child in children {
        let value = if child.children.is_empty() {
            Value::String(child.trimmed_text().to_owned())
        } else {
            Value::Object(children_to_json(&child.children))
        };
        match map.get_mut(&child.name) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                map.insert(child.name.clone(), value);
            }
        }
    }
    map
}

/// JSON (object members) as XML elements in `ns`; a `module:` prefix on a
/// member name switches the namespace.
fn json_to_xml(value: &Value, ns: &str, top: bool, out: &mut String) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, v) in map {
        let (name, child_ns) = match key.split_once(':') {
            Some((module, name)) => (
                name,
                Schema::get()
                    .ok()
                    .and_then(|s| s.modules().iter().find(|m| m.name == module))
                    .map(|m| m.namespace.clone())
                    .unwrap_or_else(|| ns.to_owned()),
            ),
            None => (key.as_str(), ns.to_owned()),
        };
        let items: Vec<&Value> = match v {
            Value::Array(list) => list.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let xmlns = if top || child_ns != ns {
                format!(" xmlns=\"{}\"", escape(&child_ns))
            } else {
                String::new()
            };
            match item {
                Value::Object(_) => {
                    out.push_str(&format!("<{name}{xmlns}>"));
                    json_to_xml(item, &child_ns, false, out);
                    out.push_str(&format!("</{name}>"));
                }
                Value::Null => out.push_str(&format!("<{name}{xmlns}/>")),
                Value::Array(a) if a.len() == 1 && a[0].is_null() => {
                    out.push_str(&format!("<{name}{xmlns}/>"))
                }
                Value::String(s) => out.push_str(&format!("<{name}{xmlns}>{}</{name}>", escape(s))),
                other => out.push_str(&format!("<{name}{xmlns}>{other}</{name}>")),
            }
        }
    }
}

/// Follow each daemon's notifications (reconnecting while it is down) and
/// publish them to NETCONF subscribers.
pub fn forward_daemon_notifications(server: Arc<Server>) {
    for daemon in ["pbx", "security", "monitoring"] {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                let socket = server.layout.socket(daemon);
                if let Ok(client) = IpcClient::connect(&socket).await {
                    tracing::info!(daemon, "following the daemon's notifications");
                    let mut rx = client.notifications();
                    loop {
                        match rx.recv().await {
                            Ok(n) => server.publish(&notification_xml(&n.name, &n.data)),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    tracing::info!(daemon, "daemon connection closed");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
}

/// `besip-security:ban-added` + data -> `<ban-added xmlns="urn:besip:security">…</ban-added>`.
pub fn notification_xml(name: &str, data: &Value) -> String {
    let mut wrapped = Map::new();
    wrapped.insert(name.to_owned(), data.clone());
    let mut out = String::new();
    json_to_xml(&Value::Object(wrapped), "", true, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_daemon_json_to_xml() {
        let xml = notification_xml(
            "besip-system:x",
            &serde_json::json!({"address": "127.0.0.2", "n": 3, "list": [{"a": "1"}, {"a": "2"}]}),
        );
        assert_eq!(
            xml,
            "<x xmlns=\"urn:besip:system\"><address>127.0.0.2</address><list><a>1</a></list><list><a>2</a></list><n>3</n></x>"
        );
    }

    #[test]
    fn long_quoted_values_are_cut_in_errors() {
        let long = "A".repeat(5000);
        let m = shorten_quoted(&format!(
            "Unsatisfied length - string \"{long}\" is too long."
        ));
        assert!(m.len() < 200, "{m}");
        assert!(
            m.starts_with("Unsatisfied length - string \"AAAA")
                && m.ends_with("(5000 characters)\" is too long."),
            "{m}"
        );
        assert_eq!(shorten_quoted("pattern \"x\" bad"), "pattern \"x\" bad");
    }
}
