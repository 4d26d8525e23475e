//! besip-shell: the schema-driven command shell of the box, shared by the
//! `besip` CLI (over NETCONF/SSH from anywhere) and besip-netconfd (the SSH
//! login shell and exec requests). Words are resolved against the YANG models
//! (`path`), turned into NETCONF RPCs and back into set-style lines
//! (`render`), executed over any [`Session`] (`engine`, `batch` for a
//! `;`-separated list), with completion and help (`complete`), NETCONF 1.0
//! framing over any byte stream (`stream`) and a small line editor that
//! works over any byte stream (`editor`). No SSH and no host keys here: those
//! are the client's (besip-cli) and the server's (besip-netconf).

pub mod batch;
pub mod complete;
pub mod editor;
pub mod engine;
pub mod path;
pub mod render;
pub mod stream;

use besip_core::xml::Element;
use snafu::Snafu;
use std::future::Future;

#[derive(Debug, Snafu, Clone, PartialEq)]
pub enum ShellError {
    /// A command the shell cannot run as written (exit code 1).
    #[snafu(display("{message}"))]
    Command { message: String },
    /// The server refused the RPC (exit code 1).
    #[snafu(display("{message}"))]
    Rpc { message: String },
    /// Bad use of the `besip` command line itself (exit code 2).
    #[snafu(display("{message}"))]
    Usage { message: String },
    /// The box cannot be reached or refused the login (exit code 3).
    #[snafu(display("{message}"))]
    Connection { message: String },
}

impl ShellError {
    /// Exit codes scripts can rely on: 1 command error, 2 usage, 3 connection.
    pub fn exit_code(&self) -> i32 {
        match self {
            ShellError::Command { .. } | ShellError::Rpc { .. } => 1,
            ShellError::Usage { .. } => 2,
            ShellError::Connection { .. } => 3,
        }
    }

    /// The error of a command or RPC with where it happened in front
    /// (`line 3: ...`); usage and connection errors are about the whole run
    /// and stay as they are.
    pub fn at(self, place: &str) -> ShellError {
        match self {
            ShellError::Command { message } => ShellError::Command {
                message: format!("{place}: {message}"),
            },
            ShellError::Rpc { message } => ShellError::Rpc {
                message: format!("{place}: {message}"),
            },
            other => other,
        }
    }
}

/// Something that answers NETCONF RPCs: `body` is the content of `<rpc>`,
/// the result the whole `<rpc-reply>` (an `<rpc-error>` becomes `ShellError::Rpc`).
pub trait Session: Send {
    fn rpc(&mut self, body: &str) -> impl Future<Output = Result<Element, ShellError>> + Send;
}

/// The `<rpc-error>`s of a reply as one message, or `None` when it has none.
pub fn reply_error(reply: &Element) -> Option<String> {
    let errors: Vec<String> = reply
        .children
        .iter()
        .filter(|c| c.name == "rpc-error")
        .filter(|e| {
            e.child("error-severity")
                .map(|s| s.trimmed_text() != "warning")
                .unwrap_or(true)
        })
        .map(|e| {
            let text = |n: &str| e.child(n).map(|c| c.trimmed_text().to_owned());
            let mut m = text("error-message")
                .or_else(|| text("error-tag"))
                .unwrap_or_else(|| "the server refused the request".into());
            if let Some(path) = text("error-path").filter(|p| !p.is_empty()) {
                m.push_str(&format!(" (path {path})"));
            }
            m
        })
        .collect();
    (!errors.is_empty()).then(|| format!("error: {}", errors.join("; ")))
}

#[cfg(test)]
mod tests;
