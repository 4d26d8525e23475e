//! Tokenizer and statement parser for UCI text (see `uci.rs`): how a
//! `Package` is read from a file or text.

use crate::uci::{is_valid_name, Package, Section, UciError, UciOption};
use std::collections::HashMap;
use std::path::Path;

impl Package {
    /// Read and parse a file; the package name is the file name.
    pub fn load(path: &Path) -> Result<Package, UciError> {
        let text = std::fs::read_to_string(path).map_err(|source| UciError::Read {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse(&name, &path.display().to_string(), &text)
    }

    /// Parse text; `name` is used for the package and in error messages.
    pub fn parse(name: &str, text: &str) -> Result<Package, UciError> {
        parse(name, name, text)
    }
}

struct Token {
    text: String,
    line: usize,
}

fn syntax(file: &str, line: usize, message: impl Into<String>) -> UciError {
    UciError::Syntax {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// Split the text into statements (one per line) of words, honouring quotes,
/// backslash escapes and comments. A quoted word may span lines.
fn statements(file: &str, text: &str) -> Result<Vec<Vec<Token>>, UciError> {
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                chars.next();
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                line += 1;
            }
            ' ' | '\t' | '\r' => {
                chars.next();
            }
            '#' => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            _ => {
                let start_line = line;
                let mut word = String::new();
                loop {
                    match chars.peek().copied() {
                        None | Some(' ') | Some('\t') | Some('\r') | Some('\n') | Some('#') => {
                            break
                        }
                        Some('\'') => {
                            chars.next();
                            loop {
                                match chars.next() {
                                    Some('\'') => break,
                                    Some(c) => {
                                        if c == '\n' {
                                            line += 1;
                                        }
                                        word.push(c)
                                    }
                                    None => {
                                        return Err(syntax(
                                            file,
                                            start_line,
                                            "unterminated single quote",
                                        ))
                                    }
                                }
                            }
                        }
                        Some('"') => {
                            chars.next();
                            loop {
                                match chars.next() {
                                    Some('"') => break,
                                    Some('\\') => match chars.next() {
                                        Some(c) => word.push(c),
                                        None => {
                                            return Err(syntax(
                                                file,
                                                start_line,
                                                "unterminated double quote",
                                            ))
                                        }
                                    },
                                    Some(c) => {
                                        if c == '\n' {
                                            line += 1;
                                        }
                                        word.push(c)
                                    }
                                    None => {
                                        return Err(syntax(
                                            file,
                                            start_line,
                                            "unterminated double quote",
                                        ))
                                    }
                                }
                            }
                        }
                        Some('\\') => {
                            chars.next();
                            match chars.next() {
                                Some('\n') => line += 1,
                                Some(c) => word.push(c),
                                None => return Err(syntax(file, line, "backslash at end of file")),
                            }
                        }
                        Some(c) => {
                            chars.next();
                            word.push(c);
                        }
                    }
                }
                current.push(Token {
                    text: word,
                    line: start_line,
                });
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn parse(name: &str, file: &str, text: &str) -> Result<Package, UciError> {
    // A NUL cannot reach libyang (C strings) or a daemon's config; found by
    // fuzzing: the import panicked in yang2 on a value holding one.
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(syntax(
            file,
            line,
            "a NUL byte is not allowed in a UCI file",
        ));
    }
    let mut package = Package::new(name);
    let mut current: Option<Section> = None;
    let mut anonymous_count: HashMap<String, usize> = HashMap::new();
    for statement in statements(file, text)? {
        let line = statement[0].line;
        let words: Vec<&str> = statement.iter().map(|t| t.text.as_str()).collect();
        match words.as_slice() {
            ["package", pkg] => package.name = (*pkg).to_owned(),
            ["config", kind, rest @ ..] => {
                if rest.len() > 1 {
                    return Err(syntax(
                        file,
                        line,
                        "too many words after 'config TYPE NAME'",
                    ));
                }
                if !is_valid_name(kind) {
                    return Err(syntax(
                        file,
                        line,
                        format!("invalid section type '{kind}' (use letters, digits, _)"),
                    ));
                }
                if let Some(done) = current.take() {
                    package.add_section(done);
                }
                let section_name = match rest.first() {
                    Some(n) if is_valid_name(n) => (*n).to_owned(),
                    Some(n) => {
                        return Err(syntax(
                            file,
                            line,
                            format!("invalid section name '{n}' (use letters, digits, _)"),
                        ))
                    }
                    None => {
                        let index = anonymous_count.entry((*kind).to_owned()).or_insert(0);
                        let generated = format!("@{kind}[{index}]");
                        *index += 1;
                        generated
                    }
                };
                let mut section = Section::new(kind, &section_name);
                section.line = line;
                section.file = file.to_owned();
                current = Some(section);
            }
            [keyword @ ("option" | "list"), option_name, value] => {
                let Some(section) = current.as_mut() else {
                    return Err(syntax(
                        file,
                        line,
                        format!("'{keyword}' outside of a section"),
                    ));
                };
                if !is_valid_name(option_name) {
                    return Err(syntax(
                        file,
                        line,
                        format!("invalid option name '{option_name}'"),
                    ));
                }
                let is_list = *keyword == "list";
                match section.options.iter_mut().find(|o| o.name == *option_name) {
                    Some(existing) if is_list && existing.is_list => {
                        existing.values.push((*value).to_owned())
                    }
                    Some(existing) => {
                        *existing = UciOption {
                            name: (*option_name).to_owned(),
                            values: vec![(*value).to_owned()],
                            is_list,
                            line,
                        }
                    }
                    None => section.options.push(UciOption {
                        name: (*option_name).to_owned(),
                        values: vec![(*value).to_owned()],
                        is_list,
                        line,
                    }),
                }
            }
            ["option" | "list", ..] => {
                return Err(syntax(
                    file,
                    line,
                    "expected 'option NAME VALUE' or 'list NAME VALUE'",
                ));
            }
            [other, ..] => return Err(syntax(file, line, format!("unknown statement '{other}'"))),
            [] => {}
        }
    }
    if let Some(done) = current.take() {
        package.add_section(done);
    }
    Ok(package)
}
