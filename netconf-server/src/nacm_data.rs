//! NACM on data trees: which nodes a reader may not see (pruned from the
//! reply) and whether every node an edit changes may be changed.

use crate::nacm::{self, Target, View, CREATE, DELETE, READ, UPDATE};
use crate::server::Group;
use besip_core::edit::EditSummary;
use besip_core::error::{ConfigError, ErrorTag};
use besip_core::yang2::data::{Data, DataDiffFlags, DataDiffOp, DataNodeRef, DataTree};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The nodes each rule path selects in one tree, evaluated once per path.
struct PathSets<'t> {
    tree: &'t DataTree<'static>,
    sets: HashMap<String, HashSet<usize>>,
}

impl<'t> PathSets<'t> {
    fn new(tree: &'t DataTree<'static>) -> Self {
        PathSets {
            tree,
            sets: HashMap::new(),
        }
    }

    /// Does `path` select `node` or one of its ancestors (RFC 8341: a path
    /// rule covers the node and its descendants)?
    fn selects(&mut self, path: &str, node: &DataNodeRef<'_, 'static>) -> bool {
        if !self.sets.contains_key(path) {
            let set = evaluate(self.tree, path);
            self.sets.insert(path.to_owned(), set);
        }
        let Some(set) = self.sets.get(path) else {
            return false;
        };
        !set.is_empty()
            && node
                .inclusive_ancestors()
                .any(|a| set.contains(&(a.as_raw() as usize)))
    }
}

/// A rule path that libyang cannot evaluate selects nothing (logged).
fn evaluate(tree: &DataTree<'static>, path: &str) -> HashSet<usize> {
    if path.is_empty() || path.contains('\0') || tree.reference().is_none() {
        return HashSet::new();
    }
    match tree.find_xpath(path) {
        Ok(set) => set.map(|n| n.as_raw() as usize).collect(),
        Err(e) => {
            tracing::warn!(path, error = %e, "NACM rule path does not evaluate; it matches nothing");
            HashSet::new()
        }
    }
}

/// Is the node under `/nacm` or `/system/user`?
fn admin_data(node: &DataNodeRef<'_, 'static>) -> bool {
    let chain: Vec<_> = node.inclusive_ancestors().collect();
    let Some(top) = chain.last() else {
        return false;
    };
    let second = chain.len().checked_sub(2).map(|i| chain[i].schema());
    nacm::is_admin_data(
        top.schema().module().name(),
        top.schema().name(),
        second.as_ref().map(|s| s.name()),
    )
}

/// May the user do `op` (one access bit) on this node?
fn permitted(
    view: &View,
    sets: &mut PathSets<'_>,
    node: &DataNodeRef<'_, 'static>,
    op: u8,
) -> bool {
    let admin_data = admin_data(node);
    if view.builtin == Group::Admin && admin_data {
        return true; // lock-out guard
    }
    let schema = node.schema();
    let module = schema.module().name().to_owned();
    let mut selects = |p: &str| sets.selects(p, node);
    match view.decide(&module, op, Target::Data(&mut selects)) {
        Some(permit) => permit,
        None if op == READ => {
            nacm::builtin_read(view.builtin, besip_core::secrets::is_secret(&schema))
        }
        None => nacm::builtin_write(view.builtin, admin_data),
    }
}

/// Remove from `tree` every subtree the user may not read.
pub fn prune(view: &View, tree: &mut DataTree<'static>) {
    let mut doomed = Vec::new();
    {
        let mut sets = PathSets::new(tree);
        if let Some(first) = tree.reference() {
            for top in first.inclusive_siblings() {
                collect(view, &mut sets, &top, &mut doomed);
            }
        }
    }
    besip_core::tree_ops::free_nodes(tree, &doomed);
}

fn collect(
    view: &View,
    sets: &mut PathSets<'_>,
    node: &DataNodeRef<'_, 'static>,
    doomed: &mut Vec<usize>,
) {
    // A list key goes with its entry (the entry's decision covers it).
    if node.schema().is_list_key() {
        return;
    }
    if !permitted(view, sets, node, READ) && !holds_guarded_data(view, node) {
        doomed.push(node.as_raw() as usize);
        return;
    }
    for child in node.children() {
        collect(view, sets, &child, doomed);
    }
}

/// `/system` holds `/system/user`, which the admin group always sees: a
/// denied `/system` loses its other children, not the users.
fn holds_guarded_data(view: &View, node: &DataNodeRef<'_, 'static>) -> bool {
    let schema = node.schema();
    view.builtin == Group::Admin
        && besip_core::yang2::iter::NodeIterable::parent(node).is_none()
        && schema.module().name() == "besip-system"
        && schema.name() == "system"
}

fn denied(op: u8, path: &str) -> ConfigError {
    let what = match op {
        CREATE => "create",
        DELETE => "delete",
        _ => "update",
    };
    ConfigError::new(
        ErrorTag::AccessDenied,
        format!("access denied: you may not {what} {path} (NACM)"),
    )
    .at(path)
}

/// Check every change of an edit: `pre` is the candidate before it, `post`
/// after it, `summary` what the edit reported.
pub fn check_edit(
    view: &View,
    pre: &DataTree<'static>,
    post: &DataTree<'static>,
    summary: &EditSummary,
) -> Result<(), ConfigError> {
    if summary.changes > summary.edits.len() {
        return check_diff(view, pre, post, &summary.modules);
    }
    let mut pre_sets = PathSets::new(pre);
    let mut post_sets = PathSets::new(post);
    for edit in &summary.edits {
        if edit.operation == "delete" {
            if let Ok(node) = pre.find_path(&edit.path) {
                check_subtree(view, &mut pre_sets, &node, DELETE)?;
            }
            continue;
        }
        let Ok(after) = post.find_path(&edit.path) else {
            continue;
        };
        match pre.find_path(&edit.path) {
            Err(_) => {
                if !permitted(view, &mut post_sets, &after, CREATE) {
                    return Err(denied(CREATE, &edit.path));
                }
            }
            // An existing container or entry that was only merged into is
            // not changed itself; a leaf is updated if its value changed.
            Ok(before) => {
                let (old, new) = (before.value_canonical(), after.value_canonical());
                if new.is_some() && old != new && !permitted(view, &mut post_sets, &after, UPDATE) {
                    return Err(denied(UPDATE, &edit.path));
                }
            }
        }
    }
    Ok(())
}

fn check_subtree(
    view: &View,
    sets: &mut PathSets<'_>,
    node: &DataNodeRef<'_, 'static>,
    op: u8,
) -> Result<(), ConfigError> {
    for n in node.traverse() {
        if !permitted(view, sets, &n, op) {
            return Err(denied(op, &n.path()));
        }
    }
    Ok(())
}

/// An edit too large to have each change listed: compare the touched
/// modules of both trees and check every difference.
fn check_diff(
    view: &View,
    pre: &DataTree<'static>,
    post: &DataTree<'static>,
    modules: &BTreeSet<String>,
) -> Result<(), ConfigError> {
    let too_big = || {
        ConfigError::new(
            ErrorTag::AccessDenied,
            "access denied: the edit is too large to check against the NACM rules; split it",
        )
    };
    let diff = pre
        .diff(post, DataDiffFlags::empty())
        .map_err(|_| too_big())?;
    let mut pre_sets = PathSets::new(pre);
    let mut post_sets = PathSets::new(post);
    for (op, node) in diff.iter() {
        let module = node.schema().module().name().to_owned();
        if !modules.contains(&module) && !modules.contains("*") {
            continue;
        }
        let path = node.path();
        match op {
            DataDiffOp::Delete => {
                let n = pre.find_path(&path).map_err(|_| too_big())?;
                check_subtree(view, &mut pre_sets, &n, DELETE)?;
            }
            DataDiffOp::Create => {
                let n = post.find_path(&path).map_err(|_| too_big())?;
                check_subtree(view, &mut post_sets, &n, CREATE)?;
            }
            _ => {
                let n = post.find_path(&path).map_err(|_| too_big())?;
                if !permitted(view, &mut post_sets, &n, UPDATE) {
                    return Err(denied(UPDATE, &path));
                }
            }
        }
    }
    Ok(())
}

/// May the user receive this `<notification>` document (its event's module
/// and name against notification-name rules)?
pub fn may_receive(view: &View, notification_xml: &str) -> bool {
    if !view.active() {
        return true;
    }
    let Ok(roots) = besip_core::xml::parse(notification_xml) else {
        return false;
    };
    let Some(event) = roots
        .first()
        .and_then(|n| n.children.iter().find(|c| c.name != "eventTime"))
    else {
        return false;
    };
    let module = besip_core::schema::Schema::get()
        .ok()
        .and_then(|s| {
            s.module_by_namespace(&event.namespace)
                .map(|m| m.name().to_owned())
        })
        .unwrap_or_default();
    view.may_receive(&module, &event.name)
}

/// Replacing the candidate with `post` (copy-config): check every difference.
pub fn check_replace(
    view: &View,
    pre: &DataTree<'static>,
    post: &DataTree<'static>,
) -> Result<(), ConfigError> {
    check_diff(view, pre, post, &BTreeSet::from(["*".to_owned()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nacm::Rules;
    use besip_core::datastore::{parse_config_tree, print_tree, WithDefaults};
    use besip_core::edit::{DefaultOperation, Editor, ErrorOption};
    use besip_core::schema::Schema;

    const CONFIG: &str = r#"<config>
<pbx xmlns="urn:besip:pbx">
  <extension><number>100</number><display-name>Alice</display-name><password>Secret-pw-100</password></extension>
  <trunk><name>prov</name><host>192.0.2.1</host></trunk>
</pbx>
<system xmlns="urn:besip:system"><hostname>box</hostname></system>
<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm">
  <groups><group><name>staff</name><user-name>olga</user-name></group></groups>
  <rule-list><name>ops</name><group>staff</group>
    <rule><name>no-trunks</name><module-name>besip-pbx</module-name>
      <path>/besip-pbx:pbx/trunk</path><access-operations>*</access-operations><action>deny</action></rule>
    <rule><name>bad</name><path>/besip-pbx:pbx/extension[number='1']</path>
      <access-operations>exec</access-operations><action>deny</action></rule>
  </rule-list>
</nacm>
</config>"#;

    fn tree() -> DataTree<'static> {
        let schema = Schema::get().expect("schema");
        parse_config_tree(schema, CONFIG).expect("config parses")
    }

    fn edit(pre: &DataTree<'static>, xml: &str) -> (DataTree<'static>, EditSummary) {
        let mut post = pre.duplicate().expect("dup");
        let config = besip_core::xml::parse(xml).expect("xml");
        let (summary, errors, _) = Editor::new(&mut post, ErrorOption::StopOnError)
            .expect("editor")
            .apply(&config, DefaultOperation::Merge);
        assert!(errors.is_empty(), "{errors:?}");
        (post, summary)
    }

    #[test]
    fn reads_rules_from_running() {
        let rules = Rules::from_tree(&tree());
        assert!(rules.enabled);
        assert_eq!(rules.groups, vec![("staff".into(), vec!["olga".into()])]);
        assert_eq!(rules.lists.len(), 1);
        assert_eq!(rules.lists[0].rules.len(), 2);
        assert_eq!(rules.lists[0].rules[0].module, "besip-pbx");
        assert!(!rules.lists[0].rules[0].permit);
        assert!(
            matches!(&rules.lists[0].rules[0].kind, nacm::RuleType::Path(p) if p.contains("trunk"))
        );
    }

    #[test]
    fn prunes_denied_subtrees_and_secrets() {
        let running = tree();
        let rules = Rules::from_tree(&running);
        let olga = View::new(&rules, "olga", Group::Operator);
        assert!(olga.active());
        let mut reply = running.duplicate().expect("dup");
        prune(&olga, &mut reply);
        let text = print_tree(&reply, WithDefaults::Explicit);
        assert!(!text.contains("<trunk>"), "{text}");
        assert!(
            text.contains("<display-name>Alice</display-name>"),
            "{text}"
        );
        // No rule for them: /nacm and the SIP password are default-deny-all.
        assert!(
            !text.contains("no-trunks") && !text.contains("Secret-pw"),
            "{text}"
        );
        assert!(text.contains("<hostname>box</hostname>"), "{text}");
        // Another operator has no rules: nothing evaluated.
        assert!(!View::new(&rules, "oscar", Group::Operator).active());
    }

    #[test]
    fn checks_each_changed_node() {
        let pre = tree();
        let rules = Rules::from_tree(&pre);
        let olga = View::new(&rules, "olga", Group::Operator);
        let (post, summary) = edit(
            &pre,
            r#"<pbx xmlns="urn:besip:pbx"><extension><number>100</number><display-name>Bob</display-name></extension></pbx>"#,
        );
        assert!(check_edit(&olga, &pre, &post, &summary).is_ok());
        let (post, summary) = edit(
            &pre,
            r#"<pbx xmlns="urn:besip:pbx"><trunk><name>prov</name><host>192.0.2.9</host></trunk></pbx>"#,
        );
        let e = check_edit(&olga, &pre, &post, &summary).expect_err("trunk is denied");
        assert_eq!(e.tag, ErrorTag::AccessDenied);
        assert!(
            e.path.as_deref().is_some_and(|p| p.contains("trunk")),
            "{e:?}"
        );
        // A new trunk is a create under the denied path too.
        let (post, summary) = edit(
            &pre,
            r#"<pbx xmlns="urn:besip:pbx"><trunk><name>new</name><host>192.0.2.8</host></trunk></pbx>"#,
        );
        assert!(check_edit(&olga, &pre, &post, &summary).is_err());
        // The operator may not touch /system/user without a rule (built-in).
        let (post, summary) = edit(
            &pre,
            r#"<system xmlns="urn:besip:system"><user><name>x</name><group>admin</group></user></system>"#,
        );
        assert!(check_edit(&olga, &pre, &post, &summary).is_err());
        // Deleting the extension is permitted (no rule: operator policy).
        let (post, summary) = edit(
            &pre,
            r#"<pbx xmlns="urn:besip:pbx"><extension xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"><number>100</number></extension></pbx>"#,
        );
        assert!(check_edit(&olga, &pre, &post, &summary).is_ok());
        // The whole-tree comparison used for big edits agrees.
        assert!(check_replace(&olga, &pre, &post).is_ok());
        let (post, _) = edit(
            &pre,
            r#"<pbx xmlns="urn:besip:pbx"><trunk xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"><name>prov</name></trunk></pbx>"#,
        );
        assert!(check_replace(&olga, &pre, &post).is_err());
    }

    #[test]
    fn capped_edits_are_checked_as_a_whole() {
        let pre = tree();
        let rules = Rules::from_tree(&pre);
        let olga = View::new(&rules, "olga", Group::Operator);
        let many: String = (0..600)
            .map(|i| {
                format!(
                    "<extension><number>{}</number><password>pw</password></extension>",
                    5000 + i
                )
            })
            .collect();
        let (post, summary) = edit(&pre, &format!(r#"<pbx xmlns="urn:besip:pbx">{many}</pbx>"#));
        assert!(summary.changes > summary.edits.len(), "{}", summary.changes);
        assert!(check_edit(&olga, &pre, &post, &summary).is_ok());
        let (post, summary) = edit(
            &pre,
            &format!(
                r#"<pbx xmlns="urn:besip:pbx">{many}<trunk><name>t2</name><host>192.0.2.3</host></trunk></pbx>"#
            ),
        );
        assert!(summary.changes > summary.edits.len());
        let e = check_edit(&olga, &pre, &post, &summary).expect_err("a trunk among many");
        assert!(e.path.as_deref().is_some_and(|p| p.contains("t2")), "{e:?}");
    }

    #[test]
    fn bad_rule_paths_match_nothing() {
        let running = tree();
        let mut sets = PathSets::new(&running);
        let node = running.find_path("/besip-pbx:pbx").expect("pbx");
        for bad in ["/nope:x", "///", "/besip-pbx:pbx[", ""] {
            assert!(!sets.selects(bad, &node), "{bad}");
        }
        assert!(sets.selects("/besip-pbx:pbx", &node));
    }

    #[test]
    fn notifications_by_name() {
        let running = tree();
        let mut rules = Rules::from_tree(&running);
        rules.lists[0].rules.push(nacm::Rule {
            name: "n".into(),
            module: "besip-security".into(),
            kind: nacm::RuleType::Notification("ban-added".into()),
            ops: nacm::READ,
            permit: false,
        });
        let olga = View::new(&rules, "olga", Group::Operator);
        let doc = |body: &str| {
            format!("<notification xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\"><eventTime>2026-01-01T00:00:00Z</eventTime>{body}</notification>")
        };
        assert!(!may_receive(
            &olga,
            &doc(
                "<ban-added xmlns=\"urn:besip:security\"><address>127.0.0.2</address></ban-added>"
            )
        ));
        assert!(may_receive(
            &olga,
            &doc("<ban-lifted xmlns=\"urn:besip:security\"/>")
        ));
        assert!(!may_receive(&olga, "<not-xml"));
    }
}
