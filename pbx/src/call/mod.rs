//! The engine (call layer): transactions in motion, the call list, the
//! location store, and the `Hooks` through which the features take part.

pub mod branches;
pub mod client;
pub mod engine;
#[cfg(test)]
mod hooks_test;
pub mod location;
pub mod server;
pub mod state;
pub mod tasks;

pub use engine::{local_sockets, Engine, Hooks};
pub use server::{error_reply, EngineSink};
pub use state::{BranchInfo, Call, Counters, Late2xx, LocalSocket, Outgoing, Target};
pub use tasks::run_timers;
