//! NACM (RFC 8341): the rules an administrator configures under
//! ietf-netconf-acm `/nacm`, read from running, and their evaluation for one
//! user. Enforcement on data trees is in `nacm_data`, on operations in
//! `nacm_ops` (called from `ops`, `modrpc`), on notifications in `session`.
//!
//! Semantics (RFC 8341 §3.4, with these choices):
//! - A user's NACM groups are the name of their built-in besip group
//!   (`admin`, `operator`, `monitor`) plus every `/nacm/groups/group` that
//!   lists them as `user-name`.
//! - `enable-nacm false`, or no rule-list for any of the user's groups: only
//!   the built-in group policy applies (the fast path: nothing is evaluated).
//! - Otherwise rule-lists in order, those naming one of the user's groups (or
//!   `*`); rules in order; the first rule whose module-name (or `*`), rule
//!   type (rpc-name / notification-name / path / none = any) and
//!   access-operations (or `*`) match decides permit or deny.
//! - No rule matches: the built-in group policy decides. It takes the place
//!   of `read-default`/`write-default`/`exec-default` (those leaves are
//!   stored but not used): the appliance's groups already are its defaults,
//!   and a box must not open up or lock down because a rule-list was added.
//!   Nodes marked `nacm:default-deny-all` stay hidden from non-admins unless
//!   a rule permits them (RFC 8341 §3.2.3).
//! - Lock-out guard (the RFC's recovery session; there is no console login
//!   on the appliance): the built-in `admin` group can always read and write
//!   `/nacm` and `/system/user`, and run the ietf-netconf operations needed to
//!   do so (get, get-config, edit-config, validate, lock, unlock, commit,
//!   discard-changes, cancel-commit). `close-session` is always allowed.
//!   Without rules, an operator's edit or rollback that would change
//!   `/system/user` or `/nacm` indirectly (deleting or replacing `/system`,
//!   default-operation replace) is refused too, and only an admin ends an
//!   admin's session (`nacm_ops`, `ops::kill_session`).

use crate::server::Group;
use besip_core::yang2::data::{Data, DataNodeRef, DataTree};

pub const NACM_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm";
const NACM_MODULE: &str = "ietf-netconf-acm";

/// access-operations bits.
pub const CREATE: u8 = 1;
pub const READ: u8 = 2;
pub const UPDATE: u8 = 4;
pub const DELETE: u8 = 8;
pub const EXEC: u8 = 16;
pub const ALL: u8 = 31;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleType {
    Rpc(String),
    Notification(String),
    /// A node-instance-identifier (module names as prefixes).
    Path(String),
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub module: String,
    pub kind: RuleType,
    pub ops: u8,
    pub permit: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleList {
    pub name: String,
    pub groups: Vec<String>,
    pub rules: Vec<Rule>,
}

/// The contents of `/nacm` in running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub enabled: bool,
    /// `/nacm/groups/group`: name and user-names.
    pub groups: Vec<(String, Vec<String>)>,
    pub lists: Vec<RuleList>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            enabled: true,
            groups: Vec::new(),
            lists: Vec::new(),
        }
    }
}

fn leaf(node: &DataNodeRef<'_, '_>) -> String {
    node.value_canonical().unwrap_or_default()
}

fn parse_ops(text: &str) -> u8 {
    text.split_whitespace()
        .map(|op| match op {
            "*" => ALL,
            "create" => CREATE,
            "read" => READ,
            "update" => UPDATE,
            "delete" => DELETE,
            "exec" => EXEC,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

impl Rules {
    /// Read `/nacm` from a (running) tree; absent means enabled, no rules.
    pub fn from_tree(tree: &DataTree<'static>) -> Rules {
        let mut rules = Rules::default();
        let Ok(nacm) = tree.find_path("/ietf-netconf-acm:nacm") else {
            return rules;
        };
        for child in nacm.children() {
            match child.schema().name() {
                "enable-nacm" => rules.enabled = leaf(&child) != "false",
                "groups" => {
                    for group in child.children() {
                        let mut name = String::new();
                        let mut users = Vec::new();
                        for g in group.children() {
                            match g.schema().name() {
                                "name" => name = leaf(&g),
                                "user-name" => users.push(leaf(&g)),
                                _ => {}
                            }
                        }
                        rules.groups.push((name, users));
                    }
                }
                "rule-list" => rules.lists.push(rule_list(&child)),
                _ => {}
            }
        }
        rules
    }

    /// The NACM groups of a user (built-in group name first).
    pub fn groups_of(&self, user: &str, builtin: Group) -> Vec<String> {
        let mut groups = vec![builtin_name(builtin).to_owned()];
        for (name, users) in &self.groups {
            if users.iter().any(|u| u == user) && !groups.contains(name) {
                groups.push(name.clone());
            }
        }
        groups
    }
}

fn rule_list(node: &DataNodeRef<'_, 'static>) -> RuleList {
    let mut list = RuleList::default();
    for child in node.children() {
        match child.schema().name() {
            "name" => list.name = leaf(&child),
            "group" => list.groups.push(leaf(&child)),
            "rule" => {
                let mut rule = Rule {
                    name: String::new(),
                    module: "*".into(),
                    kind: RuleType::Any,
                    ops: ALL,
                    permit: false,
                };
                for r in child.children() {
                    match r.schema().name() {
                        "name" => rule.name = leaf(&r),
                        "module-name" => rule.module = leaf(&r),
                        "rpc-name" => rule.kind = RuleType::Rpc(leaf(&r)),
                        "notification-name" => rule.kind = RuleType::Notification(leaf(&r)),
                        "path" => rule.kind = RuleType::Path(leaf(&r)),
                        "access-operations" => rule.ops = parse_ops(&leaf(&r)),
                        "action" => rule.permit = leaf(&r) == "permit",
                        _ => {}
                    }
                }
                list.rules.push(rule);
            }
            _ => {}
        }
    }
    list
}

pub use besip_core::secrets::json_path;

pub fn builtin_name(group: Group) -> &'static str {
    match group {
        Group::Admin => "admin",
        Group::Operator => "operator",
        Group::Monitor => "monitor",
    }
}

/// What is being accessed.
pub enum Target<'a> {
    Rpc(&'a str),
    Notification(&'a str),
    /// A data node; the closure says whether a rule path selects it (or an
    /// ancestor of it).
    Data(&'a mut dyn FnMut(&str) -> bool),
}

/// The rules that apply to one user.
#[derive(Debug, Clone)]
pub struct View {
    pub builtin: Group,
    /// The rule-lists for this user's groups, in order (empty: fast path).
    lists: Vec<RuleList>,
}

impl View {
    pub fn new(rules: &Rules, user: &str, builtin: Group) -> View {
        let lists = if rules.enabled {
            let groups = rules.groups_of(user, builtin);
            rules
                .lists
                .iter()
                .filter(|l| l.groups.iter().any(|g| g == "*" || groups.contains(g)))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        View { builtin, lists }
    }

    /// Are there rules to evaluate? (If not, only the built-in policy applies.)
    pub fn active(&self) -> bool {
        self.lists.iter().any(|l| !l.rules.is_empty())
    }

    /// The first matching rule's action (`Some(true)` = permit), or None.
    pub fn decide(&self, module: &str, op: u8, mut target: Target<'_>) -> Option<bool> {
        for rule in self.lists.iter().flat_map(|l| l.rules.iter()) {
            if rule.ops & op == 0 || (rule.module != "*" && rule.module != module) {
                continue;
            }
            let matches = match (&rule.kind, &mut target) {
                (RuleType::Any, _) => true,
                (RuleType::Rpc(n), Target::Rpc(name)) => n == "*" || n == name,
                (RuleType::Notification(n), Target::Notification(name)) => n == "*" || n == name,
                (RuleType::Path(p), Target::Data(selects)) => selects(p),
                _ => false,
            };
            if matches {
                return Some(rule.permit);
            }
        }
        None
    }

    /// May this user run operation `name` of `module`?
    pub fn may_exec(&self, module: &str, name: &str) -> bool {
        if name == "close-session" && module == "ietf-netconf" {
            return true;
        }
        if self.builtin == Group::Admin && module == "ietf-netconf" && RECOVERY_OPS.contains(&name)
        {
            return true;
        }
        self.decide(module, EXEC, Target::Rpc(name))
            .unwrap_or_else(|| builtin_exec(self.builtin, module, name))
    }

    /// May this user receive notification `name` of `module`?
    pub fn may_receive(&self, module: &str, name: &str) -> bool {
        self.decide(module, READ, Target::Notification(name))
            .unwrap_or(true)
    }
}

/// ietf-netconf operations the admin group may always run (lock-out guard).
const RECOVERY_OPS: &[&str] = &[
    "get",
    "get-config",
    "edit-config",
    "validate",
    "lock",
    "unlock",
    "commit",
    "discard-changes",
    "cancel-commit",
];

/// The built-in policy for operations (exec-default of each group).
pub fn builtin_exec(group: Group, module: &str, name: &str) -> bool {
    match group {
        Group::Admin | Group::Operator => true,
        Group::Monitor => {
            !(module.starts_with("besip-")
                || (module == "ietf-netconf"
                    && matches!(
                        name,
                        "commit"
                            | "lock"
                            | "unlock"
                            | "cancel-commit"
                            | "discard-changes"
                            | "kill-session"
                            | "copy-config"
                    )))
        }
    }
}

/// Is this top-level node (module, name) + second-level name admin data
/// (`/nacm`, `/system/user`)?
pub fn is_admin_data(top_module: &str, top: &str, second: Option<&str>) -> bool {
    top_module == NACM_MODULE
        || (top_module == "besip-system" && top == "system" && second == Some("user"))
}

/// The built-in policy for writing a data node.
pub fn builtin_write(group: Group, admin_data: bool) -> bool {
    match group {
        Group::Admin => true,
        Group::Operator => !admin_data,
        Group::Monitor => false,
    }
}

/// The built-in policy for reading a data node.
pub fn builtin_read(group: Group, secret: bool) -> bool {
    group == Group::Admin || !secret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(module: &str, kind: RuleType, ops: &str, permit: bool) -> Rule {
        Rule {
            name: "r".into(),
            module: module.into(),
            kind,
            ops: parse_ops(ops),
            permit,
        }
    }

    fn rules(lists: Vec<(Vec<&str>, Vec<Rule>)>) -> Rules {
        Rules {
            enabled: true,
            groups: vec![("staff".into(), vec!["alice".into()])],
            lists: lists
                .into_iter()
                .map(|(groups, rules)| RuleList {
                    name: "l".into(),
                    groups: groups.into_iter().map(String::from).collect(),
                    rules,
                })
                .collect(),
        }
    }

    #[test]
    fn groups_are_builtin_plus_configured() {
        let r = rules(vec![]);
        assert_eq!(
            r.groups_of("alice", Group::Operator),
            vec!["operator", "staff"]
        );
        assert_eq!(r.groups_of("bob", Group::Monitor), vec!["monitor"]);
    }

    #[test]
    fn first_matching_rule_decides() {
        let r = rules(vec![
            (
                vec!["staff"],
                vec![rule(
                    "besip-pbx",
                    RuleType::Rpc("unregister".into()),
                    "exec",
                    false,
                )],
            ),
            (vec!["*"], vec![rule("*", RuleType::Any, "exec", true)]),
        ]);
        let alice = View::new(&r, "alice", Group::Operator);
        assert!(!alice.may_exec("besip-pbx", "unregister"));
        assert!(alice.may_exec("besip-pbx", "other"));
        let bob = View::new(&r, "bob", Group::Monitor);
        // The `*` list permits what the built-in monitor policy would deny.
        assert!(bob.may_exec("besip-pbx", "unregister"));
    }

    #[test]
    fn no_match_falls_back_to_builtin_policy() {
        let r = rules(vec![(
            vec!["monitor"],
            vec![rule("besip-pbx", RuleType::Rpc("x".into()), "read", true)],
        )]);
        let v = View::new(&r, "m", Group::Monitor);
        assert!(v.active());
        // access-operations `read` does not cover exec: built-in (deny) decides.
        assert!(!v.may_exec("besip-pbx", "x"));
        assert!(!v.may_exec("ietf-netconf", "commit"));
        assert!(!v.may_exec("ietf-netconf", "lock"));
        assert!(v.may_exec("ietf-netconf", "get"));
        assert!(v.may_exec("ietf-netconf", "close-session"));
    }

    #[test]
    fn module_and_operation_must_match() {
        let r = rules(vec![(
            vec!["operator"],
            vec![rule(
                "besip-pbx",
                RuleType::Path("/besip-pbx:pbx/trunk".into()),
                "create update delete",
                false,
            )],
        )]);
        let v = View::new(&r, "o", Group::Operator);
        let mut yes = |_: &str| true;
        assert_eq!(
            v.decide("besip-pbx", UPDATE, Target::Data(&mut yes)),
            Some(false)
        );
        assert_eq!(v.decide("besip-pbx", READ, Target::Data(&mut yes)), None);
        assert_eq!(
            v.decide("besip-system", UPDATE, Target::Data(&mut yes)),
            None
        );
        let mut no = |_: &str| false;
        assert_eq!(v.decide("besip-pbx", UPDATE, Target::Data(&mut no)), None);
        // A path rule never matches an operation or a notification.
        assert!(v.may_exec("ietf-netconf", "commit"));
        assert!(v.may_receive("besip-pbx", "x"));
    }

    #[test]
    fn disabled_or_foreign_lists_are_the_fast_path() {
        let mut r = rules(vec![(
            vec!["operator"],
            vec![rule("*", RuleType::Any, "*", false)],
        )]);
        assert!(View::new(&r, "o", Group::Operator).active());
        assert!(!View::new(&r, "m", Group::Monitor).active());
        r.enabled = false;
        let v = View::new(&r, "o", Group::Operator);
        assert!(!v.active());
        assert!(v.may_exec("ietf-netconf", "commit"));
    }

    #[test]
    fn admin_keeps_recovery_operations() {
        let r = rules(vec![(
            vec!["admin"],
            vec![rule("*", RuleType::Any, "*", false)],
        )]);
        let v = View::new(&r, "admin", Group::Admin);
        assert!(v.may_exec("ietf-netconf", "edit-config"));
        assert!(v.may_exec("ietf-netconf", "commit"));
        assert!(!v.may_exec("ietf-netconf", "kill-session"));
        assert!(!v.may_exec("besip-pbx", "unregister"));
        assert!(!v.may_receive("besip-security", "ban-added"));
    }

    #[test]
    fn notification_rules() {
        let r = rules(vec![(
            vec!["monitor"],
            vec![
                rule(
                    "ietf-netconf-notifications",
                    RuleType::Notification("netconf-config-change".into()),
                    "read",
                    false,
                ),
                rule(
                    "besip-security",
                    RuleType::Notification("*".into()),
                    "read",
                    false,
                ),
            ],
        )]);
        let v = View::new(&r, "m", Group::Monitor);
        assert!(!v.may_receive("ietf-netconf-notifications", "netconf-config-change"));
        assert!(!v.may_receive("besip-security", "ban-added"));
        assert!(v.may_receive("besip-pbx", "registration"));
    }

    #[test]
    fn rule_paths_get_module_names() {
        let module_of = |p: &str| match p {
            "pbx" => Some("besip-pbx".to_owned()),
            "sys" => Some("besip-system".to_owned()),
            _ => None,
        };
        assert_eq!(
            json_path("/pbx:pbx/pbx:trunk[pbx:name='a:b']/pbx:host", &module_of),
            "/besip-pbx:pbx/trunk[name='a:b']/host"
        );
        assert_eq!(
            json_path("/besip-pbx:pbx/trunk", &module_of),
            "/besip-pbx:pbx/trunk"
        );
        assert_eq!(
            json_path("/besip-pbx:pbx/besip-pbx:trunk", &module_of),
            "/besip-pbx:pbx/trunk"
        );
        assert_eq!(
            json_path("/sys:system/sys:user[sys:name=\"x\"]", &module_of),
            "/besip-system:system/user[name=\"x\"]"
        );
        assert_eq!(json_path("/pbx:pbx[", &module_of), "/besip-pbx:pbx[");
    }

    #[test]
    fn parses_access_operations() {
        assert_eq!(parse_ops("create update"), CREATE | UPDATE);
        assert_eq!(parse_ops("*"), ALL);
        assert_eq!(parse_ops(""), 0);
    }
}
