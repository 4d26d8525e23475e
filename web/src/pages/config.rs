//! The configuration pages, one generic page per schema node: a container
//! or list entry is a form of its leaves with links to what it contains; a
//! list is a table of its entries and an "add" form. Saving is `save.rs`.

use crate::html::{button, csrf_field, esc, page, seg};
use crate::pages::field_html::field_html;
use crate::schema::{self, Field, Step};
use crate::session::User;
use crate::{access, nc, Web};
use axum::http::StatusCode;
use axum::response::Response;
use besip_core::error::ConfigError;
use besip_core::xml::Element;
use besip_restconf::Backend;
use std::collections::HashMap;

/// Entries of a list shown per page.
const PER_PAGE: usize = 100;

/// What a refused save sends back into its form.
#[derive(Default)]
pub struct Submitted {
    pub values: HashMap<String, String>,
    /// Field name → message.
    pub errors: HashMap<String, String>,
    /// Errors no field of the form owns.
    pub general: Vec<String>,
    pub notice: Option<String>,
}

/// Names of the steps (no keys), for access checks.
pub(crate) fn names(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.node().name()).collect()
}

/// URL of a page for these steps.
pub fn url(steps: &[Step]) -> String {
    let mut out = String::from("/admin/config");
    for s in steps {
        out.push('/');
        out.push_str(&seg(s.node().name()));
        if let Step::Entry(_, keys) = s {
            for k in keys {
                out.push('/');
                out.push_str(&seg(k));
            }
        }
    }
    out
}

fn title(steps: &[Step]) -> String {
    let mut parts = Vec::new();
    for s in steps {
        match s {
            Step::Entry(n, keys) => parts.push(format!("{} {}", n.name(), keys.join(" "))),
            _ => parts.push(s.node().name().to_owned()),
        }
    }
    parts.join(" › ")
}

/// Key values of a list entry element, in key order.
pub(crate) fn keys_of(node: &yang2::schema::SchemaNode<'static>, e: &Element) -> Vec<String> {
    node.list_keys()
        .map(|k| {
            e.child(k.name())
                .map(|c| c.trimmed_text().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// The data element the steps name in the candidate (`None`: not there).
/// A list step yields its parent (whose children are the entries).
pub(crate) fn locate<'a>(top: Option<&'a Element>, steps: &[Step]) -> Option<&'a Element> {
    let mut cur = top?;
    for s in &steps[1..] {
        match s {
            Step::Container(n) => cur = cur.child(n.name())?,
            Step::Entry(n, keys) => {
                cur = cur
                    .children
                    .iter()
                    .find(|c| c.name == n.name() && keys_of(n, c) == *keys)?
            }
            Step::List(_) => return Some(cur),
        }
    }
    Some(cur)
}

/// Current values of a field in an element (0 or 1 for a leaf).
pub(crate) fn values(e: Option<&Element>, name: &str) -> Vec<String> {
    e.map(|e| {
        e.children
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.trimmed_text().to_owned())
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) async fn candidate_top<B: Backend>(
    web: &Web<B>,
    user: &User,
    steps: &[Step],
) -> Result<Option<Element>, Vec<ConfigError>> {
    let top = steps[0].node();
    let filter = format!(
        "<{} xmlns=\"{}\"/>",
        top.name(),
        esc(&schema::namespace(top))
    );
    let data = nc::get_config(web.backend.as_ref(), &user.who, "candidate", Some(&filter)).await?;
    Ok(data.into_iter().find(|e| e.name == top.name()))
}

/// Values at `path` under `e` (every entry of every list on the way).
fn collect(e: &Element, path: &[String], out: &mut Vec<String>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    for c in e.children.iter().filter(|c| &c.name == first) {
        if rest.is_empty() {
            let v = c.trimmed_text().to_owned();
            if !out.contains(&v) {
                out.push(v);
            }
        } else {
            collect(c, rest, out);
        }
    }
}

/// What the leafref fields of a form may name: their targets' values in
/// the candidate (offered as suggestions; the datastore still decides).
async fn suggestions<B: Backend>(
    web: &Web<B>,
    user: &User,
    fields: &[Field],
    page_top: Option<&Element>,
) -> HashMap<String, Vec<String>> {
    let mut tops: HashMap<String, Option<Element>> = HashMap::new();
    if let Some(t) = page_top {
        tops.insert(t.name.clone(), Some(t.clone()));
    }
    let mut out = HashMap::new();
    for f in fields {
        let Some(target) = &f.target else { continue };
        let Some((top_name, rest)) = target.split_first() else {
            continue;
        };
        if !tops.contains_key(top_name) {
            let node = schema::top_nodes()
                .into_iter()
                .find(|n| n.name() == top_name);
            let fetched = match node {
                Some(n) => candidate_top(web, user, &[Step::Container(n)])
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            tops.insert(top_name.clone(), fetched);
        }
        let mut values = Vec::new();
        if let Some(Some(top)) = tops.get(top_name) {
            collect(top, rest, &mut values);
        }
        out.insert(f.name.clone(), values);
    }
    out
}

pub async fn show<B: Backend>(
    web: &Web<B>,
    user: &User,
    steps: &[Step],
    query: &HashMap<String, String>,
    submitted: Option<Submitted>,
) -> Response {
    let who = &user.who;
    if !access::may_open(who.group, &names(steps)) {
        return forbidden(user);
    }
    let top = match candidate_top(web, user, steps).await {
        Ok(t) => t,
        Err(e) => {
            let status = if nc::denied(&e) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return page(
                status,
                who,
                &user.csrf,
                &title(steps),
                None,
                &format!("<p class=\"refused\">{}</p>", esc(&nc::describe(&e))),
            );
        }
    };
    let here = locate(top.as_ref(), steps);
    let Some(last) = steps.last() else {
        return crate::not_found(user);
    };
    let sub = submitted.unwrap_or_default();
    let notice = sub.notice.clone().or_else(|| {
        query
            .get("done")
            .and_then(|d| crate::done_text(d))
            .map(str::to_owned)
    });
    let readonly = !who.group.may_write();
    let mut body = String::new();
    if readonly {
        body.push_str("<p class=\"notice\">Read only: your account is in the monitor group.</p>");
    }
    for g in &sub.general {
        body.push_str(&format!("<p class=\"refused errors\">{}</p>", esc(g)));
    }
    match last {
        Step::List(list) => {
            let parent = here;
            let mover = (list.is_user_ordered() && !readonly).then_some(user.csrf.as_str());
            body.push_str(&list_table(steps, list, parent, query, mover));
            let fields = schema::fields(list);
            let suggest = suggestions(web, user, &fields, top.as_ref()).await;
            body.push_str(&format!(
                "<h2>Add {n}</h2><form method=\"post\" action=\"{a}\" id=\"add-form\">{c}<input type=\"hidden\" name=\"action\" value=\"add\"><fieldset{d}>",
                n = esc(list.name()),
                a = esc(&url(steps)),
                c = csrf_field(&user.csrf),
                d = if readonly { " disabled" } else { "" }
            ));
            for f in &fields {
                let shown = sub
                    .values
                    .get(&format!("f.{}", f.name))
                    .map(|v| vec![v.clone()])
                    .unwrap_or_default();
                body.push_str(&field_html(
                    f,
                    &shown,
                    sub.errors.get(&f.name),
                    false,
                    suggest.get(&f.name),
                ));
            }
            body.push_str("<button id=\"add\">Add to the candidate</button></fieldset></form>");
        }
        Step::Container(node) | Step::Entry(node, _) => {
            if matches!(last, Step::Entry(..)) && here.is_none() {
                return page(
                    StatusCode::NOT_FOUND,
                    who,
                    &user.csrf,
                    &title(steps),
                    notice.as_deref(),
                    &format!(
                        "<p>No such entry in the candidate. <a href=\"{}\">Back to the list</a>.</p>",
                        esc(&url(&steps[..steps.len() - 1]))
                    ),
                );
            }
            if let Some(d) = node.description() {
                body.push_str(&format!("<p class=\"help\">{}</p>", esc(d)));
            }
            let fields = schema::fields(node);
            let suggest = suggestions(web, user, &fields, top.as_ref()).await;
            let is_entry = matches!(last, Step::Entry(..));
            if fields.iter().any(|f| !(is_entry && f.key)) {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"{a}\" id=\"edit-form\">{c}<input type=\"hidden\" name=\"action\" value=\"save\"><fieldset{d}>",
                    a = esc(&url(steps)),
                    c = csrf_field(&user.csrf),
                    d = if readonly { " disabled" } else { "" }
                ));
                for f in &fields {
                    let current = match sub.values.get(&format!("f.{}", f.name)) {
                        Some(v) => v.lines().map(str::to_owned).collect(),
                        None => values(here, &f.name),
                    };
                    body.push_str(&field_html(
                        f,
                        &current,
                        sub.errors.get(&f.name),
                        is_entry && f.key,
                        suggest.get(&f.name),
                    ));
                }
                body.push_str(
                    "<button id=\"save\">Save to the candidate</button></fieldset></form>",
                );
            }
            let sections = schema::sections(node);
            if !sections.is_empty() {
                body.push_str("<h2>Sections</h2><ul class=\"sections\">");
                for s in sections {
                    let parts: Vec<&str> = names(steps).into_iter().chain([s.name()]).collect();
                    if !access::may_open(who.group, &parts) {
                        continue;
                    }
                    let count = if s.kind() == yang2::schema::SchemaNodeKind::List {
                        format!(" ({})", values_count(here, s.name()))
                    } else {
                        String::new()
                    };
                    body.push_str(&format!(
                        "<li><a href=\"{u}/{n}\">{t}</a>{count} <span class=\"help\">{d}</span></li>",
                        u = esc(&url(steps)),
                        n = seg(s.name()),
                        t = esc(s.name()),
                        d = esc(&besip_shell::path::summary(&s)),
                    ));
                }
                body.push_str("</ul>");
            }
            if steps.len() == 1 {
                body.push_str(&crate::pages::state::links(node));
            }
            if is_entry && !readonly {
                body.push_str(&button(
                    &url(steps),
                    &user.csrf,
                    &[("action", "delete")],
                    "Delete this entry",
                    "danger",
                ));
            }
        }
    }
    let status = if sub.errors.is_empty() && sub.general.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        status,
        who,
        &user.csrf,
        &title(steps),
        notice.as_deref(),
        &body,
    )
}

fn values_count(e: Option<&Element>, name: &str) -> usize {
    e.map(|e| e.children.iter().filter(|c| c.name == name).count())
        .unwrap_or(0)
}

/// `mover`: the CSRF token, when entries may be moved (a user-ordered
/// list, a user who may write): each row gets "up" and "down" buttons.
fn list_table(
    steps: &[Step],
    list: &yang2::schema::SchemaNode<'static>,
    parent: Option<&Element>,
    query: &HashMap<String, String>,
    mover: Option<&str>,
) -> String {
    let keys: Vec<String> = list.list_keys().map(|k| k.name().to_owned()).collect();
    // A few leaves beside the keys, as the schema orders them.
    let columns: Vec<Field> = schema::fields(list)
        .into_iter()
        .filter(|f| !f.key && !f.secret && !f.list)
        .take(4)
        .collect();
    let entries: Vec<&Element> = parent
        .map(|p| {
            p.children
                .iter()
                .filter(|c| c.name == list.name())
                .collect()
        })
        .unwrap_or_default();
    let page_no: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let mut out = format!(
        "<p>{} entr{} in the candidate.</p><table id=\"entries\"><tr>",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    );
    for k in &keys {
        out.push_str(&format!("<th>{}</th>", esc(k)));
    }
    for c in &columns {
        out.push_str(&format!("<th>{}</th>", esc(&c.name)));
    }
    if mover.is_some() {
        out.push_str("<th>order</th>");
    }
    out.push_str("</tr>");
    for e in entries.iter().skip(page_no * PER_PAGE).take(PER_PAGE) {
        let values = keys_of(list, e);
        let mut link = url(steps);
        for v in &values {
            link.push('/');
            link.push_str(&seg(v));
        }
        out.push_str("<tr>");
        for (i, v) in values.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!(
                    "<td><a href=\"{}\">{}</a></td>",
                    esc(&link),
                    esc(v)
                ));
            } else {
                out.push_str(&format!("<td>{}</td>", esc(v)));
            }
        }
        for c in &columns {
            let v = e
                .child(&c.name)
                .map(|x| x.trimmed_text().to_owned())
                .unwrap_or_default();
            out.push_str(&format!("<td>{}</td>", esc(&v)));
        }
        if let Some(csrf) = mover {
            let names: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
            let mut hidden: Vec<(&str, &str)> = names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str))
                .collect();
            hidden.push(("action", "move"));
            out.push_str("<td>");
            for (to, label) in [("up", "up"), ("down", "down")] {
                let mut h = hidden.clone();
                h.push(("to", to));
                out.push_str(&button(&url(steps), csrf, &h, label, "move"));
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    let pages = entries.len().div_ceil(PER_PAGE);
    if pages > 1 {
        out.push_str("<p>Page: ");
        for p in 0..pages {
            out.push_str(&format!(
                "<a href=\"{}?page={p}\">{}</a> ",
                esc(&url(steps)),
                p + 1
            ));
        }
        out.push_str("</p>");
    }
    out
}

pub(crate) fn forbidden(user: &User) -> Response {
    page(
        StatusCode::FORBIDDEN,
        &user.who,
        &user.csrf,
        "Not allowed",
        None,
        "<p class=\"refused\">This page is for the admin group only (users and access control).</p>",
    )
}
