//! The web panel (axum): server-rendered pages on the report database,
//! charts as inline SVG, logins of the besip-system users.

// Handlers return a ready `Response` as their refusal; boxing it buys nothing.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod charts;
pub mod csv;
pub mod data;
pub mod pages;
pub mod protect;
pub mod server;
pub mod settings;
pub mod throttle;
pub mod tls;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::daemon::Monitor;
use auth::{Auth, SessionData};
pub use server::Web;
use settings::Group;

/// Forms are a few fields; anything bigger is refused (413).
const BODY_LIMIT: usize = 16 * 1024;

pub struct AppState {
    pub monitor: Arc<Monitor>,
    pub auth: Auth,
}

pub fn router(state: Arc<AppState>) -> Router {
    use pages::{calls, control, dashboard};
    Router::new()
        .route("/login", get(pages::login::page).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/", get(dashboard::page))
        .route("/calls", get(calls::list))
        .route("/calls.csv", get(csv::export))
        .route("/calls/:id", get(calls::detail))
        .route("/sites", get(pages::sites::page))
        .route("/capture", get(control::page))
        .route("/capture/start", post(control::start))
        .route("/capture/stop", post(control::stop))
        .route("/erase", get(control::confirm).post(control::erase))
        .route("/api/status", get(pages::status::api))
        .route("/api/calls", get(calls::api))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(headers))
        .with_state(state)
}

/// No framing, no caching of pages with reports, nothing from elsewhere.
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A logged-in request. Without a live session: pages redirect to /login,
/// the API and CSV answer 401.
pub struct Session {
    pub id: String,
    pub data: SessionData,
}

impl Session {
    /// 403 unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, token: Option<&String>) -> Result<(), Response> {
        match token {
            Some(t) if auth::token_eq(t, &self.data.csrf) => Ok(()),
            _ => Err(forbidden(
                "The form's security token is missing or wrong (CSRF check); reload the page and try again.",
            )),
        }
    }

    /// 403 for the read-only monitor group.
    pub fn check_control(&self) -> Result<(), Response> {
        if self.data.group.may_write() {
            Ok(())
        } else {
            Err(forbidden(
                "Your group (monitor) may only read; capture control and erasing need admin or operator.",
            ))
        }
    }

    pub fn group(&self) -> Group {
        self.data.group
    }
}

pub fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("403 Forbidden: {why}\n")).into_response()
}

pub fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("400 Bad Request: {why}\n")).into_response()
}

#[axum::async_trait]
impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let found = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| auth::cookie(h, auth::SESSION_COOKIE))
            .and_then(|id| state.auth.session(id).map(|d| (id.to_string(), d)));
        match found {
            Some((id, data)) => Ok(Session { id, data }),
            None => {
                let path = parts.uri.path();
                if path.starts_with("/api/") || path.ends_with(".csv") {
                    Err(
                        (StatusCode::UNAUTHORIZED, "401 Unauthorized: log in first\n")
                            .into_response(),
                    )
                } else {
                    Err(Redirect::to("/login").into_response())
                }
            }
        }
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (for a path segment or query value).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(url_encode("1-2@127.0.0.1 /x"), "1-2%40127.0.0.1%20%2Fx");
    }
}
