//! Access control of the operations (RFC 8341): the exec denial, the
//! built-in edit policy when no rule applies, reads through the NACM pruner,
//! edits checked against a copy of the candidate, and NACM rule paths sent
//! with XML prefixes. The rules and their evaluation are in `nacm`/`nacm_data`.

use crate::nacm::{View, NACM_NS};
use crate::nacm_data;
use crate::rpc::access_denied;
use crate::server::Group;
use crate::session::SessionCtx;
use besip_core::datastore::{Datastore, Source};
use besip_core::edit::{DefaultOperation, Editor, ErrorOption};
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::xml::Element;
use besip_core::yang2::data::{DataDiffFlags, DataTree};

use besip_core::model::system::NAMESPACE as SYSTEM_NS;

/// An operation the user may not run (RFC 8341 §3.4.4: error-type protocol).
pub fn exec_denied(name: &str) -> Vec<ConfigError> {
    vec![ConfigError::protocol(
        ErrorTag::AccessDenied,
        format!("access denied: you may not run <{name}> (NACM)"),
    )]
}

/// Run a read with the user's NACM read rules pruning the reply (only when
/// rules apply: otherwise the built-in secret removal of `read_access`).
pub fn with_nacm<R>(view: View, read: impl FnOnce() -> R) -> R {
    if !view.active() {
        return read();
    }
    besip_core::secrets::with_read_pruner(Box::new(move |tree| nacm_data::prune(&view, tree)), read)
}

/// Secrets (`nacm:default-deny-all`: password hashes, SIP passwords) are for
/// the admin group only (RFC 8341 §3.2.3).
/// With NACM rules, every read goes through the pruner (it hides secrets too).
pub fn read_access(ctx: &SessionCtx, view: &View) -> besip_core::datastore::ReadAccess {
    if ctx.group == Group::Admin && !view.active() {
        besip_core::datastore::ReadAccess::Everything
    } else {
        besip_core::datastore::ReadAccess::WithoutSecrets
    }
}

/// A read as this session's user may do it: `read` gets the secrets access,
/// and its result is pruned by the user's NACM read rules (get, get-config,
/// and copy-config to a URL all read this way).
pub fn read_as_user<R>(
    ctx: &SessionCtx,
    read: impl FnOnce(besip_core::datastore::ReadAccess) -> R,
) -> R {
    let view = ctx.server.nacm_view(&ctx.user, ctx.group);
    let access = read_access(ctx, &view);
    with_nacm(view, || read(access))
}

/// Does this configuration touch what only admins may change (users, NACM)?
pub fn touches_admin_data(config: &[Element]) -> bool {
    config.iter().any(|el| {
        el.namespace == NACM_NS
            || (el.namespace == SYSTEM_NS
                && el.name == "system"
                && el.children.iter().any(|c| c.name == "user"))
    })
}

pub fn may_edit(ctx: &SessionCtx, config: &[Element]) -> Result<(), Vec<ConfigError>> {
    match ctx.group {
        Group::Admin => Ok(()),
        Group::Operator if !touches_admin_data(config) => Ok(()),
        Group::Operator => Err(write_denied("change users or access control")),
        Group::Monitor => Err(write_denied("change the configuration")),
    }
}

/// Where the admin data lives: what only the admin group may change.
const ADMIN_DATA: &[&str] = &["/besip-system:system/user", "/ietf-netconf-acm:nacm"];

/// Does `post` hold other users or NACM rules than `pre`?
fn admin_data_differs(
    pre: &DataTree<'static>,
    post: &DataTree<'static>,
) -> Result<bool, ConfigError> {
    let paths: Vec<String> = ADMIN_DATA.iter().map(|p| (*p).to_owned()).collect();
    let before = besip_core::filter::select(pre, &paths)?;
    let after = besip_core::filter::select(post, &paths)?;
    let diff = before
        .diff(&after, DataDiffFlags::empty())
        .map_err(|e| ConfigError::new(ErrorTag::OperationFailed, e.to_string()))?;
    let differs = diff.iter().next().is_some();
    Ok(differs)
}

/// The built-in guard for a user without NACM rules whose edit names
/// `/system`: an operation on `/system` itself (delete, remove, replace, or
/// default-operation replace) takes `/system/user` with it, though the edit
/// never names a user. The edit is tried on a copy of the candidate and
/// refused if the users or rules would differ.
pub fn check_admin_data_kept(
    ctx: &SessionCtx,
    store: &Datastore,
    config: &[Element],
    default_operation: DefaultOperation,
    error_option: ErrorOption,
) -> Result<(), Vec<ConfigError>> {
    let names_system = config
        .iter()
        .any(|el| el.namespace == SYSTEM_NS && el.name == "system");
    if ctx.group == Group::Admin || !names_system {
        return Ok(());
    }
    let failed = |e: String| vec![ConfigError::new(ErrorTag::OperationFailed, e)];
    let pre = store.tree(Source::Candidate);
    let mut post = pre.duplicate().map_err(|e| failed(e.to_string()))?;
    let (_, errors, _) = Editor::new(&mut post, error_option)
        .map_err(|e| vec![e])?
        .apply(config, default_operation);
    if !errors.is_empty() && error_option != ErrorOption::ContinueOnError {
        return Err(errors);
    }
    if admin_data_differs(pre, &post).map_err(|e| vec![e])? {
        return Err(write_denied("change users or access control"));
    }
    Ok(())
}

/// The built-in guard for a rollback by a user without NACM rules: only an
/// admin may go back to a commit with other users or rules.
pub fn check_rollback_kept_admin_data(
    group: Group,
    before: &DataTree<'static>,
    after: &DataTree<'static>,
) -> Result<(), ConfigError> {
    if group == Group::Admin || !admin_data_differs(before, after)? {
        return Ok(());
    }
    let mut errors = write_denied("roll back to a commit with other users or access rules");
    Err(errors.remove(0))
}

/// A denied data write is an application error (RFC 8341 §3.4.5).
fn write_denied(what: &str) -> Vec<ConfigError> {
    let mut errors = access_denied(what);
    for e in &mut errors {
        e.error_type = besip_core::error::ErrorType::Application;
    }
    errors
}

/// NACM rule paths in a `<config>` with the module names libyang expects.
pub fn normalize_nacm_paths(config: &mut [Element], scope: &[(String, String)]) {
    let schema = besip_core::schema::Schema::get().ok();
    for el in config {
        let mut scope = scope.to_vec();
        scope.extend(el.namespace_declarations.iter().cloned());
        if el.namespace == NACM_NS && el.name == "path" {
            let module_of = |prefix: &str| {
                let ns = &scope.iter().rev().find(|(p, _)| p == prefix)?.1;
                Some(schema?.module_by_namespace(ns)?.name().to_owned())
            };
            el.text = crate::nacm::json_path(el.trimmed_text(), &module_of);
        } else if el.namespace == NACM_NS || el.name == "config" || el.name == "data" {
            normalize_nacm_paths(&mut el.children, &scope);
        }
    }
}

/// The namespace declarations in scope of an operation's `<config>`.
pub fn scope_of(elements: &[&Element]) -> Vec<(String, String)> {
    elements
        .iter()
        .flat_map(|e| e.namespace_declarations.iter().cloned())
        .collect()
}

/// Apply the edit to a copy of the candidate and check each change against
/// the user's NACM rules (the real edit follows only if all are permitted).
pub fn check_edit_rules(
    view: &View,
    store: &Datastore,
    config: &[Element],
    default_operation: DefaultOperation,
    error_option: ErrorOption,
) -> Result<(), Vec<ConfigError>> {
    let failed = |e: String| vec![ConfigError::new(ErrorTag::OperationFailed, e)];
    let pre = store.tree(Source::Candidate);
    let mut post = pre.duplicate().map_err(|e| failed(e.to_string()))?;
    let (summary, errors, _) = Editor::new(&mut post, error_option)
        .map_err(|e| vec![e])?
        .apply(config, default_operation);
    if !errors.is_empty() && error_option != ErrorOption::ContinueOnError {
        return Err(errors);
    }
    nacm_data::check_edit(view, pre, &post, &summary).map_err(|e| vec![e])
}

/// copy-config to the candidate: every difference to the candidate is checked.
pub fn check_replace_rules(
    view: &View,
    store: &Datastore,
    content: &[Element],
) -> Result<(), Vec<ConfigError>> {
    let pre = store.tree(Source::Candidate);
    let mut post = besip_core::yang2::data::DataTree::new(store.schema().context());
    let (_, errors, _) = Editor::new(&mut post, ErrorOption::StopOnError)
        .map_err(|e| vec![e])?
        .apply(content, DefaultOperation::Merge);
    if !errors.is_empty() {
        return Err(errors);
    }
    nacm_data::check_replace(view, pre, &post).map_err(|e| vec![e])
}
