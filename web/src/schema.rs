//! The YANG schema as the forms see it: a page URL resolved to schema steps
//! (`pbx/extension/100` → container `pbx`, entry of list `extension` with
//! key `100`), and each leaf turned into a field description (type, enum
//! members, ranges, default, units, description). Nothing here names a
//! node of our modules: a new leaf in YANG is a new field on its page.

use besip_core::schema::Schema;
use besip_core::uci_map::data_children;
use yang2::ffi;
use yang2::schema::{DataValueType, SchemaLeafType, SchemaNode, SchemaNodeKind};

/// One resolved step of a page path.
#[derive(Clone)]
pub enum Step {
    Container(SchemaNode<'static>),
    /// A list entry and its key values in key order.
    Entry(SchemaNode<'static>, Vec<String>),
    /// A whole list (the list page: its entries and the "add" form).
    List(SchemaNode<'static>),
}

impl Step {
    pub fn node(&self) -> &SchemaNode<'static> {
        match self {
            Step::Container(n) | Step::Entry(n, _) | Step::List(n) => n,
        }
    }
}

/// The top containers of the besip modules (`system`, `pbx`, ...), in the
/// order the schema lists its modules.
pub fn top_nodes() -> Vec<SchemaNode<'static>> {
    besip_shell::path::top_nodes()
        .into_iter()
        .filter(|n| n.is_config())
        .collect()
}

/// Configuration children of a node (choices and cases looked through).
pub fn config_children(node: &SchemaNode<'static>) -> Vec<SchemaNode<'static>> {
    data_children(node)
        .into_iter()
        .filter(|c| c.is_config())
        .collect()
}

/// State (config false) children of a node.
pub fn state_children(node: &SchemaNode<'static>) -> Vec<SchemaNode<'static>> {
    data_children(node)
        .into_iter()
        .filter(|c| !c.is_config())
        .collect()
}

pub fn is_leafish(node: &SchemaNode<'static>) -> bool {
    matches!(node.kind(), SchemaNodeKind::Leaf | SchemaNodeKind::LeafList)
}

/// Resolve the decoded segments of a page URL; `Err` says what is wrong.
pub fn resolve(segments: &[String]) -> Result<Vec<Step>, String> {
    let Some(first) = segments.first() else {
        return Err("no page named".into());
    };
    let top = top_nodes()
        .into_iter()
        .find(|n| n.name() == first)
        .ok_or_else(|| format!("no configuration section '{first}'"))?;
    let mut steps = vec![Step::Container(top)];
    let mut i = 1;
    while i < segments.len() {
        let parent = steps.last().map(|s| s.node().clone()).ok_or("empty path")?;
        if matches!(steps.last(), Some(Step::List(_))) {
            return Err("a list is followed by its key".into());
        }
        let word = &segments[i];
        let child = config_children(&parent)
            .into_iter()
            .find(|c| c.name() == word && !is_leafish(c))
            .ok_or_else(|| format!("'{}' has no section '{word}'", parent.name()))?;
        i += 1;
        if child.kind() == SchemaNodeKind::List {
            let keys = child.list_keys().count();
            if i >= segments.len() {
                steps.push(Step::List(child));
                continue;
            }
            if i + keys > segments.len() {
                return Err(format!("'{}' needs {keys} key value(s)", child.name()));
            }
            let values = segments[i..i + keys].to_vec();
            i += keys;
            steps.push(Step::Entry(child, values));
        } else {
            steps.push(Step::Container(child));
        }
    }
    Ok(steps)
}

/// What kind of input a leaf gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A select of the enumeration's members (name, description).
    Choice(Vec<(String, String)>),
    Bool,
    /// `type empty`: a checkbox.
    Flag,
    /// An integer or decimal64 with its ranges (decimal64 scaled by
    /// 10^digits), shown as a number input.
    Number {
        ranges: Vec<(i128, i128)>,
        digits: u8,
    },
    Text,
}

/// A leaf or leaf-list of a form.
#[derive(Clone)]
pub struct Field {
    pub node: SchemaNode<'static>,
    pub name: String,
    pub input: Input,
    pub list: bool,
    pub key: bool,
    pub mandatory: bool,
    pub default: Option<String>,
    pub units: Option<String>,
    pub type_name: Option<String>,
    pub description: String,
    /// Shown masked, never pre-filled (passwords, keys).
    pub secret: bool,
    /// `password-hash`: the form takes a password and hashes it.
    pub password_hash: bool,
    /// A leafref's target as node names from the top container (the
    /// existing values are offered as suggestions).
    pub target: Option<Vec<String>>,
}

impl Field {
    pub fn of(node: &SchemaNode<'static>) -> Field {
        let name = node.name().to_owned();
        let input = input_of(node);
        let list = node.kind() == SchemaNodeKind::LeafList;
        let default = if list {
            leaf_list_defaults(node)
                .map(|d| d.join(", "))
                .filter(|d| !d.is_empty())
        } else {
            leaf_default(node)
        };
        let lower = name.to_ascii_lowercase();
        let password_hash = lower == "password-hash";
        // What NACM hides from all but admins is a secret; so are fields
        // named like one.
        let secret = password_hash
            || besip_core::libyang::has_extension(node, "ietf-netconf-acm", "default-deny-all")
            || lower.contains("password")
            || lower.contains("secret")
            || lower == "private-key";
        Field {
            type_name: node.leaf_type().and_then(|t| t.typedef_name()),
            units: node.units().map(str::to_owned),
            description: node
                .description()
                .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            mandatory: node.is_mandatory(),
            key: node.is_list_key(),
            node: node.clone(),
            name,
            input,
            list,
            default,
            secret,
            password_hash,
            target: leafref_target(node),
        }
    }

    /// A short note of what the field takes (type, range, units, default).
    pub fn hint(&self) -> String {
        let mut parts = Vec::new();
        if self.key {
            parts.push("key, required".to_owned());
        }
        if let Some(t) = &self.type_name {
            parts.push(t.clone());
        }
        if let Input::Number { ranges, digits } = &self.input {
            let r: Vec<String> = ranges
                .iter()
                .map(|(a, b)| format!("{}..{}", scaled(*a, *digits), scaled(*b, *digits)))
                .collect();
            if !r.is_empty() {
                parts.push(r.join(" | "));
            }
        }
        if let Some(u) = &self.units {
            parts.push(u.clone());
        }
        if let Some(d) = &self.default {
            parts.push(format!("default {d}"));
        }
        if self.mandatory {
            parts.push("required".into());
        }
        if self.list {
            parts.push("one value per line".into());
        }
        parts.join(", ")
    }
}

/// Leaves and leaf-lists of a node's form, keys first.
pub fn fields(node: &SchemaNode<'static>) -> Vec<Field> {
    let mut out: Vec<Field> = node.list_keys().map(|k| Field::of(&k)).collect();
    out.extend(
        config_children(node)
            .iter()
            .filter(|c| is_leafish(c) && !c.is_list_key())
            .map(Field::of),
    );
    out
}

/// Containers and lists under a node (links of its page).
pub fn sections(node: &SchemaNode<'static>) -> Vec<SchemaNode<'static>> {
    config_children(node)
        .into_iter()
        .filter(|c| !is_leafish(c))
        .collect()
}

/// The leafref path of a leaf resolved to data node names from the top
/// (`/pbx/trunk/name` or `../../trunk/name` from where the leaf is);
/// `None` for anything else or a path with predicates.
fn leafref_target(node: &SchemaNode<'static>) -> Option<Vec<String>> {
    let ty = node.leaf_type()?;
    if ty.base_type() != DataValueType::LeafRef {
        return None;
    }
    // SAFETY: a leafref type is a lysc_type_leafref; its path expression
    // and the text libyang gives for it live with the context.
    let path = unsafe {
        let raw = ty.as_raw() as *const ffi::lysc_type_leafref;
        let expr = (*raw).path;
        if expr.is_null() {
            return None;
        }
        text(ffi::lyxp_get_expr(expr))
    };
    if path.contains('[') || path.is_empty() {
        return None;
    }
    let mut at: Vec<String> = if path.starts_with('/') {
        Vec::new()
    } else {
        // Where the leaf is: its data ancestors (choices and cases are not
        // steps of a data path), root first, and the leaf itself.
        let mut names: Vec<String> = node
            .inclusive_ancestors()
            .filter(|n| !matches!(n.kind(), SchemaNodeKind::Choice | SchemaNodeKind::Case))
            .map(|n| n.name().to_owned())
            .collect();
        names.reverse();
        names
    };
    for step in path.split('/').filter(|s| !s.is_empty()) {
        match step {
            ".." => {
                at.pop()?;
            }
            "." => {}
            name => at.push(name.rsplit(':').next().unwrap_or(name).to_owned()),
        }
    }
    (at.len() >= 2).then_some(at)
}

fn input_of(node: &SchemaNode<'static>) -> Input {
    use DataValueType as T;
    let Some(declared) = node.leaf_type() else {
        return Input::Text;
    };
    let real;
    let ty = if declared.base_type() == T::LeafRef {
        match declared.leafref_real_type() {
            Some(t) => {
                real = t;
                &real
            }
            None => return Input::Text,
        }
    } else {
        &declared
    };
    match ty.base_type() {
        T::Enum => Input::Choice(besip_shell::path::enum_values(node)),
        T::Bool => Input::Bool,
        T::Empty => Input::Flag,
        T::Int8 | T::Int16 | T::Int32 | T::Int64 => Input::Number {
            ranges: ranges(ty, false),
            digits: 0,
        },
        T::Uint8 | T::Uint16 | T::Uint32 | T::Uint64 => Input::Number {
            ranges: ranges(ty, true),
            digits: 0,
        },
        T::Dec64 => Input::Number {
            ranges: ranges(ty, false),
            digits: fraction_digits(ty),
        },
        _ => Input::Text,
    }
}

fn scaled(v: i128, digits: u8) -> String {
    if digits == 0 {
        return v.to_string();
    }
    let div = 10i128.pow(digits as u32);
    let sign = if v < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        v.abs() / div,
        v.abs() % div,
        width = digits as usize
    )
}

// The reads below are what yang2 has no safe call for (core's build step
// does the same at compile time, build/typed_raw.rs). The schema lives for
// the whole process, so every pointer read stays valid.

unsafe fn array_len<T>(ptr: *const T) -> usize {
    if ptr.is_null() {
        0
    } else {
        // libyang sized arrays keep their length (LY_ARRAY_COUNT_TYPE) just before.
        unsafe { (ptr as *const u64).offset(-1).read() as usize }
    }
}

unsafe fn text(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

fn fraction_digits(ty: &SchemaLeafType<'_>) -> u8 {
    // SAFETY: a decimal64 type is a lysc_type_dec.
    unsafe { (*(ty.as_raw() as *const ffi::lysc_type_dec)).fraction_digits }
}

fn ranges(ty: &SchemaLeafType<'_>, unsigned: bool) -> Vec<(i128, i128)> {
    // SAFETY: integer types are lysc_type_num, decimal64 lysc_type_dec;
    // the caller matched the base type.
    unsafe {
        let range = if ty.base_type() == DataValueType::Dec64 {
            (*(ty.as_raw() as *const ffi::lysc_type_dec)).range
        } else {
            (*(ty.as_raw() as *const ffi::lysc_type_num)).range
        };
        if range.is_null() {
            return Vec::new();
        }
        let parts = (*range).parts;
        (0..array_len(parts))
            .map(|i| {
                let p = *parts.add(i);
                if unsigned {
                    (
                        p.__bindgen_anon_1.min_u64 as i128,
                        p.__bindgen_anon_2.max_u64 as i128,
                    )
                } else {
                    (
                        p.__bindgen_anon_1.min_64 as i128,
                        p.__bindgen_anon_2.max_64 as i128,
                    )
                }
            })
            .collect()
    }
}

fn leaf_default(node: &SchemaNode<'_>) -> Option<String> {
    if node.kind() != SchemaNodeKind::Leaf {
        return None;
    }
    // SAFETY: a leaf is a lysc_node_leaf; its default value lives with the
    // context; the canonical text is made by libyang when missing.
    unsafe {
        let value = (*(node.as_raw() as *const ffi::lysc_node_leaf)).dflt;
        if value.is_null() {
            return None;
        }
        let mut canonical = (*value)._canonical;
        if canonical.is_null() {
            canonical = ffi::lyd_value_get_canonical((*node.module().as_raw()).ctx, value);
        }
        Some(text(canonical))
    }
}

fn leaf_list_defaults(node: &SchemaNode<'_>) -> Option<Vec<String>> {
    if node.kind() != SchemaNodeKind::LeafList {
        return None;
    }
    // SAFETY: a leaf-list is a lysc_node_leaflist (see leaf_default).
    unsafe {
        let raw = node.as_raw() as *const ffi::lysc_node_leaflist;
        let ctx = (*node.module().as_raw()).ctx;
        let dflts = (*raw).dflts;
        Some(
            (0..array_len(dflts))
                .map(|i| {
                    let value = *dflts.add(i);
                    let mut canonical = (*value)._canonical;
                    if canonical.is_null() {
                        canonical = ffi::lyd_value_get_canonical(ctx, value);
                    }
                    text(canonical)
                })
                .collect(),
        )
    }
}

/// Namespace of a node's module.
pub fn namespace(node: &SchemaNode<'static>) -> String {
    node.module().namespace().to_owned()
}

/// The schema, for callers that need module look-ups.
pub fn schema() -> Option<&'static Schema> {
    Schema::get().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn pages_resolve_from_the_schema() {
        let steps = resolve(&segs("pbx/extension/100")).unwrap();
        assert!(matches!(&steps[1], Step::Entry(n, k) if n.name() == "extension" && k == &["100"]));
        let steps = resolve(&segs("pbx/extension")).unwrap();
        assert!(matches!(&steps[1], Step::List(_)));
        assert!(resolve(&segs("pbx/nonsense")).is_err());
        assert!(resolve(&segs("pbx/domain")).is_err(), "a leaf is no page");
    }

    #[test]
    fn fields_carry_types_ranges_and_defaults() {
        let steps = resolve(&segs("pbx/extension")).unwrap();
        let f = fields(steps[1].node());
        assert_eq!(f[0].name, "number");
        assert!(f[0].key);
        assert!(f.iter().any(|f| f.secret && f.name == "password"));
        assert!(f.iter().any(|f| f.name == "enabled"
            && f.input == Input::Bool
            && f.default.as_deref() == Some("true")));
        let pbx = fields(resolve(&segs("pbx")).unwrap()[0].node());
        assert!(pbx.iter().any(|f| matches!(f.input, Input::Choice(_))));
        let rtp = fields(resolve(&segs("pbx/rtp")).unwrap()[1].node());
        assert!(rtp
            .iter()
            .any(|f| matches!(&f.input, Input::Number { ranges, .. } if !ranges.is_empty())));
        assert!(f.iter().any(|f| f.default.is_some()));
        let cluster = fields(resolve(&segs("pbx/cluster")).unwrap()[1].node());
        assert!(
            cluster.iter().any(|f| f.name == "database" && f.secret),
            "NACM's default-deny-all marks a secret"
        );
        let routes = fields(resolve(&segs("pbx/route")).unwrap()[1].node());
        let targets: Vec<_> = routes.iter().filter_map(|f| f.target.clone()).collect();
        assert!(
            targets.iter().any(|t| t == &["pbx", "trunk", "name"]),
            "{targets:?}"
        );
    }
}
