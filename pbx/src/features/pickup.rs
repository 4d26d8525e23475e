//! Call pickup by feature code (YANG /pbx/feature-codes/pickup,
//! /pbx/extension/pickup-group), B2BUA mode: an extension dials *8101 to
//! answer the call ringing at 101 (directed), or *8 alone for a call
//! ringing at an extension sharing one of its pickup groups (group).
//!
//! The picked call's caller is answered with the picker's SDP, the picker
//! with the caller's, the ringing branches are cancelled, and the picker's
//! dialog takes the place of the callee leg: from then on the call is
//! bridged as any other. Its CDR names the picker as the callee.
//!
//! A call anchored on the RTP relay (NAT) stays anchored: the picker takes
//! the callee's side of it. Only an extension that authenticated the
//! INVITE picks up; in proxy mode
//! the PBX is no party to the call and cannot answer it (501).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::call::client::cancel_branch;
use crate::config::{Config, Mode, Transport};
use crate::features::admission::our_extension;
use crate::features::b2bua::{contact_for, Leg};
use crate::features::state::Engine;
use crate::sip::{param, response_to, Message, Uri};

/// Takes an INVITE to the pickup code; true when it was answered here.
pub fn take(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
) -> bool {
    if msg.method() != "INVITE" || param(msg.header("To").unwrap_or(""), "tag").is_some() {
        return false;
    }
    let cfg = engine.config();
    let picker = || {
        our_extension(
            engine,
            &cfg,
            key,
            msg,
            source,
            "Forbidden: Pickup Is For Our Extensions",
        )
    };
    if let Some(replaces) = msg.header("Replaces") {
        // A phone picking up from its busy-lamp field (B2BUA mode; in proxy
        // mode the phones settle it between themselves).
        if cfg.mode != Mode::B2bua {
            return false;
        }
        let Some(picker) = picker() else {
            return true;
        };
        return by_replaces(engine, key, msg, source, transport, replaces, &picker);
    }
    let Some(code) = cfg.pickup_code.as_deref() else {
        return false;
    };
    let Some(user) = engine.user_dialled_here(msg) else {
        return false;
    };
    let Some(digits) = user.strip_prefix(code) else {
        return false;
    };
    let reply = |code: u16, reason: &str| {
        engine.answer_with(key, msg, (code, reason), vec![]);
        true
    };
    let Some(picker) = picker() else {
        return true;
    };
    if cfg.mode != Mode::B2bua {
        return reply(501, "Not Implemented: Pickup Needs B2BUA Mode");
    }
    if !digits.chars().all(|c| c.is_ascii_alphanumeric()) || digits.len() > 32 {
        return reply(484, "Address Incomplete");
    }
    let Some(a_call_id) = ringing_call(engine, &cfg, &picker, digits) else {
        return reply(404, "Not Found: Nothing To Pick Up");
    };
    match pick(engine, key, msg, source, transport, &a_call_id) {
        Ok(()) => {
            tracing::info!(%picker, call_id = %a_call_id, directed = !digits.is_empty(), "call picked up");
            true
        }
        Err(reason) => reply(404, reason),
    }
}

/// An INVITE of extension `picker` with Replaces naming the callee leg of
/// a ringing call, as the dialog-info of our NOTIFYs gives it (call-id,
/// remote-tag: our tag).
fn by_replaces(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
    replaces: &str,
    picker: &str,
) -> bool {
    let reply = |code: u16, reason: &str| {
        engine.answer_with(key, msg, (code, reason), vec![]);
        true
    };
    let mut parts = replaces.split(';');
    let call_id = parts.next().unwrap_or("").trim();
    let tags: Vec<&str> = parts
        .filter_map(|p| p.trim().split_once('='))
        .filter(|(n, _)| n.eq_ignore_ascii_case("from-tag") || n.eq_ignore_ascii_case("to-tag"))
        .map(|(_, v)| v.trim())
        .collect();
    if call_id.is_empty() {
        return reply(400, "Bad Request: Malformed Replaces");
    }
    // Our tag on the ringing leg proves the dialog info was seen.
    let a_call_id = engine
        .b2b_calls()
        .lock()
        .get(call_id)
        .cloned()
        .and_then(|c| {
            let c = c.lock();
            let ringing = c.established.is_none() && c.b.call_id == call_id;
            (ringing && tags.contains(&c.b.local_tag.as_str())).then(|| c.a.call_id.clone())
        });
    let Some(a_call_id) = a_call_id else {
        return reply(481, "Call/Transaction Does Not Exist");
    };
    match pick(engine, key, msg, source, transport, &a_call_id) {
        Ok(()) => {
            tracing::info!(%picker, call_id = %a_call_id, "call picked up with Replaces");
            true
        }
        Err(reason) => reply(481, reason),
    }
}

/// The Call-ID of the call `picker` may pick up: ringing at extension
/// `digits` (directed), or at an extension sharing one of the picker's
/// pickup groups (group, the oldest); never the picker's own.
fn ringing_call(engine: &Engine, cfg: &Config, picker: &str, digits: &str) -> Option<String> {
    let groups = cfg
        .extensions
        .get(picker)
        .map(|e| e.pickup_groups.clone())
        .unwrap_or_default();
    let directed = (!digits.is_empty())
        .then(|| cfg.resolve_user(digits).map(|e| e.number.clone()))
        .map(|e| e.unwrap_or_default());
    // A snapshot of the ringing calls: no lock is held across another.
    let ringing: Vec<(String, String, String)> = engine
        .calls()
        .iter()
        .filter(|(_, c)| c.state != "established")
        .map(|(id, c)| (id.clone(), c.callee.clone(), c.start.clone()))
        .collect();
    let mut found: Vec<(String, String)> = ringing
        .into_iter()
        .filter(|(id, _, _)| {
            let call = engine.b2b_calls().lock().get(id).cloned();
            call.is_some_and(|c| {
                let c = c.lock();
                c.established.is_none() && c.a.call_id == *id
            })
        })
        .filter_map(|(id, callee, start)| {
            let callee = Uri::parse(&callee)
                .and_then(|u| u.user)
                .and_then(|u| cfg.resolve_user(&u))?;
            if callee.number == picker {
                return None;
            }
            let ok = match &directed {
                Some(d) => *d == callee.number,
                None => callee.pickup_groups.iter().any(|g| groups.contains(g)),
            };
            ok.then_some((id, start))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found.into_iter().next().map(|(id, _)| id)
}

fn pick(
    engine: &Arc<Engine>,
    p_key: &str,
    p_msg: &Message,
    source: SocketAddr,
    transport: Transport,
    a_call_id: &str,
) -> Result<(), &'static str> {
    const GONE: &str = "Not Found: Call Answered Meanwhile";
    let call = engine
        .b2b_calls()
        .lock()
        .get(a_call_id)
        .cloned()
        .ok_or(GONE)?;
    // The caller's INVITE still waiting for its answer, and its branches.
    let (a_key, a_req, branches) = {
        let tables = engine.tables();
        tables
            .server
            .iter()
            .find(|(_, t)| {
                t.request.call_id() == a_call_id
                    && t.request.method() == "INVITE"
                    && t.final_code.is_none()
            })
            .map(|(k, t)| (k.clone(), t.request.clone(), t.branches.clone()))
            .ok_or(GONE)?
    };
    let p_leg = Leg::answering(p_msg, engine.new_tag(), source, transport);
    let (a_ok, p_ok, old_b) = {
        let mut c = call.lock();
        if c.established.is_some() || c.transfer.is_some() {
            return Err(GONE);
        }
        if c.media_crypto.is_some() {
            return Err("Not Found: Call's SRTP Ends Here");
        }
        // The picker on the other side of the NAT boundary from a caller
        // whose call had no relay: one now.
        if c.relay.is_none() {
            let cfg = engine.config();
            if crate::features::nat::crosses(&cfg, c.a.dest.ip(), source.ip()) {
                c.relay = crate::features::nat::open_relay(&cfg, source.is_ipv6()).map(Arc::new);
                c.relay_swapped = false;
            }
        }
        let mut a_ok = response_to(&a_req, 200, "OK", Some(&c.a.local_tag));
        a_ok.add_header("Contact", contact_for(engine, c.a.transport, c.a.dest));
        copy_sdp(p_msg, &mut a_ok);
        let mut p_ok = response_to(p_msg, 200, "OK", Some(&p_leg.local_tag));
        p_ok.add_header("Contact", contact_for(engine, transport, source));
        if let Some((ct, sdp)) = c.offer.take() {
            p_ok.add_header("Content-Type", ct);
            p_ok.body = sdp;
        }
        if let Some(relay) = c.relay.clone() {
            // The picker takes the callee's side of the relay.
            let (caller_side, picker_side) = (c.relay_side(true), c.relay_side(false));
            let nat = crate::features::nat::anchor;
            nat(
                engine,
                &relay,
                picker_side,
                source.ip(),
                c.a.dest,
                &mut a_ok,
            );
            nat(
                engine,
                &relay,
                caller_side,
                c.a.dest.ip(),
                source,
                &mut p_ok,
            );
        }
        let old_b = std::mem::replace(&mut c.b, p_leg.clone());
        c.established = Some(Instant::now());
        c.last_activity = Instant::now();
        c.b_ack = None;
        (a_ok, p_ok, old_b.call_id)
    };
    {
        let mut map = engine.b2b_calls().lock();
        map.remove(&old_b);
        map.insert(p_leg.call_id.clone(), call.clone());
    }
    if let Some(rec) = engine.calls().get_mut(a_call_id) {
        rec.callee = p_leg.remote_uri.clone();
        rec.state = "established";
        rec.answered = Some(Instant::now());
    }
    engine.reply(&a_key, a_ok);
    engine.reply(p_key, p_ok);
    for b in branches {
        cancel_branch(engine, &b);
    }
    Ok(())
}

fn copy_sdp(from: &Message, to: &mut Message) {
    if from.body.is_empty() {
        return;
    }
    if let Some(ct) = from.header("Content-Type") {
        to.add_header("Content-Type", ct.to_owned());
    }
    to.body = from.body.clone();
}
