//! STUN server (RFC 5389 Binding; RFC 3489 clients get MAPPED-ADDRESS), so
//! phones behind a NAT learn the public address and port their packets come
//! from. `message` is the wire format, `server` the socket (/pbx/stun).
//! Sits beside transport: it names only the configuration.

pub mod message;
pub mod server;

pub use server::{Counters, Plan, Service, StunError};
