//! Tab completion and `?` help: what may come next at the end of a line,
//! from the YANG schema (node names, enum values with their descriptions)
//! and from the current configuration (list keys).

use super::engine::{rpcs, COMMANDS};
use super::path::{child_nodes, enum_values, summary, top_nodes, value_hint, Scope};
use super::render::{quote, split_words};
use yang2::schema::{SchemaNode, SchemaNodeKind};

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub word: String,
    pub help: String,
    /// False for hints such as `<string>` that Tab must not insert.
    pub insert: bool,
}

fn word(word: &str, help: &str) -> Candidate {
    Candidate {
        word: word.to_owned(),
        help: help.to_owned(),
        insert: true,
    }
}

fn hint(word: String, help: String) -> Candidate {
    Candidate {
        word,
        help,
        insert: false,
    }
}

/// The word being typed at the end of `line` and the candidates for it
/// (already filtered by that prefix). `config`: set-style lines of the
/// candidate (for list keys).
pub fn candidates(line: &str, config: &[String]) -> (String, Vec<Candidate>) {
    let Ok(tokens) = split_words(line) else {
        return (String::new(), Vec::new());
    };
    let ends_open = line.is_empty() || line.ends_with(char::is_whitespace) || line.ends_with('|');
    let mut words: Vec<Option<String>> = tokens;
    let partial = if ends_open {
        String::new()
    } else {
        words.pop().flatten().unwrap_or_default()
    };
    let all = if let Some(pipe) = words.iter().rposition(Option::is_none) {
        let after: Vec<String> = words[pipe + 1..].iter().flatten().cloned().collect();
        if after.is_empty() {
            vec![
                word("match", "Only lines containing TEXT"),
                word("except", "Only lines not containing TEXT"),
                word("count", "Count the lines"),
            ]
        } else {
            Vec::new()
        }
    } else {
        let words: Vec<String> = words.into_iter().flatten().collect();
        next_words(&words, config)
    };
    let filtered = all
        .into_iter()
        .filter(|c| !c.insert || c.word.starts_with(&partial))
        .collect();
    (partial, filtered)
}

fn next_words(words: &[String], config: &[String]) -> Vec<Candidate> {
    let Some(command) = words.first() else {
        return COMMANDS.iter().map(|(c, h)| word(c, h)).collect();
    };
    let rest = &words[1..];
    match command.as_str() {
        "set" | "delete" => path_next(rest, Scope::Config, config),
        "show" => match rest.first().map(String::as_str) {
            None => {
                let mut out = vec![word(
                    "configuration",
                    "The candidate configuration as set lines",
                )];
                out.extend(top_nodes().iter().map(|n| word(n.name(), &summary(n))));
                out
            }
            Some("configuration") => {
                let path = &rest[1..];
                match path.first().map(String::as_str) {
                    Some("running" | "candidate") => path_next(&path[1..], Scope::Config, config),
                    None => {
                        let mut out = vec![
                            word("running", "The running configuration"),
                            word("candidate", "The candidate (the default)"),
                        ];
                        out.extend(path_next(path, Scope::Config, config));
                        out
                    }
                    Some(_) => path_next(path, Scope::Config, config),
                }
            }
            Some(_) => path_next(rest, Scope::All, config),
        },
        "commit" => vec![
            word(
                "confirmed",
                "Roll back after MINUTES unless committed again",
            ),
            word("comment", "A note kept in the commit history"),
        ],
        "request" => request_next(rest),
        _ => Vec::new(),
    }
}

fn request_next(rest: &[String]) -> Vec<Candidate> {
    let all = rpcs();
    let rest: &[String] = match rest.first() {
        Some(first) if top_nodes().iter().any(|n| n.name() == first) => &rest[1..],
        _ => rest,
    };
    match rest.first() {
        None => all
            .iter()
            .map(|(_, r)| word(r.name(), &summary(r)))
            .collect(),
        Some(name) => {
            let Some((_, rpc)) = all.iter().find(|(_, r)| r.name() == name) else {
                return Vec::new();
            };
            let inputs = super::engine::rpc_inputs(rpc);
            if rest.len() % 2 == 1 {
                inputs.iter().map(|n| word(n.name(), &summary(n))).collect()
            } else {
                inputs
                    .iter()
                    .find(|n| Some(&n.name().to_owned()) == rest.last())
                    .map(value_candidates)
                    .unwrap_or_default()
            }
        }
    }
}

fn value_candidates(node: &SchemaNode<'static>) -> Vec<Candidate> {
    let enums = enum_values(node);
    if enums.is_empty() {
        vec![hint(value_hint(node), summary(node))]
    } else {
        enums.iter().map(|(n, d)| word(n, d)).collect()
    }
}

/// Candidates after a (complete) path of words.
fn path_next(words: &[String], scope: Scope, config: &[String]) -> Vec<Candidate> {
    let tops = top_nodes();
    let Some(first) = words.first() else {
        return tops.iter().map(|n| word(n.name(), &summary(n))).collect();
    };
    let Some(mut node) = tops.iter().find(|n| n.name() == first).cloned() else {
        return Vec::new();
    };
    let mut prefix = vec![quote(first)];
    let mut i = 1;
    loop {
        if i == words.len() {
            return child_nodes(&node, scope)
                .iter()
                .map(|n| word(n.name(), &summary(n)))
                .collect();
        }
        let name = &words[i];
        let Some(child) = child_nodes(&node, scope)
            .into_iter()
            .find(|c| c.name() == name)
        else {
            return Vec::new();
        };
        i += 1;
        prefix.push(quote(name));
        match child.kind() {
            SchemaNodeKind::List => {
                let keys: Vec<SchemaNode<'static>> = child.list_keys().collect();
                let given = (words.len() - i).min(keys.len());
                if given < keys.len() {
                    prefix.extend(words[i..].iter().map(|w| quote(w)));
                    return key_candidates(&prefix.join(" "), &keys[given], config);
                }
                prefix.extend(words[i..i + keys.len()].iter().map(|w| quote(w)));
                i += keys.len();
                node = child;
            }
            SchemaNodeKind::Leaf | SchemaNodeKind::LeafList => {
                return if i == words.len() {
                    value_candidates(&child)
                } else {
                    Vec::new()
                };
            }
            _ => node = child,
        }
    }
}

/// Existing keys of a list (from the configuration lines) plus a hint.
fn key_candidates(prefix: &str, key: &SchemaNode<'static>, config: &[String]) -> Vec<Candidate> {
    let start = format!("{prefix} ");
    let mut seen = Vec::new();
    for line in config {
        if let Some(rest) = line.strip_prefix(&start) {
            if let Ok(tokens) = split_words(rest) {
                if let Some(Some(k)) = tokens.into_iter().next() {
                    if !seen.contains(&k) {
                        seen.push(k);
                    }
                }
            }
        }
    }
    let mut out: Vec<Candidate> = seen.iter().map(|k| word(k, "existing entry")).collect();
    out.push(hint(format!("<{}>", key.name()), summary(key)));
    out
}

/// Longest common prefix of the insertable candidates.
pub fn common_prefix(candidates: &[Candidate]) -> String {
    let words: Vec<&str> = candidates
        .iter()
        .filter(|c| c.insert)
        .map(|c| c.word.as_str())
        .collect();
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut len = first.len();
    for w in &words[1..] {
        len = len.min(
            first
                .char_indices()
                .zip(w.chars())
                .take_while(|((_, a), b)| a == b)
                .count(),
        );
    }
    first.chars().take(len).collect()
}

/// `?` help text: one line per candidate, word and description.
pub fn help_text(candidates: &[Candidate]) -> String {
    if candidates.is_empty() {
        return "  (nothing can follow here)".into();
    }
    candidates
        .iter()
        .map(|c| format!("  {:<24} {}", c.word, c.help))
        .collect::<Vec<_>>()
        .join("\n")
}
