//! Generates typed configuration (`besip_core::model`) from the besip YANG modules.
//!
//! Why libyang (yang2 as a build-dependency) and not a parser of our own: the
//! compiled schema has typedefs, groupings/uses, imports (ietf-inet-types),
//! choices, defaults and ranges already resolved, exactly as the datastore and
//! the UCI renderer see them, so the generated reader cannot drift from the
//! renderer. The cost is compiling libyang once more for the build host.
//! yang2 has no safe accessor for enum members, leaf-list defaults, ranges or
//! decimal64 fraction digits; the few raw reads of the compiled schema needed
//! for them are in `raw` below (build time only, never in a daemon).
//!
//! Per module `besip-X` the output holds `pub mod X` with the constants
//! MODULE, NAMESPACE, PREFIX, PACKAGE, one struct per config container and list
//! entry, one enum per enumeration, a reader from the rendered UCI package that
//! follows docs/CONTRACTS.md (core/src/uci_map/render.rs renders it), and LEAVES, a
//! table of every config leaf (schema path, section type, option, Rust field).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use yang2::context::{Context, ContextFlags};
use yang2::schema::{DataValueType, SchemaLeafType, SchemaNode, SchemaNodeKind};

/// Rust type of a leaf value.
#[derive(Clone, PartialEq)]
enum Ty {
    Prim(&'static str),
    Decimal(u8),
    Enum(String),
}

impl Ty {
    fn rust(&self) -> String {
        match self {
            Ty::Prim(p) => (*p).to_owned(),
            Ty::Decimal(d) => format!("crate::model::Decimal64<{d}>"),
            Ty::Enum(name) => name.clone(),
        }
    }

    /// Word for error messages ("'x' is not a valid <expected>").
    fn expected(&self, yang: &str) -> String {
        yang.to_owned()
    }
}

struct EnumDef {
    name: String,
    members: Vec<String>,
    yang_path: String,
}

struct Gen {
    module: String,
    enums: Vec<EnumDef>,
    /// Enum name by (typedef name, members) so a typedef used twice is one type.
    enum_by_members: HashMap<Vec<String>, String>,
    structs: String,
    /// (nested list section type, parent option), for the reader's index.
    nested: Vec<(String, String)>,
    /// (schema path, section type, option, Rust field path) of every config leaf.
    leaves: Vec<(String, String, String, String)>,
    names: HashMap<String, String>,
}

fn camel(words: &str) -> String {
    let mut out = String::new();
    for part in words.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async",
    "await", "dyn", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
    "typeof", "unsized", "virtual", "yield", "try",
];

fn field_name(yang: &str) -> String {
    let name = yang.replace(['-', '.'], "_");
    if KEYWORDS.contains(&name.as_str()) {
        format!("r#{name}")
    } else {
        name
    }
}

fn uci_name(yang: &str) -> String {
    yang.replace(['-', '.'], "_")
}

/// Data children, looking through choices and cases (as the renderer does);
/// the flag says the node sits in a choice.
fn data_children(node: &SchemaNode<'static>, in_choice: bool) -> Vec<(SchemaNode<'static>, bool)> {
    let mut out = Vec::new();
    for child in node.children() {
        match child.kind() {
            SchemaNodeKind::Choice | SchemaNodeKind::Case => {
                out.extend(data_children(&child, true))
            }
            SchemaNodeKind::Rpc | SchemaNodeKind::Action | SchemaNodeKind::Notification => {}
            _ if !child.is_config() => {}
            _ => out.push((child, in_choice)),
        }
    }
    out
}

#[path = "typed_raw.rs"]
mod raw;

/// How a leaf is declared in the struct and read.
struct LeafSpec {
    ty: Ty,
    yang_type: String,
    ranges: Vec<(i128, i128)>,
}

impl Gen {
    fn leaf_spec(&mut self, node: &SchemaNode<'static>, ty: SchemaLeafType<'_>) -> LeafSpec {
        let typedef = ty.typedef_name();
        let base = ty.base_type();
        let yang_type = typedef
            .clone()
            .unwrap_or_else(|| format!("{base:?}").to_lowercase());
        let prim = |p: &'static str| Ty::Prim(p);
        let (rust, unsigned) = match base {
            DataValueType::Uint8 => (prim("u8"), true),
            DataValueType::Uint16 => (prim("u16"), true),
            DataValueType::Uint32 => (prim("u32"), true),
            DataValueType::Uint64 => (prim("u64"), true),
            DataValueType::Int8 => (prim("i8"), false),
            DataValueType::Int16 => (prim("i16"), false),
            DataValueType::Int32 => (prim("i32"), false),
            DataValueType::Int64 => (prim("i64"), false),
            DataValueType::Bool | DataValueType::Empty => (prim("bool"), false),
            DataValueType::Dec64 => (Ty::Decimal(raw::fraction_digits(&ty)), false),
            DataValueType::Enum => {
                let members = raw::enum_members(&ty);
                let name = self.enum_name(node, typedef.as_deref(), members);
                (Ty::Enum(name), false)
            }
            DataValueType::LeafRef => {
                if let Some(real) = ty.leafref_real_type() {
                    if real.base_type() != DataValueType::Enum {
                        let spec = self.leaf_spec(node, real);
                        return LeafSpec {
                            ranges: Vec::new(),
                            ..spec
                        };
                    }
                }
                (prim("String"), false)
            }
            _ => match typedef.as_deref() {
                Some("ip-address") => (prim("std::net::IpAddr"), false),
                Some("ipv4-address") => (prim("std::net::Ipv4Addr"), false),
                Some("ipv6-address") => (prim("std::net::Ipv6Addr"), false),
                _ => (prim("String"), false),
            },
        };
        let ranges = match base {
            DataValueType::Uint8
            | DataValueType::Uint16
            | DataValueType::Uint32
            | DataValueType::Uint64
            | DataValueType::Int8
            | DataValueType::Int16
            | DataValueType::Int32
            | DataValueType::Int64
            | DataValueType::Dec64 => raw::ranges(&ty, unsigned),
            _ => Vec::new(),
        };
        let yang_type = match (&rust, base) {
            (Ty::Enum(name), _) => {
                let members = &self
                    .enums
                    .iter()
                    .find(|e| &e.name == name)
                    .map(|e| e.members.join(", "));
                format!(
                    "{yang_type} (one of {})",
                    members.clone().unwrap_or_default()
                )
            }
            (_, DataValueType::Bool) => "boolean (1 or 0)".to_owned(),
            _ => yang_type,
        };
        LeafSpec {
            ty: rust,
            yang_type,
            ranges,
        }
    }

    /// An enum named after its typedef, or after the leaf's path below the top container.
    fn enum_name(
        &mut self,
        node: &SchemaNode<'static>,
        typedef: Option<&str>,
        members: Vec<String>,
    ) -> String {
        let path = relative_path(node);
        if typedef.is_some() {
            if let Some(name) = self.enum_by_members.get(&members) {
                return name.clone();
            }
        }
        let wanted = match typedef {
            Some(t) if t != "enumeration" => camel(t),
            _ => camel(&path),
        };
        let name = self.unique(wanted, &path);
        if typedef.is_some_and(|t| t != "enumeration") {
            self.enum_by_members.insert(members.clone(), name.clone());
        }
        self.enums.push(EnumDef {
            name: name.clone(),
            members,
            yang_path: node.path(yang2::schema::SchemaPathFormat::DATA),
        });
        name
    }

    fn unique(&mut self, wanted: String, owner: &str) -> String {
        let mut name = wanted.clone();
        let mut n = 2;
        while self.names.get(&name).is_some_and(|o| o != owner) {
            name = format!("{wanted}{n}");
            n += 1;
        }
        self.names.insert(name.clone(), owner.to_owned());
        name
    }

    /// Emit the struct of `node` (a container or list entry) and its reader.
    /// `option_prefix`: prefix of the options of leaves (flattened containers);
    /// `type_prefix`: prefix of section types of lists below; `parent_list`:
    /// section type of the enclosing list entry (its key goes to nested lists).
    #[allow(clippy::too_many_arguments)]
    fn emit_struct(
        &mut self,
        node: &SchemaNode<'static>,
        struct_name: &str,
        section_type: &str,
        option_prefix: &str,
        type_prefix: &str,
        parent_list: Option<&str>,
        rust_path: &str,
    ) -> bool {
        let mut defaultable = true;
        let mut fields = String::new();
        let mut reads = String::new();
        let mut consts = String::new();
        // A list entry's own reader; `read` (which finds its key) calls it.
        let reader = if parent_list == Some(section_type) && option_prefix.is_empty() {
            "read_entry"
        } else {
            "read"
        };
        let schema_path = node.path(yang2::schema::SchemaPathFormat::DATA);
        for (child, in_choice) in data_children(node, false) {
            let field = field_name(child.name());
            let yang_path = child.path(yang2::schema::SchemaPathFormat::DATA);
            let _ = writeln!(fields, "    /// `{yang_path}`");
            match child.kind() {
                SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
                    let option = format!("{option_prefix}{}", uci_name(child.name()));
                    self.leaves.push((
                        yang_path.clone(),
                        section_type.to_owned(),
                        option.clone(),
                        format!("{rust_path}.{field}"),
                    ));
                    let _ = writeln!(
                        consts,
                        "    /// UCI option of `{yang_path}`.\n    pub const OPTION_{}: &'static str = {option:?};",
                        field.trim_start_matches("r#").to_ascii_uppercase()
                    );
                    let Some(ty) = child.leaf_type() else {
                        continue;
                    };
                    let spec = self.leaf_spec(&child, ty);
                    let rust = spec.ty.rust();
                    let expected = spec.ty.expected(&spec.yang_type);
                    let ranges = spec
                        .ranges
                        .iter()
                        .map(|(a, b)| format!("({a}, {b})"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    if child.kind() == SchemaNodeKind::LeafList {
                        let defaults = raw::leaf_list_defaults(&child);
                        let min = raw::min_elements(&child);
                        defaultable &= min == 0;
                        let _ = writeln!(fields, "    pub {field}: Vec<{rust}>,");
                        let _ = writeln!(
                            reads,
                            "            {field}: r.leaf_list::<{rust}>(s, {option:?}, &{defaults:?}, {min}, {expected:?}, &[{ranges}])?,"
                        );
                        continue;
                    }
                    let default = if in_choice {
                        None
                    } else {
                        raw::leaf_default(&child)
                    };
                    let is_empty = ty_is_empty(&child);
                    let required = !in_choice && (child.is_mandatory() || child.is_list_key());
                    if is_empty {
                        let _ = writeln!(fields, "    pub {field}: bool,");
                        let _ = writeln!(
                            reads,
                            "            {field}: r.optional::<bool>(s, {option:?}, {expected:?}, &[])?.is_some(),"
                        );
                    } else if let Some(default) = default {
                        let _ = writeln!(fields, "    pub {field}: {rust},");
                        let _ = writeln!(
                            reads,
                            "            {field}: r.with_default::<{rust}>(s, {option:?}, {default:?}, {expected:?}, &[{ranges}])?,"
                        );
                    } else if required {
                        defaultable = false;
                        let _ = writeln!(fields, "    pub {field}: {rust},");
                        let _ = writeln!(
                            reads,
                            "            {field}: r.required::<{rust}>(s, {option:?}, {expected:?}, &[{ranges}])?,"
                        );
                    } else {
                        let _ = writeln!(fields, "    pub {field}: Option<{rust}>,");
                        let _ = writeln!(
                            reads,
                            "            {field}: r.optional::<{rust}>(s, {option:?}, {expected:?}, &[{ranges}])?,"
                        );
                    }
                }
                SchemaNodeKind::Container => {
                    let name =
                        self.unique(format!("{struct_name}{}", camel(child.name())), &yang_path);
                    let _ = writeln!(fields, "    pub {field}: {name},");
                    let _ = writeln!(reads, "            {field}: {name}::read(r, s, key)?,");
                    let step = uci_name(child.name());
                    defaultable &= self.emit_struct(
                        &child,
                        &name,
                        section_type,
                        &format!("{option_prefix}{step}_"),
                        &format!("{type_prefix}{step}_"),
                        parent_list,
                        &format!("{rust_path}.{field}"),
                    );
                }
                SchemaNodeKind::List => {
                    let list_type = format!("{type_prefix}{}", uci_name(child.name()));
                    let name =
                        self.unique(format!("{struct_name}{}", camel(child.name())), &yang_path);
                    let _ = writeln!(fields, "    pub {field}: Vec<{name}>,");
                    match parent_list {
                        None => {
                            let _ = writeln!(
                                reads,
                                "            {field}: r.entries({list_type:?}).map(|e| {name}::read(r, e)).collect::<Result<_, _>>()?,"
                            );
                        }
                        Some(parent) => {
                            self.nested.push((list_type.clone(), parent.to_owned()));
                            let _ = writeln!(
                                reads,
                                "            {field}: r.children({list_type:?}, key.unwrap_or_default()).iter().map(|e| {name}::read(r, e)).collect::<Result<_, _>>()?,"
                            );
                        }
                    }
                    self.emit_list(&child, &name, &list_type, &format!("{rust_path}.{field}[]"));
                }
                _ => {}
            }
        }
        let _ = writeln!(
            self.structs,
            "/// `{schema_path}` (options of UCI section type `{section_type}`{}).\n#[derive(Debug, Clone, PartialEq)]\npub struct {struct_name} {{\n{fields}}}\n",
            if option_prefix.is_empty() { String::new() } else { format!(", prefixed `{option_prefix}`") }
        );
        let _ = writeln!(
            self.structs,
            "impl {struct_name} {{\n{consts}\n    #[allow(unused_variables)]\n    fn {reader}(r: &Reader<'_>, s: &Section, key: Option<&str>) -> Result<Self, ModelError> {{\n        Ok({struct_name} {{\n{reads}        }})\n    }}\n}}\n"
        );
        if defaultable && parent_list.is_none() {
            // (list entries never get here: their key is required)
            let _ = writeln!(
                self.structs,
                "impl Default for {struct_name} {{\n    /// Every leaf at its YANG default, no list entries.\n    fn default() -> Self {{\n        let pkg = Package::new(PACKAGE);\n        let r = Reader::new(&pkg, NESTED);\n        Self::read(&r, r.main(\"\"), None).expect(\"YANG defaults parse (libyang checked them)\")\n    }}\n}}\n"
            );
        }
        defaultable
    }

    fn emit_list(
        &mut self,
        node: &SchemaNode<'static>,
        name: &str,
        list_type: &str,
        rust_path: &str,
    ) {
        let keys: Vec<String> = node
            .list_keys()
            .map(|k| format!("{:?}", uci_name(k.name())))
            .collect();
        let _ = writeln!(
            self.structs,
            "impl {name} {{\n    /// UCI section type of the entries.\n    pub const SECTION_TYPE: &'static str = {list_type:?};\n\n    fn read(r: &Reader<'_>, s: &Section) -> Result<Self, ModelError> {{\n        let key = r.key_of(s, &[{}])?;\n        Self::read_entry(r, s, Some(&key))\n    }}\n}}\n",
            keys.join(", ")
        );
        // The struct's own reader (options of the entry's section) under another name.
        self.emit_struct(
            node,
            name,
            list_type,
            "",
            &format!("{list_type}_"),
            Some(list_type),
            rust_path,
        );
    }
}

fn ty_is_empty(node: &SchemaNode<'_>) -> bool {
    node.leaf_type()
        .is_some_and(|t| t.base_type() == DataValueType::Empty)
}

/// `/besip-pbx:pbx/nat/external-address` -> `nat/external-address` (below the top container).
fn relative_path(node: &SchemaNode<'_>) -> String {
    let path = node.path(yang2::schema::SchemaPathFormat::DATA);
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    parts.next();
    parts.next().unwrap_or_default().to_owned()
}

#[path = "typed_enum.rs"]
mod enum_code;
use enum_code::emit_enum;

fn generate_module(context: &'static Context, module_name: &str) -> String {
    let module = context
        .get_module_implemented(module_name)
        .unwrap_or_else(|| panic!("module {module_name} is not loaded"));
    let short = module_name.trim_start_matches("besip-").replace('-', "_");
    let package = module_name.replace('-', "_");
    let mut gen = Gen {
        module: module_name.to_owned(),
        enums: Vec::new(),
        enum_by_members: HashMap::new(),
        structs: String::new(),
        nested: Vec::new(),
        leaves: Vec::new(),
        names: HashMap::new(),
    };
    let mut tops = Vec::new();
    for top in module.data() {
        if top.kind() != SchemaNodeKind::Container || !top.is_config() {
            continue;
        }
        let name = gen.unique(camel(top.name()), top.name());
        let section_type = uci_name(top.name());
        gen.emit_struct(&top, &name, &section_type, "", "", None, &name);
        tops.push((name, section_type));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "/// Typed configuration of YANG module `{module_name}` (UCI package `{package}`).\n#[allow(clippy::all, non_camel_case_types)]\npub mod {short} {{\n    use crate::model::{{ModelError, Reader}};\n    use crate::uci::{{Package, Section}};\n"
    );
    let _ = writeln!(
        out,
        "    /// The YANG module name.\n    pub const MODULE: &str = {:?};",
        gen.module
    );
    let _ = writeln!(
        out,
        "    /// The module's XML namespace.\n    pub const NAMESPACE: &str = {:?};",
        module.namespace()
    );
    let _ = writeln!(
        out,
        "    /// The module's prefix.\n    pub const PREFIX: &str = {:?};",
        module.prefix()
    );
    let _ = writeln!(out, "    /// The UCI package the module renders to.\n    pub const PACKAGE: &str = {package:?};\n");
    let nested: Vec<String> = gen
        .nested
        .iter()
        .map(|(t, p)| format!("({t:?}, {p:?})"))
        .collect();
    let _ = writeln!(
        out,
        "    /// (section type, option naming the parent entry) of every nested list.\n    pub const NESTED: &[(&str, &str)] = &[{}];\n",
        nested.join(", ")
    );
    let _ = writeln!(out, "    /// Every config leaf: where it lives in YANG, in UCI and in the Rust types.\n    pub const LEAVES: &[crate::model::LeafInfo] = &[");
    for (path, section_type, option, field) in &gen.leaves {
        let _ = writeln!(
            out,
            "        crate::model::LeafInfo {{ path: {path:?}, section_type: {section_type:?}, option: {option:?}, field: {field:?} }},"
        );
    }
    let _ = writeln!(out, "    ];\n");
    let mut body = String::new();
    for e in &gen.enums {
        emit_enum(&mut body, e);
    }
    body.push_str(&gen.structs);
    for (name, section_type) in &tops {
        let _ = writeln!(
            body,
            "impl {name} {{\n    /// UCI section type of the `main` section.\n    pub const SECTION_TYPE: &'static str = {section_type:?};\n\n    /// Reads the whole configuration from the rendered package; options\n    /// missing get their YANG defaults.\n    pub fn from_package(pkg: &Package) -> Result<Self, ModelError> {{\n        let r = Reader::new(pkg, NESTED);\n        let value = Self::read(&r, r.main({section_type:?}), None)?;\n        r.finish()?;\n        Ok(value)\n    }}\n}}\n"
        );
    }
    for line in body.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push_str("}\n");
    out
}

/// Writes `model.rs` into `out_dir` for every `besip-*.yang` in `yang_dir`.
pub fn generate(yang_dir: &Path, out_dir: &Path) {
    let mut context = Context::new(ContextFlags::NO_YANGLIBRARY).expect("libyang context");
    context.set_searchdir(yang_dir).expect("YANG search dir");
    context
        .set_searchdir(yang_dir.join("ietf"))
        .expect("YANG search dir");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(yang_dir).expect("read yang/").flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = file.strip_suffix(".yang") {
            let name = stem.split('@').next().unwrap_or(stem);
            if name.starts_with("besip-") {
                modules.insert(name.to_owned(), ());
            }
        }
    }
    for name in modules.keys() {
        context
            .load_module(name, None, &["*"])
            .unwrap_or_else(|e| panic!("YANG module {name} does not load: {e}"));
    }
    // Nodes borrow the context; it lives until the build script exits.
    let context: &'static Context = Box::leak(Box::new(context));
    let mut code = String::from(
        "// Generated by core/build/typed.rs from yang/besip-*.yang. Do not edit.\n\n",
    );
    let mut table = String::from(
        "/// Every generated module: (YANG module, namespace, UCI package, leaves).\npub const MODULES: &[ModuleTable] = &[\n",
    );
    for name in modules.keys() {
        code.push_str(&generate_module(context, name));
        code.push('\n');
        let short = name.trim_start_matches("besip-").replace('-', "_");
        let _ = writeln!(
            table,
            "    ModuleTable {{ module: {short}::MODULE, namespace: {short}::NAMESPACE, package: {short}::PACKAGE, leaves: {short}::LEAVES }},"
        );
    }
    table.push_str("];\n");
    code.push_str(&table);
    std::fs::write(out_dir.join("model.rs"), code).expect("write model.rs");
}
