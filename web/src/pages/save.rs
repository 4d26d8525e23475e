//! POST to a configuration page: save a form, add a list entry, delete an
//! entry; each staged in the candidate and validated at once, or sent back
//! to its form with the errors at their fields.

use crate::form::Form;
use crate::html::redirect;
use crate::pages::config::keys_of;
use crate::pages::config::{candidate_top, forbidden, locate, names, show, url, values, Submitted};
use crate::pages::edit::{field_edit, moved, sort_errors, wrap};
use crate::schema::{self, Step};
use crate::session::User;
use crate::{access, nc, Web};
use axum::http::StatusCode;
use axum::response::Response;
use besip_core::error::ConfigError;
use besip_restconf::Backend;
use std::collections::HashMap;

fn submitted_of(form: &Form) -> Submitted {
    Submitted {
        values: form
            .pairs()
            .iter()
            // Secrets are never sent back into a page.
            .filter(|(k, _)| {
                k.starts_with("f.")
                    && !["password", "secret", "private-key"]
                        .iter()
                        .any(|s| k.contains(s))
            })
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
        ("move", Step::List(list)) if list.is_user_ordered() => {
            // The entry (keys k0, k1, ...) goes before its predecessor or after its successor.
            let keys: Vec<String> = (0..list.list_keys().count())
                .map(|i| form.get(&format!("k{i}")).unwrap_or("").to_owned())
                .collect();
            let order: Vec<Vec<String>> = here
                .map(|p| {
                    p.children
                        .iter()
                        .filter(|c| c.name == list.name())
                        .map(|c| keys_of(list, c))
                        .collect()
                })
                .unwrap_or_default();
            let Some(at) = order.iter().position(|k| *k == keys) else {
                return crate::not_found(user);
            };
            let up = form.get("to") == Some("up");
            let neighbour = match up {
                true => at.checked_sub(1).and_then(|i| order.get(i)),
                false => order.get(at + 1),
            };
            let Some(neighbour) = neighbour else {
                return redirect(&format!("{}?done=unchanged", url(&steps)));
            };
            let mut entry_steps = steps.clone();
            let last_ix = entry_steps.len() - 1;
            entry_steps[last_ix] = Step::Entry(list.clone(), keys);
            let Some(xml) = moved(&entry_steps, up, neighbour) else {
                return crate::not_found(user);
            };
            match nc::edit_candidate(web.backend.as_ref(), who, &xml).await {
                Ok(()) => after_edit(web, user, &steps, "moved").await,
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
