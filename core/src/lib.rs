//! besip-core: the configuration core of the box.
//!
//! Always available (daemons build with `default-features = false`):
//! `paths` (storage layout), `uci` (UCI files), `ipc` (JSON-RPC to daemons),
//! `daemon` (logging, signals, pid files).
//! With the default `datastore` feature: the libyang-backed datastore, edit
//! semantics, commit with history, and the generic YANG<->UCI mapping.

pub mod access;
#[cfg(feature = "capture")]
pub mod capture;
pub mod daemon;
pub mod hep;
pub mod ipc;
pub mod metrics;
pub mod model;
pub mod netdev;
pub mod password;
pub mod paths;
#[cfg(feature = "tls")]
pub mod tls;
pub mod uci;
mod uci_parse;

#[cfg(feature = "datastore")]
pub mod datastore;
#[cfg(feature = "datastore")]
pub mod edit;
#[cfg(feature = "datastore")]
pub mod error;
#[cfg(feature = "datastore")]
pub mod filter;
#[cfg(feature = "datastore")]
pub mod fuzzing;
#[cfg(feature = "datastore")]
pub mod history;
#[cfg(feature = "datastore")]
pub mod libyang;
#[cfg(feature = "datastore")]
pub mod persist;
#[cfg(feature = "datastore")]
pub mod reload;
#[cfg(feature = "datastore")]
pub mod render_cache;
#[cfg(feature = "datastore")]
pub mod schema;
#[cfg(feature = "datastore")]
pub mod secrets;
#[cfg(feature = "shared-db")]
pub mod shared_db;
/// The tree operations of `libyang` under their former name.
#[cfg(feature = "datastore")]
pub mod tree_ops {
    pub use crate::libyang::{free_nodes, remove_path};
}
#[cfg(feature = "datastore")]
pub mod uci_map;
#[cfg(feature = "datastore")]
pub mod validation_scope;
#[cfg(feature = "datastore")]
pub mod xml;

/// Re-exported so users of the datastore need not depend on yang2 themselves.
#[cfg(feature = "datastore")]
pub use yang2;
