//! One-shot command lists, as an SSH exec request gives them
//! (`ssh box 'set system hostname x; commit'`): the commands are separated
//! by `;` outside quotes and run in order; the first failing one stops the
//! list, and its error decides the exit code ([`ShellError::exit_code`]).

use super::engine::execute;
use super::{Session, ShellError};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The longest command list accepted in one go; a longer one is refused
/// whole (a configuration that big belongs in `besip import`).
pub const MAX_COMMAND_LIST: usize = 64 * 1024;

/// Split a command list at each `;` that is outside quotes (quoting as in
/// [`super::render::split_words`]: `"..."` with backslash escapes, `'...'`).
/// Empty commands are dropped, so a trailing `;` is harmless.
pub fn split_commands(list: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in list.chars() {
        if escaped {
            escaped = false;
        } else {
            match (quote, c) {
                (Some('"'), '\\') => escaped = true,
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'') => quote = Some(c),
                (None, ';') => {
                    commands.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
        }
        current.push(c);
    }
    commands.push(current);
    commands
        .into_iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Check the size of a raw command list and decode it.
pub fn decode_command_list(bytes: &[u8]) -> Result<&str, ShellError> {
    if bytes.len() > MAX_COMMAND_LIST {
        return Err(ShellError::Usage {
            message: format!(
                "the command line is {} bytes, more than the {MAX_COMMAND_LIST} accepted; \
                 use 'besip import' for a whole configuration",
                bytes.len()
            ),
        });
    }
    std::str::from_utf8(bytes).map_err(|_| ShellError::Usage {
        message: "the command line is not UTF-8 text".into(),
    })
}

/// Run the commands of `list` over `session`, writing each one's output to
/// `out` (`newline` ends every line: "\n", or "\r\n" on a terminal). The
/// first failing command stops the list; its error names it when the list
/// has more than one command. `exit`/`quit` end the list early.
pub async fn run_list<S, W>(
    session: &mut S,
    list: &str,
    out: &mut W,
    newline: &str,
) -> Result<(), ShellError>
where
    S: Session,
    W: AsyncWrite + Unpin,
{
    let commands = split_commands(list);
    for (n, command) in commands.iter().enumerate() {
        if command == "exit" || command == "quit" {
            break;
        }
        let text = match execute(session, command).await {
            Ok(text) => text,
            Err(e) if commands.len() == 1 => return Err(e),
            Err(e) => return Err(e.at(&format!("command {} ({command})", n + 1))),
        };
        if text.is_empty() {
            continue;
        }
        let mut lines = text.replace('\n', newline);
        lines.push_str(newline);
        out.write_all(lines.as_bytes())
            .await
            .map_err(|e| ShellError::Connection {
                message: format!("cannot write the output: {e}"),
            })?;
        out.flush().await.map_err(|e| ShellError::Connection {
            message: format!("cannot write the output: {e}"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_at_semicolons_outside_quotes() {
        assert_eq!(
            split_commands("set pbx extension 300 password x; commit"),
            ["set pbx extension 300 password x", "commit"]
        );
        assert_eq!(
            split_commands(r#"set system user a full-name "x; \" y"; commit comment 'a;b' ;; "#),
            [
                r#"set system user a full-name "x; \" y""#,
                "commit comment 'a;b'"
            ]
        );
        assert!(split_commands(" ; ").is_empty());
        // An open quote keeps the rest together; the engine names the error.
        assert_eq!(split_commands("set x \"a; b"), ["set x \"a; b"]);
    }

    #[test]
    fn a_command_list_is_bounded_and_text() {
        assert_eq!(decode_command_list(b"show pbx").unwrap(), "show pbx");
        let huge = vec![b'a'; MAX_COMMAND_LIST + 1];
        let e = decode_command_list(&huge).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("more than the 65536"), "{e}");
        assert_eq!(decode_command_list(b"\xff").unwrap_err().exit_code(), 2);
    }
}
