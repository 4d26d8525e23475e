//! The features: what the PBX does with the calls the engine carries. They
//! take part in the call flow through the engine's `Hooks`, implemented in
//! `hooks` (the one place where they are registered); their state is in
//! `state`. Below `state`: the stores and rules without an engine (fraud,
//! outbound, rating, networks, rtp_relay, the state types of accounting,
//! b2bua and trunk_registration); above it, the features that act on calls.

pub mod accounting;
pub mod admission;
pub mod b2bua;
pub mod caller_id;
pub mod cluster;
pub mod decision;
pub mod dispatcher;
pub mod dns;
pub mod feature_codes;
pub mod forwarding;
pub mod fraud;
pub mod hep;
mod hooks;
pub mod inbound;
pub mod media_service;
pub mod nat;
pub mod nat_proxy;
pub mod networks;
pub mod outbound;
pub mod pickup;
pub mod presence;
pub mod rating;
pub mod registrar;
pub mod ring_group;
pub mod routing;
pub mod rtp_relay;
pub mod sdes;
pub mod sequential;
pub mod state;
pub mod time_condition;
pub mod trunk_auth;
pub mod trunk_registration;

pub use state::{Call, Engine, Features};
