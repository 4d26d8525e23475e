//! The HTTP front: one handler that authenticates, bounds the request and
//! dispatches on the raw (still percent-encoded) path, since RFC 8040 keys
//! in the path are split on ',' before they are decoded.

use crate::auth::{Authenticator, Denied};
use crate::backend::{Backend, Refusal, Reply};
use crate::context::{Ctx, BASE_NS};
use crate::convert;
use crate::data;
use crate::edit::Datastore;
use crate::errors::{Errors, Format, RESTCONF_NS};
use crate::stream::OpenStreams;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::schema::Schema;
use besip_core::xml::{escape, Element};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// RFC 8040 §3.3.3: the revision of ietf-yang-library the server implements.
pub const YANG_LIBRARY_VERSION: &str = "2019-01-04";
pub const ROOT: &str = "/restconf";
/// Requests handled at once; more wait (their bodies are not read yet), so
/// a flood costs a queue of connections, not bodies in memory.
const IN_FLIGHT: usize = 16;
/// Elements one request body may hold.
const MAX_BODY_ELEMENTS: usize = 200_000;

pub struct Shared<B> {
    pub backend: Arc<B>,
    pub auth: Authenticator,
    in_flight: Semaphore,
    pub streams: OpenStreams,
}

pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    let shared = Arc::new(Shared {
        backend,
        auth: Authenticator::default(),
        in_flight: Semaphore::new(IN_FLIGHT),
        streams: OpenStreams::default(),
    });
    Router::new().fallback(handle::<B>).with_state(shared)
}

/// The reply format a client asked for (RFC 8040 §5.2).
fn negotiate(headers: &HeaderMap) -> Result<Format, ()> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_media)
        .or_else(|| crate::yang_patch::patch_format(headers));
    let Some(accept) = accept else {
        return Ok(content.unwrap_or(Format::Json));
    };
    let mut any = false;
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        if let Some(f) = Format::from_media(media) {
            return Ok(f);
        }
        if media == "*/*" || media == "application/*" || media.is_empty() {
            any = true;
        }
    }
    if any {
        Ok(content.unwrap_or(Format::Json))
    } else {
        Err(())
    }
}

fn unauthorized(format: Format, wait: Option<u64>) -> Response {
    let e = ConfigError::protocol(
        ErrorTag::AccessDenied,
        "authentication required: HTTP Basic with a user of the box, or the session cookie",
    );
    let mut r = Errors::one(format, e)
        .with_status(StatusCode::UNAUTHORIZED)
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"besip\", charset=\"UTF-8\""),
    );
    if let Some(w) = wait.and_then(|w| HeaderValue::from_str(&w.to_string()).ok()) {
        r.headers_mut().insert(header::RETRY_AFTER, w);
    }
    r
}

fn host_meta() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xrd+xml")],
        format!(
            "<XRD xmlns=\"http://docs.oasis-open.org/ns/xri/xrd-1.0\">\n  <Link rel=\"restconf\" href=\"{ROOT}\"/>\n</XRD>\n"
        ),
    )
        .into_response()
}

async fn handle<B: Backend>(
    State(shared): State<Arc<Shared<B>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    if path == "/.well-known/host-meta" && request.method() == Method::GET {
        return host_meta();
    }
    let Ok(format) = negotiate(request.headers()) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "only application/yang-data+json and application/yang-data+xml are offered\n",
        )
            .into_response();
    };
    if path != ROOT && !path.starts_with("/restconf/") {
        let e = ConfigError::protocol(
            ErrorTag::InvalidValue,
            format!("no resource {path}; the RESTCONF root is {ROOT}"),
        );
        return Errors::one(format, e)
            .with_status(StatusCode::NOT_FOUND)
            .into_response();
    }
    // Bounded work at once; waiting here holds no body.
    let Ok(_permit) = shared.in_flight.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let backend = shared.backend.as_ref();
    let (who, cookie) = match shared
        .auth
        .authenticate(backend, request.headers(), peer.ip())
        .await
    {
        Ok(x) => x,
        Err(Denied::Refused(Refusal::Throttled(wait))) => {
            tracing::info!(peer = %peer, wait_s = wait.as_secs(), "RESTCONF login refused without checking the password (throttled)");
            return unauthorized(format, Some(wait.as_secs().max(1)));
        }
        Err(denied) => {
            if !matches!(denied, Denied::NoCredentials) {
                tracing::info!(peer = %peer, ?denied, "RESTCONF login refused");
            }
            return unauthorized(format, None);
        }
    };
    let limit = backend.max_body();
    let too_big = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit);
    let (parts, body) = request.into_parts();
    let body = if too_big {
        None
    } else {
        axum::body::to_bytes(body, limit).await.ok()
    };
    let mut response = match body {
        None => {
            let e = ConfigError {
                error_type: besip_core::error::ErrorType::Rpc,
                ..ConfigError::new(
                    ErrorTag::TooBig,
                    format!("the body is larger than {limit} bytes (besip-system netconf/max-message-size)"),
                )
            };
            Errors::one(format, e).into_response()
        }
        Some(body) => {
            let (data_base, rest) = split_resource(&path);
            let ctx = Ctx {
                backend,
                who: &who,
                method: parts.method.clone(),
                headers: &parts.headers,
                format,
                raw_path: rest,
                data_base,
                max_elements: MAX_BODY_ELEMENTS,
            };
            route(&shared, &ctx, &path, query.as_deref(), &body).await
        }
    };
    if let Some(c) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

/// `/restconf/data/x/y` → ("/restconf/data", "/x/y"); ds likewise.
fn split_resource(path: &str) -> (&str, &str) {
    if let Some(rest) = path.strip_prefix("/restconf/data") {
        return (&path[..path.len() - rest.len()], rest);
    }
    if let Some(after) = path.strip_prefix("/restconf/ds/") {
        let end = after.find('/').unwrap_or(after.len());
        let base_len = "/restconf/ds/".len() + end;
        return (&path[..base_len], &path[base_len..]);
    }
    (path, "")
}

async fn route<B: Backend>(
    shared: &Arc<Shared<B>>,
    ctx: &Ctx<'_, B>,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let get = ctx.method == Method::GET || ctx.method == Method::HEAD;
    if path == "/restconf/data" || path.starts_with("/restconf/data/") {
        if path.starts_with("/restconf/data/") && ctx.raw_path.trim_matches('/').is_empty() {
            return not_found(ctx.format, path);
        }
        return data::serve(ctx, Datastore::Unified, ctx.raw_path, query, body).await;
    }
    if let Some(after) = path.strip_prefix("/restconf/ds/") {
        let name = after.split('/').next().unwrap_or("");
        let name = crate::api_path::percent_decode(name).unwrap_or_default();
        return match Datastore::from_name(&name) {
            Some(ds) => data::serve(ctx, ds, ctx.raw_path, query, body).await,
            None => not_found(ctx.format, path),
        };
    }
    match path.trim_end_matches('/') {
        "/restconf" if get => root(ctx.format),
        "/restconf/yang-library-version" if get => yang_library_version(ctx.format),
        "/restconf/operations" if get => operations_list(ctx.format),
        p if p.starts_with("/restconf/operations/") => {
            let name = &p["/restconf/operations/".len()..];
            if ctx.method != Method::POST {
                return method_not_allowed(ctx.format, "POST");
            }
            operation(ctx, name, body).await
        }
        p if p.starts_with("/restconf/streams/") && get => {
            let name = &p["/restconf/streams/".len()..];
            crate::stream::serve(
                &shared.backend,
                &shared.streams,
                ctx.who,
                name,
                query,
                ctx.format,
            )
            .await
        }
        "/restconf" | "/restconf/yang-library-version" | "/restconf/operations" => {
            method_not_allowed(ctx.format, "GET, HEAD")
        }
        _ => not_found(ctx.format, path),
    }
}

fn not_found(format: Format, path: &str) -> Response {
    let e = ConfigError::protocol(ErrorTag::InvalidValue, format!("no resource {path}"));
    Errors::one(format, e)
        .with_status(StatusCode::NOT_FOUND)
        .into_response()
}

fn method_not_allowed(format: Format, allow: &'static str) -> Response {
    let e = ConfigError::protocol(
        ErrorTag::OperationNotSupported,
        format!("this resource takes {allow}"),
    );
    let mut r = Errors::one(format, e).into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn reply(format: Format, json: serde_json::Value, xml: String) -> Response {
    let body = match format {
        Format::Json => json.to_string(),
        Format::Xml => xml,
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.media_type())],
        body,
    )
        .into_response()
}

fn root(format: Format) -> Response {
    reply(
        format,
        serde_json::json!({"ietf-restconf:restconf": {"data": {}, "operations": {}, "yang-library-version": YANG_LIBRARY_VERSION}}),
        format!("<restconf xmlns=\"{RESTCONF_NS}\"><data/><operations/><yang-library-version>{YANG_LIBRARY_VERSION}</yang-library-version></restconf>"),
    )
}

fn yang_library_version(format: Format) -> Response {
    reply(
        format,
        serde_json::json!({"ietf-restconf:yang-library-version": YANG_LIBRARY_VERSION}),
        format!("<yang-library-version xmlns=\"{RESTCONF_NS}\">{YANG_LIBRARY_VERSION}</yang-library-version>"),
    )
}

/// NETCONF operations that need a session of their own are not offered
/// over RESTCONF (a lock would outlive the request that took it).
const SESSION_BOUND: &[&str] = &[
    "lock",
    "unlock",
    "close-session",
    "kill-session",
    "create-subscription",
    "edit-config",
    "copy-config",
    "delete-config",
];

/// RPCs of implemented modules, `module:name`.
fn rpc_names() -> Vec<(String, String)> {
    let Ok(schema) = Schema::get() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in schema.context().modules(true) {
        if !m.is_implemented() {
            continue;
        }
        for r in m.rpcs() {
            if m.name() == "ietf-netconf" && SESSION_BOUND.contains(&r.name()) {
                continue;
            }
            if m.name() == "notifications" {
                continue;
            }
            out.push((m.name().to_owned(), r.name().to_owned()));
        }
    }
    out
}

fn operations_list(format: Format) -> Response {
    let names = rpc_names();
    let mut members = serde_json::Map::new();
    let mut xml = format!("<operations xmlns=\"{RESTCONF_NS}\">");
    let schema = Schema::get().ok();
    for (m, r) in &names {
        members.insert(format!("{m}:{r}"), serde_json::json!([null]));
        let ns = schema
            .and_then(|s| s.module_by_name(m))
            .map(|x| x.namespace().to_owned())
            .unwrap_or_default();
        xml.push_str(&format!("<{r} xmlns=\"{}\"/>", escape(&ns)));
    }
    xml.push_str("</operations>");
    reply(
        format,
        serde_json::json!({"ietf-restconf:operations": members}),
        xml,
    )
}

/// `POST /restconf/operations/module:rpc`: the input as the operation's
/// children, the output as `module:output`.
async fn operation<B: Backend>(ctx: &Ctx<'_, B>, name: &str, body: &[u8]) -> Response {
    let format = ctx.format;
    let fail = |e: ConfigError| Errors::one(format, e).into_response();
    let name = match crate::api_path::percent_decode(name) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let Some((module, rpc)) = name.split_once(':') else {
        return fail(ConfigError::protocol(
            ErrorTag::InvalidValue,
            format!("'{name}': name an operation as module:rpc"),
        ));
    };
    if !rpc_names().iter().any(|(m, r)| m == module && r == rpc) {
        return not_found(format, &format!("/restconf/operations/{name}"));
    }
    let namespace = match Schema::get().ok().and_then(|s| s.module_by_name(module)) {
        Some(m) => m.namespace().to_owned(),
        None => return not_found(format, &name),
    };
    let mut op = Element::new(&namespace, rpc);
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        let media = ctx
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let parsed = match Format::from_media(media) {
            Some(Format::Json) => convert::json_to_elements(body, ctx.max_elements),
            Some(Format::Xml) => std::str::from_utf8(body)
                .map_err(|_| {
                    ConfigError::protocol(ErrorTag::MalformedMessage, "the body is not UTF-8")
                })
                .and_then(|t| {
                    besip_core::xml::parse_limited(t, ctx.max_elements).map_err(|e| {
                        ConfigError::protocol(
                            ErrorTag::MalformedMessage,
                            format!("the body is not XML: {e}"),
                        )
                    })
                }),
            None => Err(ConfigError::protocol(
                ErrorTag::InvalidValue,
                format!("Content-Type '{media}' is not application/yang-data+json or +xml"),
            )),
        };
        let input = match parsed {
            Ok(elements) => elements,
            Err(e) => return fail(e),
        };
        match input.as_slice() {
            [i] if i.name == "input" && i.namespace == namespace => {
                // Input leaves are in the RPC's namespace (as NETCONF sends them).
                op.children = i.children.clone();
            }
            _ => {
                return fail(ConfigError::protocol(
                    ErrorTag::MalformedMessage,
                    format!("the body of an operation is one '{module}:input'"),
                ))
            }
        }
    }
    match ctx.backend.operation(ctx.who, op).await {
        Err(errors) => Errors::new(format, errors).into_response(),
        Ok(Reply::Ok) => StatusCode::NO_CONTENT.into_response(),
        Ok(Reply::Body(xml)) | Ok(Reply::Data(xml)) => {
            let elements = besip_core::xml::parse(&xml).unwrap_or_default();
            let elements: Vec<Element> = elements
                .into_iter()
                .filter(|e| e.name != "ok" || e.namespace != BASE_NS)
                .collect();
            if elements.is_empty() {
                return StatusCode::NO_CONTENT.into_response();
            }
            let mut output = Element::new(&namespace, "output");
            output.children = elements;
            let json =
                serde_json::Value::Object(convert::elements_to_json(&[output.clone()], None));
            reply(format, json, output.to_xml())
        }
    }
}
