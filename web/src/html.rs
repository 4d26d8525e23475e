//! HTML of the pages: every value is escaped here ([`esc`]) before it is
//! written; the layout names no node of our modules (the menu is read from
//! the schema).

use crate::schema;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use besip_restconf::Principal;

/// Escape text for element content and attribute values (quotes too).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encode one URL path segment (list keys hold '/', ':', ' ').
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode one percent-encoded path segment.
pub fn unseg(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub const CSS: &str = include_str!("../static/admin.css");
pub const JS: &str = include_str!("../static/admin.js");

/// Headers of every page: no caching of configuration, no framing, no
/// script or style from anywhere but the box.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub fn html(status: StatusCode, body: String) -> Response {
    secure(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// A page for a logged-in user: menu, who is logged in, logout.
pub fn page(
    status: StatusCode,
    who: &Principal,
    csrf: &str,
    title: &str,
    notice: Option<&str>,
    body: &str,
) -> Response {
    let mut nav = String::from("<nav><a href=\"/admin/\">Overview</a>");
    for top in schema::top_nodes() {
        let name = top.name();
        nav.push_str(&format!(
            "<details open><summary><a href=\"/admin/config/{s}\">{n}</a></summary>",
            s = seg(name),
            n = esc(name)
        ));
        for child in schema::sections(&top) {
            if crate::access::admin_only(&[name, child.name()]) && !is_admin(who) {
                continue;
            }
            nav.push_str(&format!(
                "<a class=\"sub\" href=\"/admin/config/{s}/{c}\">{n}</a>",
                s = seg(name),
                c = seg(child.name()),
                n = esc(child.name())
            ));
        }
        nav.push_str("</details>");
    }
    nav.push_str(
        "<a href=\"/admin/bans\">current bans</a><a href=\"/admin/media\">voicemail and recordings</a><a href=\"/admin/changes\">Changes</a>\
<a href=\"/admin/history\">History</a><a href=\"/admin/transfer\">Export / import</a></nav>",
    );
    let notice = notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(n)))
        .unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · BESIP</title>\
<meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/admin/static/admin.css\">\
<script src=\"/admin/static/admin.js\" defer></script></head><body>\
<header><strong>BESIP administration</strong><span class=\"who\">{u} ({g})</span>\
<form method=\"post\" action=\"/admin/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button>Log out</button></form></header>\
<div class=\"wrap\">{nav}<main><h1>{t}</h1>{notice}{body}</main></div></body></html>",
        t = esc(title),
        u = esc(&who.user),
        g = who.group.name(),
        c = esc(csrf),
    );
    html(status, body)
}

pub fn is_admin(who: &Principal) -> bool {
    who.group == besip_core::access::Group::Admin
}

/// A page without the menu (login, errors before a session).
pub fn bare(status: StatusCode, title: &str, body: &str) -> Response {
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · BESIP</title>\
<meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/admin/static/admin.css\"></head>\
<body><main class=\"narrow\"><h1>{t}</h1>{body}</main></body></html>",
            t = esc(title)
        ),
    )
}

/// 303 to `to` (POST-redirect-GET).
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r)
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A one-button POST form.
pub fn button(
    action: &str,
    csrf: &str,
    hidden: &[(&str, &str)],
    label: &str,
    class: &str,
) -> String {
    let mut out = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}",
        esc(action),
        csrf_field(csrf)
    );
    for (k, v) in hidden {
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        ));
    }
    out.push_str(&format!(
        "<button class=\"{}\">{}</button></form>",
        esc(class),
        esc(label)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>\"&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
    }

    #[test]
    fn path_segments_round_trip() {
        for k in ["100", "sip:a b/c", "Ü", "%"] {
            assert_eq!(unseg(&seg(k)).as_deref(), Some(k));
        }
        assert_eq!(unseg("%zz"), None);
    }
}
