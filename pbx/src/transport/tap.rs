//! A copy of every SIP message that passes the transports, for whoever
//! wants one (the HEP export). Taps run on the sending or receiving thread:
//! they must not block.

use std::net::SocketAddr;

use crate::config::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Sent,
}

/// One message: which way, over what, between which sockets.
pub struct Copy<'a> {
    pub direction: Direction,
    pub transport: Transport,
    /// Our socket.
    pub local: SocketAddr,
    /// The other side.
    pub peer: SocketAddr,
    pub bytes: &'a [u8],
}

pub trait Tap: Send + Sync + 'static {
    fn copy(&self, message: &Copy<'_>);
}
