//! GET/POST /login and POST /logout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;

use crate::web::auth::{self, LoginOutcome, LOGIN_COOKIE, SESSION_COOKIE};
use crate::web::throttle::Refusal;
use crate::web::{esc, forbidden, AppState, Session};

fn form(message: &str, user: &str) -> Response {
    let token = auth::random_token();
    let msg = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(message))
    };
    let body = format!(
        "{msg}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
<p><label>User <input id=\"user\" name=\"user\" value=\"{}\" autocomplete=\"username\" required></label></p>\
<p><label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
<p><button id=\"login\" type=\"submit\">Log in</button></p></form>",
        esc(user)
    );
    (
        [(
            header::SET_COOKIE,
            format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; Secure; SameSite=Strict"),
        )],
        Html(super::bare("Log in", &body)),
    )
        .into_response()
}

/// GET /login
pub async fn page() -> Response {
    form("", "")
}

/// POST /login: double-submit token (cookie = field), lockout, password.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let cookie_token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, LOGIN_COOKIE));
    let ok_token =
        matches!((cookie_token, f.get("csrf")), (Some(c), Some(t)) if auth::token_eq(c, t));
    if !ok_token {
        return forbidden(
            "The login form's security token is missing or wrong; open /login again.",
        );
    }
    let user = f.get("user").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    if user.len() > 256 || password.len() > 1024 {
        return super::super::bad_request("user name or password too long");
    }
    // Admission is decided here, before any blocking thread is taken: a
    // flood is refused at once instead of queueing for the hash workers.
    let outcome = match state.auth.admit(&user, peer.ip()) {
        Ok(permit) => {
            let st = state.clone();
            let u = user.clone();
            let checked = tokio::task::spawn_blocking(move || {
                st.auth.check(&u, &password, peer.ip(), permit)
            })
            .await;
            match checked {
                Ok(o) => o,
                Err(e) => return super::server_error(&e.to_string()),
            }
        }
        Err(refusal) => LoginOutcome::Refused(refusal),
    };
    match outcome {
        LoginOutcome::Ok(id) => {
            tracing::info!(user = %user, source = %peer.ip(), "web login");
            crate::web::protect::protect_login_source(&state, peer.ip(), &id);
            (
                [(
                    header::SET_COOKIE,
                    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict"),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        LoginOutcome::Wrong => {
            tracing::warn!(user = %user, source = %peer.ip(), "web login failed");
            let mut r = form("Wrong user name or password.", &user);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        LoginOutcome::Refused(Refusal::Busy) => {
            tracing::warn!(user = %user, source = %peer.ip(), "web login refused: too many password checks at once");
            let mut r = form(
                "Too many logins are being checked right now: try again in a moment.",
                &user,
            );
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
        LoginOutcome::Refused(Refusal::Locked(wait)) => {
            let secs = wait.as_secs_f64().ceil() as u64;
            tracing::warn!(user = %user, source = %peer.ip(), secs, "web login refused: locked out");
            let mut r = form(
                &format!("Too many failed logins: try again in {secs} s."),
                &user,
            );
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

/// POST /logout
pub async fn logout(
    s: Session,
    State(state): State<Arc<AppState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = s.check_csrf(f.get("csrf")) {
        return r;
    }
    state.auth.logout(&s.id);
    (
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}
