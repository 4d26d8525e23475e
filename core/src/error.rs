//! Errors reported to configuration clients, shaped like NETCONF `<rpc-error>`
//! (RFC 6241 appendix A) so every front end (NETCONF, CLI, import) can show them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Transport,
    Rpc,
    Protocol,
    Application,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Transport => "transport",
            ErrorType::Rpc => "rpc",
            ErrorType::Protocol => "protocol",
            ErrorType::Application => "application",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTag {
    InUse,
    InvalidValue,
    TooBig,
    MissingAttribute,
    BadAttribute,
    UnknownAttribute,
    MissingElement,
    BadElement,
    UnknownElement,
    UnknownNamespace,
    AccessDenied,
    LockDenied,
    ResourceDenied,
    RollbackFailed,
    DataExists,
    DataMissing,
    OperationNotSupported,
    OperationFailed,
    MalformedMessage,
}

impl ErrorTag {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorTag::InUse => "in-use",
            ErrorTag::InvalidValue => "invalid-value",
            ErrorTag::TooBig => "too-big",
            ErrorTag::MissingAttribute => "missing-attribute",
            ErrorTag::BadAttribute => "bad-attribute",
            ErrorTag::UnknownAttribute => "unknown-attribute",
            ErrorTag::MissingElement => "missing-element",
            ErrorTag::BadElement => "bad-element",
            ErrorTag::UnknownElement => "unknown-element",
            ErrorTag::UnknownNamespace => "unknown-namespace",
            ErrorTag::AccessDenied => "access-denied",
            ErrorTag::LockDenied => "lock-denied",
            ErrorTag::ResourceDenied => "resource-denied",
            ErrorTag::RollbackFailed => "rollback-failed",
            ErrorTag::DataExists => "data-exists",
            ErrorTag::DataMissing => "data-missing",
            ErrorTag::OperationNotSupported => "operation-not-supported",
            ErrorTag::OperationFailed => "operation-failed",
            ErrorTag::MalformedMessage => "malformed-message",
        }
    }
}

/// One error about configuration, with the YANG data path of the fault
/// (libyang JSON form: `/besip-pbx:pbx/extension[number='100']/password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub error_type: ErrorType,
    pub tag: ErrorTag,
    pub app_tag: Option<String>,
    pub path: Option<String>,
    pub message: String,
    /// `<error-info>` children, e.g. ("bad-element", "foo") or ("session-id", "3").
    pub info: Vec<(String, String)>,
}

impl ConfigError {
    pub fn new(tag: ErrorTag, message: impl Into<String>) -> Self {
        ConfigError {
            error_type: ErrorType::Application,
            tag,
            app_tag: None,
            path: None,
            message: message.into(),
            info: Vec::new(),
        }
    }

    pub fn protocol(tag: ErrorTag, message: impl Into<String>) -> Self {
        ConfigError {
            error_type: ErrorType::Protocol,
            ..ConfigError::new(tag, message)
        }
    }

    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_app_tag(mut self, tag: impl Into<String>) -> Self {
        self.app_tag = Some(tag.into());
        self
    }

    pub fn with_info(mut self, name: &str, value: impl Into<String>) -> Self {
        self.info.push((name.to_owned(), value.into()));
        self
    }

    /// Map a libyang validation error to the error-tag RFC 7950 §15 asks for.
    pub fn from_validation(e: &yang2::Error) -> Self {
        let message = e.msg.clone().unwrap_or_else(|| "validation failed".into());
        let app_tag = e.apptag.clone();
        let lower = message.to_ascii_lowercase();
        let (tag, default_app_tag) = match app_tag.as_deref() {
            Some("instance-required") => (ErrorTag::DataMissing, None),
            Some("missing-choice") => (ErrorTag::DataMissing, None),
            Some(_) => (ErrorTag::OperationFailed, None),
            None if lower.contains("mandatory") => (ErrorTag::DataMissing, Some("missing-element")),
            None if lower.contains("unique") => {
                (ErrorTag::OperationFailed, Some("data-not-unique"))
            }
            None if lower.contains("too many") => {
                (ErrorTag::OperationFailed, Some("too-many-elements"))
            }
            None if lower.contains("too few") => {
                (ErrorTag::OperationFailed, Some("too-few-elements"))
            }
            None if lower.contains("must condition") => {
                (ErrorTag::OperationFailed, Some("must-violation"))
            }
            None if lower.contains("leafref") || lower.contains("required instance") => {
                (ErrorTag::DataMissing, Some("instance-required"))
            }
            None => (ErrorTag::InvalidValue, None),
        };
        ConfigError {
            error_type: ErrorType::Application,
            tag,
            app_tag: app_tag.or(default_app_tag.map(str::to_owned)),
            path: e.path.clone(),
            message,
            info: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.tag.as_str(), self.message)?;
        if let Some(path) = &self.path {
            write!(f, " (at {path})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Several errors (continue-on-error collects them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
