//! The pages, by path.

pub mod bans;
pub mod changes;
pub mod config;
pub mod edit;
pub mod field_html;
pub mod login;
pub mod media;
pub mod save;
pub mod state;
pub mod transfer;

use crate::form::Form;
use crate::html::{esc, page, seg, unseg};
use crate::session::User;
use crate::{schema, Web};
use axum::http::StatusCode;
use axum::response::Response;
use besip_restconf::Backend;
use std::collections::HashMap;

/// Decoded segments after `/admin/config/`.
fn config_segments(rest: &str) -> Option<Vec<String>> {
    rest.split('/')
        .filter(|s| !s.is_empty())
        .map(unseg)
        .collect()
}

/// `host`: the name the browser used (the MOS panel is linked on it).
pub async fn get<B: Backend>(
    web: &Web<B>,
    user: &User,
    path: &str,
    query: &HashMap<String, String>,
    host: Option<&str>,
) -> Response {
    if let Some(rest) = path.strip_prefix("/admin/config/") {
        let Some(segments) = config_segments(rest) else {
            return crate::not_found(user);
        };
        return match schema::resolve(&segments) {
            Ok(steps) => config::show(web, user, &steps, query, None).await,
            Err(_) => crate::not_found(user),
        };
    }
    if let Some(rest) = path.strip_prefix("/admin/state/") {
        let parts: Option<Vec<String>> = rest.split('/').map(unseg).collect();
        return match parts.as_deref() {
            Some([top, section]) => state::show(web, user, top, section).await,
            _ => crate::not_found(user),
        };
    }
    if let Some(rest) = path.strip_prefix("/admin/audio/") {
        return media::audio(web, user, rest, query).await;
    }
    match path {
        "/admin/" => overview(web, user, host).await,
        "/admin/media" => media::show(web, user).await,
        "/admin/changes" => changes::show(web, user, query).await,
        "/admin/history" => changes::history(web, user, query).await,
        "/admin/bans" => bans::show(web, user, query).await,
        "/admin/transfer" => transfer::show(user, query, None),
        "/admin/export" => transfer::export(web, user).await,
        _ => crate::not_found(user),
    }
}

pub async fn post<B: Backend>(web: &Web<B>, user: &User, path: &str, form: &Form) -> Response {
    if let Some(rest) = path.strip_prefix("/admin/config/") {
        let Some(segments) = config_segments(rest) else {
            return crate::not_found(user);
        };
        return match schema::resolve(&segments) {
            Ok(steps) => save::save(web, user, steps, form).await,
            Err(_) => crate::not_found(user),
        };
    }
    match path {
        "/admin/commit" => changes::act(web, user, form).await,
        "/admin/rollback" => changes::rollback(web, user, form).await,
        "/admin/unban" => bans::unban(web, user, form).await,
        "/admin/import" => transfer::import(web, user, form).await,
        _ => crate::not_found(user),
    }
}

/// The MOS panel of besip-monitord, where `/system/web` puts it.
async fn panel_link<B: Backend>(web: &Web<B>, user: &User, host: Option<&str>) -> Option<String> {
    let host = host?;
    let xml = format!(
        "<get-config xmlns=\"{}\"><source><running/></source><filter type=\"subtree\"><system xmlns=\"{}\"><web/></system></filter>\
<with-defaults xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults\">report-all</with-defaults></get-config>",
        crate::nc::BASE_NS,
        crate::nc::SYSTEM_NS
    );
    let reply = crate::nc::op(web.backend.as_ref(), &user.who, &xml)
        .await
        .ok()?;
    let besip_restconf::Reply::Data(data) = reply else {
        return None;
    };
    let elements = besip_core::xml::parse(&data).ok()?;
    let w = elements.iter().find(|e| e.name == "system")?.child("web")?;
    if w.child("enabled")
        .is_some_and(|e| e.trimmed_text() == "false")
    {
        return None;
    }
    let port = w.child("port")?.trimmed_text().parse::<u16>().ok()?;
    Some(format!(
        "<p>Call quality (MOS reports): <a href=\"https://{}:{port}/\" id=\"panel\">the panel of besip-monitord</a>.</p>",
        esc(host)
    ))
}

async fn overview<B: Backend>(web: &Web<B>, user: &User, host: Option<&str>) -> Response {
    let mut body = String::from(
        "<p>Every page is made from the box's YANG models: a form per container and list entry, a field per leaf. \
Saving stages a change in the candidate; the <a href=\"/admin/changes\">Changes</a> page shows it and commits it.</p><ul>",
    );
    for top in schema::top_nodes() {
        body.push_str(&format!(
            "<li><a href=\"/admin/config/{}\">{}</a> — {}</li>",
            seg(top.name()),
            esc(top.name()),
            esc(&besip_shell::path::summary(&top))
        ));
    }
    body.push_str("</ul>");
    if let Ok(lines) = changes::diff(web, user).await {
        if !lines.is_empty() {
            body.push_str(&format!(
                "<p class=\"notice\" id=\"staged\">The candidate holds {} staged change{}: <a href=\"/admin/changes\">review and commit them</a>.</p>",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" }
            ));
        }
    }
    if let Some(link) = panel_link(web, user, host).await {
        body.push_str(&link);
    }
    if let Some(p) = web.pending() {
        body.push_str(&format!(
            "<p class=\"refused\">A confirmed commit by {} is waiting: <a href=\"/admin/changes\">confirm it or let it revert</a>.</p>",
            esc(&p.user)
        ));
    }
    page(
        StatusCode::OK,
        &user.who,
        &user.csrf,
        "Overview",
        None,
        &body,
    )
}
