//! Connection reuse by alias (RFC 5923): a phone that puts `;alias` on the
//! Via of a request sent over a TCP or TLS connection asks that requests
//! for its Via address come back over that connection, so it needs no
//! listening socket (and no new TLS session) of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::Transports;
use crate::sip::{param, Message, Via};

/// Aliases the connection from `source` to the sent-by of `top` (the
/// request's parsed top Via) when that Via asks for it.
pub fn from_via(transports: &Arc<Transports>, msg: &Message, top: &Via, source: SocketAddr) {
    let asks = msg
        .first_value("Via")
        .is_some_and(|v| param(v, "alias").is_some());
    if !asks {
        return;
    }
    let Ok(ip) = top.host.trim_matches(['[', ']']).parse::<IpAddr>() else {
        return;
    };
    let Some(port) = top.port else {
        return;
    };
    transports.alias_connection(source, SocketAddr::new(ip, port));
}
