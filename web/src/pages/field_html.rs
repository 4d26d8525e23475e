//! One form field's HTML from its schema description: the input its type
//! asks for, its value, hint, description and error.

use crate::html::esc;
use crate::schema::{Field, Input};

/// One field of a form. `current`: its values (one for a leaf).
pub fn field_html(
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
