//! RFC 8072 YANG Patch: a PATCH of a data resource with
//! `application/yang-patch+json` or `+xml` carries an ordered list of edits
//! (create, delete, insert, merge, move, replace, remove), each on a target
//! below that resource. They become one `<edit-config>`, one top-level
//! element per edit in their order (the editor applies them in turn), so
//! the datastore takes all of them or none; the answer is a
//! `yang-patch-status`, naming the edit an error belongs to.

use crate::api_path::ApiPath;
use crate::backend::Backend;
use crate::context::Ctx;
use crate::convert;
use crate::edit::{
    check_same_resource, edit, mark_target, path_end, protocol, set_insert, set_operation,
    version_headers, Datastore,
};
use crate::errors::Format;
use crate::query::Query;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::schema::Schema;
use besip_core::xml::{escape, Element};
use serde_json::{json, Value};
use yang2::schema::SchemaNodeKind;

pub const JSON_MEDIA: &str = "application/yang-patch+json";
pub const XML_MEDIA: &str = "application/yang-patch+xml";
pub const NS: &str = "urn:ietf:params:xml:ns:yang:ietf-yang-patch";
/// More edits than this in one patch are refused (each is a walk of the tree).
const MAX_EDITS: usize = 1000;

/// The Content-Type is a YANG Patch media type.
pub fn is_patch(headers: &HeaderMap) -> bool {
    patch_format(headers).is_some()
}

/// The format of a YANG Patch body (and, unless Accept says, of its answer).
pub fn patch_format(headers: &HeaderMap) -> Option<Format> {
    let media = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = media.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        JSON_MEDIA => Some(Format::Json),
        XML_MEDIA => Some(Format::Xml),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Create,
    Delete,
    Insert,
    Merge,
    Move,
    Replace,
    Remove,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "create" => Operation::Create,
            "delete" => Operation::Delete,
            "insert" => Operation::Insert,
            "merge" => Operation::Merge,
            "move" => Operation::Move,
            "replace" => Operation::Replace,
            "remove" => Operation::Remove,
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Edit {
    id: String,
    operation: Operation,
    target: String,
    point: Option<String>,
    place: Option<String>,
    value: Vec<Element>,
}

#[derive(Debug)]
struct Patch {
    id: String,
    edits: Vec<Edit>,
}

fn malformed(message: impl Into<String>) -> ConfigError {
    protocol(ErrorTag::MalformedMessage, message)
}

fn invalid(message: impl Into<String>) -> ConfigError {
    protocol(ErrorTag::InvalidValue, message)
}

fn parse_json(body: &[u8], max_elements: usize) -> Result<Patch, ConfigError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the YANG Patch is not JSON: {e}")))?;
    let patch = doc
        .get("ietf-yang-patch:yang-patch")
        .filter(|_| doc.as_object().is_some_and(|o| o.len() == 1))
        .ok_or_else(|| malformed("the body must be one \"ietf-yang-patch:yang-patch\" object"))?;
    let text = |v: &Value, name: &str| -> Result<Option<String>, ConfigError> {
        match v.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(malformed(format!("'{name}' must be a string"))),
        }
    };
    let id = text(patch, "patch-id")?.ok_or_else(|| malformed("the patch has no patch-id"))?;
    let list = match patch.get("edit") {
        Some(Value::Array(list)) => list,
        _ => return Err(malformed("the patch has no edit list")),
    };
    let mut edits = Vec::with_capacity(list.len().min(MAX_EDITS));
    for e in list {
        if edits.len() == MAX_EDITS {
            return Err(too_many());
        }
        let value = match e.get("value") {
            None => Vec::new(),
            Some(v @ Value::Object(_)) => {
                let bytes = serde_json::to_vec(v).map_err(|e| malformed(e.to_string()))?;
                convert::json_to_elements(&bytes, max_elements)?
            }
            Some(_) => return Err(malformed("an edit's value must be an object")),
        };
        edits.push(edit_of(
            text(e, "edit-id")?,
            text(e, "operation")?,
            text(e, "target")?,
            text(e, "point")?,
            text(e, "where")?,
            value,
        )?);
    }
    Ok(Patch { id, edits })
}

fn parse_xml(body: &[u8], max_elements: usize) -> Result<Patch, ConfigError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("the YANG Patch is not UTF-8"))?;
    let roots = besip_core::xml::parse_limited(text, max_elements).map_err(|e| {
        if e.is_limit() {
            ConfigError::new(ErrorTag::TooBig, e.to_string())
        } else {
            malformed(format!("the YANG Patch is not XML: {e}"))
        }
    })?;
    let [patch] = roots.as_slice() else {
        return Err(malformed("the body must be one <yang-patch> element"));
    };
    if patch.name != "yang-patch" || patch.namespace != NS {
        return Err(malformed(format!(
            "the body must be <yang-patch xmlns=\"{NS}\">"
        )));
    }
    let text = |e: &Element, name: &str| e.child(name).map(|c| c.trimmed_text().to_owned());
    let id = text(patch, "patch-id").ok_or_else(|| malformed("the patch has no patch-id"))?;
    let mut edits = Vec::new();
    for e in patch.children.iter().filter(|c| c.name == "edit") {
        if edits.len() == MAX_EDITS {
            return Err(too_many());
        }
        let value = e
            .child("value")
            .map(|v| v.children.clone())
            .unwrap_or_default();
        edits.push(edit_of(
            text(e, "edit-id"),
            text(e, "operation"),
            text(e, "target"),
            text(e, "point"),
            text(e, "where"),
            value,
        )?);
    }
    Ok(Patch { id, edits })
}

fn too_many() -> ConfigError {
    ConfigError::new(
        ErrorTag::TooBig,
        format!("a YANG Patch holds at most {MAX_EDITS} edits"),
    )
}

fn edit_of(
    id: Option<String>,
    operation: Option<String>,
    target: Option<String>,
    point: Option<String>,
    place: Option<String>,
    value: Vec<Element>,
) -> Result<Edit, ConfigError> {
    let id = id.ok_or_else(|| malformed("an edit has no edit-id"))?;
    let raw = operation.ok_or_else(|| malformed(format!("edit {id} has no operation")))?;
    let operation = Operation::parse(&raw).ok_or_else(|| {
        invalid(format!(
            "edit {id}: '{raw}' is not create, delete, insert, merge, move, replace or remove"
        ))
    })?;
    let target = target.ok_or_else(|| malformed(format!("edit {id} has no target")))?;
    Ok(Edit {
        id,
        operation,
        target,
        point,
        place,
        value,
    })
}

/// `target` (or a point) below the patched resource at `base` (its raw
/// path): `/` is the resource itself.
fn below(base: &str, target: &str) -> Result<String, ConfigError> {
    if !target.starts_with('/') {
        return Err(invalid(format!("target '{target}' does not start with /")));
    }
    Ok(match target {
        "/" => base.to_owned(),
        t => format!("{}{t}", base.trim_end_matches('/')),
    })
}

/// The `<config>` elements of one edit, and its target's XPath (what its
/// errors' paths start with).
fn config_of(base: &str, e: &Edit) -> Result<(Vec<Element>, String), ConfigError> {
    let schema = Schema::get().map_err(|e| protocol(ErrorTag::OperationFailed, e.to_string()))?;
    let path = ApiPath::parse(schema, &below(base, &e.target)?)?;
    if path.is_root() {
        return Err(invalid("an edit names a node, not the whole datastore"));
    }
    let placed = |e: &Edit| -> Result<Query, ConfigError> {
        let place = e
            .place
            .clone()
            .ok_or_else(|| malformed(format!("{:?} needs 'where'", e.operation).to_lowercase()))?;
        if !matches!(place.as_str(), "before" | "after" | "first" | "last") {
            return Err(invalid(format!(
                "where '{place}' is not before, after, first or last"
            )));
        }
        let point = match (place.as_str(), &e.point) {
            ("before" | "after", Some(p)) => Some(below(base, p)?),
            ("before" | "after", None) => {
                return Err(malformed(format!("where '{place}' needs a point")))
            }
            (_, _) => None,
        };
        Ok(Query {
            insert: Some(place),
            point,
            ..Query::default()
        })
    };
    let value = || -> Result<Element, ConfigError> {
        let [mut v] = <[Element; 1]>::try_from(e.value.clone()).map_err(|v| {
            malformed(format!(
                "the value must hold exactly the target, not {} nodes",
                v.len()
            ))
        })?;
        check_same_resource(&path, &v)?;
        if let Some(t) = path.target() {
            for (k, key) in &t.keys {
                if t.kind == SchemaNodeKind::List && v.child(k).is_none() {
                    let mut element = Element::new(&t.namespace, k);
                    element.text = key.clone();
                    v.children.insert(0, element);
                }
            }
        }
        Ok(v)
    };
    let depth = path.segments.len();
    let xpath = path.xpath().unwrap_or_default();
    let config = match e.operation {
        Operation::Create | Operation::Merge | Operation::Replace | Operation::Insert => {
            let mut v = value()?;
            let op = match e.operation {
                Operation::Merge => "merge",
                Operation::Replace => "replace",
                _ => "create",
            };
            set_operation(&mut v, op);
            if e.operation == Operation::Insert {
                set_insert(&mut v, &placed(e)?)?;
            }
            path.parent().wrap(vec![v])
        }
        Operation::Move => {
            if !e.value.is_empty() {
                return Err(invalid("a move carries no value"));
            }
            let q = placed(e)?;
            let mut config = path.wrap(vec![]);
            let last = path_end(&mut config, depth).ok_or_else(|| invalid("nothing to move"))?;
            set_operation(last, "merge");
            set_insert(last, &q)?;
            config
        }
        Operation::Delete | Operation::Remove => {
            if !e.value.is_empty() {
                return Err(invalid("a delete or remove carries no value"));
            }
            let mut config = path.wrap(vec![]);
            let op = if e.operation == Operation::Delete {
                "delete"
            } else {
                "remove"
            };
            mark_target(&mut config, depth, op);
            config
        }
    };
    Ok((config, xpath))
}

/// Applies the YANG Patch `body` to the resource at `ctx.raw_path` (its
/// If-Match already checked) of `ds`.
pub async fn apply<B: Backend>(
    ctx: &Ctx<'_, B>,
    ds: Datastore,
    body: &[u8],
) -> Result<Response, Vec<ConfigError>> {
    let format = patch_format(ctx.headers).unwrap_or(Format::Json);
    let parsed = match format {
        Format::Json => parse_json(body, ctx.max_elements),
        Format::Xml => parse_xml(body, ctx.max_elements),
    };
    let patch = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Status::failed("", vec![(None, e)]).response(ctx.format)),
    };
    // The edits' targets are below the resource, in its raw form.
    let base = ctx.raw_path;
    let mut seen = std::collections::HashSet::new();
    let mut config = Vec::new();
    let mut targets = Vec::new();
    for e in &patch.edits {
        if !seen.insert(e.id.as_str()) {
            let error = invalid(format!("edit-id '{}' is used twice", e.id));
            return Ok(
                Status::failed(&patch.id, vec![(Some(e.id.clone()), error)]).response(ctx.format)
            );
        }
        match config_of(base, e) {
            Ok((c, xpath)) => {
                config.extend(c);
                targets.push((e.id.clone(), xpath));
            }
            Err(error) => {
                return Ok(Status::failed(&patch.id, vec![(Some(e.id.clone()), error)])
                    .response(ctx.format))
            }
        }
    }
    if config.is_empty() {
        return Ok(
            Status::failed(&patch.id, vec![(None, malformed("the patch has no edits"))])
                .response(ctx.format),
        );
    }
    match edit(ctx, ds, config).await {
        Ok(()) => {
            let headers = version_headers(ctx);
            Ok((headers, Status::ok(&patch.id).response(ctx.format)).into_response())
        }
        Err(errors) => {
            let owned = errors
                .into_iter()
                .map(|error| (owner(&targets, error.path.as_deref()), error))
                .collect();
            Ok(Status::failed(&patch.id, owned).response(ctx.format))
        }
    }
}

/// The edit whose target holds `error_path` (the deepest such target).
fn owner(targets: &[(String, String)], error_path: Option<&str>) -> Option<String> {
    let path = error_path?;
    targets
        .iter()
        .filter(|(_, t)| {
            !t.is_empty()
                && path.starts_with(t.as_str())
                && matches!(path.as_bytes().get(t.len()), None | Some(b'/') | Some(b'['))
        })
        .max_by_key(|(_, t)| t.len())
        .map(|(id, _)| id.clone())
}

/// RFC 8072 §2.3 yang-patch-status.
struct Status {
    patch_id: String,
    /// Errors, each of an edit (by edit-id) or of the whole patch.
    errors: Vec<(Option<String>, ConfigError)>,
}

impl Status {
    fn ok(patch_id: &str) -> Status {
        Status {
            patch_id: patch_id.to_owned(),
            errors: Vec::new(),
        }
    }

    fn failed(patch_id: &str, errors: Vec<(Option<String>, ConfigError)>) -> Status {
        Status {
            patch_id: patch_id.to_owned(),
            errors,
        }
    }

    fn response(&self, format: Format) -> Response {
        let status = match self.errors.first() {
            None => StatusCode::OK,
            Some((_, e)) => crate::errors::status_of(e),
        };
        let body = match format {
            Format::Json => self.json(),
            Format::Xml => self.xml(),
        };
        (status, [(header::CONTENT_TYPE, format.media_type())], body).into_response()
    }

    /// The errors of edit `owner`, or of the whole patch (None).
    fn errors_of(&self, owner: Option<&str>, format: Format) -> String {
        let list: Vec<ConfigError> = self
            .errors
            .iter()
            .filter(|(o, _)| o.as_deref() == owner)
            .map(|(_, e)| e.clone())
            .collect();
        let body = crate::errors::Errors::new(format, list).body();
        // `uses rc:errors` in ietf-yang-patch: the container is in the
        // patch status's namespace, not ietf-restconf's.
        let restconf = format!("<errors xmlns=\"{}\">", crate::errors::RESTCONF_NS);
        body.replacen(&restconf, "<errors>", 1)
    }

    /// The edits with errors, each once, in the order of their errors.
    fn failed_edits(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for id in self.errors.iter().filter_map(|(o, _)| o.as_deref()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    fn json(&self) -> String {
        let errors_of = |owner: Option<&str>| -> Value {
            let doc: Value =
                serde_json::from_str(&self.errors_of(owner, Format::Json)).unwrap_or_default();
            doc["ietf-restconf:errors"].clone()
        };
        let mut status = serde_json::Map::new();
        status.insert("patch-id".into(), json!(self.patch_id));
        if self.errors.is_empty() {
            status.insert("ok".into(), json!([null]));
        }
        if self.errors.iter().any(|(o, _)| o.is_none()) {
            status.insert("errors".into(), errors_of(None));
        }
        let edits = self.failed_edits();
        if !edits.is_empty() {
            let list: Vec<Value> = edits
                .iter()
                .map(|id| json!({"edit-id": id, "errors": errors_of(Some(id))}))
                .collect();
            status.insert("edit-status".into(), json!({ "edit": list }));
        }
        json!({ "ietf-yang-patch:yang-patch-status": status }).to_string()
    }

    fn xml(&self) -> String {
        let mut out = format!(
            "<yang-patch-status xmlns=\"{NS}\"><patch-id>{}</patch-id>",
            escape(&self.patch_id)
        );
        if self.errors.is_empty() {
            out.push_str("<ok/>");
        }
        if self.errors.iter().any(|(o, _)| o.is_none()) {
            out.push_str(&self.errors_of(None, Format::Xml));
        }
        let edits = self.failed_edits();
        if !edits.is_empty() {
            out.push_str("<edit-status>");
            for id in edits {
                out.push_str(&format!(
                    "<edit><edit-id>{}</edit-id>{}</edit>",
                    escape(id),
                    self.errors_of(Some(id), Format::Xml)
                ));
            }
            out.push_str("</edit-status>");
        }
        out.push_str("</yang-patch-status>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_xml_patches_parse_to_the_same_edits() {
        let json = br#"{"ietf-yang-patch:yang-patch":{"patch-id":"p1","edit":[
            {"edit-id":"e1","operation":"create","target":"/extension=300",
             "value":{"besip-pbx:extension":[{"number":"300","password":"pw300"}]}},
            {"edit-id":"e2","operation":"move","target":"/extension=300","where":"first"},
            {"edit-id":"e3","operation":"delete","target":"/extension=301"}]}}"#;
        let xml = format!(
            "<yang-patch xmlns=\"{NS}\"><patch-id>p1</patch-id>\
<edit><edit-id>e1</edit-id><operation>create</operation><target>/extension=300</target>\
<value><extension xmlns=\"urn:besip:pbx\"><number>300</number><password>pw300</password></extension></value></edit>\
<edit><edit-id>e2</edit-id><operation>move</operation><target>/extension=300</target><where>first</where></edit>\
<edit><edit-id>e3</edit-id><operation>delete</operation><target>/extension=301</target></edit></yang-patch>"
        );
        let a = parse_json(json, 1000).expect("json");
        let b = parse_xml(xml.as_bytes(), 1000).expect("xml");
        for p in [&a, &b] {
            assert_eq!(p.id, "p1");
            let ops: Vec<Operation> = p.edits.iter().map(|e| e.operation).collect();
            assert_eq!(ops, [Operation::Create, Operation::Move, Operation::Delete]);
            assert_eq!(p.edits[0].value.len(), 1);
            assert_eq!(p.edits[0].value[0].name, "extension");
        }
        let (c, _) = config_of("/besip-pbx:pbx", &a.edits[2]).expect("delete");
        assert_eq!(
            c[0].children[0].attribute(crate::context::BASE_NS, "operation"),
            Some("delete")
        );
    }

    #[test]
    fn bad_patches_are_refused_before_anything_is_edited() {
        for bad in [
            &br#"{"ietf-yang-patch:yang-patch":{"edit":[]}}"#[..],
            br#"{"ietf-yang-patch:yang-patch":{"patch-id":"p"}}"#,
            br#"{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"edit-id":"e","operation":"explode","target":"/"}]}}"#,
            br#"{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"operation":"delete","target":"/"}]}}"#,
            br#"{"other":1}"#,
            b"not json",
        ] {
            assert!(parse_json(bad, 1000).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let edit = |op: Operation, target: &str, place: Option<&str>| Edit {
            id: "e".into(),
            operation: op,
            target: target.into(),
            point: None,
            place: place.map(str::to_owned),
            value: Vec::new(),
        };
        for e in [
            edit(Operation::Create, "/extension=1", None), // no value
            edit(Operation::Move, "/extension=1", None),   // no where
            edit(Operation::Move, "/extension=1", Some("before")), // no point
            edit(Operation::Move, "/extension=1", Some("sideways")),
            edit(Operation::Delete, "extension=1", None), // not absolute
            edit(Operation::Delete, "/nothing=1", None),
        ] {
            assert!(config_of("/besip-pbx:pbx", &e).is_err(), "{e:?}");
        }
        assert_eq!(
            owner(
                &[("a".into(), "/m:x".into()), ("b".into(), "/m:x/m:y".into())],
                Some("/m:x/m:y[k='1']/m:z")
            ),
            Some("b".into())
        );
        assert_eq!(owner(&[("a".into(), "/m:x".into())], Some("/m:xy")), None);
    }
}
