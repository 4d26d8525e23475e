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
                return Err(invalid(name, format!("query parameter '{name}' is given twice")));
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
                // Appending is what the datastore does; the other places are not offered.
                "insert" if value == "last" => {}
                "insert" | "point" => {
                    return Err(ConfigError::protocol(
                        ErrorTag::OperationNotSupported,
                        format!("{name}={value}: only insert=last is offered (ordered-by user lists append)"),
                    ))
                }
                "fields" | "filter" | "start-time" | "stop-time" => {
                    return Err(ConfigError::protocol(
                        ErrorTag::OperationNotSupported,
                        format!("the query parameter '{name}' is not offered by this server"),
                    ))
                }
                other => return Err(invalid(other, format!("unknown query parameter '{other}'"))),
            }
            q.given.push(name.to_owned());
        }
        Ok(q)
    }

    /// RFC 8040 §4.8: a parameter not defined for the method is an error.
    pub fn only(&self, allowed: &[&str], method: &str) -> Result<(), ConfigError> {
        match self.given.iter().find(|g| !allowed.contains(&g.as_str())) {
            Some(g) => Err(invalid(g, format!("query parameter '{g}' is not allowed with {method}"))),
            None => Ok(()),
        }
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
        assert!(Query::parse(Some("insert=first")).is_err());
    }
}
