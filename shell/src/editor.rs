//! A small line editor over raw bytes (so the shell works over an SSH channel
//! as well as a local terminal in raw mode): printable characters, backspace,
//! left/right, Ctrl-A/E/U, Ctrl-C, Ctrl-D, Tab, `?`, up/down history.

use super::complete::{candidates, common_prefix, help_text};
use super::engine::{config_lines, execute};
use super::{Session, ShellError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, PartialEq)]
pub enum Event {
    Line(String),
    Complete,
    Help,
    Interrupt,
    Eof,
}

#[derive(Default)]
pub struct Editor {
    pub line: Vec<char>,
    pub cursor: usize,
    history: Vec<String>,
    /// Position while browsing history (== history.len() when not browsing).
    browse: usize,
    escape: Vec<u8>,
    utf8: Vec<u8>,
}

impl Editor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn text(&self) -> String {
        self.line.iter().collect()
    }

    pub fn set_text(&mut self, text: &str) {
        self.line = text.chars().collect();
        self.cursor = self.line.len();
    }

    /// Feed one input byte; echo/redraw bytes go to `out`.
    pub fn feed(&mut self, byte: u8, prompt: &str, out: &mut Vec<u8>) -> Option<Event> {
        if !self.escape.is_empty() {
            self.escape.push(byte);
            return self.escape_sequence(prompt, out);
        }
        if !self.utf8.is_empty() || byte >= 0x80 {
            self.utf8.push(byte);
            match std::str::from_utf8(&self.utf8) {
                Ok(s) => {
                    let c = s.chars().next().unwrap_or(' ');
                    self.utf8.clear();
                    self.insert(c, prompt, out);
                }
                Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => self.utf8.clear(),
                Err(_) => {}
            }
            return None;
        }
        match byte {
            b'\r' | b'\n' => {
                let text = self.text();
                out.extend_from_slice(b"\r\n");
                if !text.trim().is_empty() && self.history.last() != Some(&text) {
                    self.history.push(text.clone());
                }
                self.browse = self.history.len();
                self.line.clear();
                self.cursor = 0;
                Some(Event::Line(text))
            }
            0x03 => {
                out.extend_from_slice(b"^C\r\n");
                self.line.clear();
                self.cursor = 0;
                Some(Event::Interrupt)
            }
            0x04 if self.line.is_empty() => Some(Event::Eof),
            0x04 => None,
            b'\t' => Some(Event::Complete),
            // Inside an open quote `?` is just a character of the value.
            b'?' if !self.in_quote() => Some(Event::Help),
            0x7f | 0x08 => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.line.remove(self.cursor);
                    self.redraw(prompt, out);
                }
                None
            }
            0x01 => {
                self.cursor = 0;
                self.redraw(prompt, out);
                None
            }
            0x05 => {
                self.cursor = self.line.len();
                self.redraw(prompt, out);
                None
            }
            0x15 => {
                self.line.clear();
                self.cursor = 0;
                self.redraw(prompt, out);
                None
            }
            0x1b => {
                self.escape.push(byte);
                None
            }
            b if b >= 0x20 => {
                self.insert(b as char, prompt, out);
                None
            }
            _ => None,
        }
    }

    fn in_quote(&self) -> bool {
        let mut quote = None;
        for &c in &self.line[..self.cursor] {
            match quote {
                Some(q) if c == q => quote = None,
                None if c == '"' || c == '\'' => quote = Some(c),
                _ => {}
            }
        }
        quote.is_some()
    }

    fn insert(&mut self, c: char, prompt: &str, out: &mut Vec<u8>) {
        self.line.insert(self.cursor, c);
        self.cursor += 1;
        if self.cursor == self.line.len() {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            self.redraw(prompt, out);
        }
    }

    fn escape_sequence(&mut self, prompt: &str, out: &mut Vec<u8>) -> Option<Event> {
        let seq = self.escape.clone();
        if seq.len() < 3 && !(seq.len() == 2 && seq[1] != b'[' && seq[1] != b'O') {
            return None;
        }
        self.escape.clear();
        match seq.get(2) {
            Some(b'A') => self.history_step(-1, prompt, out),
            Some(b'B') => self.history_step(1, prompt, out),
            Some(b'C') if self.cursor < self.line.len() => {
                self.cursor += 1;
                self.redraw(prompt, out);
            }
            Some(b'D') if self.cursor > 0 => {
                self.cursor -= 1;
                self.redraw(prompt, out);
            }
            _ => {}
        }
        None
    }

    fn history_step(&mut self, delta: i64, prompt: &str, out: &mut Vec<u8>) {
        let next = self.browse as i64 + delta;
        if next < 0 || next > self.history.len() as i64 {
            return;
        }
        self.browse = next as usize;
        let text = self.history.get(self.browse).cloned().unwrap_or_default();
        self.set_text(&text);
        self.redraw(prompt, out);
    }

    /// Rewrite the whole line: CR, prompt, text, clear to end, cursor back.
    pub fn redraw(&self, prompt: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r");
        out.extend_from_slice(prompt.as_bytes());
        out.extend_from_slice(self.text().as_bytes());
        out.extend_from_slice(b"\x1b[K");
        let back = self.line.len() - self.cursor;
        if back > 0 {
            out.extend_from_slice(format!("\x1b[{back}D").as_bytes());
        }
    }
}

fn crlf(text: &str) -> Vec<u8> {
    let mut out = text.replace('\n', "\r\n").into_bytes();
    if !text.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The interactive shell over any byte stream. Returns at `exit`, Ctrl-D or
/// the end of the input; a lost NETCONF session ends it with that error.
pub async fn run_shell<R, W, S>(
    mut input: R,
    mut output: W,
    session: &mut S,
    prompt: &str,
) -> Result<(), ShellError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: Session,
{
    let io = |e: std::io::Error| ShellError::Connection {
        message: format!("terminal I/O failed: {e}"),
    };
    let mut editor = Editor::new();
    let mut config: Option<Vec<String>> = None;
    output.write_all(prompt.as_bytes()).await.map_err(io)?;
    output.flush().await.map_err(io)?;
    let mut buf = [0u8; 1024];
    loop {
        let n = input.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        for &byte in &buf[..n] {
            let mut out = Vec::new();
            let event = editor.feed(byte, prompt, &mut out);
            match event {
                None => {}
                Some(Event::Eof) => {
                    output.write_all(b"\r\n").await.map_err(io)?;
                    return Ok(());
                }
                Some(Event::Interrupt) => out.extend_from_slice(prompt.as_bytes()),
                Some(Event::Line(line)) => {
                    let trimmed = line.trim();
                    if trimmed == "exit" || trimmed == "quit" {
                        output.write_all(&out).await.map_err(io)?;
                        return Ok(());
                    }
                    match execute(session, trimmed).await {
                        Ok(text) => out.extend(crlf(&text)),
                        Err(e @ ShellError::Connection { .. }) => {
                            output.write_all(&crlf(&e.to_string())).await.map_err(io)?;
                            return Err(e);
                        }
                        Err(e) => out.extend(crlf(
                            &format!("error: {e}").replace("error: error:", "error:"),
                        )),
                    }
                    config = None;
                    out.extend_from_slice(prompt.as_bytes());
                }
                Some(ev @ (Event::Complete | Event::Help)) => {
                    if config.is_none() {
                        config = Some(config_lines(session, "candidate").await.unwrap_or_default());
                    }
                    let before: String = editor.line[..editor.cursor].iter().collect();
                    let (partial, found) = candidates(&before, config.as_deref().unwrap_or(&[]));
                    let insertable: Vec<_> = found.iter().filter(|c| c.insert).collect();
                    if ev == Event::Complete && insertable.len() == 1 {
                        let rest = insertable[0].word[partial.len()..].to_string() + " ";
                        for c in rest.chars() {
                            editor.line.insert(editor.cursor, c);
                            editor.cursor += 1;
                        }
                        editor.redraw(prompt, &mut out);
                    } else {
                        let common = common_prefix(&found);
                        if ev == Event::Complete && common.len() > partial.len() {
                            for c in common[partial.len()..].chars() {
                                editor.line.insert(editor.cursor, c);
                                editor.cursor += 1;
                            }
                        }
                        out.extend_from_slice(b"\r\n");
                        out.extend(crlf(&help_text(&found)));
                        editor.redraw(prompt, &mut out);
                    }
                }
            }
            if !out.is_empty() {
                output.write_all(&out).await.map_err(io)?;
            }
        }
        output.flush().await.map_err(io)?;
    }
}
