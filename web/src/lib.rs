//! besip-web: the web administration of the box, generated from the YANG
//! models as the CLI is (a page per container, list and list entry; a
//! field per leaf with its type, enum members, range, default, units and
//! description), served by besip-netconfd on the RESTCONF HTTPS port.
//!
//! Why there: the administration writes the datastore, and daemons never
//! do; besip-netconfd owns the datastore, its locks, candidate, NACM,
//! validation and history, and already serves RESTCONF over HTTPS. The
//! pages run every read and write through the same [`Backend`] RESTCONF
//! uses (a NETCONF operation as the logged-in user), so the web is one
//! more front end with nothing of its own to get wrong: a refusal here is
//! the refusal NETCONF would give.
//!
//! How a change flows: a form saves into the shared candidate
//! (edit-config, rollback-on-error, then validate so must/mandatory errors
//! show at their field); "Changes" shows the difference to running as set
//! lines (the CLI's `compare`), and commits, commits confirmed (with a
//! countdown; confirm or revert), or discards; "History" loads an earlier
//! commit into the candidate (besip-system `rollback`) for the same
//! preview. Export and import are the CLI's file format.
//!
//! Works without JavaScript: plain forms, POST-redirect-GET; the one script
//! (the countdown) is served by the box. Login with the box's users through
//! RESTCONF's authenticator (throttled like SSH), a cookie scoped to
//! `/admin`, a CSRF token on every POST.

pub mod access;
pub mod form;
pub mod html;
pub mod nc;
pub mod pages;
pub mod schema;
pub mod session;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use besip_restconf::Backend;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// A confirmed commit made from the web, waiting for its confirmation.
#[derive(Clone)]
pub struct Pending {
    pub persist: String,
    pub deadline: Instant,
    pub reverts_at: SystemTime,
    pub user: String,
}

pub struct Web<B> {
    pub backend: Arc<B>,
    pub sessions: session::Sessions,
    pub pending: Mutex<Option<Pending>>,
    /// Password checks at once (each a slow hash); more get 503.
    pub logins: tokio::sync::Semaphore,
    /// Pages being made at once (each a few NETCONF operations on the
    /// datastore); more wait, their bodies unread.
    pub in_flight: tokio::sync::Semaphore,
}

const PAGES_AT_ONCE: usize = 16;

/// Password checks of web logins running at once.
const LOGINS_AT_ONCE: usize = 4;

impl<B> Web<B> {
    pub fn pending(&self) -> Option<Pending> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.as_ref().is_some_and(|p| p.deadline <= Instant::now()) {
            *p = None;
        }
        p.clone()
    }

    pub fn set_pending(&self, value: Option<Pending>) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// The routes of the administration (no fallback: merged beside RESTCONF).
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    let web = Arc::new(Web {
        backend,
        sessions: session::Sessions::default(),
        pending: Mutex::new(None),
        logins: tokio::sync::Semaphore::new(LOGINS_AT_ONCE),
        in_flight: tokio::sync::Semaphore::new(PAGES_AT_ONCE),
    });
    Router::new()
        .route("/", any(handle::<B>))
        .route("/admin", any(handle::<B>))
        .route("/admin/", any(handle::<B>))
        .route("/admin/*rest", any(handle::<B>))
        .with_state(web)
}

/// Texts of `?done=` after a POST-redirect-GET (fixed: nothing of the
/// request is echoed).
pub fn done_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "Saved to the candidate. Review and commit it on the Changes page.",
        "added" => "Added to the candidate. Review and commit it on the Changes page.",
        "deleted" => "Deleted in the candidate. Review and commit it on the Changes page.",
        "moved" => "Moved in the candidate. Review and commit it on the Changes page.",
        "unchanged" => "Nothing to save: the form had no changes.",
        "committed" => "Committed: the change is running.",
        "confirmed-commit" => "Committed on trial: confirm before the countdown ends, or the box reverts by itself.",
        "confirmed" => "Confirmed: the change stays.",
        "cancelled" => "Reverted: the configuration is back to what it was before the trial commit.",
        "discarded" => "The candidate's changes were discarded.",
        "rolled" => "The earlier configuration is loaded into the candidate: review the difference below and commit it.",
        "imported" => "The file is loaded into the candidate: review the difference below and commit it.",
        "unbanned" => "The ban is lifted.",
        _ => return None,
    })
}

pub fn not_found(user: &session::User) -> Response {
    html::page(
        StatusCode::NOT_FOUND,
        &user.who,
        &user.csrf,
        "Not found",
        None,
        "<p>No such page.</p>",
    )
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

fn static_file(kind: &'static str, text: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// The host name of the Host header, without its port; only plain names
/// and addresses (it is written into a link).
fn browser_host(headers: &axum::http::HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = if host.starts_with('[') {
        &host[..host.find(']')? + 1]
    } else {
        host.split(':').next()?
    };
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        .then(|| name.to_owned())
        .filter(|n| !n.is_empty())
}

async fn handle<B: Backend>(
    State(web): State<Arc<Web<B>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = query_map(parts.uri.query());
    let method = parts.method.clone();
    let get = method == Method::GET || method == Method::HEAD;
    if !get && method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match path.as_str() {
        "/" | "/admin" => return html::redirect("/admin/"),
        "/admin/static/admin.css" => return static_file("text/css", html::CSS),
        "/admin/static/admin.js" => return static_file("text/javascript", html::JS),
        "/admin/login" => {
            return if get {
                pages::login::form(&query, None, StatusCode::OK)
            } else {
                pages::login::post(&web, &parts.headers, body, peer.ip()).await
            }
        }
        _ => {}
    }
    let Some(user) = web
        .sessions
        .user(web.backend.as_ref(), &parts.headers, peer.ip())
        .await
    else {
        let here = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        return session::login_needed(get, &here);
    };
    let Ok(_permit) = web.in_flight.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if get {
        let host = browser_host(&parts.headers);
        return pages::get(&web, &user, &path, &query, host.as_deref()).await;
    }
    // A POST: bounded body, then the CSRF token, then the group.
    let limit = if path == "/admin/import" {
        web.backend.max_body()
    } else {
        form::FORM_LIMIT
    };
    let form = match form::read(&parts.headers, body, limit).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !form
        .get("csrf")
        .is_some_and(|t| session::token_eq(t, &user.csrf))
    {
        tracing::info!(user = %user.who.user, peer = %peer, path, "web POST refused: CSRF token missing or wrong");
        return session::csrf_refused();
    }
    if path == "/admin/logout" {
        return pages::login::logout(&web, &user);
    }
    if !user.who.group.may_write() {
        return html::page(
            StatusCode::FORBIDDEN,
            &user.who,
            &user.csrf,
            "Read only",
            None,
            &format!(
                "<p class=\"refused\" id=\"refused\">{}</p>",
                html::esc(access::READ_ONLY)
            ),
        );
    }
    pages::post(&web, &user, &path, &form).await
}
