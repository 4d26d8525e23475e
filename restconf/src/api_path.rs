//! RFC 8040 §3.5.3 api-path: `/module:node/list=key1,key2/child`, resolved
//! against the YANG schema of the box into XPath (for reads) and XML
//! ancestors (for edits).

use besip_core::error::{ConfigError, ErrorTag};
use besip_core::schema::{data_child, Schema};
use besip_core::xml::Element;
use yang2::schema::{SchemaNode, SchemaNodeKind};

/// One step of a resolved path.
#[derive(Debug, Clone)]
pub struct Segment {
    pub module: String,
    pub namespace: String,
    pub name: String,
    pub kind: SchemaNodeKind,
    /// Key leaf names and values (lists); the value (leaf-lists).
    pub keys: Vec<(String, String)>,
    pub schema: SchemaNode<'static>,
}

/// A resolved api-path; empty: the whole datastore.
#[derive(Debug, Clone, Default)]
pub struct ApiPath {
    pub segments: Vec<Segment>,
}

fn bad(tag: ErrorTag, message: String) -> ConfigError {
    ConfigError::protocol(tag, message)
}

/// Percent-decoding of one path segment piece (RFC 3986).
pub fn percent_decode(s: &str) -> Result<String, ConfigError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    bad(
                        ErrorTag::InvalidValue,
                        format!("bad percent-encoding in '{s}'"),
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(ErrorTag::InvalidValue, format!("'{s}' is not UTF-8")))
}

impl ApiPath {
    /// Resolve the part of the URL path after `/data` (or `/ds/<name>`).
    pub fn parse(schema: &'static Schema, path: &str) -> Result<ApiPath, ConfigError> {
        let mut segments: Vec<Segment> = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            let (name_part, keys_part) = match raw.split_once('=') {
                Some((n, k)) => (n, Some(k)),
                None => (raw, None),
            };
            let name_part = percent_decode(name_part)?;
            let (module, name) = match name_part.split_once(':') {
                Some((m, n)) => (m.to_owned(), n.to_owned()),
                None => match segments.last() {
                    Some(parent) => (parent.module.clone(), name_part.clone()),
                    None => {
                        return Err(bad(
                            ErrorTag::InvalidValue,
                            format!("'{name_part}': the first node of a path names its module (module:node)"),
                        ))
                    }
                },
            };
            let node = match segments.last() {
                None => {
                    let m = schema.module_by_name(&module).ok_or_else(|| {
                        bad(
                            ErrorTag::UnknownNamespace,
                            format!("there is no module '{module}' on this server"),
                        )
                    })?;
                    m.data().find(|n| n.name() == name).or_else(|| {
                        m.data().find_map(|n| {
                            matches!(n.kind(), SchemaNodeKind::Choice)
                                .then(|| data_child(&n, &module, &name))
                                .flatten()
                        })
                    })
                }
                Some(parent) => data_child(&parent.schema, &module, &name),
            }
            .ok_or_else(|| {
                bad(
                    ErrorTag::InvalidValue,
                    format!("there is no node '{module}:{name}' at this place of the schema"),
                )
            })?;
            let keys = match (node.kind(), keys_part) {
                (SchemaNodeKind::List, Some(k)) => {
                    let names: Vec<String> =
                        node.list_keys().map(|k| k.name().to_owned()).collect();
                    let values = k
                        .split(',')
                        .map(percent_decode)
                        .collect::<Result<Vec<_>, _>>()?;
                    if values.len() != names.len() {
                        return Err(bad(
                            ErrorTag::InvalidValue,
                            format!(
                                "list '{name}' has {} key(s) ({}); the path gives {}",
                                names.len(),
                                names.join(", "),
                                values.len()
                            ),
                        ));
                    }
                    names.into_iter().zip(values).collect()
                }
                (SchemaNodeKind::LeafList, Some(v)) => vec![(name.clone(), percent_decode(v)?)],
                (_, Some(_)) => {
                    return Err(bad(
                        ErrorTag::InvalidValue,
                        format!("'{name}' is not a list: it takes no key (=...)"),
                    ))
                }
                (_, None) => Vec::new(),
            };
            segments.push(Segment {
                namespace: node.module().namespace().to_owned(),
                module,
                name,
                kind: node.kind(),
                keys,
                schema: node,
            });
        }
        Ok(ApiPath { segments })
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn target(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// The same path without its last step.
    pub fn parent(&self) -> ApiPath {
        let mut segments = self.segments.clone();
        segments.pop();
        ApiPath { segments }
    }

    /// XPath with module names as prefixes (libyang's JSON form); also the
    /// RFC 8040 error-path of the resource.
    pub fn xpath(&self) -> Result<String, ConfigError> {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.push_str(&s.module);
            out.push(':');
            out.push_str(&s.name);
            for (k, v) in &s.keys {
                let key = if s.kind == SchemaNodeKind::LeafList {
                    "."
                } else {
                    k.as_str()
                };
                let quoted = if !v.contains('\'') {
                    format!("'{v}'")
                } else if !v.contains('"') {
                    format!("\"{v}\"")
                } else {
                    return Err(bad(
                        ErrorTag::InvalidValue,
                        "a key with both kinds of quotes cannot be addressed".into(),
                    ));
                };
                out.push_str(&format!("[{key}={quoted}]"));
            }
        }
        Ok(out)
    }

    /// Prefix → namespace for `xpath()`.
    pub fn namespaces(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for s in &self.segments {
            if !out.iter().any(|(p, _)| *p == s.module) {
                out.push((s.module.clone(), s.namespace.clone()));
            }
        }
        out
    }

    /// `inner` wrapped in the elements of this path (list entries with their
    /// keys), for an edit-config `<config>`.
    pub fn wrap(&self, inner: Vec<Element>) -> Vec<Element> {
        let mut content = inner;
        for s in self.segments.iter().rev() {
            let mut e = Element::new(&s.namespace, &s.name);
            if s.kind == SchemaNodeKind::LeafList {
                // A leaf-list entry has no children: its value is its text.
                if let Some((_, v)) = s.keys.first() {
                    e.text = v.clone();
                }
            } else {
                for (k, v) in &s.keys {
                    let mut key = Element::new(&s.namespace, k);
                    key.text = v.clone();
                    e.children.push(key);
                }
                e.children.extend(content);
            }
            content = vec![e];
        }
        content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_lists_and_defaults_the_module() {
        let schema = Schema::get().unwrap();
        let p = ApiPath::parse(schema, "/besip-pbx:pbx/extension=10%2C0/display-name").unwrap();
        assert_eq!(
            p.xpath().unwrap(),
            "/besip-pbx:pbx/besip-pbx:extension[number='10,0']/besip-pbx:display-name"
        );
        let wrapped = p.parent().wrap(vec![]);
        assert_eq!(wrapped[0].children[0].children[0].text, "10,0");
    }

    #[test]
    fn refuses_unknown_modules_nodes_and_key_counts() {
        let schema = Schema::get().unwrap();
        assert!(ApiPath::parse(schema, "/nope:x").is_err());
        assert!(ApiPath::parse(schema, "/besip-pbx:nothing").is_err());
        assert!(ApiPath::parse(schema, "/besip-pbx:pbx/extension=1,2").is_err());
        assert!(ApiPath::parse(schema, "/besip-pbx:pbx=1").is_err());
        assert!(ApiPath::parse(schema, "pbx").is_err());
        assert!(ApiPath::parse(schema, "/besip-pbx:pbx/extension=%zz").is_err());
    }
}
