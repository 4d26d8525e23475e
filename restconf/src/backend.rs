//! What RESTCONF needs from the server that owns the datastore.

use besip_core::access::Group;
use besip_core::error::ConfigError;
use besip_core::xml::Element;
use futures::stream::BoxStream;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Who sends a request (after authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub group: Group,
    pub source: IpAddr,
}

/// What a NETCONF operation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    /// Children of `<data>` (XML).
    Data(String),
    /// The body of `<rpc-reply>` (RPC output, XML).
    Body(String),
}

/// The version of running: it changes with every change of running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub generation: u64,
    pub modified: SystemTime,
}

/// RFC 8040 §4.8.7-8: an event stream that first replays the kept
/// notifications from `start` (to `stop`, when given, and then ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub start: chrono::DateTime<chrono::Utc>,
    pub stop: Option<chrono::DateTime<chrono::Utc>>,
}

/// Why a password was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Wrong,
    /// Too many failures from this source: wait before trying again.
    Throttled(Duration),
}

/// RESTCONF settings from besip-system `/system/restconf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub hostname: String,
}

pub trait Backend: Send + Sync + 'static {
    /// Check a password (throttled like SSH logins); the user's group if right.
    fn check_password(
        &self,
        user: &str,
        password: &str,
        source: IpAddr,
    ) -> impl Future<Output = Result<Group, Refusal>> + Send;

    /// The group of an existing user (sessions re-check it after a commit).
    fn user_group(&self, user: &str) -> impl Future<Output = Option<Group>> + Send;

    /// Run one NETCONF operation (`<get>`, `<edit-config>`, `<commit>`, a
    /// module RPC, ...) as `who`, with NACM and the locks of NETCONF.
    fn operation(
        &self,
        who: &Principal,
        op: Element,
    ) -> impl Future<Output = Result<Reply, Vec<ConfigError>>> + Send;

    /// Edit running: the edit on the candidate and its commit as one step,
    /// refused while the candidate is locked or holds other changes.
    fn edit_running(
        &self,
        who: &Principal,
        config: Vec<Element>,
    ) -> impl Future<Output = Result<(), Vec<ConfigError>>> + Send;

    fn version(&self) -> Version;

    /// Follows `version()`: changes whenever running may have changed.
    fn watch_running(&self) -> tokio::sync::watch::Receiver<Version>;

    /// `/system/restconf` and the host name from running.
    fn settings(&self) -> impl Future<Output = Settings> + Send;

    /// Largest request body accepted (besip-system netconf/max-message-size).
    fn max_body(&self) -> usize;

    /// Notifications (XML `<notification>` documents) `who` may receive,
    /// from now on, or replayed from `replay`'s start first (then
    /// `<replayComplete>`; at its stop `<notificationComplete>` ends it).
    fn notifications(&self, who: &Principal, replay: Option<Replay>) -> BoxStream<'static, String>;

    /// When a pending confirmed commit reverts by itself (whoever made
    /// it); `None` when none is pending. The web administration shows it.
    fn confirm_deadline(&self) -> impl Future<Output = Option<std::time::Instant>> + Send {
        async { None }
    }
}
