//! A request made into a datastore edit: which datastore, the
//! `<edit-config>` operation attributes on the element the path names,
//! and sending it (candidate, or running edited and committed at once).
//! Shared by the data resource's methods and YANG Patch.

use crate::api_path::ApiPath;
use crate::backend::Backend;
use crate::context::{etag, last_modified, Ctx, BASE_NS};
use crate::query::Query;
use axum::http::{header, HeaderMap};
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::schema::Schema;
use besip_core::xml::Element;
use yang2::schema::SchemaNodeKind;

/// Which datastore a request works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datastore {
    /// `/data`: reads see config and state; edits go to running (edit + commit).
    Unified,
    Running,
    Candidate,
    Operational,
}

impl Datastore {
    /// The NETCONF datastore holding this one's configuration.
    pub(crate) fn config_source(self) -> &'static str {
        match self {
            Datastore::Candidate => "candidate",
            _ => "running",
        }
    }

    pub fn from_name(name: &str) -> Option<Datastore> {
        match name {
            "ietf-datastores:running" => Some(Datastore::Running),
            "ietf-datastores:candidate" => Some(Datastore::Candidate),
            "ietf-datastores:operational" => Some(Datastore::Operational),
            _ => None,
        }
    }
}

pub(crate) fn element(ns: &str, name: &str, children: Vec<Element>) -> Element {
    let mut e = Element::new(ns, name);
    e.children = children;
    e
}

pub(crate) fn protocol(tag: ErrorTag, message: impl Into<String>) -> ConfigError {
    ConfigError::protocol(tag, message)
}

pub(crate) fn set_operation(e: &mut Element, op: &str) {
    e.attributes
        .push((BASE_NS.into(), "operation".into(), op.into()));
}

/// The YANG attributes of insert/point (RFC 7950 §7.8.6) on the entry the
/// request writes: `point` names the entry it goes before or after.
pub(crate) fn set_insert(e: &mut Element, q: &Query) -> Result<(), ConfigError> {
    const YANG_NS: &str = "urn:ietf:params:xml:ns:yang:1";
    let Some(insert) = &q.insert else {
        return Ok(());
    };
    e.attributes
        .push((YANG_NS.into(), "insert".into(), insert.clone()));
    let Some(point) = &q.point else {
        return Ok(());
    };
    let bad = |m: &str| {
        protocol(ErrorTag::InvalidValue, format!("point '{point}': {m}"))
            .with_info("bad-attribute", "point")
    };
    let schema = Schema::get().map_err(|e| bad(&e.to_string()))?;
    let anchor = ApiPath::parse(schema, point)?;
    let last = anchor.target().ok_or_else(|| bad("names no entry"))?;
    if last.name != e.name || last.namespace != e.namespace {
        return Err(bad("is not an entry of the same list"));
    }
    match last.kind {
        SchemaNodeKind::List => {
            if last.keys.iter().any(|(_, v)| v.contains('\'')) {
                return Err(bad("a key with a quote cannot be pointed at"));
            }
            let predicate: String = last
                .keys
                .iter()
                .map(|(k, v)| format!("[{k}='{v}']"))
                .collect();
            e.attributes.push((YANG_NS.into(), "key".into(), predicate));
        }
        SchemaNodeKind::LeafList => {
            let value = last
                .keys
                .first()
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            e.attributes.push((YANG_NS.into(), "value".into(), value));
        }
        _ => return Err(bad("is not a list or leaf-list entry")),
    }
    Ok(())
}

/// PUT/PATCH: the body names the target (same node, same keys).
pub(crate) fn check_same_resource(path: &ApiPath, e: &Element) -> Result<(), ConfigError> {
    let Some(t) = path.target() else {
        return Ok(());
    };
    if e.name != t.name || e.namespace != t.namespace {
        return Err(protocol(
            ErrorTag::InvalidValue,
            format!(
                "the body holds '{}', the URL names '{}:{}'",
                e.name, t.module, t.name
            ),
        ));
    }
    if t.kind == SchemaNodeKind::List {
        for (k, v) in &t.keys {
            let given = e.child(k).map(|c| c.trimmed_text());
            if given.is_some_and(|g| g != v) {
                return Err(protocol(
                    ErrorTag::InvalidValue,
                    format!(
                        "key '{k}' is '{v}' in the URL but '{}' in the body",
                        given.unwrap_or("")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `config` (children of `<config>`) edits the candidate, or running
/// (edited and committed at once).
pub(crate) async fn edit<B: Backend>(
    ctx: &Ctx<'_, B>,
    ds: Datastore,
    config: Vec<Element>,
) -> Result<(), Vec<ConfigError>> {
    match ds {
        Datastore::Candidate => {
            let mut cfg = Element::new(BASE_NS, "config");
            cfg.children = config;
            let op = element(
                BASE_NS,
                "edit-config",
                vec![
                    element(BASE_NS, "target", vec![Element::new(BASE_NS, "candidate")]),
                    cfg,
                ],
            );
            ctx.backend.operation(ctx.who, op).await?;
        }
        _ => ctx.backend.edit_running(ctx.who, config).await?,
    }
    Ok(())
}

/// ETag and Last-Modified of the datastore after an edit.
pub(crate) fn version_headers<B: Backend>(ctx: &Ctx<'_, B>) -> HeaderMap {
    let version = ctx.backend.version();
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(&version));
    headers.insert(header::LAST_MODIFIED, last_modified(&version));
    headers
}

/// The operation attribute goes on the element of the path's last step.
pub(crate) fn mark_target(elements: &mut [Element], depth: usize, op: &str) {
    if let Some(e) = path_end(elements, depth) {
        set_operation(e, op);
    }
}

/// The element of step `depth` of what `ApiPath::wrap` built.
pub(crate) fn path_end(elements: &mut [Element], depth: usize) -> Option<&mut Element> {
    let mut current = elements.first_mut();
    for _ in 1..depth {
        current = current.and_then(|e| e.children.last_mut());
    }
    current
}
