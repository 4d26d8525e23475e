//! besip-secd: SIP flood, brute-force and scanner detection with kernel bans.

pub mod capture;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod firewall;
pub mod packet;
pub mod replay;
pub mod store;
