//! The YANG schema of the box: one libyang context per process, built from
//! the modules embedded at compile time (see build.rs).

use snafu::Snafu;
use std::sync::OnceLock;
use yang2::context::{Context, ContextFlags, EmbeddedModuleKey, EmbeddedModules};
use yang2::schema::{SchemaModule, SchemaNode};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_yang.rs"));
}

/// Standard modules the server implements, with the features it supports.
const STANDARD_MODULES: &[(&str, &[&str])] = &[
    (
        "ietf-netconf",
        &[
            "candidate",
            "confirmed-commit",
            "rollback-on-error",
            "validate",
            "url",
            "xpath",
        ],
    ),
    ("ietf-netconf-acm", &[]),
    ("ietf-netconf-with-defaults", &[]),
    ("ietf-netconf-monitoring", &[]),
    ("ietf-restconf-monitoring", &[]),
    ("ietf-netconf-notifications", &[]),
    ("notifications", &[]),
    ("nc-notifications", &[]),
];

#[derive(Debug, Snafu)]
pub enum SchemaError {
    #[snafu(display("cannot create the libyang context: {message}"))]
    Context { message: String },
    #[snafu(display("YANG module {module} does not load: {message}"))]
    Module { module: String, message: String },
}

/// One module of the schema, as the NETCONF server advertises it.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    pub name: String,
    pub revision: Option<String>,
    pub namespace: String,
    pub prefix: String,
    /// The module's YANG text (served by `<get-schema>`).
    pub text: &'static str,
    pub implemented: bool,
    pub features: Vec<String>,
}

impl ModuleInfo {
    /// `besip-pbx` -> `Some("besip_pbx")`: the UCI package a besip module renders to.
    pub fn uci_package(&self) -> Option<String> {
        self.name
            .starts_with("besip-")
            .then(|| self.name.replace('-', "_"))
    }
}

pub struct Schema {
    context: Context,
    modules: Vec<ModuleInfo>,
}

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();

impl Schema {
    /// The process-wide schema (built on first use).
    pub fn get() -> Result<&'static Schema, SchemaError> {
        SCHEMA
            .get_or_init(|| Schema::build().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| SchemaError::Context {
                message: message.clone(),
            })
    }

    fn build() -> Result<Schema, SchemaError> {
        let mut context =
            Context::new(ContextFlags::DISABLE_SEARCHDIRS).map_err(|e| SchemaError::Context {
                message: e.to_string(),
            })?;
        let mut embedded_map = EmbeddedModules::new();
        for (name, revision, text) in embedded::EMBEDDED {
            embedded_map.insert(EmbeddedModuleKey::new(name, *revision, None, None), text);
        }
        // libyang keeps a pointer to the map for the context's lifetime; the
        // context lives for the whole process, so the map does too.
        let embedded_map: &'static EmbeddedModules = Box::leak(Box::new(embedded_map));
        context.set_embedded_modules(embedded_map);

        let mut to_load: Vec<(&str, Vec<&str>)> = STANDARD_MODULES
            .iter()
            .map(|(n, f)| (*n, f.to_vec()))
            .collect();
        for (name, _, _) in embedded::EMBEDDED {
            if name.starts_with("besip-") {
                to_load.push((name, vec!["*"]));
            }
        }
        for (name, features) in &to_load {
            context
                .load_module(name, None, features)
                .map_err(|e| SchemaError::Module {
                    module: (*name).to_owned(),
                    message: describe(&e),
                })?;
        }

        let mut modules = Vec::new();
        for module in context.modules(true) {
            let text = embedded::EMBEDDED
                .iter()
                .find(|(n, r, _)| *n == module.name() && (r.is_none() || *r == module.revision()))
                .map(|(_, _, t)| *t);
            let Some(text) = text else { continue };
            let features = to_load
                .iter()
                .find(|(n, _)| *n == module.name())
                .map(|(_, f)| f.iter().map(|s| (*s).to_owned()).collect())
                .unwrap_or_default();
            modules.push(ModuleInfo {
                name: module.name().to_owned(),
                revision: module.revision().map(str::to_owned),
                namespace: module.namespace().to_owned(),
                prefix: module.prefix().to_owned(),
                text,
                implemented: module.is_implemented(),
                features,
            });
        }
        Ok(Schema { context, modules })
    }

    pub fn context(&'static self) -> &'static Context {
        &self.context
    }

    /// Modules with embedded text (ours and the standard ones we ship).
    pub fn modules(&self) -> &[ModuleInfo] {
        &self.modules
    }

    /// The besip-* modules, each rendered to one UCI package.
    pub fn besip_modules(&self) -> impl Iterator<Item = &ModuleInfo> {
        self.modules
            .iter()
            .filter(|m| m.name.starts_with("besip-") && m.implemented)
    }

    pub fn module_by_namespace(&'static self, namespace: &str) -> Option<SchemaModule<'static>> {
        self.context.get_module_implemented_ns(namespace)
    }

    pub fn module_by_name(&'static self, name: &str) -> Option<SchemaModule<'static>> {
        self.context.get_module_implemented(name)
    }

    /// A top-level data node (container/list/leaf) of a module by name.
    pub fn top_node(
        &'static self,
        module: &SchemaModule<'static>,
        name: &str,
    ) -> Option<SchemaNode<'static>> {
        module.data().find(|n| n.name() == name)
    }
}

/// Find a data child by module and name, looking through choices and cases.
pub fn data_child(
    parent: &SchemaNode<'static>,
    module_name: &str,
    name: &str,
) -> Option<SchemaNode<'static>> {
    find_in_siblings(parent.children(), module_name, name)
}

fn find_in_siblings<'a>(
    siblings: impl Iterator<Item = SchemaNode<'a>>,
    module_name: &str,
    name: &str,
) -> Option<SchemaNode<'a>> {
    use yang2::schema::SchemaNodeKind;
    for node in siblings {
        match node.kind() {
            SchemaNodeKind::Choice | SchemaNodeKind::Case => {
                if let Some(found) = find_in_siblings(node.children(), module_name, name) {
                    return Some(found);
                }
            }
            SchemaNodeKind::Rpc | SchemaNodeKind::Action | SchemaNodeKind::Notification => {}
            _ => {
                if node.name() == name && node.module().name() == module_name {
                    return Some(node);
                }
            }
        }
    }
    None
}

/// libyang's last error as one line: message and, when known, the data path.
pub fn describe(e: &yang2::Error) -> String {
    match (&e.msg, &e.path) {
        (Some(m), Some(p)) => format!("{m} (path {p})"),
        (Some(m), None) => m.clone(),
        _ => format!("libyang error {}", e.errcode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_embedded_module() {
        let schema = Schema::get().unwrap();
        let names: Vec<&str> = schema.modules().iter().map(|m| m.name.as_str()).collect();
        for expected in [
            "besip-system",
            "ietf-netconf",
            "ietf-netconf-acm",
            "ietf-netconf-with-defaults",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        let system = schema
            .modules()
            .iter()
            .find(|m| m.name == "besip-system")
            .unwrap();
        assert_eq!(system.namespace, "urn:besip:system");
        assert_eq!(system.uci_package().as_deref(), Some("besip_system"));
        assert!(system.text.contains("container system"));
    }
}
