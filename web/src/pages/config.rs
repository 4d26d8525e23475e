//! The configuration pages, one generic page per schema node: a container
//! or list entry is a form of its leaves with links to what it contains; a
//! list is a table of its entries and an "add" form. Saving stages the
//! change in the shared candidate (edit-config, all or nothing); errors
//! come back at the field their YANG path names.

use crate::form::Form;
use crate::html::{button, csrf_field, esc, page, redirect, seg};
use crate::schema::{self, Field, Input, Step};
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
fn names(steps: &[Step]) -> Vec<&str> {
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
fn keys_of(node: &yang2::schema::SchemaNode<'static>, e: &Element) -> Vec<String> {
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
fn locate<'a>(top: Option<&'a Element>, steps: &[Step]) -> Option<&'a Element> {
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
fn values(e: Option<&Element>, name: &str) -> Vec<String> {
    e.map(|e| {
        e.children
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.trimmed_text().to_owned())
            .collect()
    })
    .unwrap_or_default()
}

async fn candidate_top<B: Backend>(
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
            body.push_str(&list_table(steps, list, parent, query));
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

fn list_table(
    steps: &[Step],
    list: &yang2::schema::SchemaNode<'static>,
    parent: Option<&Element>,
    query: &HashMap<String, String>,
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

/// One field of a form. `current`: its values (one for a leaf).
fn field_html(
    f: &Field,
    current: &[String],
    error: Option<&String>,
    fixed: bool,
    suggest: Option<&Vec<String>>,
) -> String {
    // Existing values a leafref may name: a datalist (free text still
    // allowed, no script needed).
    let (list_attr, datalist) = match suggest {
        Some(values) if !values.is_empty() => {
            let id = format!("dl-{}", f.name);
            let options: String = values
                .iter()
                .map(|v| format!("<option value=\"{}\">", esc(v)))
                .collect();
            (
                format!(" list=\"{}\"", esc(&id)),
                format!("<datalist id=\"{}\">{options}</datalist>", esc(&id)),
            )
        }
        _ => (String::new(), String::new()),
    };
    let id = format!("f-{}", f.name);
    let name = format!("f.{}", f.name);
    let value = current.first().cloned().unwrap_or_default();
    let label = if f.password_hash {
        "password (new)".to_owned()
    } else {
        f.name.clone()
    };
    let control = if fixed {
        format!("<span id=\"{}\">{}</span>", esc(&id), esc(&value))
    } else if f.list {
        let known = suggest
            .filter(|v| !v.is_empty())
            .map(|v| format!("<div class=\"help\">known: {}</div>", esc(&v.join(", "))))
            .unwrap_or_default();
        format!(
            "<textarea id=\"{}\" name=\"{}\" rows=\"3\">{}</textarea>{known}",
            esc(&id),
            esc(&name),
            esc(&current.join("\n"))
        )
    } else if f.secret {
        let placeholder = if value.is_empty() && !f.password_hash {
            "not set"
        } else {
            "unchanged unless typed"
        };
        format!(
            "<input type=\"password\" id=\"{}\" name=\"{}\" autocomplete=\"new-password\" placeholder=\"{placeholder}\">",
            esc(&id),
            esc(&name)
        )
    } else {
        match &f.input {
            Input::Choice(members) => {
                let mut s = format!("<select id=\"{}\" name=\"{}\">", esc(&id), esc(&name));
                s.push_str(&unset_option(f, &value));
                for (m, d) in members {
                    s.push_str(&format!(
                        "<option value=\"{v}\" title=\"{d}\"{sel}>{v}</option>",
                        v = esc(m),
                        d = esc(d),
                        sel = if *m == value { " selected" } else { "" }
                    ));
                }
                s.push_str("</select>");
                s
            }
            Input::Bool => {
                let mut s = format!("<select id=\"{}\" name=\"{}\">", esc(&id), esc(&name));
                s.push_str(&unset_option(f, &value));
                for v in ["true", "false"] {
                    s.push_str(&format!(
                        "<option value=\"{v}\"{}>{v}</option>",
                        if v == value { " selected" } else { "" }
                    ));
                }
                s.push_str("</select>");
                s
            }
            Input::Flag => format!(
                "<input type=\"hidden\" name=\"e.{n}\" value=\"1\"><input type=\"checkbox\" id=\"{i}\" name=\"{m}\"{c}>",
                n = esc(&f.name),
                i = esc(&id),
                m = esc(&name),
                c = if current.is_empty() { "" } else { " checked" }
            ),
            // Text, not type=number: the server's validation (with the
            // range in its message) answers, whatever the browser allows.
            Input::Number { .. } | Input::Text => format!(
                "<input type=\"text\" id=\"{}\" name=\"{}\" value=\"{}\" placeholder=\"{}\"{}{list_attr}>{datalist}",
                esc(&id),
                esc(&name),
                esc(&value),
                esc(f.default.as_deref().unwrap_or("")),
                if matches!(f.input, Input::Number { .. }) {
                    " inputmode=\"numeric\""
                } else {
                    ""
                }
            ),
        }
    };
    let error_html = error
        .map(|e| {
            format!(
                "<span class=\"error\" id=\"error-{}\">{}</span>",
                esc(&f.name),
                esc(e)
            )
        })
        .unwrap_or_default();
    format!(
        "<div class=\"field{inv}\" id=\"field-{n}\"><label for=\"{i}\">{l}</label><div>{control}{error_html}</div>\
<div class=\"help\">{h}{sep}{d}</div></div>",
        inv = if error.is_some() { " invalid" } else { "" },
        n = esc(&f.name),
        i = esc(&id),
        l = esc(&label),
        h = esc(&f.hint()),
        sep = if f.hint().is_empty() { "" } else { " — " },
        d = esc(&f.description),
    )
}

fn unset_option(f: &Field, value: &str) -> String {
    let text = match &f.default {
        Some(d) => format!("(default: {d})"),
        None => "(not set)".to_owned(),
    };
    format!(
        "<option value=\"\"{}>{}</option>",
        if value.is_empty() { " selected" } else { "" },
        esc(&text)
    )
}

fn forbidden(user: &User) -> Response {
    page(
        StatusCode::FORBIDDEN,
        &user.who,
        &user.csrf,
        "Not allowed",
        None,
        "<p class=\"refused\">This page is for the admin group only (users and access control).</p>",
    )
}

const NC_ATTR: &str = "xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\"";

/// `inner` wrapped in the elements the steps name; `op` (an
/// `nc:operation`) on the innermost.
fn wrap(steps: &[Step], inner: &str, op: Option<&str>) -> String {
    let mut xml = inner.to_owned();
    for (i, s) in steps.iter().enumerate().rev() {
        let n = s.node();
        let attr = match (op, i + 1 == steps.len()) {
            (Some(op), true) => format!(" {NC_ATTR} nc:operation=\"{op}\""),
            _ => String::new(),
        };
        let keys = match s {
            Step::Entry(_, values) => n
                .list_keys()
                .zip(values)
                .map(|(k, v)| format!("<{k}>{v}</{k}>", k = k.name(), v = esc(v)))
                .collect::<String>(),
            _ => String::new(),
        };
        xml = format!(
            "<{name} xmlns=\"{ns}\"{attr}>{keys}{xml}</{name}>",
            name = n.name(),
            ns = esc(&schema::namespace(n))
        );
    }
    xml
}

fn leaf(f: &Field, value: &str) -> String {
    format!(
        "<{n} xmlns=\"{ns}\">{v}</{n}>",
        n = f.name,
        ns = esc(&schema::namespace(&f.node)),
        v = esc(value)
    )
}

fn removal(f: &Field, value: Option<&str>) -> String {
    format!(
        "<{n} xmlns=\"{ns}\" {NC_ATTR} nc:operation=\"remove\">{v}</{n}>",
        n = f.name,
        ns = esc(&schema::namespace(&f.node)),
        v = esc(value.unwrap_or(""))
    )
}

/// The edit of one field: `None` when nothing changes.
fn field_edit(f: &Field, form: &Form, current: &[String]) -> Result<Option<String>, String> {
    let key = format!("f.{}", f.name);
    if let Input::Flag = f.input {
        if form.get(&format!("e.{}", f.name)).is_none() {
            return Ok(None);
        }
        let on = form.get(&key).is_some();
        return Ok(match (on, current.is_empty()) {
            (true, true) => Some(leaf(f, "")),
            (false, false) => Some(removal(f, None)),
            _ => None,
        });
    }
    let Some(raw) = form.get(&key) else {
        return Ok(None);
    };
    let raw = raw.replace('\r', "");
    if f.list {
        let new: Vec<&str> = raw
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut out = String::new();
        for old in current {
            if !new.contains(&old.as_str()) {
                out.push_str(&removal(f, Some(old)));
            }
        }
        for v in &new {
            if !current.iter().any(|c| c == v) {
                out.push_str(&leaf(f, v));
            }
        }
        return Ok((!out.is_empty()).then_some(out));
    }
    if f.secret {
        // Never shown, so an empty field means "keep it".
        if raw.is_empty() {
            return Ok(None);
        }
        if f.password_hash {
            let hash = besip_core::password::hash(&raw)?;
            return Ok(Some(leaf(f, &hash)));
        }
        return Ok((current.first() != Some(&raw)).then(|| leaf(f, &raw)));
    }
    let value = raw.trim();
    let old = current.first().map(String::as_str);
    Ok(match (value.is_empty(), old) {
        (true, None) => None,
        (true, Some(_)) => Some(removal(f, None)),
        (false, Some(o)) if o == value => None,
        (false, _) => Some(leaf(f, value)),
    })
}

/// The leaf name an error's YANG path ends at (predicates dropped).
fn field_of(e: &ConfigError) -> Option<String> {
    if let Some((_, v)) = e.info.iter().find(|(k, _)| k == "bad-element") {
        return Some(v.clone());
    }
    let path = e.path.as_deref()?;
    let mut plain = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let last = plain.rsplit('/').next()?;
    Some(last.rsplit(':').next().unwrap_or(last).to_owned())
}

/// Errors sorted onto the form's fields (the rest are general).
fn sort_errors(errors: &[ConfigError], fields: &[Field], sub: &mut Submitted) {
    // An error about a list entry itself (its path ends at the entry, as
    // libyang reports a key that fails its type) belongs to the key.
    let key = fields.iter().find(|f| f.key).map(|f| f.name.clone());
    let list = fields
        .iter()
        .find(|f| f.key)
        .and_then(|f| f.node.ancestors().next())
        .map(|p| p.name().to_owned());
    for e in errors {
        let named = field_of(e).map(|n| match (&list, &key) {
            (Some(l), Some(k)) if *l == n => k.clone(),
            _ => n,
        });
        match named.filter(|n| fields.iter().any(|f| &f.name == n)) {
            Some(n) => {
                sub.errors.entry(n).or_insert_with(|| e.message.clone());
            }
            None => sub.general.push(nc::describe(std::slice::from_ref(e))),
        }
    }
}

fn submitted_of(form: &Form) -> Submitted {
    Submitted {
        values: form
            .pairs()
            .iter()
            .filter(|(k, _)| k.starts_with("f.") && !k.contains("password"))
            .cloned()
            .collect(),
        ..Default::default()
    }
}

/// POST to a configuration page.
pub async fn save<B: Backend>(
    web: &Web<B>,
    user: &User,
    steps: Vec<Step>,
    form: &Form,
) -> Response {
    let who = &user.who;
    if !access::may_open(who.group, &names(&steps)) {
        return forbidden(user);
    }
    let action = form.get("action").unwrap_or("save");
    let Some(last) = steps.last().cloned() else {
        return crate::not_found(user);
    };
    let top = match candidate_top(web, user, &steps).await {
        Ok(t) => t,
        Err(e) => return refused(web, user, &steps, form, &e).await,
    };
    let here = locate(top.as_ref(), &steps);
    let no_query = HashMap::new();
    match (action, &last) {
        ("delete", Step::Entry(..)) => {
            let keys_only = wrap(&steps, "", Some("delete"));
            match nc::edit_candidate(web.backend.as_ref(), who, &keys_only).await {
                Ok(()) => after_edit(web, user, &steps[..steps.len() - 1], "deleted").await,
                Err(e) => refused(web, user, &steps, form, &e).await,
            }
        }
        ("add", Step::List(list)) => {
            let fields = schema::fields(list);
            let mut sub = submitted_of(form);
            let mut keys = Vec::new();
            for f in fields.iter().filter(|f| f.key) {
                match form.get(&format!("f.{}", f.name)).map(str::trim) {
                    Some(v) if !v.is_empty() => keys.push(v.to_owned()),
                    _ => {
                        sub.errors
                            .insert(f.name.clone(), "required: the key of the new entry".into());
                    }
                }
            }
            if !sub.errors.is_empty() {
                return show(web, user, &steps, &no_query, Some(sub)).await;
            }
            let mut inner = String::new();
            for f in fields.iter().filter(|f| !f.key) {
                match field_edit(f, form, &[]) {
                    Ok(Some(x)) => inner.push_str(&x),
                    Ok(None) => {}
                    Err(e) => {
                        sub.errors.insert(f.name.clone(), e);
                    }
                }
            }
            if !sub.errors.is_empty() {
                return show(web, user, &steps, &no_query, Some(sub)).await;
            }
            let mut entry_steps = steps.clone();
            let last_ix = entry_steps.len() - 1;
            entry_steps[last_ix] = Step::Entry(list.clone(), keys);
            let xml = wrap(&entry_steps, &inner, Some("create"));
            match nc::edit_candidate(web.backend.as_ref(), who, &xml).await {
                Ok(()) => after_edit(web, user, &entry_steps, "added").await,
                Err(e) => {
                    sort_errors(&e, &fields, &mut sub);
                    let denied = nc::denied(&e);
                    if denied {
                        sub.general.insert(0, denied_text(who));
                    }
                    let mut r = show(web, user, &steps, &no_query, Some(sub)).await;
                    if denied {
                        *r.status_mut() = StatusCode::FORBIDDEN;
                    }
                    r
                }
            }
        }
        ("save", Step::Container(node) | Step::Entry(node, _)) => {
            if matches!(last, Step::Entry(..)) && here.is_none() {
                return crate::not_found(user);
            }
            let fields = schema::fields(node);
            let mut sub = submitted_of(form);
            let mut inner = String::new();
            let is_entry = matches!(last, Step::Entry(..));
            for f in fields.iter().filter(|f| !(is_entry && f.key)) {
                match field_edit(f, form, &values(here, &f.name)) {
                    Ok(Some(x)) => inner.push_str(&x),
                    Ok(None) => {}
                    Err(e) => {
                        sub.errors.insert(f.name.clone(), e);
                    }
                }
            }
            if !sub.errors.is_empty() {
                return show(web, user, &steps, &no_query, Some(sub)).await;
            }
            if inner.is_empty() {
                return redirect(&format!("{}?done=unchanged", url(&steps)));
            }
            let xml = wrap(&steps, &inner, None);
            match nc::edit_candidate(web.backend.as_ref(), who, &xml).await {
                Ok(()) => after_edit(web, user, &steps, "saved").await,
                Err(e) => {
                    sort_errors(&e, &fields, &mut sub);
                    let denied = nc::denied(&e);
                    if denied {
                        sub.general.insert(0, denied_text(who));
                    }
                    let mut r = show(web, user, &steps, &no_query, Some(sub)).await;
                    if denied {
                        *r.status_mut() = StatusCode::FORBIDDEN;
                    }
                    r
                }
            }
        }
        _ => crate::not_found(user),
    }
}

fn denied_text(who: &besip_restconf::Principal) -> String {
    format!(
        "Refused by access control: the {} group may not change this. Nothing was saved.",
        who.group.name()
    )
}

async fn refused<B: Backend>(
    web: &Web<B>,
    user: &User,
    steps: &[Step],
    form: &Form,
    errors: &[ConfigError],
) -> Response {
    let mut sub = submitted_of(form);
    let denied = nc::denied(errors);
    if denied {
        sub.general.push(denied_text(&user.who));
    }
    sub.general.push(nc::describe(errors));
    let mut r = show(web, user, steps, &HashMap::new(), Some(sub)).await;
    if denied {
        *r.status_mut() = StatusCode::FORBIDDEN;
    }
    r
}

/// After a staged edit: the candidate is validated at once, so a rule
/// YANG checks only on the whole tree (must, mandatory, unique) shows at
/// its field now rather than at commit.
async fn after_edit<B: Backend>(web: &Web<B>, user: &User, steps: &[Step], done: &str) -> Response {
    let validate = format!(
        "<validate xmlns=\"{}\"><source><candidate/></source></validate>",
        nc::BASE_NS
    );
    match nc::op(web.backend.as_ref(), &user.who, &validate).await {
        Ok(_) => redirect(&format!("{}?done={done}", url(steps))),
        Err(errors) => {
            let mut sub = Submitted {
                notice: Some(
                    "Staged in the candidate, but the candidate does not validate yet: a commit will be refused until this is fixed."
                        .into(),
                ),
                ..Default::default()
            };
            let node = steps.last().map(|s| s.node().clone());
            let fields = node.map(|n| schema::fields(&n)).unwrap_or_default();
            sort_errors(&errors, &fields, &mut sub);
            show(web, user, steps, &HashMap::new(), Some(sub)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::error::ErrorTag;

    #[test]
    fn an_error_path_names_its_leaf() {
        let e = ConfigError::new(ErrorTag::InvalidValue, "bad")
            .at("/besip-pbx:pbx/extension[number='a/b']/max-contacts");
        assert_eq!(field_of(&e).as_deref(), Some("max-contacts"));
    }
}
