//! Bodies between RESTCONF and the datastore: data read as XML from core
//! goes out as RFC 7951 JSON (through libyang, which knows the types) or
//! XML; JSON request bodies become XML elements structurally (the
//! datastore's editor then checks every value against the schema, with
//! error paths), as do RPC outputs and notifications the other way.

use crate::errors::Format;
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::schema::{describe, Schema};
use besip_core::xml::Element;
use serde_json::{Map, Value};
use yang2::data::{
    Data, DataFormat, DataParserFlags, DataPrinterFlags, DataTree, DataValidationFlags,
};
use yang2::iter::NodeIterable;

pub const RESTCONF_NS: &str = crate::errors::RESTCONF_NS;

/// How a read is shaped (query parameters applied to the reply).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// RFC 8040 depth (1: the target only), None: unbounded.
    pub depth: Option<u32>,
    /// content=nonconfig: leave out configuration leaves.
    pub nonconfig_only: bool,
}

fn failed(message: String) -> ConfigError {
    ConfigError::new(ErrorTag::OperationFailed, message)
}

fn not_found(xpath: &str) -> ConfigError {
    ConfigError::protocol(
        ErrorTag::InvalidValue,
        format!("there is no data at {xpath}"),
    )
    .at(xpath)
}

/// `Some(text)` of the read data in `format`: the whole datastore when
/// `target` is None, else the node(s) at `target`. Err invalid-value when the
/// target does not exist (404).
pub fn data_reply(
    xml: &str,
    target: Option<(&str, &str)>,
    format: Format,
    shape: Shape,
) -> Result<String, ConfigError> {
    let schema = Schema::get().map_err(|e| failed(e.to_string()))?;
    let mut tree = if xml.trim().is_empty() {
        DataTree::new(schema.context())
    } else {
        // lyd_parse_data_mem reads a C string: the NUL ends it.
        DataTree::parse_string(
            schema.context(),
            format!("{xml}\0"),
            DataFormat::XML,
            DataParserFlags::NO_VALIDATION,
            DataValidationFlags::empty(),
        )
        .map_err(|e| {
            failed(format!(
                "cannot re-read the datastore's reply: {}",
                describe(&e)
            ))
        })?
    };
    if shape.nonconfig_only {
        tree = state_only(&tree)?;
    }
    let flags = || DataPrinterFlags::WD_ALL | DataPrinterFlags::SHRINK;
    let Some((xpath, qualified)) = target else {
        let all = tree_text(&tree, format, flags() | DataPrinterFlags::WITH_SIBLINGS)?;
        return Ok(match format {
            Format::Json => {
                let inner: Value = if all.trim().is_empty() {
                    Value::Object(Map::new())
                } else {
                    serde_json::from_str(&all).map_err(|e| failed(e.to_string()))?
                };
                let inner = prune_json_members(inner, shape.depth);
                serde_json::json!({ "ietf-restconf:data": inner }).to_string()
            }
            Format::Xml => {
                let mut data = Element::new(RESTCONF_NS, "data");
                data.children = parse_xml(&all)?;
                for c in &mut data.children {
                    prune_xml(c, shape.depth);
                }
                data.to_xml()
            }
        });
    };
    let set = tree.find_xpath(xpath).map_err(|_| not_found(xpath))?;
    let nodes: Vec<_> = set.into_iter().collect();
    if nodes.is_empty() {
        return Err(not_found(xpath));
    }
    match format {
        Format::Json => {
            // libyang names a nested node without its module: the reply's
            // one member is named as RFC 8040 wants (module:name).
            let mut merged: Option<Value> = None;
            for node in &nodes {
                let text = node
                    .print_string(DataFormat::JSON, flags())
                    .map_err(|e| failed(describe(&e)))?
                    .unwrap_or_default();
                let v: Value = serde_json::from_str(&text).map_err(|e| failed(e.to_string()))?;
                let Value::Object(m) = v else { continue };
                let Some((_, value)) = m.into_iter().next() else {
                    continue;
                };
                merged = Some(match (merged, value) {
                    (Some(Value::Array(mut a)), Value::Array(b)) => {
                        a.extend(b);
                        Value::Array(a)
                    }
                    (_, value) => value,
                });
            }
            let value = merged.ok_or_else(|| not_found(xpath))?;
            let doc = serde_json::json!({ qualified: value });
            Ok(prune_json_members(doc, shape.depth).to_string())
        }
        Format::Xml => {
            let mut out = String::new();
            for node in &nodes {
                let text = node
                    .print_string(DataFormat::XML, flags())
                    .map_err(|e| failed(describe(&e)))?
                    .unwrap_or_default();
                let mut roots = parse_xml(&text)?;
                for r in &mut roots {
                    prune_xml(r, shape.depth);
                    out.push_str(&r.to_xml());
                }
            }
            Ok(out)
        }
    }
}

fn tree_text(
    tree: &DataTree<'static>,
    format: Format,
    flags: DataPrinterFlags,
) -> Result<String, ConfigError> {
    if tree.reference().is_none() {
        return Ok(String::new());
    }
    let f = match format {
        Format::Json => DataFormat::JSON,
        Format::Xml => DataFormat::XML,
    };
    Ok(tree
        .print_string(f, flags)
        .map_err(|e| failed(describe(&e)))?
        .unwrap_or_default())
}

fn parse_xml(text: &str) -> Result<Vec<Element>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    besip_core::xml::parse(text).map_err(|e| failed(e.to_string()))
}

/// content=nonconfig: a new tree of the state nodes (with their ancestors
/// and list keys), built by copying rather than freeing nodes in place.
fn state_only(tree: &DataTree<'static>) -> Result<DataTree<'static>, ConfigError> {
    let schema = Schema::get().map_err(|e| failed(e.to_string()))?;
    let mut out = DataTree::new(schema.context());
    for node in tree.traverse() {
        let state = !node.schema().is_config();
        let parent_is_config = node.parent().is_none_or(|p| p.schema().is_config());
        if state && parent_is_config {
            let copy = node.duplicate(true).map_err(|e| failed(describe(&e)))?;
            out.merge(&copy).map_err(|e| failed(describe(&e)))?;
        }
    }
    Ok(out)
}

/// depth: members deeper than `depth` levels (the outer object's members
/// are level 1) are dropped; list entries count as their list.
pub fn prune_json_members(v: Value, depth: Option<u32>) -> Value {
    fn prune(v: Value, left: u32) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|_| left > 0)
                    .map(|(k, v)| (k, prune_value(v, left - 1)))
                    .collect(),
            ),
            other => other,
        }
    }
    fn prune_value(v: Value, left: u32) -> Value {
        match v {
            Value::Object(_) => prune(v, left),
            Value::Array(a) => Value::Array(a.into_iter().map(|i| prune_value(i, left)).collect()),
            other => other,
        }
    }
    match depth {
        None => v,
        Some(d) => prune(v, d),
    }
}

/// depth for XML: `e` is level 1.
pub fn prune_xml(e: &mut Element, depth: Option<u32>) {
    let Some(d) = depth else { return };
    if d <= 1 {
        e.children.clear();
        return;
    }
    for c in &mut e.children {
        prune_xml(c, Some(d - 1));
    }
}

fn malformed(message: String) -> ConfigError {
    ConfigError::protocol(ErrorTag::MalformedMessage, message)
}

/// A JSON request body (RFC 7951) as XML elements. Member names of the top
/// level are `module:name`; inner ones inherit the module of their parent.
pub fn json_to_elements(body: &[u8], max_elements: usize) -> Result<Vec<Element>, ConfigError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
    let Value::Object(members) = value else {
        return Err(malformed("the body must be a JSON object".into()));
    };
    let mut budget = max_elements;
    members_to_elements(&members, None, &mut budget, 0)
}

fn module_namespace(module: &str) -> Result<String, ConfigError> {
    let schema = Schema::get().map_err(|e| failed(e.to_string()))?;
    schema
        .module_by_name(module)
        .map(|m| m.namespace().to_owned())
        .ok_or_else(|| {
            ConfigError::protocol(
                ErrorTag::UnknownNamespace,
                format!("there is no module '{module}' on this server"),
            )
            .with_info("bad-namespace", module)
        })
}

fn members_to_elements(
    members: &Map<String, Value>,
    parent: Option<&(String, String)>,
    budget: &mut usize,
    level: usize,
) -> Result<Vec<Element>, ConfigError> {
    if level > besip_core::xml::MAX_DEPTH {
        return Err(malformed("the body nests too deeply".into()));
    }
    let mut out = Vec::new();
    for (key, value) in members {
        if key.starts_with('@') {
            continue; // RFC 7951 metadata: not used in edits here
        }
        let module = match key.split_once(':') {
            Some((m, n)) => (m.to_owned(), n.to_owned()),
            None => match parent {
                Some((m, _)) => (m.clone(), key.clone()),
                None => {
                    return Err(malformed(format!(
                        "'{key}': a top-level member is named module:node"
                    )))
                }
            },
        };
        let namespace = match parent {
            Some((m, ns)) if *m == module.0 => ns.clone(),
            _ => module_namespace(&module.0)?,
        };
        let here = (module.0.clone(), namespace.clone());
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for item in items {
            *budget = budget
                .checked_sub(1)
                .ok_or_else(|| ConfigError::new(ErrorTag::TooBig, "the body has too many nodes"))?;
            let mut e = Element::new(&namespace, &module.1);
            match item {
                Value::Object(m) => {
                    e.children = members_to_elements(m, Some(&here), budget, level + 1)?
                }
                Value::Array(inner) if inner.len() == 1 && inner[0].is_null() => {} // empty
                Value::Null => {}
                Value::String(s) => {
                    e.text = s.clone();
                    identity_prefix(&mut e);
                }
                Value::Number(n) => e.text = n.to_string(),
                Value::Bool(b) => e.text = b.to_string(),
                Value::Array(_) => {
                    return Err(malformed(format!(
                        "'{key}': nested arrays are not YANG data"
                    )))
                }
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// An identityref value `module:identity` needs its prefix bound in XML.
fn identity_prefix(e: &mut Element) {
    let Some((prefix, rest)) = e.text.split_once(':') else {
        return;
    };
    if rest.is_empty() || prefix.contains(|c: char| c.is_whitespace() || c == '/') {
        return;
    }
    if let Ok(ns) = module_namespace(prefix) {
        e.namespace_declarations.push((prefix.to_owned(), ns));
    }
}

/// XML elements (RPC output, notification content) as RFC 7951-style JSON
/// members, structurally: repeated names become arrays, text stays text.
pub fn elements_to_json(elements: &[Element], parent_ns: Option<&str>) -> Map<String, Value> {
    let schema = Schema::get().ok();
    let mut out: Map<String, Value> = Map::new();
    for e in elements {
        let key = if parent_ns == Some(e.namespace.as_str()) {
            e.name.clone()
        } else {
            let module = schema
                .and_then(|s| s.module_by_namespace(&e.namespace))
                .map(|m| m.name().to_owned())
                .unwrap_or_else(|| e.namespace.clone());
            format!("{module}:{}", e.name)
        };
        let value = if e.children.is_empty() {
            Value::String(e.trimmed_text().to_owned())
        } else {
            Value::Object(elements_to_json(&e.children, Some(&e.namespace)))
        };
        match out.get_mut(&key) {
            Some(Value::Array(a)) => a.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                out.insert(key, value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_become_namespaced_elements() {
        let body = br#"{"besip-pbx:extension":[{"number":"100","display-name":"A"}]}"#;
        let e = json_to_elements(body, 100).unwrap();
        assert_eq!(e[0].namespace, "urn:besip:pbx");
        assert_eq!(e[0].child("display-name").unwrap().text, "A");
        assert!(json_to_elements(b"{\"nope:x\":1}", 100).is_err());
        assert!(json_to_elements(b"{\"x\":1}", 100).is_err());
        assert!(json_to_elements(b"[1", 100).is_err());
        assert!(json_to_elements(br#"{"besip-pbx:pbx":{"extension":[{},{},{}]}}"#, 3).is_err());
    }

    #[test]
    fn data_reply_names_the_target_with_its_module() {
        let xml = "<pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><display-name>A</display-name></extension></pbx>";
        let text = data_reply(
            xml,
            Some((
                "/besip-pbx:pbx/besip-pbx:extension[number='100']",
                "besip-pbx:extension",
            )),
            Format::Json,
            Shape::default(),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["besip-pbx:extension"][0]["display-name"], "A");
        let missing = data_reply(
            xml,
            Some(("/besip-pbx:pbx/besip-pbx:extension[number='9']", "x")),
            Format::Json,
            Shape::default(),
        );
        assert!(missing.is_err());
        let root = data_reply(
            xml,
            None,
            Format::Json,
            Shape {
                depth: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(root, r#"{"ietf-restconf:data":{"besip-pbx:pbx":{}}}"#);
    }
}
