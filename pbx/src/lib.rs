//! besip-pbxd: SIP registrar and stateful proxy of BESIP-rs (DESIGN.md §7).
//!
//! Layers, each importing only those below it (checked by `layering_test`):
//!
//! ```text
//!   control (IPC), bin/besip-pbxd
//!   features/   registrar, routing (the proxy's request script), b2bua,
//!               accounting + rating, dispatcher, trunk_auth,
//!               trunk_registration, nat + rtp_relay, fraud, admission,
//!               outbound; `features::Features` registers them with the
//!               engine through the `call::Hooks` trait
//!   call/       the engine: server side (on_message, reply, ACK, CANCEL),
//!               client side (branches, responses, timers), the call list,
//!               the location store, the `Hooks` the features implement
//!   transaction/  transaction tables, the timer heap
//!   auth/       digest authentication, server (auth) and client (uac)
//!   transport/  UDP and TCP sockets, TCP limits
//!   sip/        message syntax
//!   config      the daemon's view of its UCI package (read by every layer)
//! ```

pub mod auth;
pub mod call;
pub mod config;
pub mod control;
pub mod features;
pub mod fuzzing;
#[cfg(test)]
mod layering_test;
pub mod sip;
pub mod transaction;
pub mod transport;

// The paths the daemon's main and config.rs name (kept while they do).
pub use call::location;
pub use features::{accounting, dispatcher, nat, outbound, rating, rtp_relay, trunk_registration};
pub use transport::tcp_limits;

/// The engine as the daemon's main assembles it.
pub mod engine {
    pub use crate::call::{local_sockets, EngineSink};
    pub use crate::features::Engine;
}

/// The transaction timers, served by `run`.
pub mod timers {
    pub use crate::call::run_timers as run;
    pub use crate::transaction::timers::*;
}
