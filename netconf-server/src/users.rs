//! besip-system users and server settings read from the running
//! configuration; the first admin on an empty box.

use crate::server::{Group, Settings};
use besip_core::datastore::{CommitOptions, Datastore, Source, TestOption, WithDefaults};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::filter::Filter;
use besip_core::xml::{escape, Element};
use std::time::Duration;

use besip_core::model::system::NAMESPACE as SYSTEM_NS;

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password_hash: Option<String>,
    pub ssh_keys: Vec<String>,
    pub group: Group,
}

fn system_part(store: &Datastore, select: &str) -> Option<Element> {
    let filter = Filter::XPath {
        select: select.to_owned(),
        namespaces: vec![("s".into(), SYSTEM_NS.into())],
    };
    let xml = store
        .get_config(Source::Running, &filter, WithDefaults::ReportAll)
        .ok()?;
    besip_core::xml::parse(&xml)
        .ok()?
        .into_iter()
        .find(|e| e.name == "system" && e.namespace == SYSTEM_NS)
}

pub fn users(store: &Datastore) -> Vec<User> {
    let Some(system) = system_part(store, "/s:system/s:user") else {
        return Vec::new();
    };
    system
        .children
        .iter()
        .filter(|c| c.name == "user")
        .map(|u| User {
            name: u
                .child("name")
                .map(|n| n.trimmed_text().to_owned())
                .unwrap_or_default(),
            password_hash: u
                .child("password-hash")
                .map(|h| h.trimmed_text().to_owned()),
            ssh_keys: u
                .children
                .iter()
                .filter(|c| c.name == "ssh-key")
                .map(|k| k.trimmed_text().to_owned())
                .collect(),
            group: Group::parse_or_monitor(
                u.child("group")
                    .map(|g| g.trimmed_text())
                    .unwrap_or("monitor"),
            ),
        })
        .collect()
}

pub fn find_user(store: &Datastore, name: &str) -> Option<User> {
    users(store).into_iter().find(|u| u.name == name)
}

/// The `netconf` container of besip-system (its YANG defaults when unset).
pub fn settings(store: &Datastore) -> (Settings, Vec<String>, u16) {
    let netconf = system_part(store, "/s:system/s:netconf")
        .and_then(|s| s.children.into_iter().find(|c| c.name == "netconf"));
    let get = |name: &str| {
        netconf
            .as_ref()
            .and_then(|n| n.child(name))
            .map(|c| c.trimmed_text().to_owned())
    };
    // Fallbacks mirror the YANG defaults of besip-system netconf/*.
    let idle: u64 = get("idle-timeout")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600);
    let settings = Settings {
        idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        max_sessions: get("max-sessions")
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        max_message_size: get("max-message-size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(16 * 1024 * 1024),
        max_message_elements: get("max-message-elements")
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000),
        login_grace_time: Duration::from_secs(
            get("login-grace-time")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
        ),
        max_unauthenticated_per_source: get("max-unauthenticated-per-source")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    };
    let addresses = netconf
        .as_ref()
        .map(|n| {
            n.children
                .iter()
                .filter(|c| c.name == "listen-address")
                .map(|c| c.trimmed_text().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let port = get("port").and_then(|v| v.parse().ok()).unwrap_or(830);
    (settings, addresses, port)
}

/// On a box without users, create `admin` (group admin) with `password` or a
/// random one; only the argon2 hash is stored. Returns the password if created.
pub async fn ensure_admin(
    store: &mut Datastore,
    password: Option<String>,
    reloader: &impl besip_core::datastore::Reloader,
) -> Result<Option<String>, String> {
    if !users(store).is_empty() {
        return Ok(None);
    }
    let password = password.unwrap_or_else(besip_core::password::random_password);
    let hash = besip_core::password::hash(&password)?;
    let xml = format!(
        "<system xmlns=\"{SYSTEM_NS}\"><user><name>admin</name><password-hash>{}</password-hash><group>admin</group><full-name>Administrator</full-name></user></system>",
        escape(&hash)
    );
    let config = besip_core::xml::parse(&xml).map_err(|e| e.to_string())?;
    store
        .edit_candidate(
            &config,
            DefaultOperation::Merge,
            ErrorOption::StopOnError,
            TestOption::TestThenSet,
        )
        .map_err(|e| e.to_string())?;
    let options = CommitOptions {
        user: "besip-netconfd".into(),
        comment: "first administrator".into(),
        ..Default::default()
    };
    store
        .commit(options, reloader)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(password))
}

/// The `restconf` container of besip-system and the host name (for the
/// certificate), YANG defaults when unset.
pub fn restconf_settings(store: &Datastore) -> besip_restconf::backend::Settings {
    let system = system_part(store, "/s:system/s:restconf | /s:system/s:hostname");
    let restconf = system
        .as_ref()
        .and_then(|s| s.children.iter().find(|c| c.name == "restconf"));
    let get = |name: &str| {
        restconf
            .and_then(|n| n.child(name))
            .map(|c| c.trimmed_text().to_owned())
    };
    besip_restconf::backend::Settings {
        enabled: get("enabled").as_deref() == Some("true"),
        addresses: restconf
            .map(|n| {
                n.children
                    .iter()
                    .filter(|c| c.name == "listen-address")
                    .filter_map(|c| c.trimmed_text().parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
        port: get("port").and_then(|v| v.parse().ok()).unwrap_or(8444),
        hostname: system
            .as_ref()
            .and_then(|s| s.child("hostname"))
            .map(|h| h.trimmed_text().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "besip".into()),
    }
}

/// The group of `name`, read straight from the running tree (no copy, no
/// XML): RESTCONF re-checks its sessions' users after every commit.
pub fn group_of(store: &Datastore, name: &str) -> Option<Group> {
    if name.is_empty() || name.contains(['\'', '"', '[', ']', '/']) {
        return None;
    }
    use besip_core::yang2::data::Data;
    let tree = store.tree(Source::Running);
    let user = tree
        .find_path(&format!("/besip-system:system/user[name='{name}']"))
        .ok()?;
    let group = user
        .children()
        .find(|c| c.schema().name() == "group")
        .and_then(|g| g.value_canonical());
    Some(Group::parse_or_monitor(
        group.as_deref().unwrap_or("monitor"),
    ))
}
