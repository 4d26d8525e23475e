//! Parsing an `<rpc>` and dispatching its operation; argument helpers shared
//! by the operations.

use crate::ops;
use crate::reply::{self, BASE_NS};
use crate::server::Counters;
use crate::session::SessionCtx;
use besip_core::datastore::WithDefaults;
use besip_core::error::{ConfigError, ErrorTag, ErrorType};
use besip_core::filter::Filter;
use besip_core::xml::Element;

pub const MONITORING_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring";
pub const NOTIFICATION_NS: &str = "urn:ietf:params:xml:ns:netconf:notification:1.0";
pub const WITH_DEFAULTS_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults";

pub struct Outcome {
    pub reply: String,
    pub close: bool,
}

/// What an operation answers.
pub enum Answer {
    Ok,
    /// Content of `<data>`.
    Data(String),
    /// The whole body of `<rpc-reply>` (e.g. RPC output).
    Body(String),
    /// `<ok/>`, then the session ends.
    Close,
}

pub type OpResult = Result<Answer, Vec<ConfigError>>;

pub async fn handle(ctx: &mut SessionCtx, text: &str) -> Outcome {
    Counters::bump(&ctx.counters.in_rpcs);
    Counters::bump(&ctx.server.totals.in_rpcs);
    let roots = match besip_core::xml::parse_limited(text, ctx.server.settings.max_message_elements)
    {
        Ok(roots) => roots,
        Err(e) if e.is_limit() => {
            let e = ConfigError {
                error_type: ErrorType::Rpc,
                ..ConfigError::new(
                    ErrorTag::TooBig,
                    format!("{e} (besip-system netconf/max-message-elements; nesting at most {} levels)", besip_core::xml::MAX_DEPTH),
                )
            };
            return bad_rpc(ctx, "", e);
        }
        Err(e) => {
            return bad_rpc(
                ctx,
                "",
                ConfigError::new(ErrorTag::MalformedMessage, e.to_string()),
            )
        }
    };
    let rpc = match roots.as_slice() {
        [r] if r.name == "rpc" && r.namespace == BASE_NS => r,
        _ => {
            let e = ConfigError::new(
                ErrorTag::MalformedMessage,
                "expected exactly one <rpc> element in the NETCONF base namespace",
            );
            return bad_rpc(ctx, "", e);
        }
    };
    let attributes = reply::reply_attributes(&rpc.attributes);
    if rpc.attribute("", "message-id").is_none() {
        let e = ConfigError::new(
            ErrorTag::MissingAttribute,
            "<rpc> needs a message-id attribute",
        )
        .with_info("bad-attribute", "message-id")
        .with_info("bad-element", "rpc");
        return bad_rpc(ctx, &attributes, e);
    }
    let op = match rpc.children.as_slice() {
        [op] => op,
        [] => {
            let e = ConfigError::protocol(ErrorTag::MissingElement, "<rpc> names no operation")
                .with_info("bad-element", "rpc");
            return bad_rpc(ctx, &attributes, e);
        }
        _ => {
            let e = ConfigError::new(
                ErrorTag::MalformedMessage,
                "<rpc> must hold exactly one operation",
            );
            return bad_rpc(ctx, &attributes, e);
        }
    };
    let result = ops::dispatch(ctx, rpc, op).await;
    let (reply, close) = match result {
        Ok(Answer::Ok) => (reply::ok(&attributes), false),
        Ok(Answer::Data(d)) => (reply::data(&attributes, &d), false),
        Ok(Answer::Body(b)) => (reply::reply(&attributes, &b), false),
        Ok(Answer::Close) => (reply::ok(&attributes), true),
        Err(errors) => {
            Counters::bump(&ctx.counters.out_rpc_errors);
            Counters::bump(&ctx.server.totals.out_rpc_errors);
            // RFC 8341 /nacm counters: a denied write is an application error.
            if let Some(e) = errors.iter().find(|e| e.tag == ErrorTag::AccessDenied) {
                let counter = if e.error_type == ErrorType::Application {
                    &ctx.server.nacm_denied.data_writes
                } else {
                    &ctx.server.nacm_denied.operations
                };
                Counters::bump(counter);
            }
            (reply::errors(&attributes, &errors), false)
        }
    };
    Outcome { reply, close }
}

fn bad_rpc(ctx: &SessionCtx, attributes: &str, mut e: ConfigError) -> Outcome {
    if e.tag == ErrorTag::MalformedMessage {
        e.error_type = ErrorType::Rpc;
    }
    Counters::bump(&ctx.counters.in_bad_rpcs);
    Counters::bump(&ctx.server.totals.in_bad_rpcs);
    Counters::bump(&ctx.counters.out_rpc_errors);
    Counters::bump(&ctx.server.totals.out_rpc_errors);
    Outcome {
        reply: reply::errors(attributes, &[e]),
        close: false,
    }
}

/// A datastore or other source/target of an operation.
#[derive(Debug)]
pub enum Store {
    Running,
    Candidate,
    Startup,
    Url(String),
    Config(Vec<Element>),
}

/// `<source>`/`<target>` of an operation.
pub fn store_arg(op: &Element, which: &str) -> Result<Store, ConfigError> {
    let holder = base_child(op, which).ok_or_else(|| missing(which))?;
    let [inner] = holder.children.as_slice() else {
        return Err(ConfigError::protocol(
            ErrorTag::MissingElement,
            format!("<{which}> must name exactly one datastore"),
        )
        .with_info("bad-element", which));
    };
    match inner.name.as_str() {
        "running" => Ok(Store::Running),
        "candidate" => Ok(Store::Candidate),
        "startup" => Ok(Store::Startup),
        "url" => Ok(Store::Url(inner.trimmed_text().to_owned())),
        "config" => Ok(Store::Config(inner.children.clone())),
        other => Err(ConfigError::protocol(
            ErrorTag::BadElement,
            format!(
                "<{other}> is not a datastore of this server (running, candidate, url, config)"
            ),
        )
        .with_info("bad-element", other)),
    }
}

/// A child in the base namespace (clients such as ncclient also send
/// `<config>` with no namespace inside a prefixed operation).
pub fn base_child<'a>(op: &'a Element, name: &str) -> Option<&'a Element> {
    op.children
        .iter()
        .find(|c| c.name == name && (c.namespace == BASE_NS || c.namespace.is_empty()))
}

pub fn missing(element: &str) -> ConfigError {
    ConfigError::protocol(ErrorTag::MissingElement, format!("<{element}> is required"))
        .with_info("bad-element", element)
}

pub fn bad_value(element: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::protocol(ErrorTag::InvalidValue, message).with_info("bad-element", element)
}

/// The text of an optional child in the base namespace.
pub fn text_of<'a>(op: &'a Element, name: &str) -> Option<&'a str> {
    op.children
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.trimmed_text())
}

pub fn access_denied(what: &str) -> Vec<ConfigError> {
    vec![ConfigError::protocol(
        ErrorTag::AccessDenied,
        format!("your group may not {what} (NACM)"),
    )]
}

/// A `file://` URL as a local path (the only scheme this server offers).
pub fn url_path(url: &str) -> Result<std::path::PathBuf, ConfigError> {
    let path = url.strip_prefix("file://").ok_or_else(|| {
        ConfigError::protocol(
            ErrorTag::InvalidValue,
            format!("unsupported URL '{url}': only file:///absolute/path is offered"),
        )
        .with_info("bad-element", "url")
    })?;
    if !path.starts_with('/') || path.split('/').any(|s| s == "..") {
        return Err(bad_value(
            "url",
            format!("'{url}' must be an absolute file:/// path without '..'"),
        ));
    }
    Ok(std::path::PathBuf::from(path))
}

pub fn with_defaults(op: &Element) -> Result<WithDefaults, ConfigError> {
    match op.child_ns(WITH_DEFAULTS_NS, "with-defaults") {
        None => Ok(WithDefaults::Explicit),
        Some(wd) => WithDefaults::parse(wd.trimmed_text()).ok_or_else(|| {
            bad_value(
                "with-defaults",
                format!("with-defaults '{}' is not one of explicit, report-all, report-all-tagged, trim", wd.trimmed_text()),
            )
        }),
    }
}

pub fn filter(rpc: &Element, op: &Element) -> Result<Filter, ConfigError> {
    let Some(f) = base_child(op, "filter") else {
        return Ok(Filter::All);
    };
    match f.attribute("*", "type").unwrap_or("subtree") {
        "subtree" => Ok(Filter::Subtree(f.children.clone())),
        "xpath" => {
            let select = f.attribute("*", "select").ok_or_else(|| {
                ConfigError::protocol(
                    ErrorTag::MissingAttribute,
                    "an xpath filter needs a select attribute",
                )
                .with_info("bad-attribute", "select")
                .with_info("bad-element", "filter")
            })?;
            let mut namespaces = rpc.namespace_declarations.clone();
            namespaces.extend(op.namespace_declarations.iter().cloned());
            namespaces.extend(f.namespace_declarations.iter().cloned());
            Ok(Filter::XPath {
                select: select.to_owned(),
                namespaces,
            })
        }
        other => Err(ConfigError::protocol(
            ErrorTag::BadAttribute,
            format!("filter type '{other}' is not subtree or xpath"),
        )
        .with_info("bad-attribute", "type")
        .with_info("bad-element", "filter")),
    }
}
