//! NAT traversal in proxy mode (/pbx/nat, mode proxy): phones behind a NAT
//! are detected (`detect`), their registrations noted with the socket they
//! came in on (`register`) and kept open by keepalives (`keepalive`), their
//! Contact aliased to the address they are reached at (`contact`), and the
//! media of calls involving them anchored on the relay (`media`, `sdp`) as
//! /pbx/nat/media-relay says: offers and answers in INVITE, 18x/2xx, ACK
//! (late offer) and re-INVITEs are rewritten to name the relay. A relay is
//! closed on BYE, on a final failure of its INVITE (CANCEL included) and
//! after /pbx/nat/media-timeout without packets (calls on hold exempt).
//! The B2BUA mode has its own NAT handling (`features::nat`).

pub mod contact;
pub mod detect;
pub mod keepalive;
pub mod media;
pub mod register;
pub mod sdp;
mod state;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::call::Target;
use crate::config::nat::MediaRelay;
use crate::config::{Mode, Transport};
use crate::features::state::Engine;
use crate::sip::{addr_uri, param, Message, Uri, Via};

pub use state::{relay_json, state_json};

/// The state of the proxy's NAT traversal.
#[derive(Default)]
pub struct NatProxy {
    pub(crate) bindings: Mutex<register::NatedBindings>,
    relays: Mutex<media::Relays>,
    keepalives_sent: AtomicU64,
    relays_refused: AtomicU64,
    media_timeouts: AtomicU64,
}

/// A request refused before it is forwarded: code and reason.
pub type Refusal = (u16, &'static str);

fn proxy_mode(engine: &Engine) -> bool {
    engine.config().mode == Mode::Proxy
}

fn from_tag(msg: &Message) -> &str {
    param(msg.header("From").unwrap_or(""), "tag").unwrap_or("")
}

/// SDP `body` of `media` from the caller (`from_caller`) or the callee,
/// signalling from `sender`, anchored on `call`'s relay for the party at
/// `to`; None when `to` is not known yet (the body goes unchanged).
fn anchored(
    engine: &Engine,
    call: &mut media::CallMedia,
    from_caller: bool,
    sender: SocketAddr,
    media: &sdp::Media,
    body: &str,
    to: Option<SocketAddr>,
) -> Option<Vec<u8>> {
    let ip = relay_ip(engine, to?)?;
    Some(
        call.anchor(from_caller, sender.ip(), media, body, ip)
            .into_bytes(),
    )
}

/// The address to name to `peer` for media on the relay.
fn relay_ip(engine: &Engine, peer: SocketAddr) -> Option<IpAddr> {
    crate::features::nat::relay_address_for(&engine.config(), peer)
}

/// A REGISTER the registrar answered 200: its contacts from behind a NAT
/// are noted (and others forgotten).
pub fn registered(
    engine: &Engine,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
    local: SocketAddr,
) {
    if !proxy_mode(engine) {
        return;
    }
    let cfg = engine.config();
    let Some(user) = msg
        .header("To")
        .map(addr_uri)
        .and_then(Uri::parse)
        .and_then(|u| u.user)
    else {
        return;
    };
    let Some(aor) = cfg.resolve_user(&user).map(|e| e.number.clone()) else {
        return;
    };
    let nated = detect::is_nated(msg, source, transport);
    let mut bound = Vec::new();
    engine.location().visit(&aor, |b| {
        if b.source == source {
            bound.push(b.contact.clone());
        }
    });
    let mut table = engine.nat_proxy().bindings.lock();
    for c in msg.header_values("Contact") {
        let uri = addr_uri(c);
        if nated && bound.iter().any(|b| b == uri) {
            table.put(
                &aor,
                register::NatedBinding {
                    source,
                    local,
                    transport,
                    contact: uri.to_owned(),
                    next_keepalive: Instant::now() + cfg.nat.keepalive_interval,
                },
            );
            tracing::debug!(%source, aor, contact = uri, "registration from behind a NAT");
        } else {
            table.remove(&aor, uri);
        }
    }
}

/// A request about to be forwarded by the proxy to `targets`: a NATed
/// sender's Contact is aliased, and SDP is anchored on the relay as the
/// policy says. An error refuses it (nothing changed).
pub fn on_request(
    engine: &Arc<Engine>,
    msg: &mut Message,
    source: SocketAddr,
    transport: Transport,
    targets: &[Target],
) -> Result<(), Refusal> {
    if !proxy_mode(engine) {
        return Ok(());
    }
    let method = msg.method().to_owned();
    let call_id = msg.call_id().to_owned();
    if method == "BYE" {
        close(engine, &call_id, "BYE");
        return Ok(());
    }
    if !matches!(method.as_str(), "INVITE" | "UPDATE" | "PRACK") {
        return Ok(());
    }
    let nated = detect::is_nated(msg, source, transport);
    let initial = param(msg.header("To").unwrap_or(""), "tag").is_none();
    let parsed = detect::sdp_of(msg).map(|body| (sdp::parse(body), body.to_owned()));
    let np = engine.nat_proxy();
    let mut relays = np.relays.lock();
    let cfg = engine.config();
    if initial && method == "INVITE" && !relays.map.contains_key(&call_id) {
        let callee_nated = {
            let b = np.bindings.lock();
            targets.iter().any(|t| b.is_nated(t.dest))
        };
        let anchor = match cfg.nat.media_relay {
            MediaRelay::Never => false,
            MediaRelay::Always => true,
            MediaRelay::WhenNated => nated || callee_nated,
        };
        if anchor {
            if let Some((Err(e), _)) = &parsed {
                return Err((488, malformed_reason(e)));
            }
            let mux = matches!(&parsed, Some((Ok(m), _)) if m.rtcp_mux);
            if relays
                .open(
                    &cfg,
                    &call_id,
                    from_tag(msg),
                    source,
                    nated || callee_nated,
                    mux,
                )
                .is_err()
            {
                np.relays_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(call_id, "no room on the media relay; call refused");
                return Err((503, "Service Unavailable: Media Relay Full"));
            }
        }
    }
    if let Some(call) = relays.map.get_mut(&call_id) {
        let from_caller = from_tag(msg) == call.caller_tag;
        if let Some((media, body)) = parsed {
            let media = media.map_err(|e| (488, malformed_reason(&e)))?;
            let to = match from_caller {
                true => targets.first().map(|t| t.dest).or(call.callee),
                false => Some(call.caller),
            };
            if let Some(b) = anchored(engine, call, from_caller, source, &media, &body, to) {
                msg.body = b;
            }
            // A hold by one party: the other hears music from the relay.
            if method != "PRACK" {
                let relay = call.rtp.clone();
                crate::features::media_service::moh::offered(
                    engine,
                    &call_id,
                    &relay,
                    from_caller,
                    body.as_bytes(),
                    msg,
                );
            }
        }
    }
    drop(relays);
    if nated {
        contact::add_alias(msg, source, transport);
    }
    Ok(())
}

fn malformed_reason(e: &sdp::Malformed) -> &'static str {
    match e.0 {
        "SDP has no audio stream (m=audio)" => "Not Acceptable Here: SDP Has No Audio Stream",
        _ => "Not Acceptable Here: Malformed SDP",
    }
}

/// A response going upstream from `from` (the branch's destination): its
/// SDP anchored, a NATed callee's Contact aliased, the relay closed on a
/// final failure of the initial INVITE. None: relayed unchanged.
pub fn on_response(
    engine: &Engine,
    resp: &Message,
    from: SocketAddr,
    transport: Transport,
) -> Option<Message> {
    if !proxy_mode(engine) {
        return None;
    }
    let code = resp.status()?;
    let call_id = resp.call_id();
    let method = resp.cseq().map(|c| c.1.to_owned()).unwrap_or_default();
    let from_nated = code < 300
        && (engine.nat_proxy().bindings.lock().is_nated(from)
            || detect::contact_addr(resp)
                .is_some_and(|c| detect::is_private(c.ip()) && c.ip() != from.ip()));
    let np = engine.nat_proxy();
    let mut relays = np.relays.lock();
    let Some(call) = relays.map.get_mut(call_id) else {
        drop(relays);
        return from_nated.then(|| {
            let mut up = upstream(resp);
            contact::add_alias(&mut up, from, transport);
            up
        });
    };
    // Answered by the other side of the request: its From is the requester's.
    let from_caller = from_tag(resp) != call.caller_tag;
    if method == "INVITE" && !from_caller && call.callee.is_none() && code < 300 {
        call.callee = Some(from);
    }
    if method == "INVITE" && code >= 300 && !call.answered && !from_caller {
        drop(relays);
        close(engine, call_id, "INVITE failed");
        return None;
    }
    if method == "INVITE" && (200..300).contains(&code) && !from_caller {
        call.answered = true;
    }
    let mut up = upstream(resp);
    if code > 100 && code < 300 {
        if let Some(body) = detect::sdp_of(resp) {
            match sdp::parse(body) {
                Ok(media) => {
                    let to = call.other_side(from_caller);
                    if let Some(b) = anchored(engine, call, from_caller, from, &media, body, to) {
                        up.body = b;
                    }
                    // The held party answered a hold offered as a=inactive.
                    crate::features::media_service::moh::answered(
                        engine,
                        call_id,
                        from_caller,
                        &mut up,
                    );
                }
                Err(e) => tracing::info!(call_id, error = e.0, "SDP of a response not anchored"),
            }
        }
    }
    drop(relays);
    if from_nated {
        contact::add_alias(&mut up, from, transport);
    }
    Some(up)
}

/// A 2xx retransmitted by the callee after its transaction ended, of a
/// call with a relay: sent on to the next Via with its SDP anchored as the
/// first was. False when there is no such call (relayed as it is).
pub fn relay_late_2xx(engine: &Engine, resp: &Message) -> bool {
    let from = match engine.nat_proxy().relays.lock().map.get(resp.call_id()) {
        Some(call) => call.callee,
        None => return false,
    };
    let Some(top) = resp.top_via() else {
        return false;
    };
    if !engine.is_local(&top.host, top.port) {
        return false;
    }
    let Some(up) = from.and_then(|from| on_response(engine, resp, from, Transport::Udp)) else {
        return false;
    };
    let Some(next) = up.first_value("Via").and_then(Via::parse) else {
        return false;
    };
    let Some(dest) = next.response_target() else {
        return false;
    };
    let transport = Transport::from_name(&next.transport).unwrap_or(Transport::Udp);
    engine.send(transport, dest, up.to_bytes());
    true
}

fn upstream(resp: &Message) -> Message {
    let mut up = resp.clone();
    up.remove_first_value("Via");
    up
}

/// An ACK forwarded by the proxy: the answer of a late offer (SDP in the
/// 2xx) is anchored. Returns false when its SDP is malformed (the ACK is
/// still forwarded, the relay keeps its targets).
pub fn on_ack(engine: &Engine, msg: &mut Message, source: SocketAddr) -> bool {
    if !proxy_mode(engine) {
        return true;
    }
    let Some(body) = detect::sdp_of(msg).map(str::to_owned) else {
        return true;
    };
    let Ok(media) = sdp::parse(&body) else {
        return false;
    };
    let np = engine.nat_proxy();
    let mut relays = np.relays.lock();
    let Some(call) = relays.map.get_mut(msg.call_id()) else {
        return true;
    };
    let from_caller = from_tag(msg) == call.caller_tag;
    let to = call.other_side(from_caller);
    if let Some(b) = anchored(engine, call, from_caller, source, &media, &body, to) {
        msg.body = b;
    }
    true
}

/// Closes the relays of a call.
pub fn close(engine: &Engine, call_id: &str, why: &str) {
    if engine
        .nat_proxy()
        .relays
        .lock()
        .map
        .remove(call_id)
        .is_some()
    {
        tracing::debug!(call_id, why, "media relay closed");
    }
}

/// Whether a response is the answer to one of our OPTIONS keepalives.
pub fn absorbs(msg: &Message) -> bool {
    msg.call_id().starts_with(keepalive::CALL_ID_PREFIX)
}

/// Once a second: keepalives, forgotten bindings, media timeouts.
pub fn every_second(engine: &Engine, tick: u64) {
    if !proxy_mode(engine) {
        return;
    }
    let np = engine.nat_proxy();
    if tick.is_multiple_of(5) {
        let location = engine.location();
        let mut table = np.bindings.lock();
        if !table.is_empty() {
            table.retain(|aor, contact| {
                let mut live = false;
                location.visit(aor, |b| live |= b.contact == contact);
                live
            });
        }
    }
    let sent = keepalive::send_due(engine);
    np.keepalives_sent.fetch_add(sent, Ordering::Relaxed);
    let Some(timeout) = engine.config().nat.media_timeout else {
        return;
    };
    let mut relays = np.relays.lock();
    let before = relays.map.len();
    relays.map.retain(|call_id, call| {
        let dead = call.answered && !call.on_hold && call.idle() >= timeout;
        if dead {
            tracing::info!(call_id, "no media for the media timeout; relay closed");
        }
        !dead
    });
    let closed = before - relays.map.len();
    np.media_timeouts
        .fetch_add(closed as u64, Ordering::Relaxed);
}
