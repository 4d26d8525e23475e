//! Login and logout.

use crate::form;
use crate::html::{bare, esc, redirect};
use crate::session::{self, cookie, random_token, set_cookie, token_eq, User, LOGIN_COOKIE};
use crate::Web;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use besip_restconf::backend::Refusal;
use besip_restconf::Backend;
use std::collections::HashMap;
use std::net::IpAddr;

/// Login forms are small; anything bigger is not a login.
const LOGIN_LIMIT: usize = 8 * 1024;

pub fn form(query: &HashMap<String, String>, error: Option<&str>, status: StatusCode) -> Response {
    // Double-submit token: there is no session yet to bind one to.
    let token = random_token();
    let next = query
        .get("next")
        .and_then(|n| session::safe_next(&crate::html::seg(n)))
        .unwrap_or_else(|| "/admin/".into());
    let error = error
        .map(|e| format!("<p class=\"refused\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let mut r = bare(
        status,
        "BESIP administration",
        &format!(
            "{error}<form method=\"post\" action=\"/admin/login\" id=\"login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{t}\"><input type=\"hidden\" name=\"next\" value=\"{n}\">\
<p><label for=\"user\">User</label><input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" required autofocus></p>\
<p><label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required></p>\
<p><button id=\"login-button\">Log in</button></p></form>\
<p class=\"help\">The box's users (as for NETCONF and SSH). Scripts use RESTCONF at <code>/restconf</code>.</p>",
            t = esc(&token),
            n = esc(&next),
        ),
    );
    set_cookie(&mut r, LOGIN_COOKIE, &token, Some(600));
    r
}

pub async fn post<B: Backend>(
    web: &Web<B>,
    headers: &HeaderMap,
    body: Body,
    source: IpAddr,
) -> Response {
    let f = match form::read(headers, body, LOGIN_LIMIT).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let expected = cookie(headers, LOGIN_COOKIE).unwrap_or_default();
    if !f.get("csrf").is_some_and(|t| token_eq(t, &expected)) {
        return session::csrf_refused();
    }
    let next = f
        .get("next")
        .and_then(|n| session::safe_next(&crate::html::seg(n)))
        .unwrap_or_else(|| "/admin/".into());
    let query: HashMap<String, String> = [("next".to_owned(), next.clone())].into();
    let (user, password) = (f.get("user").unwrap_or(""), f.get("password").unwrap_or(""));
    if user.is_empty() || password.is_empty() {
        return form(
            &query,
            Some("Give a user name and a password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let Ok(_permit) = web.logins.try_acquire() else {
        let mut r = form(
            &query,
            Some("The box is checking other logins: try again in a moment."),
            StatusCode::SERVICE_UNAVAILABLE,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    match web
        .sessions
        .auth
        .password_login(web.backend.as_ref(), user, password, source)
        .await
    {
        Ok((who, token)) => {
            tracing::info!(user = %who.user, peer = %source, "web administration login");
            let mut r = redirect(&next);
            set_cookie(&mut r, session::COOKIE, &token, None);
            set_cookie(&mut r, LOGIN_COOKIE, "", Some(0));
            r
        }
        Err(Refusal::Wrong) => form(
            &query,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(Refusal::Throttled(wait)) => {
            let secs = wait.as_secs().max(1);
            let mut r = form(
                &query,
                Some(&format!(
                    "Too many failed logins from your address: wait {secs} s and try again."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

pub fn logout<B: Backend>(web: &Web<B>, user: &User) -> Response {
    web.sessions.auth.close_session(&user.token);
    let mut r = redirect("/admin/login");
    set_cookie(&mut r, session::COOKIE, "", Some(0));
    r
}
