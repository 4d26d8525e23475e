//! besip-pbxd: SIP registrar and stateful proxy of BESIP-rs (DESIGN.md §7).

pub mod accounting;
pub mod admission;
pub mod auth;
pub mod b2bua;
pub mod config;
pub mod control;
pub mod dispatcher;
pub mod engine;
pub mod fraud;
pub mod fuzzing;
pub mod location;
pub mod nat;
pub mod outbound;
pub mod proxy;
pub mod rating;
pub mod registrar;
pub mod responses;
pub mod rtp_relay;
pub mod sip;
pub mod tcp_limits;
pub mod timers;
pub mod transaction;
pub mod transport;
pub mod trunk_auth;
pub mod trunk_registration;
pub mod uac_auth;
