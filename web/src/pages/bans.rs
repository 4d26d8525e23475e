//! Current bans of besip-secd (state read with `<get>`) and the unban
//! button (the besip-security `unban` RPC, forwarded to the daemon). The
//! columns are the leaves of the YANG `ban` list.

use crate::form::Form;
use crate::html::{button, esc, page, redirect};
use crate::session::User;
use crate::{nc, schema, Web};
use axum::http::StatusCode;
use axum::response::Response;
use besip_core::uci_map::data_children;
use besip_restconf::Backend;
use std::collections::HashMap;
use yang2::schema::SchemaNodeKind;

const NS: &str = "urn:besip:security";

/// Leaf names of `/security/bans/ban` in schema order.
fn columns() -> Vec<String> {
    let Some(top) = schema::top_nodes()
        .into_iter()
        .find(|n| n.name() == "security")
    else {
        return vec!["address".into()];
    };
    let ban = data_children(&top)
        .into_iter()
        .find(|c| c.name() == "bans")
        .and_then(|b| data_children(&b).into_iter().find(|c| c.name() == "ban"));
    match ban {
        Some(ban) => data_children(&ban)
            .into_iter()
            .filter(|c| c.kind() == SchemaNodeKind::Leaf)
            .map(|c| c.name().to_owned())
            .collect(),
        None => vec!["address".into()],
    }
}

pub async fn show<B: Backend>(
    web: &Web<B>,
    user: &User,
    query: &HashMap<String, String>,
) -> Response {
    let notice = query.get("done").and_then(|d| crate::done_text(d));
    render(web, user, notice, None, StatusCode::OK).await
}

async fn render<B: Backend>(
    web: &Web<B>,
    user: &User,
    notice: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let filter = format!("<security xmlns=\"{NS}\"><bans/></security>");
    let mut body = error
        .map(|e| format!("<p class=\"refused errors\">{}</p>", esc(&e)))
        .unwrap_or_default();
    body.push_str(
        "<p>Sources besip-secd bans now (rules, whitelist and settings: the <a href=\"/admin/config/security\">security</a> pages).</p>",
    );
    match nc::get(web.backend.as_ref(), &user.who, &filter).await {
        Err(e) => body.push_str(&format!(
            "<p class=\"refused\">{}</p>",
            esc(&nc::describe(&e))
        )),
        Ok(data) => {
            let bans: Vec<&besip_core::xml::Element> = data
                .iter()
                .filter(|e| e.name == "security")
                .flat_map(|s| s.children.iter().filter(|c| c.name == "bans"))
                .flat_map(|b| b.children.iter().filter(|c| c.name == "ban"))
                .collect();
            if bans.is_empty() {
                body.push_str("<p id=\"no-bans\">No source is banned.</p>");
            } else {
                let cols = columns();
                body.push_str("<table id=\"bans\"><tr>");
                for c in &cols {
                    body.push_str(&format!("<th>{}</th>", esc(c)));
                }
                body.push_str("<th></th></tr>");
                for ban in bans {
                    body.push_str("<tr>");
                    for c in &cols {
                        let v = ban.child(c).map(|x| x.trimmed_text()).unwrap_or("");
                        body.push_str(&format!("<td>{}</td>", esc(v)));
                    }
                    let address = ban.child("address").map(|a| a.trimmed_text()).unwrap_or("");
                    let action = if user.who.group.may_write() {
                        button(
                            "/admin/unban",
                            &user.csrf,
                            &[("address", address)],
                            "Unban",
                            "",
                        )
                    } else {
                        String::new()
                    };
                    body.push_str(&format!("<td>{action}</td></tr>"));
                }
                body.push_str("</table>");
            }
        }
    }
    page(status, &user.who, &user.csrf, "Current bans", notice, &body)
}

pub async fn unban<B: Backend>(web: &Web<B>, user: &User, form: &Form) -> Response {
    let address = form.get("address").unwrap_or("").trim();
    if address.parse::<std::net::IpAddr>().is_err() {
        return render(
            web,
            user,
            None,
            Some("Unban needs an IP address.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let xml = format!(
        "<unban xmlns=\"{NS}\"><address>{}</address></unban>",
        esc(address)
    );
    match nc::op(web.backend.as_ref(), &user.who, &xml).await {
        Ok(_) => redirect("/admin/bans?done=unbanned"),
        Err(e) => {
            render(
                web,
                user,
                None,
                Some(format!("Unban refused: {}", nc::describe(&e))),
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
