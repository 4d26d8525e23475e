//! What every resource handler shares: its request's context, and the
//! namespaces and validators (ETag, Last-Modified) of a datastore's version.

use crate::backend::{Principal, Version};
use crate::errors::Format;
use axum::http::{HeaderMap, HeaderValue, Method};

pub const BASE_NS: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";
pub const WITH_DEFAULTS_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults";

/// What a resource handler knows about its request.
pub struct Ctx<'a, B> {
    pub backend: &'a B,
    pub who: &'a Principal,
    pub method: Method,
    pub headers: &'a HeaderMap,
    /// Reply format (Accept, else the body's Content-Type, else JSON).
    pub format: Format,
    /// The api-path part of the URL, raw.
    pub raw_path: &'a str,
    /// `/restconf/data` or `/restconf/ds/<name>` (for Location).
    pub data_base: &'a str,
    pub max_elements: usize,
}

pub fn etag(v: &Version) -> HeaderValue {
    let started = v
        .modified
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    HeaderValue::from_str(&format!("\"{:x}-{}\"", started, v.generation))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

pub fn last_modified(v: &Version) -> HeaderValue {
    let t: chrono::DateTime<chrono::Utc> = v.modified.into();
    HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}
