//! Request bodies of the forms: bounded before they are read (413 beyond
//! the limit), url-encoded or multipart (the import's file).

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

/// Bodies of ordinary forms (a long leaf-list, a certificate).
pub const FORM_LIMIT: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

fn too_large(limit: usize) -> Response {
    crate::html::bare(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Too large",
        &format!(
            "<p class=\"refused\">The form is larger than {} KiB. Nothing was changed.</p>",
            limit / 1024
        ),
    )
}

fn bad(what: &str) -> Response {
    crate::html::bare(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!(
            "<p class=\"refused\">{}. Nothing was changed.</p>",
            crate::html::esc(what)
        ),
    )
}

/// Read and parse a form body of at most `limit` bytes.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Form, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(boundary) = media.strip_prefix("multipart/form-data").and_then(|rest| {
        rest.split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
    }) {
        return multipart(&bytes, boundary.trim_matches('"')).map_err(|e| bad(&e));
    }
    if bytes.is_empty() {
        return Ok(Form::default());
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map(Form)
        .map_err(|_| bad("the form is not url-encoded"))
}

/// The parts of a multipart/form-data body (RFC 7578), as text.
fn multipart(body: &[u8], boundary: &str) -> Result<Form, String> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err("bad multipart boundary".into());
    }
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut out = Vec::new();
    let mut rest = body;
    let start = find(rest, d).ok_or("no multipart part")?;
    rest = &rest[start + d.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("malformed multipart")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("malformed multipart headers")?;
        let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| "multipart headers")?;
        let after = &rest[head_end + 4..];
        let end = find(after, d).ok_or("unterminated multipart part")?;
        let content = after[..end].strip_suffix(b"\r\n").unwrap_or(&after[..end]);
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';')
                    .find_map(|p| p.trim().strip_prefix("name="))
                    .map(|n| n.trim_matches('"').to_owned())
            })
            .ok_or("a multipart part without a name")?;
        let text = String::from_utf8(content.to_vec())
            .map_err(|_| format!("the part '{name}' is not UTF-8 text"))?;
        out.push((name, text));
        rest = &after[end + d.len()..];
    }
    Ok(Form(out))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_are_read() {
        let body = b"--XY\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.xml\"\r\nContent-Type: text/xml\r\n\r\n<config/>\r\n--XY--\r\n";
        let f = multipart(body, "XY").unwrap();
        assert_eq!(f.get("csrf"), Some("abc"));
        assert_eq!(f.get("file"), Some("<config/>"));
        assert!(multipart(b"garbage", "XY").is_err());
    }
}
