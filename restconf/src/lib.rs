//! RESTCONF (RFC 8040) with the NMDA datastores of RFC 8527, over HTTPS.
//!
//! This crate is the protocol only: URLs, methods, query parameters, JSON
//! (RFC 7951) and XML bodies, errors documents, authentication, the event
//! stream. What a request does to the box is asked of a [`Backend`], which
//! besip-netconfd implements with its NETCONF operation code, so both
//! protocols share one datastore, its locks, candidate, commit history,
//! confirmed commit, notifications and access control (NACM).
//!
//! Decisions a client notices:
//! - `{+restconf}` is `/restconf` (announced by `/.well-known/host-meta`).
//! - Edits through `/restconf/data` (and `/restconf/ds/ietf-datastores:running`)
//!   edit the candidate and commit at once (RFC 8040 §1.4); they fail with
//!   `in-use` (409) while the candidate is locked or holds someone's
//!   uncommitted changes. `/restconf/ds/ietf-datastores:candidate` edits the
//!   shared candidate only; commit it with `POST
//!   /restconf/operations/ietf-netconf:commit`.
//! - ETag: a configuration resource's own (a digest of its configuration,
//!   RFC 8040 §3.5.1), the datastore's for the root and state-only
//!   resources; Last-Modified the datastore's. If-Match takes either, so
//!   an edit of one resource does not make another's tag stale.
//! - Authentication: HTTP Basic against the box's users, then a session
//!   cookie (`besip_restconf`); wrong passwords are throttled as SSH logins.
//! - Query parameters: content, depth, fields, with-defaults, insert and
//!   point (POST/PUT on user-ordered lists and leaf-lists, carried to the
//!   datastore as RFC 7950's yang:insert/key/value).
//! - YANG Patch (RFC 8072, `application/yang-patch+json` / `+xml`): the
//!   edits of one patch are one edit of the datastore, in order, all or
//!   nothing; an error names its edit in the yang-patch-status.
//! - Event streams replay (`start-time`, `stop-time`) what besip-netconfd
//!   keeps of the notifications, as NETCONF's create-subscription does;
//!   `/restconf-state` (ietf-restconf-monitoring) names the stream.
//! - Operations that need a NETCONF session of their own (lock, unlock,
//!   edit-config, copy-config, delete-config, kill/close-session,
//!   create-subscription) are not offered under `/restconf/operations`.
//! - JSON of RPC output and notifications is converted structurally (every
//!   value a string); data goes through libyang (typed RFC 7951).

pub mod api_path;
pub mod auth;
pub mod backend;
pub mod context;
pub mod convert;
pub mod data;
pub mod edit;
pub mod errors;
pub mod handlers;
pub mod listen;
pub mod query;
pub mod stream;
pub mod yang_patch;

pub use backend::{Backend, Principal, Replay, Reply, Version};

/// RFC 8040 §9.1.1 capabilities of this server (`/restconf-state`).
pub const CAPABILITIES: &[&str] = &[
    "urn:ietf:params:restconf:capability:defaults:1.0?basic-mode=explicit",
    "urn:ietf:params:restconf:capability:depth:1.0",
    "urn:ietf:params:restconf:capability:fields:1.0",
    "urn:ietf:params:restconf:capability:with-defaults:1.0",
    "urn:ietf:params:restconf:capability:replay:1.0",
    "urn:ietf:params:restconf:capability:yang-patch:1.0",
];
