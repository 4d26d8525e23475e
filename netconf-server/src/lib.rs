//! besip-netconfd: NETCONF 1.0/1.1 over SSH (RFC 6241, RFC 6242) in front of
//! besip-core's datastore.
//!
//! Decisions a client notices:
//! - `:candidate` only (no `:writable-running`): `<edit-config>`/`<copy-config>`
//!   to running get `operation-not-supported`; edit the candidate and commit.
//!   The candidate is shared by all sessions (RFC 6241 §8.3).
//! - `:url` offers `file:///absolute/path` only, only to the admin group
//!   (it reads and writes files as the server's user), and only inside
//!   besip-system `netconf/files-directory` (`files`).
//! - Access control (RFC 8341, module `nacm`): every user has one of three
//!   built-in besip groups: admin (all), operator (no change to
//!   `/system/user` or `/nacm`, no whole-configuration copy), monitor
//!   (read-only: no edit, commit, discard, kill, lock or module RPC); only an
//!   admin ends an admin's session; nodes marked
//!   `nacm:default-deny-all` (password hashes, SIP passwords, `/nacm`) are
//!   hidden from non-admins, and removed before a filter is evaluated (a
//!   filter cannot probe them). Rule-lists configured under `/nacm` are
//!   evaluated on top, first matching rule wins, for operations, module
//!   RPCs, each changed data node of edit-config/copy-config, reads (denied
//!   subtrees silently left out) and notifications; a request no rule matches
//!   falls back to the built-in group policy (it plays read/write/exec-default).
//!   The admin group can always read and write `/nacm` and `/system/user`
//!   (lock-out guard). Rule paths are stored with module names as prefixes
//!   (`/besip-pbx:pbx/trunk`); XML prefixes from clients are converted.
//!   `<get>` includes the `/nacm` denied-* counters.
//! - Limits (besip-system `netconf` container) are read at start: a message
//!   over `max-message-size` gets `too-big` and the session is closed;
//!   connections over `max-sessions` fail authentication; `idle-timeout`
//!   closes a session with no traffic.
//! - Notifications: the NETCONF stream only; subtree filters; replay of the
//!   last 1,000 notifications kept in memory (`subscription.rs`); RFC 6470
//!   base notifications: config change, confirmed commit, session start and
//!   end (`base_notifications.rs`).
//! - RESTCONF (crate besip-restconf) is served from this process on the
//!   same `Server`: `restconf.rs` runs its requests through these operations.
//!   The web administration (crate besip-web, `/admin/`) is served on the
//!   same HTTPS port through the same backend.

pub mod base_notifications;
pub mod confirm_timer;
pub mod files;
pub mod framing;
pub mod fuzzing;
pub mod login_throttle;
pub mod metrics;
pub mod modrpc;
pub mod nacm;
pub mod nacm_data;
pub mod nacm_ops;
pub mod ops;
pub mod protect;
pub mod reply;
pub mod restconf;
pub mod rpc;
pub mod server;
pub mod session;
pub mod ssh;
pub mod ssh_accept;
pub mod ssh_shell;
pub mod state;
pub mod subscription;
pub mod uci_import;
pub mod users;
