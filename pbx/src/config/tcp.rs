//! /pbx/tcp as the PBX uses it (read from the generated `besip_core::model::pbx`
//! types; admission of connections is in `tcp_limits`).

use std::time::Duration;

use besip_core::model::pbx::PbxTcp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// /pbx/tcp/max-connections
    pub max_connections: usize,
    /// /pbx/tcp/max-connections-per-source
    pub max_per_source: usize,
    /// /pbx/tcp/idle-timeout
    pub idle_timeout: Duration,
    /// /pbx/tcp/message-read-timeout
    pub message_timeout: Duration,
}

impl Default for TcpLimits {
    /// The YANG defaults.
    fn default() -> Self {
        TcpLimits::from_model(&PbxTcp::default())
    }
}

impl TcpLimits {
    pub fn from_model(tcp: &PbxTcp) -> TcpLimits {
        TcpLimits {
            max_connections: tcp.max_connections as usize,
            max_per_source: tcp.max_connections_per_source as usize,
            idle_timeout: Duration::from_secs(u64::from(tcp.idle_timeout)),
            message_timeout: Duration::from_secs(u64::from(tcp.message_read_timeout)),
        }
    }
}
