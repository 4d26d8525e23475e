//! Export and import of the whole box, in the file format of `besip
//! export`/`besip import` (a NETCONF `<config>` of the besip modules). An
//! import is loaded into the candidate (copy-config, admins only, as in
//! NETCONF), validated, and shown on the Changes page before its commit.

use crate::form::Form;
use crate::html::{csrf_field, esc, is_admin, page, redirect};
use crate::session::User;
use crate::{nc, Web};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use besip_core::xml::Element;
use besip_restconf::Backend;
use std::collections::HashMap;
use yang2::data::{Data, DataFormat, DataPrinterFlags};

pub fn show(user: &User, query: &HashMap<String, String>, error: Option<String>) -> Response {
    let mut body = error
        .map(|e| {
            format!(
                "<p class=\"refused errors\" id=\"import-error\">{}</p>",
                esc(&e)
            )
        })
        .unwrap_or_default();
    body.push_str(
        "<h2>Export</h2><p><a href=\"/admin/export\" id=\"export\" download>Download the running configuration</a> \
(the format of <code>besip export</code>; it holds SIP passwords: keep it safe).</p>",
    );
    if is_admin(&user.who) {
        body.push_str(&format!(
            "<h2>Import</h2><form method=\"post\" action=\"/admin/import\" enctype=\"multipart/form-data\" id=\"import-form\">{}\
<p><input type=\"file\" name=\"file\" accept=\".xml,application/xml,text/xml\" id=\"file\"></p>\
<p><button id=\"import\">Load into the candidate</button></p></form>\
<p class=\"help\">The file replaces the whole configuration in the candidate; the Changes page then shows the difference before you commit it. \
It must keep your own admin account.</p>",
            csrf_field(&user.csrf)
        ));
    } else {
        body.push_str("<p>Importing a whole configuration is for the admin group.</p>");
    }
    let notice = query.get("done").and_then(|d| crate::done_text(d));
    let status = if body.contains("import-error") {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(
        status,
        &user.who,
        &user.csrf,
        "Export / import",
        notice,
        &body,
    )
}

pub async fn export<B: Backend>(web: &Web<B>, user: &User) -> Response {
    let data = match nc::get_config(web.backend.as_ref(), &user.who, "running", None).await {
        Ok(d) => d,
        Err(e) => return show(user, &HashMap::new(), Some(nc::describe(&e))),
    };
    let mut xml = format!("<config xmlns=\"{}\">", nc::BASE_NS);
    for e in data
        .iter()
        .filter(|e| e.namespace.starts_with("urn:besip:"))
    {
        xml.push_str(&e.to_xml());
    }
    xml.push_str("</config>");
    let text = match pretty(&xml) {
        Ok(t) => t,
        Err(e) => return show(user, &HashMap::new(), Some(e)),
    };
    let mut r = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"besip-config.xml\""),
    );
    r
}

/// Through libyang, as `besip export` writes it: canonical values, one node
/// per line, so an import error's line points at its node.
fn pretty(xml: &str) -> Result<String, String> {
    let schema = besip_core::schema::Schema::get().map_err(|e| e.to_string())?;
    let tree = besip_core::datastore::parse_config_tree(schema, xml)
        .map_err(|e| format!("the running configuration does not parse: {e}"))?;
    let text = tree
        .print_string(DataFormat::XML, DataPrinterFlags::WITH_SIBLINGS)
        .map_err(|e| besip_core::schema::describe(&e))?
        .unwrap_or_default();
    let mut out = format!("<config xmlns=\"{}\">\n", nc::BASE_NS);
    for line in text.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("</config>\n");
    Ok(out)
}

/// Top-level data elements of an uploaded file.
fn elements(text: &str) -> Result<Vec<Element>, String> {
    let mut parsed = besip_core::xml::parse_limited(text, 1_000_000)
        .map_err(|e| format!("the file is not XML: {e}"))?;
    if parsed.len() == 1 && parsed[0].name == "config" && parsed[0].namespace == nc::BASE_NS {
        parsed = parsed.remove(0).children;
    }
    if parsed.is_empty() {
        return Err("the file holds no configuration".into());
    }
    Ok(parsed)
}

fn has_admin(elements: &[Element], user: &str) -> bool {
    elements
        .iter()
        .filter(|e| e.name == "system" && e.namespace == nc::SYSTEM_NS)
        .flat_map(|s| s.children.iter().filter(|c| c.name == "user"))
        .any(|u| {
            u.child("name").is_some_and(|n| n.trimmed_text() == user)
                && u.child("group")
                    .is_some_and(|g| g.trimmed_text() == "admin")
        })
}

pub async fn import<B: Backend>(web: &Web<B>, user: &User, form: &Form) -> Response {
    let no_query = HashMap::new();
    let fail = |e: String| show(user, &no_query, Some(format!("{e}. Nothing was changed.")));
    if !is_admin(&user.who) {
        let mut r = fail("Importing a whole configuration is for the admin group".into());
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let text = form.get("file").unwrap_or("");
    let elements = match elements(text) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    if !has_admin(&elements, &user.who.user) {
        return fail(format!(
            "The file has no admin user '{}': importing it would lock you out",
            user.who.user
        ));
    }
    let b = web.backend.as_ref();
    match crate::pages::changes::diff(web, user).await {
        Ok(lines) if !lines.is_empty() => {
            return fail(
                "The candidate has uncommitted changes: commit or discard them before an import"
                    .into(),
            )
        }
        Err(e) => return fail(e),
        Ok(_) => {}
    }
    let config: String = elements.iter().map(Element::to_xml).collect();
    let copy = format!(
        "<copy-config xmlns=\"{}\"><target><candidate/></target><source><config>{config}</config></source></copy-config>",
        nc::BASE_NS
    );
    if let Err(e) = nc::op(b, &user.who, &copy).await {
        return fail(format!("Refused: {}", nc::describe(&e)));
    }
    let validate = format!(
        "<validate xmlns=\"{}\"><source><candidate/></source></validate>",
        nc::BASE_NS
    );
    if let Err(e) = nc::op(b, &user.who, &validate).await {
        let discard = format!("<discard-changes xmlns=\"{}\"/>", nc::BASE_NS);
        let _ = nc::op(b, &user.who, &discard).await;
        return fail(format!("The file does not validate: {}", nc::describe(&e)));
    }
    redirect("/admin/changes?done=imported")
}
