//! besip-core: the configuration core of the box.
//!
//! Always available (daemons build with `default-features = false`):
//! `paths` (storage layout), `uci` (UCI files), `ipc` (JSON-RPC to daemons),
//! `daemon` (logging, signals, pid files).
//! With the default `datastore` feature: the libyang-backed datastore, edit
//! semantics, commit with history, and the generic YANG<->UCI mapping.

pub mod daemon;
pub mod ipc;
pub mod paths;
pub mod uci;
mod uci_parse;
