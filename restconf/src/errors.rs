//! RFC 8040 §7 errors documents and the HTTP status of each error-tag.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::xml::escape;

pub const RESTCONF_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-restconf";

/// The media types of RFC 8040 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/yang-data+json",
            Format::Xml => "application/yang-data+xml",
        }
    }

    /// From a Content-Type or one media range of Accept.
    pub fn from_media(media: &str) -> Option<Format> {
        let m = media
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match m.as_str() {
            "application/yang-data+json" | "application/json" => Some(Format::Json),
            "application/yang-data+xml" | "application/xml" | "text/xml" => Some(Format::Xml),
            _ => None,
        }
    }
}

/// RFC 8040 §7 table (first status where it offers several).
pub fn status_of(e: &ConfigError) -> StatusCode {
    use ErrorTag::*;
    match e.tag {
        InUse | LockDenied | ResourceDenied | DataExists | DataMissing => StatusCode::CONFLICT,
        AccessDenied => StatusCode::FORBIDDEN,
        TooBig => StatusCode::PAYLOAD_TOO_LARGE,
        OperationNotSupported => StatusCode::METHOD_NOT_ALLOWED,
        RollbackFailed => StatusCode::INTERNAL_SERVER_ERROR,
        OperationFailed => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An errors document; the status comes from the first error unless given.
pub struct Errors {
    pub status: StatusCode,
    pub errors: Vec<ConfigError>,
    pub format: Format,
}

impl Errors {
    pub fn new(format: Format, errors: Vec<ConfigError>) -> Errors {
        let status = errors
            .first()
            .map(status_of)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Errors {
            status,
            errors,
            format,
        }
    }

    pub fn one(format: Format, e: ConfigError) -> Errors {
        Errors::new(format, vec![e])
    }

    pub fn with_status(mut self, status: StatusCode) -> Errors {
        self.status = status;
        self
    }

    pub fn body(&self) -> String {
        match self.format {
            Format::Json => json_document(&self.errors),
            Format::Xml => xml_document(&self.errors),
        }
    }
}

impl IntoResponse for Errors {
    fn into_response(self) -> Response {
        let body = self.body();
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, self.format.media_type())],
            body,
        )
            .into_response()
    }
}

fn json_document(errors: &[ConfigError]) -> String {
    let list: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| {
            let mut o = serde_json::Map::new();
            o.insert("error-type".into(), e.error_type.as_str().into());
            o.insert("error-tag".into(), e.tag.as_str().into());
            if let Some(t) = &e.app_tag {
                o.insert("error-app-tag".into(), t.clone().into());
            }
            if let Some(p) = &e.path {
                o.insert("error-path".into(), p.clone().into());
            }
            o.insert("error-message".into(), e.message.clone().into());
            if !e.info.is_empty() {
                let info: serde_json::Map<String, serde_json::Value> = e
                    .info
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect();
                o.insert("error-info".into(), info.into());
            }
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::json!({"ietf-restconf:errors": {"error": list}}).to_string()
}

/// Module names used as prefixes in a libyang path (`/besip-pbx:pbx/...`).
fn path_prefixes(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_quote: Option<char> = None;
    let mut word = String::new();
    for c in path.chars() {
        match in_quote {
            Some(q) if c == q => in_quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => in_quote = Some(c),
            None if c == ':' => {
                if !word.is_empty() && !out.contains(&word) {
                    out.push(word.clone());
                }
                word.clear();
            }
            None if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' => word.push(c),
            None => word.clear(),
        }
    }
    out
}

fn xml_document(errors: &[ConfigError]) -> String {
    let schema = besip_core::schema::Schema::get().ok();
    let mut out = format!("<errors xmlns=\"{RESTCONF_NS}\">");
    for e in errors {
        out.push_str("<error>");
        out.push_str(&format!(
            "<error-type>{}</error-type>",
            e.error_type.as_str()
        ));
        out.push_str(&format!("<error-tag>{}</error-tag>", e.tag.as_str()));
        if let Some(t) = &e.app_tag {
            out.push_str(&format!("<error-app-tag>{}</error-app-tag>", escape(t)));
        }
        if let Some(p) = &e.path {
            // Module names serve as XML prefixes, declared right here.
            let decls: String = path_prefixes(p)
                .iter()
                .filter_map(|m| {
                    let ns = schema?.module_by_name(m)?.namespace().to_owned();
                    Some(format!(" xmlns:{m}=\"{}\"", escape(&ns)))
                })
                .collect();
            out.push_str(&format!("<error-path{decls}>{}</error-path>", escape(p)));
        }
        out.push_str(&format!(
            "<error-message>{}</error-message>",
            escape(&e.message)
        ));
        if !e.info.is_empty() {
            out.push_str("<error-info>");
            for (k, v) in &e.info {
                out.push_str(&format!("<{k}>{}</{k}>", escape(v)));
            }
            out.push_str("</error-info>");
        }
        out.push_str("</error>");
    }
    out.push_str("</errors>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_tag_path_and_status() {
        let e = ConfigError::new(ErrorTag::InvalidValue, "bad <x>")
            .at("/besip-pbx:pbx/extension[number='1']/password");
        let doc = Errors::one(Format::Json, e.clone());
        assert_eq!(doc.status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_str(&doc.body()).unwrap();
        assert_eq!(
            v["ietf-restconf:errors"]["error"][0]["error-path"],
            "/besip-pbx:pbx/extension[number='1']/password"
        );
        let xml = Errors::one(Format::Xml, e).body();
        assert!(xml.contains("xmlns:besip-pbx=\"urn:besip:pbx\""), "{xml}");
        assert!(xml.contains("bad &lt;x&gt;"));
        let denied = ConfigError::protocol(ErrorTag::AccessDenied, "no");
        assert_eq!(status_of(&denied), StatusCode::FORBIDDEN);
    }
}
