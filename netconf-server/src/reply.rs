//! Rendering `<rpc-reply>`, `<rpc-error>` and `<error-path>` (libyang's
//! JSON-style paths turned into XML XPaths with namespace declarations).

use besip_core::error::ConfigError;
use besip_core::schema::Schema;
use besip_core::xml::escape;

pub const BASE_NS: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";

/// The attributes of `<rpc>` echoed on the reply (message-id and any others).
pub fn reply_attributes(attributes: &[(String, String, String)]) -> String {
    let mut out = String::new();
    for (i, (ns, name, value)) in attributes.iter().enumerate() {
        if ns.is_empty() {
            out.push_str(&format!(" {name}=\"{}\"", escape(value)));
        } else if ns != "http://www.w3.org/2000/xmlns/" {
            out.push_str(&format!(
                " xmlns:r{i}=\"{}\" r{i}:{name}=\"{}\"",
                escape(ns),
                escape(value)
            ));
        }
    }
    out
}

pub fn reply(attributes: &str, body: &str) -> String {
    format!("<rpc-reply xmlns=\"{BASE_NS}\"{attributes}>{body}</rpc-reply>")
}

pub fn ok(attributes: &str) -> String {
    reply(attributes, "<ok/>")
}

pub fn data(attributes: &str, content: &str) -> String {
    reply(attributes, &format!("<data>{content}</data>"))
}

pub fn errors(attributes: &str, errors: &[ConfigError]) -> String {
    let body: String = errors.iter().map(rpc_error).collect();
    reply(attributes, &body)
}

pub fn rpc_error(e: &ConfigError) -> String {
    let mut out = String::from("<rpc-error>");
    out.push_str(&format!(
        "<error-type>{}</error-type><error-tag>{}</error-tag><error-severity>error</error-severity>",
        e.error_type.as_str(),
        e.tag.as_str()
    ));
    if let Some(app) = &e.app_tag {
        out.push_str(&format!("<error-app-tag>{}</error-app-tag>", escape(app)));
    }
    if let Some(path) = &e.path {
        let (xpath, decls) = xml_error_path(path);
        out.push_str(&format!(
            "<error-path{decls}>{}</error-path>",
            escape(&xpath)
        ));
    }
    out.push_str(&format!(
        "<error-message xml:lang=\"en\">{}</error-message>",
        escape(&e.message)
    ));
    if !e.info.is_empty() {
        out.push_str("<error-info>");
        for (name, value) in &e.info {
            out.push_str(&format!("<{name}>{}</{name}>", escape(value)));
        }
        out.push_str("</error-info>");
    }
    out.push_str("</rpc-error>");
    out
}

/// `/besip-system:system/user[name='x']` -> (`/system:system/system:user[system:name='x']`,
/// ` xmlns:system="urn:besip:system"`). Module names without a known module are kept.
pub fn xml_error_path(path: &str) -> (String, String) {
    let schema = Schema::get().ok();
    let mut declared: Vec<(String, String)> = Vec::new();
    let mut prefix_of = |module: &str| -> String {
        let found = schema.and_then(|s| s.modules().iter().find(|m| m.name == module));
        match found {
            Some(m) => {
                if !declared.iter().any(|(p, _)| *p == m.prefix) {
                    declared.push((m.prefix.clone(), m.namespace.clone()));
                }
                m.prefix.clone()
            }
            None => module.to_owned(),
        }
    };
    let mut out = String::new();
    let mut current_prefix = String::new();
    for segment in split_segments(path) {
        let (name_part, predicates) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment.as_str(), ""),
        };
        let name = match name_part.split_once(':') {
            Some((module, name)) => {
                current_prefix = prefix_of(module);
                name
            }
            None => name_part,
        };
        out.push('/');
        if !current_prefix.is_empty() {
            out.push_str(&current_prefix);
            out.push(':');
        }
        out.push_str(name);
        out.push_str(&prefix_predicates(predicates, &current_prefix));
    }
    let decls = declared
        .iter()
        .map(|(p, ns)| format!(" xmlns:{p}=\"{}\"", escape(ns)))
        .collect();
    (out, decls)
}

/// Split a path at `/` outside predicates and quotes.
fn split_segments(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quote) = (0, None::<char>);
    for c in path.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('[', None) => depth += 1,
            (']', None) => depth -= 1,
            ('/', None) if depth == 0 => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// `[name='x'][m:k='y']` -> `[p:name='x'][p:k='y']`.
fn prefix_predicates(predicates: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return predicates.to_owned();
    }
    let mut out = String::new();
    let mut quote = None::<char>;
    let mut at_name = false;
    for c in predicates.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('[', None) => {
                out.push('[');
                at_name = true;
                continue;
            }
            _ => {}
        }
        if at_name {
            at_name = false;
            if c.is_ascii_alphabetic() || c == '_' {
                out.push_str(prefix);
                out.push(':');
            }
        }
        if at_name && c == ':' {
            continue;
        }
        out.push(c);
    }
    // A predicate already qualified ("m:k") keeps only our prefix.
    out.replace(&format!("{prefix}:{}:", ""), &format!("{prefix}:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_json_paths() {
        let (p, d) = xml_error_path("/besip-system:system/besip-system:user[name='a/b']");
        assert_eq!(p, "/system:system/system:user[system:name='a/b']");
        assert_eq!(d, " xmlns:system=\"urn:besip:system\"");
        let (p, _) = xml_error_path("/besip-system:system/netconf/port");
        assert_eq!(p, "/system:system/system:netconf/system:port");
    }
}
