//! The staged candidate: its difference to running as set lines (the CLI's
//! `compare`), commit, confirmed commit with a countdown (confirm or
//! revert), discard; the commit history and rollback into the candidate.

use crate::form::Form;
use crate::html::{button, csrf_field, esc, page, redirect};
use crate::session::User;
use crate::{nc, Pending, Web};
use axum::http::StatusCode;
use axum::response::Response;
use besip_core::schema::Schema;
use besip_core::xml::Element;
use besip_restconf::Backend;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use yang2::schema::SchemaNode;

/// Longest trial of a confirmed commit offered (minutes).
const MAX_CONFIRM_MINUTES: u64 = 60;

/// `+ set …` / `- set …` lines from running to the candidate.
pub async fn diff<B: Backend>(web: &Web<B>, user: &User) -> Result<Vec<String>, String> {
    let b = web.backend.as_ref();
    let running = nc::get_config(b, &user.who, "running", None)
        .await
        .map_err(|e| nc::describe(&e))?;
    let candidate = nc::get_config(b, &user.who, "candidate", None)
        .await
        .map_err(|e| nc::describe(&e))?;
    let (mut running, mut candidate) = (running, candidate);
    for e in running.iter_mut().chain(candidate.iter_mut()) {
        mask_top(web, e);
    }
    let old = besip_shell::render::data_lines(&running);
    let new = besip_shell::render::data_lines(&candidate);
    Ok(besip_shell::render::diff(&old, &new))
}

/// Secrets (passwords, keys: what the forms never show) replaced by a
/// keyed fingerprint, so the diff says that one changed, not what to.
fn mask_top<B>(web: &Web<B>, e: &mut Element) {
    let Ok(schema) = Schema::get() else { return };
    let Some(module) = schema.module_by_namespace(&e.namespace) else {
        return;
    };
    if let Some(node) = schema.top_node(&module, &e.name) {
        mask(web, e, &node);
    }
}

fn mask<B>(web: &Web<B>, e: &mut Element, node: &SchemaNode<'static>) {
    if crate::schema::is_leafish(node) {
        if crate::schema::Field::of(node).secret && !e.text.trim().is_empty() {
            e.text = format!("(secret {})", web.sessions.fingerprint(e.text.trim()));
        }
        return;
    }
    for c in e.children.iter_mut() {
        let module = Schema::get()
            .ok()
            .and_then(|s| s.module_by_namespace(&c.namespace))
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        if let Some(child) = besip_core::schema::data_child(node, &module, &c.name) {
            mask(web, c, &child);
        }
    }
}

fn message(query: &HashMap<String, String>) -> Option<&'static str> {
    query.get("done").and_then(|d| crate::done_text(d))
}

pub async fn show<B: Backend>(
    web: &Web<B>,
    user: &User,
    query: &HashMap<String, String>,
) -> Response {
    render(
        web,
        user,
        message(query).map(str::to_owned),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

async fn render<B: Backend>(
    web: &Web<B>,
    user: &User,
    notice: Option<String>,
    errors: Vec<String>,
    status: StatusCode,
) -> Response {
    let mut body = String::new();
    for e in &errors {
        body.push_str(&format!("<p class=\"refused errors\">{}</p>", esc(e)));
    }
    let may_write = user.who.group.may_write();
    if let Some(p) = web.pending() {
        let left = p
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs();
        let at: chrono::DateTime<chrono::Utc> = p.reverts_at.into();
        body.push_str(&format!(
            "<section id=\"pending\" class=\"refused\"><p>A confirmed commit by {u} is on trial: the box reverts it in \
<span id=\"countdown\" class=\"countdown\" data-seconds=\"{left}\">{left}</span> s (at {at} UTC) unless it is confirmed.</p>",
            u = esc(&p.user),
            at = at.format("%H:%M:%S"),
        ));
        if may_write {
            body.push_str(&button(
                "/admin/commit",
                &user.csrf,
                &[("action", "confirm")],
                "Confirm",
                "",
            ));
            body.push(' ');
            body.push_str(&button(
                "/admin/commit",
                &user.csrf,
                &[("action", "cancel")],
                "Revert now",
                "danger",
            ));
        }
        body.push_str("</section>");
    } else if let Some(deadline) = web.backend.confirm_deadline().await {
        // Started over NETCONF (or before besip-netconfd restarted): its
        // persist-id is not ours, so it is confirmed where it was made.
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        body.push_str(&format!(
            "<section id=\"pending\" class=\"refused\"><p>A confirmed commit made outside this page is on trial: the box reverts it in \
<span id=\"countdown\" class=\"countdown\" data-seconds=\"{left}\">{left}</span> s unless it is confirmed where it was made (NETCONF <code>commit</code>).</p></section>"
        ));
    }
    match diff(web, user).await {
        Err(e) => body.push_str(&format!("<p class=\"refused\">{}</p>", esc(&e))),
        Ok(lines) if lines.is_empty() => body.push_str(
            "<p id=\"no-changes\">No changes: the candidate is the running configuration.</p>",
        ),
        Ok(lines) => {
            body.push_str(
                "<h2>Difference to the running configuration</h2><pre class=\"diff\" id=\"diff\">",
            );
            for l in &lines {
                let class = if l.starts_with('+') { "add" } else { "del" };
                body.push_str(&format!("<span class=\"{class}\">{}</span>\n", esc(l)));
            }
            body.push_str("</pre>");
            if may_write {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/admin/commit\" id=\"commit-form\">{c}\
<p><label for=\"comment\">Comment</label> <input type=\"text\" id=\"comment\" name=\"comment\" maxlength=\"200\"></p>\
<p><button name=\"action\" value=\"commit\" id=\"commit\">Commit</button></p>\
<p><button name=\"action\" value=\"confirmed\" id=\"commit-confirmed\">Commit on trial</button> reverting by itself after \
<input type=\"text\" name=\"minutes\" value=\"5\" size=\"3\" inputmode=\"numeric\" id=\"minutes\"> minutes (1–{MAX_CONFIRM_MINUTES}) unless confirmed</p></form>",
                    c = csrf_field(&user.csrf)
                ));
                body.push_str(&button(
                    "/admin/commit",
                    &user.csrf,
                    &[("action", "discard")],
                    "Discard the changes",
                    "danger",
                ));
            }
        }
    }
    page(
        status,
        &user.who,
        &user.csrf,
        "Changes",
        notice.as_deref(),
        &body,
    )
}

fn commit_xml(comment: &str, trial: Option<(u64, &str)>) -> String {
    let trial = trial
        .map(|(secs, persist)| {
            format!(
                "<confirmed/><confirm-timeout>{secs}</confirm-timeout><persist>{}</persist>",
                esc(persist)
            )
        })
        .unwrap_or_default();
    let comment = if comment.is_empty() {
        String::new()
    } else {
        format!(
            "<comment xmlns=\"{}\">{}</comment>",
            nc::SYSTEM_NS,
            esc(comment)
        )
    };
    format!(
        "<commit xmlns=\"{}\">{trial}{comment}</commit>",
        nc::BASE_NS
    )
}

/// POST /admin/commit: commit, confirmed, confirm, cancel or discard.
pub async fn act<B: Backend>(web: &Web<B>, user: &User, form: &Form) -> Response {
    let b = web.backend.as_ref();
    let who = &user.who;
    let comment: String = form
        .get("comment")
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect();
    let comment = if comment.is_empty() {
        format!("web: {}", who.user)
    } else {
        comment
    };
    let (result, done) = match form.get("action").unwrap_or("") {
        "commit" => (
            nc::op(b, who, &commit_xml(&comment, None)).await,
            "committed",
        ),
        "confirmed" => {
            let minutes = form
                .get("minutes")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .filter(|m| (1..=MAX_CONFIRM_MINUTES).contains(m));
            let Some(minutes) = minutes else {
                return render(
                    web,
                    user,
                    None,
                    vec![format!(
                        "The trial must last 1 to {MAX_CONFIRM_MINUTES} minutes. Nothing was committed."
                    )],
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            };
            let persist = crate::session::random_token();
            let secs = minutes * 60;
            let r = nc::op(b, who, &commit_xml(&comment, Some((secs, &persist)))).await;
            if r.is_ok() {
                web.set_pending(Some(Pending {
                    persist,
                    deadline: Instant::now() + Duration::from_secs(secs),
                    reverts_at: SystemTime::now() + Duration::from_secs(secs),
                    user: who.user.clone(),
                }));
            }
            (r, "confirmed-commit")
        }
        action @ ("confirm" | "cancel") => {
            let Some(p) = web.pending() else {
                return render(
                    web,
                    user,
                    None,
                    vec!["No confirmed commit made here is waiting.".into()],
                    StatusCode::CONFLICT,
                )
                .await;
            };
            let xml = if action == "confirm" {
                format!(
                    "<commit xmlns=\"{}\"><persist-id>{}</persist-id></commit>",
                    nc::BASE_NS,
                    esc(&p.persist)
                )
            } else {
                format!(
                    "<cancel-commit xmlns=\"{}\"><persist-id>{}</persist-id></cancel-commit>",
                    nc::BASE_NS,
                    esc(&p.persist)
                )
            };
            let r = nc::op(b, who, &xml).await;
            if r.is_ok() {
                web.set_pending(None);
            }
            (
                r,
                if action == "confirm" {
                    "confirmed"
                } else {
                    "cancelled"
                },
            )
        }
        "discard" => (
            nc::op(
                b,
                who,
                &format!("<discard-changes xmlns=\"{}\"/>", nc::BASE_NS),
            )
            .await,
            "discarded",
        ),
        _ => return crate::not_found(user),
    };
    match result {
        Ok(_) => {
            tracing::info!(user = %who.user, action = done, "web administration");
            redirect(&format!("/admin/changes?done={done}"))
        }
        Err(errors) => {
            let status = if nc::denied(&errors) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            render(
                web,
                user,
                None,
                vec![format!("Refused: {}", nc::describe(&errors))],
                status,
            )
            .await
        }
    }
}

pub async fn history<B: Backend>(
    web: &Web<B>,
    user: &User,
    query: &HashMap<String, String>,
) -> Response {
    let filter = format!("<commit-history xmlns=\"{}\"/>", nc::SYSTEM_NS);
    let data = match nc::get(web.backend.as_ref(), &user.who, &filter).await {
        Ok(d) => d,
        Err(e) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &user.who,
                &user.csrf,
                "History",
                None,
                &format!("<p class=\"refused\">{}</p>", esc(&nc::describe(&e))),
            )
        }
    };
    let commits: Vec<&besip_core::xml::Element> = data
        .iter()
        .filter(|e| e.name == "commit-history")
        .flat_map(|h| h.children.iter().filter(|c| c.name == "commit"))
        .collect();
    let text = |e: &besip_core::xml::Element, n: &str| {
        e.child(n)
            .map(|c| c.trimmed_text().to_owned())
            .unwrap_or_default()
    };
    let mut body = String::from(
        "<p>The last commits, newest first. Loading one puts that configuration into the candidate; \
the Changes page then shows the difference and commits it.</p><table id=\"history\"><tr><th>#</th><th>back</th><th>time</th><th>user</th><th>comment</th><th></th></tr>",
    );
    for c in commits {
        let back = text(c, "back");
        let action = if back == "0" {
            "<td>running</td>".to_owned()
        } else if user.who.group.may_write() {
            format!(
                "<td><form method=\"post\" action=\"/admin/rollback\" class=\"inline\">{}<input type=\"hidden\" name=\"back\" value=\"{b}\">\
<button id=\"rollback-{b}\">Load into the candidate</button></form></td>",
                csrf_field(&user.csrf),
                b = esc(&back)
            )
        } else {
            "<td></td>".to_owned()
        };
        body.push_str(&format!(
            "<tr id=\"commit-{id}\"><td>{id}</td><td>{back}</td><td>{t}</td><td>{u}</td><td>{m}</td>{action}</tr>",
            id = esc(&text(c, "id")),
            back = esc(&back),
            t = esc(&text(c, "time")),
            u = esc(&text(c, "user")),
            m = esc(&text(c, "comment")),
        ));
    }
    body.push_str("</table>");
    page(
        StatusCode::OK,
        &user.who,
        &user.csrf,
        "History",
        message(query),
        &body,
    )
}

/// POST /admin/rollback: besip-system `rollback` into the candidate, then
/// the Changes page to review it.
pub async fn rollback<B: Backend>(web: &Web<B>, user: &User, form: &Form) -> Response {
    let Some(back) = form
        .get("back")
        .and_then(|b| b.trim().parse::<u8>().ok())
        .filter(|b| *b <= 49)
    else {
        return render(
            web,
            user,
            None,
            vec!["Choose a commit of the history (0..49).".into()],
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let xml = format!(
        "<rollback xmlns=\"{}\"><back>{back}</back></rollback>",
        nc::SYSTEM_NS
    );
    match nc::op(web.backend.as_ref(), &user.who, &xml).await {
        Ok(_) => redirect("/admin/changes?done=rolled"),
        Err(e) => {
            render(
                web,
                user,
                None,
                vec![format!("Rollback refused: {}", nc::describe(&e))],
                if nc::denied(&e) {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
            )
            .await
        }
    }
}
