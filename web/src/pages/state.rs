//! Operational state of a top container's `config false` children (PBX
//! registrations, calls, counters, ...), read with `<get>` (the daemons
//! answer over IPC) and shown as the data comes: leaves as rows, repeated
//! entries as tables. Read only, whatever the group.

use crate::html::{esc, page, seg};
use crate::session::User;
use crate::{nc, schema, Web};
use axum::http::StatusCode;
use axum::response::Response;
use besip_core::xml::Element;
use besip_restconf::Backend;

/// Links to the state sections of a top container.
pub fn links(top: &yang2::schema::SchemaNode<'static>) -> String {
    let state = schema::state_children(top);
    if state.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>State</h2><ul class=\"sections\">");
    for s in state {
        out.push_str(&format!(
            "<li><a href=\"/admin/state/{}/{}\">{}</a> <span class=\"help\">{}</span></li>",
            seg(top.name()),
            seg(s.name()),
            esc(s.name()),
            esc(&besip_shell::path::summary(&s))
        ));
    }
    out.push_str("</ul>");
    out
}

pub async fn show<B: Backend>(web: &Web<B>, user: &User, top: &str, section: &str) -> Response {
    let Some(node) = schema::top_nodes().into_iter().find(|n| n.name() == top) else {
        return crate::not_found(user);
    };
    if !schema::state_children(&node)
        .iter()
        .any(|s| s.name() == section)
    {
        return crate::not_found(user);
    }
    let filter = format!(
        "<{top} xmlns=\"{}\"><{section}/></{top}>",
        esc(&schema::namespace(&node))
    );
    let title = format!("{top} › {section}");
    let body = match nc::get(web.backend.as_ref(), &user.who, &filter).await {
        Err(e) => format!("<p class=\"refused\">{}</p>", esc(&nc::describe(&e))),
        Ok(data) => {
            let found = data
                .iter()
                .filter(|e| e.name == top)
                .flat_map(|t| t.children.iter().filter(|c| c.name == section))
                .next();
            match found {
                Some(e) if !e.children.is_empty() => {
                    let mut out = String::from("<div id=\"state\">");
                    render(e, &mut out, 0);
                    out.push_str("</div>");
                    out
                }
                _ => "<p id=\"state\">Nothing to show (or the daemon that keeps it is not running).</p>"
                    .into(),
            }
        }
    };
    page(StatusCode::OK, &user.who, &user.csrf, &title, None, &body)
}

/// Leaves first (one table), then each group of same-named children.
fn render(e: &Element, out: &mut String, depth: usize) {
    if depth > 8 {
        return;
    }
    let leaves: Vec<&Element> = e
        .children
        .iter()
        .filter(|c| c.children.is_empty())
        .collect();
    if !leaves.is_empty() {
        out.push_str("<table>");
        for l in leaves {
            out.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(&l.name),
                esc(l.trimmed_text())
            ));
        }
        out.push_str("</table>");
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in e.children.iter().filter(|c| !c.children.is_empty()) {
        if seen.contains(&c.name.as_str()) {
            continue;
        }
        seen.push(&c.name);
        let group: Vec<&Element> = e.children.iter().filter(|x| x.name == c.name).collect();
        out.push_str(&format!("<h3>{}</h3>", esc(&c.name)));
        let flat = group
            .iter()
            .all(|g| g.children.iter().all(|x| x.children.is_empty()));
        if flat {
            // Entries of a list: one row each, a column per leaf name.
            let mut columns: Vec<&str> = Vec::new();
            for g in &group {
                for x in &g.children {
                    if !columns.contains(&x.name.as_str()) {
                        columns.push(&x.name);
                    }
                }
            }
            out.push_str("<table><tr>");
            for col in &columns {
                out.push_str(&format!("<th>{}</th>", esc(col)));
            }
            out.push_str("</tr>");
            for g in &group {
                out.push_str("<tr>");
                for col in &columns {
                    let v = g.child(col).map(|x| x.trimmed_text()).unwrap_or("");
                    out.push_str(&format!("<td>{}</td>", esc(v)));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        } else {
            for g in group {
                render(g, out, depth + 1);
            }
        }
    }
}
