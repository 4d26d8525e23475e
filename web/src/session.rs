//! Logins of the web administration: the password is checked by the
//! server (throttled like SSH and RESTCONF logins) through RESTCONF's
//! [`Authenticator`], which keeps the sessions; the token lives in an
//! HttpOnly, Secure, SameSite=Strict cookie scoped to `/admin`. Every POST
//! carries a CSRF token derived from the session (HMAC with a per-process
//! key), the login form a double-submit token of its own.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use besip_restconf::auth::Authenticator;
use besip_restconf::{Backend, Principal};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::net::IpAddr;

pub const COOKIE: &str = "besip_admin";
pub const LOGIN_COOKIE: &str = "besip_admin_login";

pub struct Sessions {
    pub auth: Authenticator,
    key: [u8; 32],
}

/// A logged-in user of a request.
pub struct User {
    pub who: Principal,
    pub token: String,
    pub csrf: String,
}

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Equal without telling through timing where they differ.
pub fn token_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub fn set_cookie(r: &mut Response, name: &str, value: &str, max_age: Option<u64>) {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; Secure; HttpOnly; SameSite=Strict{age}"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

impl Default for Sessions {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Sessions {
            auth: Authenticator::default(),
            key,
        }
    }
}

impl Sessions {
    pub fn csrf_of(&self, token: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"besip-web csrf\0");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A short keyed fingerprint of a secret: the diff shows that a
    /// password changed without showing it.
    pub fn fingerprint(&self, secret: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"besip-web secret\0");
        mac.update(secret.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..4])
    }

    pub async fn user<B: Backend>(
        &self,
        backend: &B,
        headers: &HeaderMap,
        source: IpAddr,
    ) -> Option<User> {
        let token = cookie(headers, COOKIE)?;
        let who = self.auth.session(backend, &token, source).await?;
        Some(User {
            who,
            csrf: self.csrf_of(&token),
            token,
        })
    }
}

/// 403 for a POST without the right token; nothing was done.
pub fn csrf_refused() -> Response {
    crate::html::bare(
        StatusCode::FORBIDDEN,
        "Refused",
        "<p class=\"refused\">The form's security token is missing or wrong (an old page, or a form sent from another site). Nothing was changed. Reload the page and try again.</p>",
    )
}

/// No session: a browser is sent to the login page, anything else 401.
pub fn login_needed(get: bool, path: &str) -> Response {
    if get {
        let next = crate::html::seg(path);
        return crate::html::redirect(&format!("/admin/login?next={next}"));
    }
    let mut r = crate::html::bare(
        StatusCode::UNAUTHORIZED,
        "Log in first",
        "<p>Your session has ended or you are not logged in. <a href=\"/admin/login\">Log in</a>.</p>",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Cookie realm=\"besip\""),
    );
    r
}

/// `next` of the login form, if it is one of our pages.
pub fn safe_next(next: &str) -> Option<String> {
    let next = crate::html::unseg(next)?;
    (next.starts_with("/admin/") && !next.contains("//") && !next.contains('\\')).then_some(next)
}

pub fn too_many() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, "").into_response()
}
