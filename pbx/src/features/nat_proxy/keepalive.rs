//! Keepalives to registered phones behind a NAT, so the NAT keeps their
//! mapping open: an OPTIONS request (its answer is absorbed) or a double
//! CRLF (RFC 5626 §4.4.1), every /pbx/nat/keepalive/interval, from the
//! socket the phone's REGISTER arrived on to the address it came from.

use std::net::SocketAddr;

use crate::config::nat::KeepaliveMethod;
use crate::config::Transport;
use crate::features::state::Engine;
use crate::sip::format_host;

use super::register::NatedBinding;

/// Call-ID prefix of our OPTIONS keepalives (their answers are ours to absorb).
pub const CALL_ID_PREFIX: &str = "besip-nat-keepalive-";

/// The OPTIONS keepalive to `b`, sent from `local`.
pub fn options(engine: &Engine, b: &NatedBinding, local: SocketAddr) -> Vec<u8> {
    let host = format_host(&local.ip());
    let port = local.port();
    let branch = engine.new_branch(0);
    let tag = engine.new_tag();
    let id = engine.new_tag();
    format!(
        "OPTIONS {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:keepalive@{host}:{port}>;tag={tag}\r\nTo: <{contact}>\r\nCall-ID: {CALL_ID_PREFIX}{id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        contact = b.contact
    )
    .into_bytes()
}

/// Sends the keepalives due now; returns how many went out.
pub fn send_due(engine: &Engine) -> u64 {
    let cfg = engine.config();
    let method = cfg.nat.keepalive;
    if method == KeepaliveMethod::None {
        return 0;
    }
    let due = engine
        .nat_proxy()
        .bindings
        .lock()
        .due(std::time::Instant::now(), cfg.nat.keepalive_interval);
    let mut sent = 0;
    for b in due {
        if b.transport != Transport::Udp {
            continue; // a connection is kept open by the transport
        }
        let bytes = match method {
            KeepaliveMethod::Crlf => b"\r\n\r\n".to_vec(),
            _ => options(engine, &b, b.local),
        };
        if !engine.transports().send_udp_from(b.local, b.source, &bytes) {
            engine.send(Transport::Udp, b.source, bytes);
        }
        sent += 1;
    }
    sent
}
