//! RFC 8040 §4.8 query parameters.

use crate::api_path::percent_decode;
use besip_core::datastore::WithDefaults;
use besip_core::error::{ConfigError, ErrorTag};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Content {
    #[default]
    All,
    Config,
    Nonconfig,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub content: Content,
    pub depth: Option<u32>,
    pub with_defaults: Option<WithDefaults>,
    /// RFC 8040 §4.8.3 fields, expanded to paths (`a/b`, `m:c`).
    pub fields: Vec<String>,
    /// RFC 8040 §4.8.5-6: where POST/PUT put an entry of a user-ordered
    /// list or leaf-list (first, last, before, after) and the resource it
    /// goes before or after.
    pub insert: Option<String>,
    pub point: Option<String>,
    /// RFC 8040 §4.8.7-8, event streams only.
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    pub stop_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Which parameters were given (each is allowed with some methods only).
    pub given: Vec<String>,
}

fn invalid(name: &str, message: String) -> ConfigError {
    ConfigError::protocol(ErrorTag::InvalidValue, message).with_info("bad-attribute", name)
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ConfigError> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(&value.replace('+', " "))?;
            if q.given.iter().any(|g| g == name) {
                return Err(invalid(
                    name,
                    format!("query parameter '{name}' is given twice"),
                ));
            }
            match name {
                "content" => {
                    q.content = match value.as_str() {
                        "all" => Content::All,
                        "config" => Content::Config,
                        "nonconfig" => Content::Nonconfig,
                        _ => return Err(invalid(name, format!("content '{value}' is not all, config or nonconfig"))),
                    }
                }
                "depth" => {
                    q.depth = match value.as_str() {
                        "unbounded" => None,
                        v => Some(
                            v.parse::<u32>()
                                .ok()
                                .filter(|d| (1..=65535).contains(d))
                                .ok_or_else(|| invalid(name, format!("depth '{v}' is not 1..65535 or unbounded")))?,
                        ),
                    }
                }
                "with-defaults" => {
                    q.with_defaults = Some(WithDefaults::parse(&value).ok_or_else(|| {
                        invalid(name, format!("with-defaults '{value}' is not report-all, trim, explicit or report-all-tagged"))
                    })?)
                }
                "insert" => {
                    if !matches!(value.as_str(), "first" | "last" | "before" | "after") {
                        return Err(invalid(name, format!("insert '{value}' is not first, last, before or after")));
                    }
                    q.insert = Some(value.clone());
                }
                "point" => q.point = Some(value.clone()),
                "fields" => q.fields = expand_fields(&value)?,
                "start-time" | "stop-time" => {
                    let time = chrono::DateTime::parse_from_rfc3339(&value)
                        .map_err(|_| {
                            invalid(name, format!("{name} '{value}' is not a date-and-time (RFC 3339)"))
                        })?
                        .with_timezone(&chrono::Utc);
                    match name {
                        "start-time" => q.start_time = Some(time),
                        _ => q.stop_time = Some(time),
                    }
                }
                "filter" => {
                    return Err(ConfigError::protocol(
                        ErrorTag::OperationNotSupported,
                        format!("the query parameter '{name}' is not offered by this server"),
                    ))
                }
                other => return Err(invalid(other, format!("unknown query parameter '{other}'"))),
            }
            q.given.push(name.to_owned());
        }
        let needs_point = matches!(q.insert.as_deref(), Some("before" | "after"));
        if needs_point != q.point.is_some() {
            return Err(invalid(
                "point",
                "point is given with insert=before or insert=after, and only then".into(),
            ));
        }
        Ok(q)
    }

    /// RFC 8040 §4.8: a parameter not defined for the method is an error.
    pub fn only(&self, allowed: &[&str], method: &str) -> Result<(), ConfigError> {
        match self.given.iter().find(|g| !allowed.contains(&g.as_str())) {
            Some(g) => Err(invalid(
                g,
                format!("query parameter '{g}' is not allowed with {method}"),
            )),
            None => Ok(()),
        }
    }
}

/// `a;b(c;d/e)` → `a`, `b/c`, `b/d/e`.
pub fn expand_fields(expr: &str) -> Result<Vec<String>, ConfigError> {
    let bad = || {
        invalid(
            "fields",
            format!("fields '{expr}' is not a list of paths (a;b/c;d(e;f))"),
        )
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = expr.as_bytes();
    let mut items = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.checked_sub(1).ok_or_else(bad)?,
            b';' if depth == 0 => {
                items.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(bad());
    }
    items.push(&expr[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad());
        }
        match item.find('(') {
            Some(open) if item.ends_with(')') => {
                let head = &item[..open];
                if head.is_empty() {
                    return Err(bad());
                }
                for sub in expand_fields(&item[open + 1..item.len() - 1])? {
                    out.push(format!("{head}/{sub}"));
                }
            }
            Some(_) => return Err(bad()),
            None => out.push(item.to_owned()),
        }
    }
    let valid = |p: &str| {
        p.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
    };
    if out.iter().all(|p| valid(p)) {
        Ok(out)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let q = Query::parse(Some("content=config&depth=2&with-defaults=report-all")).unwrap();
        assert_eq!(q.content, Content::Config);
        assert_eq!(q.depth, Some(2));
        assert_eq!(q.with_defaults, Some(WithDefaults::ReportAll));
        assert!(q.only(&["content"], "DELETE").is_err());
        assert!(Query::parse(Some("depth=0")).is_err());
        assert!(Query::parse(Some("bogus=1")).is_err());
        assert!(Query::parse(Some("depth=1&depth=2")).is_err());
        assert_eq!(
            Query::parse(Some("insert=first"))
                .unwrap()
                .insert
                .as_deref(),
            Some("first")
        );
        assert!(Query::parse(Some("insert=middle")).is_err());
        assert!(
            Query::parse(Some("insert=before")).is_err(),
            "before needs a point"
        );
        assert!(
            Query::parse(Some("point=/m:a=1")).is_err(),
            "a point needs before/after"
        );
        let q = Query::parse(Some("insert=after&point=/m:a=1")).unwrap();
        assert_eq!(q.point.as_deref(), Some("/m:a=1"));
        assert_eq!(
            expand_fields("a;b(c;d/e);m:f").unwrap(),
            vec!["a", "b/c", "b/d/e", "m:f"]
        );
        assert!(expand_fields("a(b").is_err());
        assert!(expand_fields("a;;b").is_err());
        assert!(expand_fields("a[1]").is_err());
    }
}
