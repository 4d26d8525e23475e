//! The data resource: `{+restconf}/data` and the RFC 8527 datastores
//! `{+restconf}/ds/ietf-datastores:{running,candidate,operational}`.

use crate::api_path::ApiPath;
use crate::backend::{Backend, Reply};
use crate::context::{etag, last_modified, Ctx, BASE_NS, WITH_DEFAULTS_NS};
use crate::convert::{self, Shape};
use crate::edit::{
    check_same_resource, edit, element, mark_target, protocol, set_insert, set_operation,
    version_headers, Datastore,
};
use crate::errors::{Errors, Format};
use crate::query::{Content, Query};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use besip_core::datastore::WithDefaults;
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::schema::Schema;
use besip_core::xml::Element;
use yang2::schema::SchemaNodeKind;

pub async fn serve<B: Backend>(
    ctx: &Ctx<'_, B>,
    ds: Datastore,
    raw_path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let format = ctx.format;
    let result = async {
        let schema =
            Schema::get().map_err(|e| vec![protocol(ErrorTag::OperationFailed, e.to_string())])?;
        let path = ApiPath::parse(schema, raw_path).map_err(|e| vec![e])?;
        let q = Query::parse(query).map_err(|e| vec![e])?;
        match ctx.method {
            Method::GET | Method::HEAD => read(ctx, ds, &path, &q).await,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                write(ctx, ds, &path, &q, body).await
            }
            Method::OPTIONS => Ok(options(ds)),
            _ => Err(vec![protocol(
                ErrorTag::OperationNotSupported,
                format!("method {} is not offered on data", ctx.method),
            )]),
        }
    }
    .await;
    match result {
        Ok(r) => r,
        Err(errors) => {
            let mut doc = Errors::new(format, errors);
            if doc
                .errors
                .first()
                .is_some_and(|e| e.tag == ErrorTag::DataMissing)
                && ctx.method == Method::DELETE
            {
                doc = doc.with_status(StatusCode::NOT_FOUND);
            }
            doc.into_response()
        }
    }
}

fn allowed_methods(ds: Datastore) -> &'static str {
    match ds {
        Datastore::Operational => "GET, HEAD, OPTIONS",
        _ => "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    }
}

fn options(ds: Datastore) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, allowed_methods(ds)),
            (
                header::HeaderName::from_static("accept-patch"),
                "application/yang-data+json, application/yang-data+xml, application/yang-patch+json, application/yang-patch+xml",
            ),
        ],
    )
        .into_response()
}

async fn read<B: Backend>(
    ctx: &Ctx<'_, B>,
    ds: Datastore,
    path: &ApiPath,
    q: &Query,
) -> Result<Response, Vec<ConfigError>> {
    q.only(&["content", "depth", "with-defaults", "fields"], "GET")
        .map_err(|e| vec![e])?;
    let version = ctx.backend.version();
    let wd = q.with_defaults.unwrap_or(WithDefaults::Explicit);
    let source = match (ds, q.content) {
        (Datastore::Unified, Content::Config) | (Datastore::Running, _) => Some("running"),
        (Datastore::Candidate, _) => Some("candidate"),
        _ => None,
    };
    let mut op = match source {
        Some(s) => element(
            BASE_NS,
            "get-config",
            vec![element(BASE_NS, "source", vec![Element::new(BASE_NS, s)])],
        ),
        None => Element::new(BASE_NS, "get"),
    };
    let xpath = if path.is_root() {
        None
    } else {
        Some(path.xpath().map_err(|e| vec![e])?)
    };
    let select = match (&xpath, q.fields.is_empty()) {
        (x, true) => x.clone(),
        (x, false) => Some(fields_select(path, x.as_deref().unwrap_or(""), &q.fields)?),
    };
    if let Some(x) = &select {
        let mut filter = Element::new(BASE_NS, "filter");
        filter
            .attributes
            .push((String::new(), "type".into(), "xpath".into()));
        filter
            .attributes
            .push((String::new(), "select".into(), x.clone()));
        filter.namespace_declarations = path.namespaces();
        for (m, ns) in field_namespaces(&q.fields) {
            if !filter.namespace_declarations.iter().any(|(p, _)| *p == m) {
                filter.namespace_declarations.push((m, ns));
            }
        }
        op.children.push(filter);
    }
    if wd != WithDefaults::Explicit {
        let mut w = Element::new(WITH_DEFAULTS_NS, "with-defaults");
        w.text = match wd {
            WithDefaults::ReportAll => "report-all",
            WithDefaults::ReportAllTagged => "report-all-tagged",
            WithDefaults::Trim => "trim",
            WithDefaults::Explicit => "explicit",
        }
        .into();
        op.children.push(w);
    }
    let xml = match ctx.backend.operation(ctx.who, op).await? {
        Reply::Data(d) | Reply::Body(d) => d,
        Reply::Ok => String::new(),
    };
    let shape = Shape {
        depth: q.depth,
        nonconfig_only: q.content == Content::Nonconfig,
    };
    let qualified = path.target().map(|t| format!("{}:{}", t.module, t.name));
    let target = xpath.as_deref().zip(qualified.as_deref());
    let text = match convert::data_reply(&xml, target, ctx.format, shape) {
        Ok(t) => t,
        // RFC 8040 §4.3: a resource that does not exist is 404.
        Err(e) if e.tag == ErrorTag::InvalidValue => {
            return Ok(Errors::one(ctx.format, e)
                .with_status(StatusCode::NOT_FOUND)
                .into_response())
        }
        Err(e) => return Err(vec![e]),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctx.format.media_type()),
    );
    // A configuration resource has an entity-tag of its own (RFC 8040
    // §3.5.1); the root and state-only resources the datastore's.
    let resource = match (path.is_root(), source.unwrap_or("running")) {
        (true, _) => None,
        (false, src) => config_of(ctx, path, src).await?.map(|c| resource_etag(&c)),
    };
    headers.insert(header::ETAG, resource.unwrap_or_else(|| etag(&version)));
    headers.insert(header::LAST_MODIFIED, last_modified(&version));
    if ctx.method == Method::HEAD {
        return Ok((StatusCode::OK, headers).into_response());
    }
    Ok((StatusCode::OK, headers, text).into_response())
}

/// The entity-tag of a configuration resource: a digest of its
/// configuration as the datastore prints it, so it changes when the
/// resource does and only then.
fn resource_etag(config: &str) -> header::HeaderValue {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(config.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    header::HeaderValue::from_str(&format!("\"r-{hex}\""))
        .unwrap_or_else(|_| header::HeaderValue::from_static("\"r-0\""))
}

/// fields: the union of each field path under the target (XPath with
/// module names as prefixes; a step without one is in its parent's module).
fn fields_select(
    path: &ApiPath,
    target: &str,
    fields: &[String],
) -> Result<String, Vec<ConfigError>> {
    let mut parts = Vec::new();
    for f in fields {
        let mut module = path.target().map(|t| t.module.clone());
        let mut out = target.to_owned();
        for step in f.split('/') {
            let (m, name) = match step.split_once(':') {
                Some((m, n)) => (m.to_owned(), n),
                None => match &module {
                    Some(m) => (m.clone(), step),
                    None => {
                        return Err(vec![protocol(
                            ErrorTag::InvalidValue,
                            format!(
                                "fields '{f}': a top-level field names its module (module:node)"
                            ),
                        )])
                    }
                },
            };
            out.push_str(&format!("/{m}:{name}"));
            module = Some(m);
        }
        parts.push(out);
    }
    Ok(parts.join(" | "))
}

/// Prefix → namespace for the modules named in fields.
fn field_namespaces(fields: &[String]) -> Vec<(String, String)> {
    let Ok(schema) = Schema::get() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for f in fields {
        for step in f.split('/') {
            if let Some((m, _)) = step.split_once(':') {
                if let Some(module) = schema.module_by_name(m) {
                    if !out.iter().any(|(p, _)| p == m) {
                        out.push((m.to_owned(), module.namespace().to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// The body as XML elements, parsed per Content-Type.
fn body_elements(
    headers: &HeaderMap,
    body: &[u8],
    max_elements: usize,
) -> Result<Vec<Element>, ConfigError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match Format::from_media(media) {
        Some(Format::Json) => convert::json_to_elements(body, max_elements),
        Some(Format::Xml) => {
            let text = std::str::from_utf8(body).map_err(|_| {
                protocol(ErrorTag::MalformedMessage, "the body is not UTF-8")
            })?;
            besip_core::xml::parse_limited(text, max_elements).map_err(|e| {
                if e.is_limit() {
                    ConfigError::new(ErrorTag::TooBig, e.to_string())
                } else {
                    protocol(ErrorTag::MalformedMessage, format!("the body is not XML: {e}"))
                }
            })
        }
        None => Err(protocol(
            ErrorTag::InvalidValue,
            format!("Content-Type '{media}' is not application/yang-data+json or application/yang-data+xml"),
        )
        .with_info("bad-element", "Content-Type")),
    }
}

/// The one resource a POST/PUT/PATCH body holds.
fn single(mut elements: Vec<Element>) -> Result<Element, ConfigError> {
    if elements.len() != 1 {
        return Err(protocol(
            ErrorTag::MalformedMessage,
            format!(
                "the body must hold exactly one resource, not {}",
                elements.len()
            ),
        ));
    }
    Ok(elements.remove(0))
}

/// The URL of a resource created by POST under `parent`.
fn created_location(ctx_base: &str, parent_raw: &str, parent: &ApiPath, e: &Element) -> String {
    let schema = Schema::get().ok();
    let module = schema
        .and_then(|s| s.module_by_namespace(&e.namespace))
        .map(|m| m.name().to_owned())
        .unwrap_or_default();
    let same_module = parent.target().is_some_and(|t| t.module == module);
    let name = if same_module {
        e.name.clone()
    } else {
        format!("{module}:{}", e.name)
    };
    let node = match parent.target() {
        Some(t) => besip_core::schema::data_child(&t.schema, &module, &e.name),
        None => schema
            .and_then(|s| s.module_by_name(&module))
            .and_then(|m| m.data().find(|n| n.name() == e.name)),
    };
    let keys: Vec<String> = node
        .map(|n| {
            n.list_keys()
                .map(|k| {
                    let v = e.child(k.name()).map(|c| c.trimmed_text()).unwrap_or("");
                    percent_encode(v)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = format!("{ctx_base}{}/{name}", parent_raw.trim_end_matches('/'));
    if !keys.is_empty() {
        out.push('=');
        out.push_str(&keys.join(","));
    }
    out
}

fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn exists<B: Backend>(
    ctx: &Ctx<'_, B>,
    path: &ApiPath,
    source: &str,
) -> Result<bool, Vec<ConfigError>> {
    Ok(config_of(ctx, path, source).await?.is_some())
}

/// The configuration of the resource at `path` in `source` (XML as the
/// datastore prints it), None when it has none.
async fn config_of<B: Backend>(
    ctx: &Ctx<'_, B>,
    path: &ApiPath,
    source: &str,
) -> Result<Option<String>, Vec<ConfigError>> {
    let Ok(xpath) = path.xpath() else {
        return Ok(None);
    };
    let mut filter = Element::new(BASE_NS, "filter");
    filter
        .attributes
        .push((String::new(), "type".into(), "xpath".into()));
    filter
        .attributes
        .push((String::new(), "select".into(), xpath));
    filter.namespace_declarations = path.namespaces();
    let op = element(
        BASE_NS,
        "get-config",
        vec![
            element(BASE_NS, "source", vec![Element::new(BASE_NS, source)]),
            filter,
        ],
    );
    Ok(match ctx.backend.operation(ctx.who, op).await? {
        Reply::Data(d) if !d.trim().is_empty() => Some(d),
        _ => None,
    })
}

/// RFC 8040 §3.4.1.3: a stale If-Match refuses the edit (412). The tag may
/// be the datastore's or the target resource's own (then edits of other
/// resources meanwhile do not make it stale).
async fn stale_if_match<B: Backend>(
    ctx: &Ctx<'_, B>,
    ds: Datastore,
    path: &ApiPath,
) -> Result<Option<Response>, Vec<ConfigError>> {
    let version = ctx.backend.version();
    if let Some(wanted) = ctx
        .headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let current = etag(&version);
        let current = current.to_str().unwrap_or("");
        let source = ds.config_source();
        let own = match path.is_root() {
            true => None,
            false => config_of(ctx, path, source)
                .await?
                .map(|c| resource_etag(&c)),
        };
        let own = own.as_ref().and_then(|e| e.to_str().ok()).unwrap_or("");
        let matches = wanted
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == current || (!own.is_empty() && t == own));
        if !matches {
            let e = protocol(
                ErrorTag::OperationFailed,
                "If-Match: the datastore changed since that ETag; read it again",
            )
            .at(path.xpath().unwrap_or_default());
            return Ok(Some(
                Errors::one(ctx.format, e)
                    .with_status(StatusCode::PRECONDITION_FAILED)
                    .into_response(),
            ));
        }
    }
    Ok(None)
}

async fn write<B: Backend>(
    ctx: &Ctx<'_, B>,
    ds: Datastore,
    path: &ApiPath,
    q: &Query,
    body: &[u8],
) -> Result<Response, Vec<ConfigError>> {
    if ds == Datastore::Operational {
        return Err(vec![protocol(
            ErrorTag::OperationNotSupported,
            "the operational datastore is read-only",
        )]);
    }
    let method = ctx.method.as_str();
    let allowed: &[&str] = match ctx.method {
        Method::POST | Method::PUT => &["insert", "point"],
        _ => &[],
    };
    q.only(allowed, method).map_err(|e| vec![e])?;
    if let Some(refused) = stale_if_match(ctx, ds, path).await? {
        return Ok(refused);
    }
    if ctx.method == Method::PATCH && crate::yang_patch::is_patch(ctx.headers) {
        return crate::yang_patch::apply(ctx, ds, body).await;
    }
    let max_elements = ctx.max_elements;
    let source = ds.config_source();
    let (config, status, location) = match ctx.method {
        Method::DELETE => {
            if path.is_root() {
                return Err(vec![protocol(
                    ErrorTag::OperationNotSupported,
                    "the whole datastore cannot be deleted",
                )]);
            }
            let mut target = path.wrap(vec![]);
            mark_target(&mut target, path.segments.len(), "delete");
            (target, StatusCode::NO_CONTENT, None)
        }
        Method::POST => {
            if path
                .target()
                .is_some_and(|t| matches!(t.kind, SchemaNodeKind::Leaf | SchemaNodeKind::LeafList))
            {
                return Err(vec![protocol(
                    ErrorTag::InvalidValue,
                    "a leaf has no child resources to create",
                )]);
            }
            let mut e =
                single(body_elements(ctx.headers, body, max_elements).map_err(|e| vec![e])?)
                    .map_err(|e| vec![e])?;
            let location = created_location(ctx.data_base, ctx.raw_path, path, &e);
            set_operation(&mut e, "create");
            set_insert(&mut e, q).map_err(|e| vec![e])?;
            (path.wrap(vec![e]), StatusCode::CREATED, Some(location))
        }
        Method::PUT | Method::PATCH => {
            if path.is_root() {
                return Err(vec![protocol(
                    ErrorTag::OperationNotSupported,
                    "replacing or merging the whole datastore is not offered: name a top-level resource",
                )]);
            }
            let mut e =
                single(body_elements(ctx.headers, body, max_elements).map_err(|e| vec![e])?)
                    .map_err(|e| vec![e])?;
            check_same_resource(path, &e).map_err(|e| vec![e])?;
            // A list entry named by the URL carries its keys even if the body omits them.
            if let Some(t) = path.target() {
                for (k, v) in &t.keys {
                    if t.kind == SchemaNodeKind::List && e.child(k).is_none() {
                        let mut key = Element::new(&t.namespace, k);
                        key.text = v.clone();
                        e.children.insert(0, key);
                    }
                }
            }
            let status = if ctx.method == Method::PUT {
                set_operation(&mut e, "replace");
                set_insert(&mut e, q).map_err(|e| vec![e])?;
                if exists(ctx, path, source).await? {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::CREATED
                }
            } else {
                set_operation(&mut e, "merge");
                // RFC 8040 §4.6.1: PATCH does not create the target resource.
                if !exists(ctx, path, source).await? {
                    let e = protocol(
                        ErrorTag::InvalidValue,
                        "the resource to patch does not exist (create it with POST or PUT)",
                    )
                    .at(path.xpath().unwrap_or_default());
                    return Ok(Errors::one(ctx.format, e)
                        .with_status(StatusCode::NOT_FOUND)
                        .into_response());
                }
                StatusCode::NO_CONTENT
            };
            (path.parent().wrap(vec![e]), status, None)
        }
        _ => {
            return Err(vec![protocol(
                ErrorTag::OperationNotSupported,
                format!("method {method} does not edit data"),
            )])
        }
    };
    edit(ctx, ds, config).await?;
    let mut headers = version_headers(ctx);
    if let Some(l) = location.and_then(|l| l.parse().ok()) {
        headers.insert(header::LOCATION, l);
    }
    Ok((status, headers).into_response())
}
