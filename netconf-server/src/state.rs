//! What the server says about itself: hello capabilities, `/netconf-state`
//! (RFC 6022), `/modules-state` (RFC 7895) and `<get-schema>` texts.

use crate::server::{lock, Server};
use besip_core::schema::Schema;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use yang2::schema::{SchemaOutputFormat, SchemaPrinterFlags};

use besip_core::yang2;

/// One module of the libyang context (every module, also imported-only ones).
pub struct ModuleEntry {
    pub name: String,
    pub revision: Option<String>,
    pub namespace: String,
    pub implemented: bool,
    pub features: Vec<String>,
}

pub fn all_modules() -> Vec<ModuleEntry> {
    let Ok(schema) = Schema::get() else {
        return Vec::new();
    };
    schema
        .context()
        .modules(false)
        .map(|m| {
            let features = schema
                .modules()
                .iter()
                .find(|i| i.name == m.name())
                .map(|i| i.features.iter().filter(|f| *f != "*").cloned().collect())
                .unwrap_or_default();
            ModuleEntry {
                name: m.name().to_owned(),
                revision: m.revision().map(str::to_owned),
                namespace: m.namespace().to_owned(),
                implemented: m.is_implemented(),
                features,
            }
        })
        .collect()
}

/// A stable id of the module set: changes when any module or revision changes.
pub fn module_set_id() -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for m in all_modules() {
        for b in m.name.bytes().chain(m.revision.unwrap_or_default().bytes()) {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x100000001b3);
        }
    }
    format!("{hash:016x}")
}

pub fn capabilities() -> Vec<String> {
    let mut caps: Vec<String> = [
        "urn:ietf:params:netconf:base:1.0",
        "urn:ietf:params:netconf:base:1.1",
        "urn:ietf:params:netconf:capability:candidate:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
        "urn:ietf:params:netconf:capability:validate:1.0",
        "urn:ietf:params:netconf:capability:validate:1.1",
        "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
        "urn:ietf:params:netconf:capability:xpath:1.0",
        "urn:ietf:params:netconf:capability:url:1.0?scheme=file",
        "urn:ietf:params:netconf:capability:notification:1.0",
        "urn:ietf:params:netconf:capability:interleave:1.0",
        "urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let id = module_set_id();
    caps.push(format!(
        "urn:ietf:params:netconf:capability:yang-library:1.0?revision=2016-06-21&module-set-id={id}"
    ));
    caps.push(format!(
        "urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&content-id={id}"
    ));
    for m in all_modules() {
        let mut cap = format!("{}?module={}", m.namespace, m.name);
        if let Some(r) = &m.revision {
            cap.push_str(&format!("&revision={r}"));
        }
        if !m.features.is_empty() {
            cap.push_str(&format!("&features={}", m.features.join(",")));
        }
        caps.push(cap);
    }
    caps
}

pub fn hello(session_id: u32) -> String {
    let caps: String = capabilities()
        .iter()
        .map(|c| format!("<capability>{}</capability>", besip_core::xml::escape(c)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities>{caps}</capabilities><session-id>{session_id}</session-id></hello>"
    )
}

/// The YANG text of a module for `<get-schema>`.
pub fn schema_text(name: &str, version: Option<&str>) -> Option<String> {
    let schema = Schema::get().ok()?;
    let version = version.filter(|v| !v.is_empty());
    if let Some(info) = schema
        .modules()
        .iter()
        .find(|m| m.name == name && (version.is_none() || m.revision.as_deref() == version))
    {
        return Some(info.text.to_owned());
    }
    let module = schema
        .context()
        .modules(false)
        .find(|m| m.name() == name && (version.is_none() || m.revision() == version))?;
    module
        .print_string(SchemaOutputFormat::YANG, SchemaPrinterFlags::empty())
        .ok()
}

pub fn modules_state_json() -> String {
    let modules: Vec<Value> = all_modules()
        .into_iter()
        .map(|m| {
            let mut v = json!({
                "name": m.name,
                "revision": m.revision.unwrap_or_default(),
                "namespace": m.namespace,
                "conformance-type": if m.implemented { "implement" } else { "import" },
            });
            if !m.features.is_empty() {
                v["feature"] = json!(m.features);
            }
            v
        })
        .collect();
    json!({"ietf-yang-library:modules-state": {"module-set-id": module_set_id(), "module": modules}})
        .to_string()
}

/// RFC 8525 `/yang-library`: one module set and schema for both datastores.
pub fn yang_library_json() -> String {
    let mut implemented = Vec::new();
    let mut import_only = Vec::new();
    for m in all_modules() {
        if m.implemented {
            let mut v = json!({"name": m.name, "namespace": m.namespace});
            if let Some(r) = m.revision {
                v["revision"] = json!(r);
            }
            if !m.features.is_empty() {
                v["feature"] = json!(m.features);
            }
            implemented.push(v);
        } else {
            import_only.push(json!({
                "name": m.name,
                "revision": m.revision.unwrap_or_default(),
                "namespace": m.namespace,
            }));
        }
    }
    json!({"ietf-yang-library:yang-library": {
        "module-set": [{"name": "complete", "module": implemented, "import-only-module": import_only}],
        "schema": [{"name": "complete", "module-set": ["complete"]}],
        "datastore": [
            {"name": "ietf-datastores:running", "schema": "complete"},
            {"name": "ietf-datastores:candidate", "schema": "complete"},
        ],
        "content-id": module_set_id(),
    }})
    .to_string()
}

pub fn netconf_state_json(server: &Server) -> String {
    let caps = capabilities();
    let schemas: Vec<Value> = all_modules()
        .into_iter()
        .map(|m| {
            json!({
                "identifier": m.name,
                "version": m.revision.unwrap_or_default(),
                "format": "ietf-netconf-monitoring:yang",
                "namespace": m.namespace,
                "location": ["NETCONF"],
            })
        })
        .collect();
    let sessions: Vec<Value> = lock(&server.sessions)
        .iter()
        .map(|(id, s)| {
            json!({
                "session-id": id,
                "transport": "ietf-netconf-monitoring:netconf-ssh",
                "username": s.user,
                "source-host": s.source_host,
                "login-time": s.login_time,
                "in-rpcs": s.counters.in_rpcs.load(Ordering::Relaxed),
                "in-bad-rpcs": s.counters.in_bad_rpcs.load(Ordering::Relaxed),
                "out-rpc-errors": s.counters.out_rpc_errors.load(Ordering::Relaxed),
                "out-notifications": s.counters.out_notifications.load(Ordering::Relaxed),
            })
        })
        .collect();
    let locks = lock(&server.locks);
    let datastore = |name: &str, held: &Option<(u32, String)>| {
        let mut d = json!({"name": name});
        if let Some((id, time)) = held {
            d["locks"] = json!({"global-lock": {"locked-by-session": id, "locked-time": time}});
        }
        d
    };
    let datastores = vec![
        datastore("running", &locks.running),
        datastore("candidate", &locks.candidate),
    ];
    drop(locks);
    let t = &server.totals;
    json!({"ietf-netconf-monitoring:netconf-state": {
        "capabilities": {"capability": caps},
        "datastores": {"datastore": datastores},
        "schemas": {"schema": schemas},
        "sessions": {"session": sessions},
        "statistics": {
            "netconf-start-time": server.start_time,
            "in-bad-hellos": server.in_bad_hellos.load(Ordering::Relaxed),
            "in-sessions": server.in_sessions.load(Ordering::Relaxed),
            "dropped-sessions": server.dropped_sessions.load(Ordering::Relaxed),
            "in-rpcs": t.in_rpcs.load(Ordering::Relaxed),
            "in-bad-rpcs": t.in_bad_rpcs.load(Ordering::Relaxed),
            "out-rpc-errors": t.out_rpc_errors.load(Ordering::Relaxed),
            "out-notifications": t.out_notifications.load(Ordering::Relaxed),
        }
    }})
    .to_string()
}

/// RFC 8040 §9 `/restconf-state` while RESTCONF is served: its
/// capabilities and the NETCONF event stream (with replay) at the address
/// it is served on (`--restconf-listen`, else the host name and port).
pub fn restconf_state_json(
    server: &Server,
    settings: &besip_restconf::backend::Settings,
) -> Option<String> {
    let fixed = server.restconf_fixed.get().cloned().unwrap_or_default();
    let authority = match fixed.first() {
        Some(a) if !a.ip().is_unspecified() => a.to_string(),
        Some(a) => format!("{}:{}", settings.hostname, a.port()),
        None if settings.enabled => format!("{}:{}", settings.hostname, settings.port),
        None => return None,
    };
    let access: Vec<Value> = ["xml", "json"]
        .into_iter()
        .map(|encoding| {
            json!({
                "encoding": encoding,
                "location": format!("https://{authority}/restconf/streams/NETCONF/{encoding}"),
            })
        })
        .collect();
    Some(
        json!({"ietf-restconf-monitoring:restconf-state": {
            "capabilities": {"capability": besip_restconf::CAPABILITIES},
            "streams": {"stream": [{
                "name": "NETCONF",
                "description": "All notifications of the box (NACM decides who receives which).",
                "replay-support": true,
                "replay-log-creation-time": server.start_time,
                "access": access,
            }]},
        }})
        .to_string(),
    )
}

/// RFC 8341 `/nacm` counters (config false).
pub fn nacm_state_json(server: &Server) -> String {
    let d = &server.nacm_denied;
    json!({"ietf-netconf-acm:nacm": {
        "denied-operations": d.operations.load(Ordering::Relaxed) as u32,
        "denied-data-writes": d.data_writes.load(Ordering::Relaxed) as u32,
        "denied-notifications": d.notifications.load(Ordering::Relaxed) as u32,
    }})
    .to_string()
}

/// The daemons' state over IPC (a daemon that is not running is skipped).
pub async fn daemon_states(server: &Server) -> Vec<String> {
    let mut out = Vec::new();
    for daemon in ["pbx", "security", "monitoring"] {
        let path = server.layout.socket(daemon);
        if !path.exists() {
            continue;
        }
        let Ok(client) = besip_core::ipc::IpcClient::connect(&path).await else {
            continue;
        };
        let client = client.with_timeout(std::time::Duration::from_secs(3));
        match client.call("state", json!({})).await {
            Ok(v) => out.push(v.to_string()),
            Err(e) => tracing::warn!(daemon, error = %e, "daemon state unavailable"),
        }
    }
    out
}
