//! besip-secd: SIP flood, brute-force and scanner detection with kernel bans.

pub mod bans;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod firewall;
pub mod ipc;
pub mod packet;
pub mod protect;
pub mod replay;
pub mod shared_bans;
pub mod store;
