//! Runs one command line over a [`Session`]: every command is a NETCONF RPC,
//! so the server's validation and NACM apply exactly as for any client.

use super::path::{resolve, top_nodes, Scope, Step};
use super::render::{data_lines, diff, split_words, steps_to_xml, NC_NS};
use super::{reply_error, Session, ShellError};
use besip_core::schema::Schema;
use besip_core::xml::{escape, Element};
use yang2::schema::{SchemaNode, SchemaNodeKind};

pub use besip_core::model::system::NAMESPACE as SYSTEM_NS;

/// The commands of the shell with their one-line help.
pub const COMMANDS: &[(&str, &str)] = &[
    ("set", "Set a configuration value in the candidate"),
    ("delete", "Delete a configuration node from the candidate"),
    ("show", "Show configuration or operational state"),
    (
        "compare",
        "Show candidate changes against running as +/- set lines",
    ),
    (
        "commit",
        "Commit the candidate [confirmed MIN] [comment TEXT]",
    ),
    (
        "rollback",
        "Load commit N back (0 = newest) into the candidate",
    ),
    (
        "discard",
        "Discard the uncommitted changes of the candidate",
    ),
    ("validate", "Validate the candidate"),
    (
        "request",
        "Run an RPC of a module (e.g. request security unban ADDRESS)",
    ),
    ("help", "List the commands"),
    ("exit", "Leave the shell"),
];

/// Send an RPC and turn an `<rpc-error>` into an error.
pub async fn call<S: Session>(session: &mut S, body: &str) -> Result<Element, ShellError> {
    let reply = session.rpc(body).await?;
    match reply_error(&reply) {
        Some(message) => Err(ShellError::Rpc { message }),
        None => Ok(reply),
    }
}

/// The children of `<data>` in a reply.
pub fn reply_data(reply: &Element) -> Vec<Element> {
    reply
        .child("data")
        .map(|d| d.children.clone())
        .unwrap_or_default()
}

/// Set-style lines of a datastore (`running` or `candidate`).
pub async fn config_lines<S: Session>(
    session: &mut S,
    datastore: &str,
) -> Result<Vec<String>, ShellError> {
    let reply = call(
        session,
        &format!("<get-config><source><{datastore}/></source></get-config>"),
    )
    .await?;
    Ok(data_lines(&reply_data(&reply)))
}

/// Execute one command line; the output text (one line per `\n`).
pub async fn execute<S: Session>(session: &mut S, line: &str) -> Result<String, ShellError> {
    let tokens = split_words(line)?;
    let mut segments: Vec<Vec<String>> = vec![Vec::new()];
    for token in tokens {
        match token {
            Some(word) => segments.last_mut().map(|s| s.push(word)).unwrap_or(()),
            None => segments.push(Vec::new()),
        }
    }
    let command = segments.remove(0);
    if command.is_empty() {
        return Ok(String::new());
    }
    let lines = run(session, &command).await?;
    let lines = pipe(lines, &segments)?;
    Ok(lines.join("\n"))
}

fn pipe(mut lines: Vec<String>, filters: &[Vec<String>]) -> Result<Vec<String>, ShellError> {
    for filter in filters {
        let words: Vec<&str> = filter.iter().map(String::as_str).collect();
        lines = match words.as_slice() {
            ["match", pattern] => lines.into_iter().filter(|l| l.contains(pattern)).collect(),
            ["except", pattern] => lines.into_iter().filter(|l| !l.contains(pattern)).collect(),
            ["count"] => vec![format!("Count: {} lines", lines.len())],
            _ => {
                return Err(ShellError::Command {
                    message: format!(
                        "unknown filter '| {}'; use: | match TEXT, | except TEXT, | count",
                        filter.join(" ")
                    ),
                })
            }
        };
    }
    Ok(lines)
}

async fn run<S: Session>(session: &mut S, words: &[String]) -> Result<Vec<String>, ShellError> {
    let rest = &words[1..];
    match words[0].as_str() {
        "set" => edit(session, rest, None).await,
        "delete" => edit(session, rest, Some("delete")).await,
        "show" => show(session, rest).await,
        "compare" => {
            let running = config_lines(session, "running").await?;
            let candidate = config_lines(session, "candidate").await?;
            let changes = diff(&running, &candidate);
            Ok(if changes.is_empty() {
                vec!["No changes.".into()]
            } else {
                changes
            })
        }
        "commit" => commit(session, rest).await,
        "rollback" => {
            let [n] = rest else {
                return usage("rollback N  (0 = the newest commit; see 'show commit-history')");
            };
            let n: u8 = n.parse().map_err(|_| ShellError::Command {
                message: format!("rollback needs a number 0..49, not '{n}'"),
            })?;
            call(
                session,
                &format!("<rollback xmlns=\"{SYSTEM_NS}\"><back>{n}</back></rollback>"),
            )
            .await?;
            Ok(vec![format!(
                "Loaded commit {n} back into the candidate; 'compare' shows it, 'commit' applies it."
            )])
        }
        "discard" => {
            call(session, "<discard-changes/>").await?;
            Ok(vec!["Candidate changes discarded.".into()])
        }
        "validate" => {
            call(
                session,
                "<validate><source><candidate/></source></validate>",
            )
            .await?;
            Ok(vec!["Configuration is valid.".into()])
        }
        "request" => request(session, rest).await,
        "help" | "?" => Ok(COMMANDS
            .iter()
            .map(|(c, h)| format!("  {c:<10} {h}"))
            .collect()),
        other => {
            let names: Vec<String> = COMMANDS.iter().map(|(c, _)| c.to_string()).collect();
            Err(ShellError::Command {
                message: format!(
                    "unknown command '{other}'; did you mean: {}?",
                    super::path::suggest(other, &names)
                ),
            })
        }
    }
}

fn usage<T>(text: &str) -> Result<T, ShellError> {
    Err(ShellError::Command {
        message: format!("usage: {text}"),
    })
}

async fn edit<S: Session>(
    session: &mut S,
    words: &[String],
    operation: Option<&str>,
) -> Result<Vec<String>, ShellError> {
    if words.is_empty() {
        return usage("set|delete <path> [value]; '?' lists the top nodes");
    }
    let steps = resolve(words, Scope::Config, operation.is_none())?;
    if operation.is_none() {
        if let Some(Step::List(list)) = steps.last() {
            return Err(ShellError::Command {
                message: format!("'{}' needs its key after it", list.name()),
            });
        }
    }
    let xml = steps_to_xml(&steps, operation, true);
    call(
        session,
        &format!("<edit-config><target><candidate/></target><config>{xml}</config></edit-config>"),
    )
    .await?;
    Ok(Vec::new())
}

async fn show<S: Session>(session: &mut S, words: &[String]) -> Result<Vec<String>, ShellError> {
    match words.first().map(String::as_str) {
        None => usage("show configuration [path] | show <top node> [path]"),
        Some("configuration") => {
            let path = &words[1..];
            let (datastore, path) = match path.first().map(String::as_str) {
                Some("running") => ("running", &path[1..]),
                Some("candidate") => ("candidate", &path[1..]),
                _ => ("candidate", path),
            };
            // Resolve the path first so a typo is named, not silently empty.
            resolve(path, Scope::Config, false)?;
            let prefix = path
                .iter()
                .map(|w| super::render::quote(w))
                .collect::<Vec<_>>()
                .join(" ");
            let lines = config_lines(session, datastore).await?;
            Ok(lines
                .into_iter()
                .filter(|l| {
                    prefix.is_empty() || l == &prefix || l.starts_with(&format!("{prefix} "))
                })
                .map(|l| format!("set {l}"))
                .collect())
        }
        Some(_) => {
            let steps = resolve(words, Scope::All, false)?;
            let filter = steps_to_xml(&steps, None, false);
            let reply = call(
                session,
                &format!("<get><filter type=\"subtree\">{filter}</filter></get>"),
            )
            .await?;
            Ok(data_lines(&reply_data(&reply)))
        }
    }
}

async fn commit<S: Session>(session: &mut S, words: &[String]) -> Result<Vec<String>, ShellError> {
    let mut body = String::new();
    let mut note = "Commit complete.".to_string();
    let mut i = 0;
    while i < words.len() {
        match (words[i].as_str(), words.get(i + 1)) {
            ("confirmed", Some(min)) => {
                let minutes: u32 =
                    min.parse()
                        .ok()
                        .filter(|m| *m > 0)
                        .ok_or_else(|| ShellError::Command {
                            message: format!(
                                "commit confirmed needs minutes (1 or more), not '{min}'"
                            ),
                        })?;
                body.push_str(&format!(
                    "<confirmed/><confirm-timeout>{}</confirm-timeout>",
                    minutes * 60
                ));
                note = format!(
                    "Commit complete; it is rolled back in {minutes} min unless you 'commit' again."
                );
                i += 2;
            }
            ("comment", Some(_)) => {
                let text = words[i + 1..].join(" ");
                body.push_str(&format!(
                    "<comment xmlns=\"{SYSTEM_NS}\">{}</comment>",
                    escape(&text)
                ));
                i = words.len();
            }
            _ => return usage("commit [confirmed MINUTES] [comment TEXT]"),
        }
    }
    call(session, &format!("<commit>{body}</commit>")).await?;
    Ok(vec![note])
}

/// The input leaves of an RPC (direct children of its input).
pub fn rpc_inputs(rpc: &SchemaNode<'static>) -> Vec<SchemaNode<'static>> {
    rpc.traverse()
        .filter(|n| {
            n.is_within_input()
                && n.ancestors()
                    .next()
                    .map(|p| p.kind() == SchemaNodeKind::Input)
                    .unwrap_or(false)
        })
        .collect()
}

/// Every RPC of the besip modules, with the top container of its module.
pub fn rpcs() -> Vec<(Option<String>, SchemaNode<'static>)> {
    let Ok(schema) = Schema::get() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for info in schema.besip_modules() {
        if let Some(module) = schema.module_by_name(&info.name) {
            let top = module
                .data()
                .find(|n| n.kind() == SchemaNodeKind::Container && n.is_config())
                .map(|n| n.name().to_owned());
            for rpc in module.rpcs() {
                out.push((top.clone(), rpc));
            }
        }
    }
    out
}

async fn request<S: Session>(session: &mut S, words: &[String]) -> Result<Vec<String>, ShellError> {
    let all = rpcs();
    let mut words = words;
    // `request security unban X`: the module's top name may come first.
    if let Some(first) = words.first() {
        if top_nodes().iter().any(|n| n.name() == first)
            && !all.iter().any(|(_, r)| r.name() == first)
        {
            words = &words[1..];
        }
    }
    let Some(name) = words.first() else {
        return usage("request [module] RPC [value | name value ...]");
    };
    let Some((_, rpc)) = all.iter().find(|(_, r)| r.name() == name) else {
        let names: Vec<String> = all.iter().map(|(_, r)| r.name().to_owned()).collect();
        return Err(ShellError::Command {
            message: format!(
                "unknown RPC '{name}'; did you mean: {}?",
                super::path::suggest(name, &names)
            ),
        });
    };
    let inputs = rpc_inputs(rpc);
    let args = &words[1..];
    let mut body = String::new();
    if args.len() == 1 && inputs.len() == 1 {
        body.push_str(&format!(
            "<{0}>{1}</{0}>",
            inputs[0].name(),
            escape(&args[0])
        ));
    } else {
        if !args.len().is_multiple_of(2) {
            let names: Vec<&str> = inputs.iter().map(|n| n.name()).collect();
            return usage(&format!(
                "request {name} [name value ...] with names {}",
                names.join(", ")
            ));
        }
        for pair in args.chunks(2) {
            let Some(leaf) = inputs.iter().find(|n| n.name() == pair[0]) else {
                let names: Vec<String> = inputs.iter().map(|n| n.name().to_owned()).collect();
                return Err(ShellError::Command {
                    message: format!(
                        "unknown word '{}' after '{name}'; did you mean: {}?",
                        pair[0],
                        super::path::suggest(&pair[0], &names)
                    ),
                });
            };
            body.push_str(&format!("<{0}>{1}</{0}>", leaf.name(), escape(&pair[1])));
        }
    }
    let ns = rpc.module().namespace().to_owned();
    let reply = call(
        session,
        &format!("<{name} xmlns=\"{}\">{body}</{name}>", escape(&ns)),
    )
    .await?;
    let mut out = Vec::new();
    for child in &reply.children {
        if child.name == "ok" && child.namespace == NC_NS {
            continue;
        }
        leaf_lines(child, String::new(), &mut out);
    }
    if out.is_empty() {
        out.push("OK".into());
    }
    Ok(out)
}

/// Lines of RPC output (no schema walk: output is not data of the tree).
fn leaf_lines(e: &Element, prefix: String, out: &mut Vec<String>) {
    let path = if prefix.is_empty() {
        e.name.clone()
    } else {
        format!("{prefix} {}", e.name)
    };
    if e.children.is_empty() {
        out.push(format!("{path} {}", super::render::quote(e.trimmed_text())));
    } else {
        for c in &e.children {
            leaf_lines(c, path.clone(), out);
        }
    }
}
