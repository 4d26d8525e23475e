//! NETCONF operations of the pages, run through the RESTCONF [`Backend`]
//! of besip-netconfd: the same NACM, locks, candidate, validation and
//! history as every other front end.

use besip_core::error::{ConfigError, ErrorTag};
use besip_core::xml::Element;
use besip_restconf::{Backend, Principal, Reply};

pub const BASE_NS: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";
pub const SYSTEM_NS: &str = "urn:besip:system";

fn malformed(what: &str) -> Vec<ConfigError> {
    vec![ConfigError::new(
        ErrorTag::OperationFailed,
        format!("internal: {what}"),
    )]
}

/// Run one operation written as XML (in the NETCONF base namespace unless
/// it says otherwise).
pub async fn op<B: Backend>(
    backend: &B,
    who: &Principal,
    xml: &str,
) -> Result<Reply, Vec<ConfigError>> {
    let mut parsed = besip_core::xml::parse(xml).map_err(|e| malformed(&e.to_string()))?;
    if parsed.len() != 1 {
        return Err(malformed("one operation expected"));
    }
    backend.operation(who, parsed.remove(0)).await
}

fn data(reply: Reply) -> Result<Vec<Element>, Vec<ConfigError>> {
    match reply {
        Reply::Data(xml) | Reply::Body(xml) => {
            besip_core::xml::parse(&xml).map_err(|e| malformed(&e.to_string()))
        }
        Reply::Ok => Ok(Vec::new()),
    }
}

/// `<get-config>` of `source` (running or candidate), optionally filtered.
pub async fn get_config<B: Backend>(
    backend: &B,
    who: &Principal,
    source: &str,
    filter: Option<&str>,
) -> Result<Vec<Element>, Vec<ConfigError>> {
    let filter = filter
        .map(|f| format!("<filter type=\"subtree\">{f}</filter>"))
        .unwrap_or_default();
    data(
        op(
            backend,
            who,
            &format!(
                "<get-config xmlns=\"{BASE_NS}\"><source><{source}/></source>{filter}</get-config>"
            ),
        )
        .await?,
    )
}

/// `<get>` (configuration and state of running) with a subtree filter.
pub async fn get<B: Backend>(
    backend: &B,
    who: &Principal,
    filter: &str,
) -> Result<Vec<Element>, Vec<ConfigError>> {
    data(
        op(
            backend,
            who,
            &format!("<get xmlns=\"{BASE_NS}\"><filter type=\"subtree\">{filter}</filter></get>"),
        )
        .await?,
    )
}

/// An edit of the candidate: all or nothing (rollback-on-error), so a
/// refused value leaves the candidate as it was.
pub async fn edit_candidate<B: Backend>(
    backend: &B,
    who: &Principal,
    config: &str,
) -> Result<(), Vec<ConfigError>> {
    op(
        backend,
        who,
        &format!(
            "<edit-config xmlns=\"{BASE_NS}\"><target><candidate/></target><error-option>rollback-on-error</error-option><config>{config}</config></edit-config>"
        ),
    )
    .await
    .map(|_| ())
}

/// One line per error: its message and, when known, its data path.
pub fn describe(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| match &e.path {
            Some(p) => format!("{} ({p})", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Was this refused by access control?
pub fn denied(errors: &[ConfigError]) -> bool {
    errors.iter().any(|e| e.tag == ErrorTag::AccessDenied)
}
