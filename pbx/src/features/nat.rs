//! NAT traversal of the B2BUA (/pbx/nat): with an external address and the
//! local networks configured, a peer outside those networks sees the external
//! address in our Contact and in the SDP, and a call between inside and
//! outside has its media anchored on an RTP relay (ports of /pbx/rtp), since
//! an inside phone's own media address is unreachable from outside. Without
//! both settings nothing here is used, except that a call whose SRTP ends at
//! the relay (b2bua::media_crypto) is anchored whatever the networks. Limits: the first audio stream of an
//! offer in the INVITE is anchored (a late offer, SDP first in the 2xx, is
//! not); Via keeps our bound address (peers answer to the source, RFC 3581).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::Config;
use crate::features::rtp_relay::{media_addr, rewrite_sdp, Relay};
use crate::features::state::Engine;
use crate::sip::Message;

pub use super::networks::{contains, parse_networks};

/// True when NAT handling is configured and `ip` is outside the local networks.
pub fn is_outside(cfg: &Config, ip: IpAddr) -> bool {
    cfg.external_address.is_some()
        && !cfg.local_networks.is_empty()
        && !cfg.local_networks.iter().any(|n| contains(n, ip))
}

/// Our source address towards `peer`, as the kernel would pick it.
fn local_ip_towards(peer: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if peer.is_ipv6() {
        "[::]:0".parse().ok()?
    } else {
        "0.0.0.0:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(peer).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The address to name to `peer` (Contact, SDP) when NAT handling is on:
/// the external address outside, our own source address inside.
pub fn address_for(cfg: &Config, peer: SocketAddr) -> Option<IpAddr> {
    if cfg.external_address.is_none() || cfg.local_networks.is_empty() {
        return None;
    }
    if is_outside(cfg, peer.ip()) {
        return cfg.external_address;
    }
    local_ip_towards(peer)
}

/// The address to name to `peer` for media on our relay: as `address_for`,
/// or without NAT handling our own source address towards it.
pub fn relay_address_for(cfg: &Config, peer: SocketAddr) -> Option<IpAddr> {
    address_for(cfg, peer).or_else(|| local_ip_towards(peer))
}

/// True when media between `a` and `b` crosses the NAT boundary.
pub fn crosses(cfg: &Config, a: IpAddr, b: IpAddr) -> bool {
    cfg.external_address.is_some() && is_outside(cfg, a) != is_outside(cfg, b)
}

/// A relay on a pair of ports of /pbx/rtp; None (logged) when none is free.
pub fn open_relay(cfg: &Config, v6: bool) -> Option<Relay> {
    // All addresses: a NAT router forwards the external ports to whichever is ours.
    let bind: IpAddr = if v6 {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let relay = Relay::open(bind, cfg.rtp_port_min, cfg.rtp_port_max);
    if relay.is_none() {
        tracing::warn!("no free RTP relay port in the rtp range; media not anchored");
    }
    relay
}

/// For a new call from `a` to `b` that crosses the NAT boundary, or whose
/// media must pass the relay anyway (`force`: SRTP ends there): a relay,
/// with the offer in `invite` rewritten to point B at it.
pub fn anchor_offer(
    engine: &Engine,
    a: SocketAddr,
    b: SocketAddr,
    invite: &mut Message,
    force: bool,
) -> Option<Arc<Relay>> {
    let cfg = engine.config();
    if !crosses(&cfg, a.ip(), b.ip()) && !force {
        return None;
    }
    let offer = std::str::from_utf8(&invite.body).ok()?;
    let a_media = media_addr(offer)?;
    let relay = open_relay(&cfg, b.is_ipv6())?;
    relay.set_target(true, a_media, a.ip());
    let ip = relay_address_for(&cfg, b)?;
    invite.body = rewrite_sdp(offer, ip, relay.b_port).into_bytes();
    tracing::debug!(
        a_port = relay.a_port,
        b_port = relay.b_port,
        "media anchored on the relay"
    );
    Some(Arc::new(relay))
}

/// SDP in `msg` came from side A (`from_a`) or B, whose signalling comes
/// from `sender`, and goes to the other side at `to`: its sender's media
/// address becomes a relay target and the body points the receiver at the
/// relay.
pub fn anchor(
    engine: &Engine,
    relay: &Relay,
    from_a: bool,
    sender: IpAddr,
    to: SocketAddr,
    msg: &mut Message,
) {
    let Ok(sdp) = std::str::from_utf8(&msg.body) else {
        return;
    };
    let Some(media) = media_addr(sdp) else {
        return;
    };
    let cfg = engine.config();
    let Some(ip) = relay_address_for(&cfg, to) else {
        return;
    };
    relay.set_target(from_a, media, sender);
    let port = if from_a { relay.b_port } else { relay.a_port };
    msg.body = rewrite_sdp(sdp, ip, port).into_bytes();
}

/// /pbx/nat-state in B2BUA mode: the relays of its calls (listed under the
/// caller's Call-ID; RTP only, so no RTCP ports), `nated` when the call
/// crosses the NAT boundary (else its SRTP ends at the relay).
pub fn state_json(engine: &Engine) -> serde_json::Value {
    let cfg = engine.config();
    // Each call is listed under both its Call-IDs: once, under the caller's.
    let relays: Vec<serde_json::Value> = engine
        .b2b_calls()
        .lock()
        .iter()
        .filter_map(|(call_id, call)| {
            let c = call.lock();
            let relay = c.relay.as_ref().filter(|_| c.a.call_id == *call_id)?;
            let nated = is_outside(&cfg, c.a.dest.ip()) != is_outside(&cfg, c.b.dest.ip());
            let mut r = crate::features::nat_proxy::relay_json(call_id, nated, relay);
            if c.relay_swapped {
                // Leg a (named caller here) faces the relay's side B.
                swap_sides(&mut r);
            }
            Some(r)
        })
        .collect();
    serde_json::json!({"relays-open": relays.len(), "relay": relays})
}

/// Exchanges the caller's and the callee's fields of a relay's state.
fn swap_sides(r: &mut serde_json::Value) {
    let Some(o) = r.as_object_mut() else { return };
    for (x, y) in [
        ("caller-rtp-port", "callee-rtp-port"),
        ("caller-latched", "callee-latched"),
    ] {
        let (vx, vy) = (o.remove(x), o.remove(y));
        if let Some(v) = vx {
            o.insert(y.into(), v);
        }
        if let Some(v) = vy {
            o.insert(x.into(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_match() {
        let nets = parse_networks(&["192.168.0.0/16".into(), "fd00::/8".into()]).expect("ok");
        assert!(contains(&nets[0], "192.168.7.1".parse().unwrap()));
        assert!(!contains(&nets[0], "192.169.0.1".parse().unwrap()));
        assert!(contains(&nets[1], "fd12::1".parse().unwrap()));
        assert!(!contains(&nets[1], "10.0.0.1".parse().unwrap()));
        assert!(contains(
            &(("0.0.0.0".parse().unwrap()), 0),
            "8.8.8.8".parse().unwrap()
        ));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "::/129"] {
            assert!(parse_networks(&[bad.into()]).is_err(), "{bad}");
        }
    }

    /// A B2BUA engine with NAT handling: 127.0.0.1 and 127.0.0.30 inside.
    fn b2bua_engine(dir: &std::path::Path) -> Engine {
        let path = dir.join("besip_pbx");
        std::fs::write(
            &path,
            "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'b2bua'\n\toption nat_external_address '127.0.0.1'\n\tlist nat_local_network '127.0.0.1/32'\n\tlist nat_local_network '127.0.0.30/32'\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let location =
            Arc::new(crate::call::location::Location::open(&dir.join("pbx.db")).unwrap());
        Engine::new(
            config,
            location,
            crate::transport::Transports::new(Some(1)),
            Vec::new(),
        )
    }

    fn leg(call_id: &str, dest: &str) -> super::super::b2bua::Leg {
        super::super::b2bua::Leg {
            call_id: call_id.into(),
            local_tag: "l".into(),
            remote_tag: Some("r".into()),
            local_uri: "sip:a@x".into(),
            remote_uri: "sip:b@x".into(),
            remote_target: "sip:b@x".into(),
            dest: dest.parse().unwrap(),
            transport: crate::config::Transport::Udp,
            cseq: 1,
        }
    }

    #[test]
    fn b2bua_relays_are_in_the_state_once_under_the_callers_call_id() {
        let dir = tempfile::tempdir().unwrap();
        let engine = b2bua_engine(dir.path());
        assert_eq!(state_json(&engine)["relays-open"], 0);
        let relay = Relay::open("127.0.0.1".parse().unwrap(), 32600, 32699).expect("relay ports");
        let (a_port, b_port) = (relay.a_port, relay.b_port);
        let call = Arc::new(parking_lot::Mutex::new(super::super::b2bua::B2bCall {
            // The caller outside (behind a NAT), the callee inside.
            a: leg("caller-id", "127.0.0.20:41000"),
            b: leg("callee-id@b2bua", "127.0.0.30:5070"),
            established: None,
            last_activity: std::time::Instant::now(),
            session_expires: None,
            b_ack: None,
            relay: Some(Arc::new(relay)),
            relay_swapped: false,
            media_crypto: None,
            a_ext: None,
            transfer: None,
            parked: None,
            offer: None,
        }));
        {
            let mut calls = engine.b2b_calls().lock();
            calls.insert("caller-id".into(), call.clone());
            calls.insert("callee-id@b2bua".into(), call);
        }
        let state = state_json(&engine);
        assert_eq!(state["relays-open"], 1, "{state}");
        let r = &state["relay"][0];
        assert_eq!(r["call-id"], "caller-id", "{r}");
        assert_eq!(r["nated"], true, "{r}");
        assert_eq!(r["caller-rtp-port"], a_port, "{r}");
        assert_eq!(r["callee-rtp-port"], b_port, "{r}");
        assert_eq!(r["packets-relayed"], "0", "{r}");
        assert!(r.get("caller-rtcp-port").is_none(), "{r}");
    }
}
