//! Whole-box export and import over NETCONF: export is `<get-config>` of
//! running written as one file (XML, or RFC 7951 JSON printed by libyang);
//! import validates the file locally (line and path of a fault), shows the
//! change as set lines, then copy-config to the candidate and commit, with
//! discard-changes on any failure so nothing half-applied remains.

use besip_core::schema::{data_child, Schema};
use besip_core::xml::Element;
use besip_shell::engine::{call, config_lines, reply_data};
use besip_shell::render::{data_lines, diff};
use besip_shell::{Session, ShellError};
use std::collections::HashMap;
use yang2::data::{
    Data, DataFormat, DataParserFlags, DataPrinterFlags, DataTree, DataValidationFlags,
};
use yang2::schema::SchemaNodeKind;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, ShellError> {
        match text {
            "xml" => Ok(Format::Xml),
            "json" => Ok(Format::Json),
            _ => Err(ShellError::Usage {
                message: format!("unknown format '{text}': use xml or json"),
            }),
        }
    }

    /// JSON when the file name ends in .json, else XML.
    pub fn of_file(name: &str) -> Format {
        if name.ends_with(".json") {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

fn cmd(message: String) -> ShellError {
    ShellError::Command { message }
}

fn schema() -> Result<&'static Schema, ShellError> {
    Schema::get().map_err(|e| cmd(format!("the YANG schema does not load: {e}")))
}

/// The running configuration of the box as file text.
/// Password hashes are written only when `user` is in the admin group.
pub async fn export<S: Session>(
    session: &mut S,
    format: Format,
    user: &str,
) -> Result<String, ShellError> {
    let reply = call(
        session,
        "<get-config><source><running/></source></get-config>",
    )
    .await?;
    let mut data: Vec<Element> = reply_data(&reply)
        .into_iter()
        .filter(|e| e.namespace.starts_with("urn:besip:"))
        .collect();
    let is_admin = users(&data).iter().any(|(n, g)| n == user && g == "admin");
    if !is_admin {
        // The server shows hashes to anyone who may read /system; an export
        // is a file that travels, so only an administrator's keeps them.
        for system in data
            .iter_mut()
            .filter(|e| e.namespace == "urn:besip:system" && e.name == "system")
        {
            for account in system.children.iter_mut().filter(|c| c.name == "user") {
                account.children.retain(|c| c.name != "password-hash");
            }
        }
    }
    let mut xml = String::from("<config xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n");
    for element in &data {
        xml.push_str(&element.to_xml());
        xml.push('\n');
    }
    xml.push_str("</config>\n");
    // Through libyang for both formats: canonical values, one node per line
    // (so an import error's line number points at the node).
    let tree = besip_core::datastore::parse_config_tree(schema()?, &xml)
        .map_err(|e| cmd(format!("the running configuration does not parse: {e}")))?;
    let (format, wrap) = match format {
        Format::Xml => (DataFormat::XML, true),
        Format::Json => (DataFormat::JSON, false),
    };
    let text = tree
        .print_string(format, DataPrinterFlags::WITH_SIBLINGS)
        .map_err(|e| {
            cmd(format!(
                "cannot print the configuration: {}",
                besip_core::schema::describe(&e)
            ))
        })?
        .unwrap_or_default();
    if !wrap {
        return Ok(if text.is_empty() { "{}\n".into() } else { text });
    }
    let mut out = String::from("<config xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n");
    for line in text.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("</config>\n");
    Ok(out)
}

/// Write an export to `path` readable by its owner only: it holds SIP
/// passwords (and, for an admin, password hashes). A file that exists with a
/// wider mode is narrowed before the secrets go in.
pub fn write_export(path: &std::path::Path, text: &str) -> Result<(), ShellError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| cmd(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(besip_core::persist::OWNER_ONLY)
        .open(path)
        .map_err(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(
        besip_core::persist::OWNER_ONLY,
    ))
    .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}

/// A configuration file read and checked against the schema.
pub struct ConfigFile {
    /// Top-level data elements (children of `<config>`).
    pub elements: Vec<Element>,
}

/// Read and validate a configuration file; errors name the file, line and path.
pub fn load(name: &str, text: &str, format: Format) -> Result<ConfigFile, ShellError> {
    let schema = schema()?;
    let xml = match format {
        Format::Xml => text.to_owned(),
        Format::Json => {
            let tree = DataTree::parse_string(
                schema.context(),
                text,
                DataFormat::JSON,
                DataParserFlags::STRICT | DataParserFlags::NO_STATE,
                DataValidationFlags::NO_STATE,
            )
            .map_err(|e| {
                cmd(format!(
                    "{name}: {}{}",
                    e.msg
                        .clone()
                        .unwrap_or_else(|| "invalid JSON configuration".into()),
                    e.path
                        .as_ref()
                        .map(|p| format!(" (path {p})"))
                        .unwrap_or_default()
                ))
            })?;
            tree.print_string(DataFormat::XML, DataPrinterFlags::WITH_SIBLINGS)
                .map_err(|e| cmd(format!("{name}: {}", besip_core::schema::describe(&e))))?
                .unwrap_or_default()
        }
    };
    let parsed = besip_core::xml::parse(&xml).map_err(|e| cmd(format!("{name}: {e}")))?;
    let elements: Vec<Element> = match parsed.as_slice() {
        [wrapper] if wrapper.name == "config" || wrapper.name == "data" => wrapper.children.clone(),
        _ => parsed,
    };
    if elements.is_empty() {
        return Err(cmd(format!("{name}: the file holds no configuration")));
    }
    if let Err(e) = besip_core::datastore::parse_config_tree(schema, &xml) {
        let lines = element_lines(&elements);
        let path = e.path.clone().unwrap_or_default();
        let line = besip_core::uci_map::line_for_path(&lines, &strip_prefixes(&path));
        let line = if line == 0 {
            elements.first().map(|e| e.line).unwrap_or(1)
        } else {
            line
        };
        let place = if format == Format::Xml {
            format!("{name}:{line}")
        } else {
            name.to_owned()
        };
        let path_note = if path.is_empty() {
            String::new()
        } else {
            format!(" (path {path})")
        };
        return Err(cmd(format!("{place}: {}{path_note}", e.message)));
    }
    Ok(ConfigFile { elements })
}

/// libyang-style data paths of every element, with their lines.
fn element_lines(elements: &[Element]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let Ok(schema) = Schema::get() else {
        return out;
    };
    for e in elements {
        let Some(module) = schema.module_by_namespace(&e.namespace) else {
            continue;
        };
        let Some(node) = schema.top_node(&module, &e.name) else {
            continue;
        };
        let path = format!("/{}:{}", module.name(), e.name);
        record(e, &node, path, module.name(), &mut out);
    }
    out
}

fn record(
    e: &Element,
    node: &yang2::schema::SchemaNode<'static>,
    path: String,
    module: &str,
    out: &mut HashMap<String, usize>,
) {
    out.insert(strip_prefixes(&path), e.line);
    let Ok(schema) = Schema::get() else { return };
    for child in &e.children {
        let child_module = schema
            .module_by_namespace(&child.namespace)
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| module.to_owned());
        let Some(child_node) = data_child(node, &child_module, &child.name) else {
            out.insert(
                strip_prefixes(&format!("{path}/{}", child.name)),
                child.line,
            );
            continue;
        };
        let step = if child_module == module {
            child.name.clone()
        } else {
            format!("{child_module}:{}", child.name)
        };
        let mut child_path = format!("{path}/{step}");
        if child_node.kind() == SchemaNodeKind::List {
            for key in child_node.list_keys() {
                let value = child
                    .child(key.name())
                    .map(|k| k.trimmed_text().to_owned())
                    .unwrap_or_default();
                child_path.push_str(&format!("[{}='{}']", key.name(), value));
            }
        }
        record(child, &child_node, child_path, &child_module, out);
    }
}

/// A data path without module prefixes (libyang writes them on every step
/// in errors, on changes of module only elsewhere).
fn strip_prefixes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut step = String::new();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for c in path.chars() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth -= 1,
            (None, ':') if depth == 0 => {
                let slash = step.starts_with('/');
                step.clear();
                if slash {
                    step.push('/');
                }
                continue;
            }
            (None, '/') if depth == 0 => {
                out.push_str(&step);
                step.clear();
            }
            _ => {}
        }
        step.push(c);
    }
    out.push_str(&step);
    out
}

/// The user accounts a configuration file defines (name, group).
fn users(elements: &[Element]) -> Vec<(String, String)> {
    elements
        .iter()
        .filter(|e| e.namespace == "urn:besip:system" && e.name == "system")
        .flat_map(|s| s.children.iter().filter(|c| c.name == "user"))
        .map(|u| {
            let text = |n: &str| {
                u.child(n)
                    .map(|c| c.trimmed_text().to_owned())
                    .unwrap_or_default()
            };
            (text("name"), text("group"))
        })
        .collect()
}

/// Import a checked file: returns the set-style changes that were committed.
pub async fn import<S: Session>(
    session: &mut S,
    file: &ConfigFile,
    user: &str,
    comment: &str,
) -> Result<Vec<String>, ShellError> {
    let accounts = users(&file.elements);
    if !accounts.iter().any(|(n, g)| n == user && g == "admin") {
        return Err(cmd(format!(
            "the file has no admin user '{user}' (it has: {}): importing it would lock you out; \
             add your user to system/user in the file",
            accounts
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let running = config_lines(session, "running").await?;
    let candidate = config_lines(session, "candidate").await?;
    if running != candidate {
        return Err(cmd(
            "the candidate has uncommitted changes: commit or discard them before an import".into(),
        ));
    }
    let changes = diff(&running, &data_lines(&file.elements));
    if changes.is_empty() {
        return Ok(changes);
    }
    call(session, "<lock><target><candidate/></target></lock>").await?;
    let result = apply(session, file, comment).await;
    if result.is_err() {
        let _ = call(session, "<discard-changes/>").await;
    }
    let _ = call(session, "<unlock><target><candidate/></target></unlock>").await;
    result.map(|_| changes)
}

async fn apply<S: Session>(
    session: &mut S,
    file: &ConfigFile,
    comment: &str,
) -> Result<(), ShellError> {
    let mut config = String::new();
    for e in &file.elements {
        config.push_str(&e.to_xml());
    }
    call(
        session,
        &format!(
            "<copy-config><target><candidate/></target><source><config>{config}</config></source></copy-config>"
        ),
    )
    .await?;
    call(
        session,
        "<validate><source><candidate/></source></validate>",
    )
    .await?;
    call(
        session,
        &format!(
            "<commit><comment xmlns=\"urn:besip:system\">{}</comment></commit>",
            besip_core::xml::escape(comment)
        ),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_are_stripped_outside_predicates() {
        assert_eq!(
            super::strip_prefixes(
                "/besip-pbx:pbx/besip-pbx:extension[number='a:b/c']/besip-pbx:password"
            ),
            "/pbx/extension[number='a:b/c']/password"
        );
    }
}
