//! HTML pages: the common frame (navigation, status strip, logout form) and
//! one module per page.

pub mod calls;
pub mod control;
pub mod dashboard;
pub mod login;
pub mod sites;
pub mod status;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use rusqlite::Connection;

use super::{esc, AppState, Session};

const CSS: &str = "
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1f3a5f;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto}
header form{display:inline}header button{background:none;border:1px solid #fff;color:#fff;border-radius:4px;cursor:pointer}
.strip{background:#e3e9f0;padding:.4em 1em;display:flex;gap:2em;font-size:.9em}
.strip .down{color:#a33}
main{padding:1em 1.5em}
table{border-collapse:collapse;background:#fff;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;font-size:.92em}
th{background:#eef2f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.7em 1.2em;min-width:9em}
.card b{display:block;font-size:1.6em}
.band{display:inline-block;padding:.1em .5em;border-radius:3px;color:#fff;font-weight:600;text-shadow:0 0 2px #0006}
.chart{background:#fff;border:1px solid #d0d7de;display:inline-block}
.error{color:#a33;font-weight:600}.note{color:#555}
form.filter label{margin-right:.8em}
button.danger{background:#c62828;color:#fff;border:0;padding:.4em 1em;border-radius:4px}
";

pub fn band_badge(mos: Option<f64>) -> String {
    match mos {
        Some(m) => {
            let b = super::data::Band::of(m);
            format!(
                "<span class=\"band\" style=\"background:{}\" title=\"G.109 {}\">{m:.2}</span>",
                b.css(),
                b.name()
            )
        }
        None => "-".into(),
    }
}

pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// A full page in the frame; `status` is the rendered status strip.
pub fn frame(title: &str, s: &Session, status: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · BESIP</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>{CSS}</style></head><body>\
<header><span>BESIP</span><a href=\"/\">Dashboard</a><a href=\"/calls\">Calls</a><a href=\"/sites\">Sites</a><a href=\"/capture\">Capture</a>\
<span class=\"who\">{user} ({group})</span><form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button id=\"logout\" type=\"submit\">Log out</button></form></header>{status}<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        user = esc(&s.data.user),
        group = s.data.group.name(),
        csrf = esc(&s.data.csrf),
    );
    Html(html).into_response()
}

/// A page outside the frame (login).
pub fn bare(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · BESIP</title>\
<style>{CSS}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

pub fn server_error(e: &str) -> Response {
    tracing::error!(error = %e, "web panel");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("500 Internal Server Error: {e}\n"),
    )
        .into_response()
}

/// Runs a read-only query on a blocking thread.
pub async fn with_db<T, F>(state: &Arc<AppState>, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let path = state.monitor.layout().lib_dir().join("monitoring.db");
    tokio::task::spawn_blocking(move || {
        let c = super::data::open(&path)?;
        f(&c).map_err(|e| format!("report database: {e}"))
    })
    .await
    .map_err(|e| server_error(&e.to_string()))?
    .map_err(|e| server_error(&e))
}
