//! Hand-edited UCI packages go through the datastore (a BESIP promise). After
//! `uci commit besip_pbx` + `reload_config`, procd runs the init script's
//! `reload_service`, which runs `besip-uci-import besip_pbx`; that asks
//! netconfd over its root-only socket (`netconf.sock`) — or a NETCONF client
//! calls `besip-system:import-uci` — to import /etc/config/besip_pbx: it is
//! validated against YANG and committed like any NETCONF change (the daemons
//! get it through the commit's two-phase reload), or refused with file, line
//! and YANG path; then the file is put back as running renders it, the
//! refused text is kept in the run directory, and `uci-import-refused` is
//! published to NETCONF subscribers.

use crate::server::{lock, Server};
use besip_core::datastore::{CommitOptions, Source};
use besip_core::error::{ConfigError, ConfigErrors, ErrorTag};
use besip_core::ipc::{Handler, HandlerError, IpcError, IpcServer};
use besip_core::uci::{Package, UciError};
use besip_core::uci_map::UciImportError;
use besip_core::xml::escape;
use serde_json::{json, Value};
use snafu::{ResultExt, Snafu};
use std::path::PathBuf;
use std::sync::Arc;

/// The RPC, in besip-system, for NETCONF clients and the local socket.
pub const RPC_NAME: &str = "import-uci";
const SYSTEM_NS: &str = "urn:besip:system";
const NC_NOTIF_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications";

/// Why a hand edit was not committed.
#[derive(Debug, Snafu)]
pub enum ImportError {
    #[snafu(display("'{package}' is not the UCI package of a BESIP module"))]
    UnknownPackage { package: String },
    #[snafu(display("cannot read {}: {source}", path.display()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("{reason}"))]
    Busy { reason: String },
    #[snafu(display("{source}"))]
    Syntax { source: UciError },
    #[snafu(display("{source}"))]
    Invalid { source: UciImportError },
    #[snafu(display("the commit was refused: {source}"))]
    Commit { source: ConfigErrors },
}

impl ImportError {
    /// Line of the file the fault is on, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ImportError::Syntax {
                source: UciError::Syntax { line, .. } | UciError::BadValue { line, .. },
            } => Some(*line),
            ImportError::Invalid { source } if source.line > 0 => Some(source.line),
            _ => None,
        }
    }

    /// YANG path of the node the fault is on, when known.
    pub fn yang_path(&self) -> Option<&str> {
        match self {
            ImportError::Invalid { source } if !source.yang_path.is_empty() => {
                Some(&source.yang_path)
            }
            ImportError::Commit { source } => source.0.iter().find_map(|e| e.path.as_deref()),
            _ => None,
        }
    }
}

/// A refused import: the cause, the file (put back as running renders it)
/// and where the refused text was kept.
#[derive(Debug)]
pub struct Refused {
    pub error: ImportError,
    pub file: PathBuf,
    pub kept: Option<PathBuf>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.error.line() {
            write!(f, ":{line}")?;
        }
        write!(f, ": edit refused: {}", self.error)?;
        if let Some(path) = self.error.yang_path() {
            write!(f, " (YANG path {path})")?;
        }
        if let Some(kept) = &self.kept {
            write!(
                f,
                "; the file was put back to the running configuration, the refused text is in {}",
                kept.display()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// What an accepted import did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// The file is what running renders: nothing to do.
    Unchanged,
    /// Committed; the history id (None when the edit changed no value).
    Committed(Option<i64>),
}

/// Import `/etc/config/<package>` as the whole configuration of its module
/// and commit it as `user`.
pub async fn import(server: &Server, package: &str, user: &str) -> Result<Imported, Refused> {
    let file = server.layout.uci_package(package);
    let refused = |error| Refused {
        error,
        file: file.clone(),
        kept: None,
    };
    let schema = besip_core::schema::Schema::get().map_err(|_| {
        refused(ImportError::UnknownPackage {
            package: package.to_owned(),
        })
    })?;
    let Some(module) = schema
        .besip_modules()
        .find(|m| m.uci_package().as_deref() == Some(package))
    else {
        return Err(refused(ImportError::UnknownPackage {
            package: package.to_owned(),
        }));
    };
    let mut store = server.store.lock().await;
    let running_text = store
        .render_text(Source::Running, &module.name)
        .unwrap_or_default();
    let outcome = match std::fs::read_to_string(&file) {
        Ok(text) if text == running_text => return Ok(Imported::Unchanged),
        Ok(text) => commit_edit(server, &mut store, &file, user)
            .await
            .map_err(|error| (error, text)),
        Err(source) => Err((
            ImportError::Read {
                path: file.clone(),
                source,
            },
            String::new(),
        )),
    };
    match outcome {
        Ok(imported) => Ok(imported),
        Err((error, text)) => {
            let kept = put_back(server, &file, package, &text, &running_text);
            drop(store);
            let refusal = Refused { error, file, kept };
            tracing::warn!(package, "{refusal}");
            server.publish(&refused_notification(&refusal));
            Err(refusal)
        }
    }
}

/// Parse, import and commit the file, or leave the candidate as it was.
async fn commit_edit(
    server: &Server,
    store: &mut besip_core::datastore::Datastore,
    file: &std::path::Path,
    user: &str,
) -> Result<Imported, ImportError> {
    {
        let locks = lock(&server.locks);
        if let Some((session, _)) = locks.running.as_ref().or(locks.candidate.as_ref()) {
            return BusySnafu {
                reason: format!("the configuration is locked by NETCONF session {session}"),
            }
            .fail();
        }
    }
    if store.candidate_modified() {
        return BusySnafu {
            reason: "the candidate holds uncommitted NETCONF changes: commit or discard them first",
        }
        .fail();
    }
    if store.confirm_deadline().is_some() {
        return BusySnafu {
            reason: "a confirmed commit is pending: confirm or cancel it first",
        }
        .fail();
    }
    let package = Package::load(file).context(SyntaxSnafu)?;
    store.import_uci(&package).context(InvalidSnafu)?;
    let options = CommitOptions {
        user: user.to_owned(),
        comment: format!("hand edit of {}", file.display()),
        confirmed: None,
        persist_id: None,
        session_id: None,
    };
    let started = std::time::Instant::now();
    let outcome = store.commit(options, &server.reloader).await;
    server.commits.record(outcome.is_ok(), started.elapsed());
    match outcome {
        Ok(outcome) => {
            server.running_changed(store);
            if outcome.id.is_some() {
                tracing::info!(file = %file.display(), user, "hand edit imported and committed");
                server.publish(&format!(
                    "<netconf-config-change xmlns=\"{NC_NOTIF_NS}\"><changed-by><server/></changed-by><datastore>running</datastore></netconf-config-change>"
                ));
            }
            Ok(Imported::Committed(outcome.id))
        }
        Err(source) => {
            if let Err(e) = store.discard_changes() {
                tracing::error!(error = %e, "dropping the refused import from the candidate failed");
            }
            Err(ImportError::Commit { source })
        }
    }
}

/// Keep the refused text beside the sockets and write back what running
/// renders. Returns where the refused text is.
fn put_back(
    server: &Server,
    file: &std::path::Path,
    package: &str,
    refused_text: &str,
    running_text: &str,
) -> Option<PathBuf> {
    let kept = server.layout.run_dir().join(format!("{package}.refused"));
    let kept = match std::fs::write(&kept, refused_text) {
        Ok(()) => Some(kept),
        Err(e) => {
            tracing::warn!(path = %kept.display(), error = %e, "cannot keep the refused text");
            None
        }
    };
    if let Err(e) = besip_core::persist::replace_derived(file, running_text.as_bytes()) {
        tracing::error!(file = %file.display(), error = %e, "cannot put the file back");
    }
    kept
}

/// besip-system `uci-import-refused`.
fn refused_notification(refusal: &Refused) -> String {
    let mut body = format!(
        "<file>{}</file>",
        escape(&refusal.file.display().to_string())
    );
    if let Some(line) = refusal.error.line() {
        body.push_str(&format!("<line>{line}</line>"));
    }
    if let Some(path) = refusal.error.yang_path() {
        body.push_str(&format!("<yang-path>{}</yang-path>", escape(path)));
    }
    body.push_str(&format!(
        "<message>{}</message>",
        escape(&refusal.error.to_string())
    ));
    format!("<uci-import-refused xmlns=\"{SYSTEM_NS}\">{body}</uci-import-refused>")
}

/// The refusal as an rpc-error.
pub fn to_config_error(refusal: &Refused) -> ConfigError {
    let tag = match refusal.error {
        ImportError::UnknownPackage { .. } => ErrorTag::InvalidValue,
        ImportError::Busy { .. } => ErrorTag::InUse,
        _ => ErrorTag::OperationFailed,
    };
    let error = ConfigError::new(tag, refusal.to_string());
    match refusal.error.yang_path() {
        Some(path) => error.at(path),
        None => error,
    }
}

/// Serves `besip-system:import-uci` on netconfd's own socket, mode 0600:
/// what the init scripts call (root on the box, no NETCONF login).
pub struct LocalImport {
    server: Arc<Server>,
}

/// Listen on `netconf.sock` in the run directory.
pub async fn listen(server: Arc<Server>) -> Result<IpcServer, IpcError> {
    let path = server.layout.socket("netconf");
    IpcServer::bind(&path, Arc::new(LocalImport { server })).await
}

impl Handler for LocalImport {
    async fn reload(&self) -> Result<(), HandlerError> {
        Err(HandlerError::refused(
            "besip-netconfd owns the configuration; hand edits are imported with besip-system:import-uci",
        ))
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(json!({}))
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        if name != format!("besip-system:{RPC_NAME}") {
            return Err(HandlerError::unknown_rpc(name));
        }
        let Some(package) = input.get("package").and_then(Value::as_str) else {
            return Err(HandlerError::invalid_params("input needs a package name"));
        };
        match import(&self.server, package, "uci-import").await {
            Ok(Imported::Unchanged) => Ok(json!({"result": "unchanged"})),
            Ok(Imported::Committed(_)) => Ok(json!({"result": "committed"})),
            Err(refusal) => Err(HandlerError::refused(refusal.to_string())),
        }
    }
}
