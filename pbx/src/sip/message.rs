//! SIP message parsing and serialisation (RFC 3261 §7, §20; RFC 4475 cases):
//! compact header names, folded lines, Content-Length checks, size limit.

use std::borrow::Cow;

use snafu::Snafu;

use super::names::canonical_name;
use super::text::{list_items, push_decimal};

/// Largest message accepted on any transport (issue 4: above this → 513 / close).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

#[derive(Debug, Snafu, PartialEq, Eq)]
pub enum ParseError {
    #[snafu(display("message is {size} bytes, more than the {MAX_MESSAGE_SIZE} allowed"))]
    TooLarge { size: usize },
    #[snafu(display("message has no end of headers (empty line)"))]
    NoHeaderEnd,
    #[snafu(display("bad start line: {reason}"))]
    StartLine { reason: String },
    #[snafu(display("bad header line {line}: {reason}"))]
    HeaderLine { line: usize, reason: String },
    #[snafu(display("bad Content-Length: {reason}"))]
    ContentLength { reason: String },
    #[snafu(display("missing mandatory header {name}"))]
    Missing { name: &'static str },
    #[snafu(display("bad {name} header: {reason}"))]
    BadHeader { name: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical (long) name for known headers (static, no allocation); as
    /// received otherwise.
    pub name: Cow<'static, str>,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Index just past the empty line ending the headers, accepting bare LF too.
pub fn header_end(buf: &[u8]) -> Option<usize> {
    for i in memchr::memchr_iter(b'\n', buf) {
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i + 2);
        }
        if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
            return Some(i + 3);
        }
    }
    None
}

/// Stream framing (TCP): `Ok(Some(len))` when a whole message of `len` bytes
/// is buffered, `Ok(None)` when more bytes are needed.
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(end) = header_end(buf) else {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge { size: buf.len() });
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::HeaderLine {
        line: 0,
        reason: "not UTF-8".into(),
    })?;
    let mut length = None;
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if canonical_name(name.trim()) == "Content-Length" {
                length = Some(parse_content_length(value)?);
            }
        }
    }
    // RFC 3261 §18.3: on a stream Content-Length is mandatory.
    let Some(length) = length else {
        return Err(ParseError::Missing {
            name: "Content-Length",
        });
    };
    let total = end + length;
    if total > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge { size: total });
    }
    Ok((buf.len() >= total).then_some(total))
}

fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 9 {
        return Err(ParseError::ContentLength {
            reason: format!("'{v}' is not a small non-negative number"),
        });
    }
    v.parse().map_err(|_| ParseError::ContentLength {
        reason: format!("'{v}' is not a number"),
    })
}

impl Message {
    /// Parses one whole message (a datagram, or a frame cut by `frame_length`).
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        Self::parse_with_top_via(buf).map(|(m, _)| m)
    }

    /// `parse`, also handing out the top Via it had to parse to check it.
    pub fn parse_with_top_via(buf: &[u8]) -> Result<(Message, super::Via), ParseError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge { size: buf.len() });
        }
        // Leading CRLFs are keepalives / allowed noise (RFC 3261 §7.5).
        let start_at = buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(buf.len());
        let buf = &buf[start_at..];
        let end = header_end(buf).ok_or(ParseError::NoHeaderEnd)?;
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::HeaderLine {
            line: 0,
            reason: "headers are not UTF-8".into(),
        })?;
        let mut lines = unfold(head);
        let first = lines.next().ok_or_else(|| ParseError::StartLine {
            reason: "empty message".into(),
        })?;
        let start = parse_start_line(&first)?;
        let mut headers = Vec::with_capacity(16);
        for (n, line) in lines.enumerate() {
            if line.is_empty() {
                continue;
            }
            let (name, value) = split_colon(&line).ok_or_else(|| ParseError::HeaderLine {
                line: n + 2,
                reason: "no ':'".into(),
            })?;
            let name = name.trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(ParseError::HeaderLine {
                    line: n + 2,
                    reason: format!("bad header name '{name}'"),
                });
            }
            headers.push(Header {
                name: canonical_name(name),
                value: value.trim().to_owned(),
            });
        }
        let mut body = buf[end..].to_vec();
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        if let Some(cl) = msg.header("Content-Length") {
            let cl = parse_content_length(cl)?;
            if cl > body.len() {
                return Err(ParseError::ContentLength {
                    reason: format!("says {cl} bytes but only {} arrived", body.len()),
                });
            }
            // Extra bytes after the declared body are discarded (RFC 3261 §18.3).
            body.truncate(cl);
        }
        msg.body = body;
        let via = msg.check_mandatory()?;
        Ok((msg, via))
    }

    fn check_mandatory(&self) -> Result<super::Via, ParseError> {
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if self.header(name).is_none() {
                return Err(ParseError::Missing { name });
            }
        }
        let (num, method) = self.cseq().ok_or(ParseError::BadHeader {
            name: "CSeq",
            reason: "expected '<number> <METHOD>'".into(),
        })?;
        let _ = num;
        if let StartLine::Request { method: m, .. } = &self.start {
            if m != method {
                return Err(ParseError::BadHeader {
                    name: "CSeq",
                    reason: format!("method {method} differs from request method {m}"),
                });
            }
        }
        if let Some(mf) = self.header("Max-Forwards") {
            if mf.parse::<u32>().is_err() {
                return Err(ParseError::BadHeader {
                    name: "Max-Forwards",
                    reason: format!("'{mf}' is not a number"),
                });
            }
        }
        self.top_via().ok_or(ParseError::BadHeader {
            name: "Via",
            reason: "cannot parse the top Via".into(),
        })
    }

    /// The start line and the headers a response is built from (Via, From,
    /// To, Call-ID, CSeq): what a server transaction keeps of its request.
    pub fn transaction_stub(&self) -> Message {
        Message {
            start: self.start.clone(),
            headers: self
                .headers
                .iter()
                .filter(|h| matches!(h.name.as_ref(), "Via" | "From" | "To" | "Call-ID" | "CSeq"))
                .cloned()
                .collect(),
            body: Vec::new(),
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> &str {
        match &self.start {
            StartLine::Request { method, .. } => method,
            StartLine::Response { .. } => self.cseq().map(|c| c.1).unwrap_or(""),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn uri(&self) -> &str {
        match &self.start {
            StartLine::Request { uri, .. } => uri,
            _ => "",
        }
    }

    pub fn set_uri(&mut self, new: String) {
        if let StartLine::Request { uri, .. } = &mut self.start {
            *uri = new;
        }
    }

    /// First header of that (canonical) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// All values of a header, comma-separated lists split (for list-valued headers).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| list_items(&h.value))
            .collect()
    }

    /// The first value of a list header (the top Via, the top Route).
    pub fn first_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| list_items(&h.value))
            .next()
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or("")
    }

    pub fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_whitespace();
        let num = it.next()?.parse().ok()?;
        let method = it.next()?;
        it.next().is_none().then_some((num, method))
    }

    pub fn top_via(&self) -> Option<super::Via> {
        super::Via::parse(self.first_value("Via")?)
    }

    pub fn push_header_front(&mut self, name: &str, value: String) {
        self.headers.insert(
            0,
            Header {
                name: canonical_name(name),
                value,
            },
        );
    }

    /// Inserts before the first header of that name (or at the top).
    pub fn insert_first(&mut self, name: &str, value: String) {
        let at = self
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
            .unwrap_or(0);
        self.headers.insert(
            at,
            Header {
                name: canonical_name(name),
                value,
            },
        );
    }

    pub fn add_header(&mut self, name: &str, value: String) {
        self.headers.push(Header {
            name: canonical_name(name),
            value,
        });
    }

    pub fn set_header(&mut self, name: &str, value: String) {
        self.remove_headers(name);
        self.add_header(name, value);
    }

    pub fn remove_headers(&mut self, name: &str) {
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Removes the first value of a list header (the top Via / top Route).
    pub fn remove_first_value(&mut self, name: &str) -> Option<String> {
        let idx = self.first_value_index(name)?;
        let value = std::mem::take(&mut self.headers[idx].value);
        let mut items = list_items(&value);
        let first = items.next().map(str::to_owned);
        let rest: Vec<&str> = items.collect();
        if rest.is_empty() {
            self.headers.remove(idx);
        } else {
            self.headers[idx].value = rest.join(", ");
        }
        first
    }

    /// Replaces the first value of a list header.
    pub fn replace_first_value(&mut self, name: &str, new: String) {
        let Some(idx) = self.first_value_index(name) else {
            return;
        };
        let value = &self.headers[idx].value;
        let mut items = list_items(value);
        let _ = items.next();
        let rest: Vec<&str> = items.collect();
        if rest.is_empty() {
            self.headers[idx].value = new; // the usual case: one value per line
        } else {
            let mut joined = new;
            for r in rest {
                joined.push_str(", ");
                joined.push_str(r);
            }
            self.headers[idx].value = joined;
        }
    }

    /// Index of the first header of that name holding a (non-empty) value.
    fn first_value_index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| {
            h.name.eq_ignore_ascii_case(name) && list_items(&h.value).next().is_some()
        })
    }

    /// Wire form; Content-Length is always written, from the real body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(method.as_bytes());
                out.push(b' ');
                out.extend_from_slice(uri.as_bytes());
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                push_decimal(&mut out, usize::from(*code));
                out.push(b' ');
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            if h.name == "Content-Length" {
                continue;
            }
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, self.body.len());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Joins folded continuation lines (RFC 3261 §7.3.1) and strips line ends;
/// a line is copied only when it really was folded.
fn unfold(head: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let mut raw = lines(head)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .peekable();
    std::iter::from_fn(move || {
        let line = raw.next()?;
        let folded = |l: &&str| l.starts_with(' ') || l.starts_with('\t');
        if raw.peek().is_none_or(|n| !folded(n)) {
            return Some(Cow::Borrowed(line));
        }
        let mut joined = line.to_owned();
        while let Some(cont) = raw.next_if(folded) {
            joined.push(' ');
            joined.push_str(cont.trim());
        }
        Some(Cow::Owned(joined))
    })
}

/// `text.split('\n')` by memchr: the same pieces, without a char searcher
/// per line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        match memchr::memchr(b'\n', t.as_bytes()) {
            Some(i) => {
                rest = Some(&t[i + 1..]);
                Some(&t[..i])
            }
            None => {
                rest = None;
                Some(t)
            }
        }
    })
}

/// `split_once(':')` by memchr.
fn split_colon(line: &str) -> Option<(&str, &str)> {
    let i = memchr::memchr(b':', line.as_bytes())?;
    Some((&line[..i], &line[i + 1..]))
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    let bad = |reason: &str| ParseError::StartLine {
        reason: reason.to_owned(),
    };
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .map_err(|_| bad("status code is not a number"))?;
        if !(100..=699).contains(&code) {
            return Err(bad("status code out of 100..699"));
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected 'METHOD URI SIP/2.0'"));
    };
    if method.is_empty() || !method.bytes().all(is_token_char) {
        return Err(bad("bad method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(bad("unsupported SIP version"));
    }
    if uri.is_empty() || !uri.contains(':') {
        return Err(bad("bad Request-URI"));
    }
    Ok(StartLine::Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
    })
}

/// Builds a response to `req` (RFC 3261 §8.2.6): copies Via, From, To, Call-ID, CSeq.
pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
    let mut headers = Vec::with_capacity(8);
    for h in &req.headers {
        if matches!(h.name.as_ref(), "Via" | "From" | "Call-ID" | "CSeq") {
            headers.push(h.clone());
        } else if h.name == "To" {
            let mut value = h.value.clone();
            if let Some(tag) = to_tag {
                if super::param(&value, "tag").is_none() {
                    value.push_str(";tag=");
                    value.push_str(tag);
                }
            }
            headers.push(Header {
                name: "To".into(),
                value,
            });
        }
    }
    headers.push(Header {
        name: "Server".into(),
        value: "besip-pbxd".into(),
    });
    Message {
        start: StartLine::Response {
            code,
            reason: reason.to_owned(),
        },
        headers,
        body: Vec::new(),
    }
}
