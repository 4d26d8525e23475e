//! The NETCONF edit a form makes (only the fields that changed, removals
//! for cleared ones), and errors sorted back onto the form's fields by
//! their YANG path.

use crate::form::Form;
use crate::html::esc;
use crate::nc;
use crate::pages::config::Submitted;
use crate::schema::{self, Field, Input, Step};
use besip_core::error::ConfigError;

const NC_ATTR: &str = "xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\"";

/// `inner` wrapped in the elements the steps name; `op` (an
/// `nc:operation`) on the innermost.
pub fn wrap(steps: &[Step], inner: &str, op: Option<&str>) -> String {
    let attrs = op
        .map(|op| format!(" {NC_ATTR} nc:operation=\"{op}\""))
        .unwrap_or_default();
    wrap_with(steps, inner, &attrs)
}

/// An entry of a user-ordered list moved `before` or after the entry
/// whose keys are `anchor` (RFC 7950 §7.8.6 yang:insert and yang:key).
/// None when a key holds both kinds of quote (no predicate can name it).
pub fn moved(steps: &[Step], before: bool, anchor: &[String]) -> Option<String> {
    let list = steps.last()?.node();
    let mut predicate = String::new();
    for (k, v) in list.list_keys().zip(anchor) {
        let quoted = match (v.contains('\''), v.contains('"')) {
            (false, _) => format!("'{v}'"),
            (true, false) => format!("\"{v}\""),
            (true, true) => return None,
        };
        predicate.push_str(&format!("[{}={quoted}]", k.name()));
    }
    let attrs = format!(
        " {NC_ATTR} nc:operation=\"merge\" xmlns:yang=\"urn:ietf:params:xml:ns:yang:1\" yang:insert=\"{}\" yang:key=\"{}\"",
        if before { "before" } else { "after" },
        esc(&predicate)
    );
    Some(wrap_with(steps, "", &attrs))
}

/// `inner` wrapped in the elements the steps name, `attrs` on the innermost.
fn wrap_with(steps: &[Step], inner: &str, attrs: &str) -> String {
    let mut xml = inner.to_owned();
    for (i, s) in steps.iter().enumerate().rev() {
        let n = s.node();
        let attr = match i + 1 == steps.len() {
            true => attrs.to_owned(),
            false => String::new(),
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
pub fn field_edit(f: &Field, form: &Form, current: &[String]) -> Result<Option<String>, String> {
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
pub fn sort_errors(errors: &[ConfigError], fields: &[Field], sub: &mut Submitted) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::error::{ConfigError, ErrorTag};

    fn extension_field(name: &str) -> Field {
        let steps = schema::resolve(&["pbx".into(), "extension".into()]).unwrap();
        schema::fields(steps[1].node())
            .into_iter()
            .find(|f| f.name == name)
            .unwrap()
    }

    #[test]
    fn only_changed_fields_are_edited() {
        let name = extension_field("display-name");
        let cur = vec!["Reception".to_owned()];
        let same = Form::from_pairs(&[("f.display-name", " Reception ")]);
        assert_eq!(field_edit(&name, &same, &cur).unwrap(), None);
        let absent = Form::from_pairs(&[]);
        assert_eq!(
            field_edit(&name, &absent, &cur).unwrap(),
            None,
            "not on the form"
        );
        let cleared = Form::from_pairs(&[("f.display-name", "")]);
        let edit = field_edit(&name, &cleared, &cur).unwrap().unwrap();
        assert!(edit.contains("nc:operation=\"remove\""), "{edit}");
        let new = Form::from_pairs(&[("f.display-name", "<b>Desk</b>")]);
        let edit = field_edit(&name, &new, &cur).unwrap().unwrap();
        assert!(edit.contains("&lt;b&gt;Desk&lt;/b&gt;"), "escaped: {edit}");
    }

    #[test]
    fn secrets_are_kept_unless_typed_and_leaf_lists_diffed() {
        let password = extension_field("password");
        let cur = vec!["old".to_owned()];
        let empty = Form::from_pairs(&[("f.password", "")]);
        assert_eq!(field_edit(&password, &empty, &cur).unwrap(), None);
        let group = extension_field("group");
        let cur = vec!["a".to_owned(), "b".to_owned()];
        let form = Form::from_pairs(&[("f.group", "b\r\nc\n\n")]);
        let edit = field_edit(&group, &form, &cur).unwrap().unwrap();
        assert!(edit.contains("nc:operation=\"remove\">a<"), "{edit}");
        assert!(edit.contains(">c<") && !edit.contains(">b<"), "{edit}");
    }

    #[test]
    fn edits_are_wrapped_in_their_path_with_keys() {
        let steps = schema::resolve(&["pbx".into(), "extension".into(), "1&2".into()]).unwrap();
        let xml = wrap(&steps, "", Some("delete"));
        assert!(xml.starts_with("<pbx xmlns=\"urn:besip:pbx\">"), "{xml}");
        assert!(
            xml.contains("nc:operation=\"delete\"><number>1&amp;2</number>"),
            "{xml}"
        );
        assert!(besip_core::xml::parse(&xml).is_ok(), "{xml}");
    }

    #[test]
    fn an_error_path_names_its_leaf() {
        let e = ConfigError::new(ErrorTag::InvalidValue, "bad")
            .at("/besip-pbx:pbx/extension[number='a/b']/max-contacts");
        assert_eq!(field_of(&e).as_deref(), Some("max-contacts"));
    }
}
