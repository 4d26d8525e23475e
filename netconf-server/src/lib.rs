//! besip-netconfd: NETCONF 1.0/1.1 over SSH (RFC 6241, RFC 6242) in front of
//! besip-core's datastore.

pub mod framing;
pub mod modrpc;
pub mod ops;
pub mod reply;
pub mod rpc;
pub mod server;
pub mod session;
pub mod ssh;
pub mod state;
pub mod users;
