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
//!   stun/       the STUN server (beside transport: names only config)
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
pub mod metrics;
pub mod sip;
pub mod stun;
pub mod transaction;
pub mod transport;
