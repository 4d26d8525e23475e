//! Call parking (YANG /pbx/parking, /pbx/parking-state), B2BUA mode: a
//! party transfers its call (REFER) to a free slot (70–79 by default); the
//! other party waits there, its leg kept by the B2BUA, the parker hung up.
//! An extension dialling the slot retrieves the call: the waiting party is
//! re-INVITEd with the retriever's offer and its answer goes back in our
//! 200. After the timeout the parker is rung back (the blind-transfer
//! flow of `transfer`, without a transferor), again after each timeout
//! while the parker does not answer.
//!
//! While parked, the waiting party hears music on hold when it is on (the
//! call is then anchored on the relay, whose port it receives from); its
//! BYE ends the call; its other requests get 491. CDRs: the call up to the
//! parking, then one of the waiting party with the slot, naming the
//! retriever once retrieved.
//!
//! A new call whose destination is the lot (`arrive`: an inbound route's,
//! say) is answered here on a relay and waits on the first free slot the
//! same way; nobody parked it, so at the timeout it is ended instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::transfer::{ack_bytes, bye, notify, prepared, ring_back, send_all, Refusal};
use super::{contact, copy_body, new_request, B2bCall, Leg};
use crate::call::branches::track_call;
use crate::config::{Mode, Transport};
use crate::features::admission::our_extension;
use crate::features::media_service::sdp;
use crate::features::state::Engine;
use crate::sip::{param, response_to, Message};

/// The parked calls by slot, and retrievals in progress.
#[derive(Default)]
pub struct Lots {
    parked: Mutex<HashMap<u32, Parked>>,
    /// By the Call-ID of the waiting leg (re-INVITEd).
    retrievals: Mutex<HashMap<String, Retrieval>>,
}

struct Parked {
    call: Arc<Mutex<B2bCall>>,
    /// The parking extension (rung back); None for a call sent to the lot.
    by: Option<String>,
    since: Instant,
    /// Parked, or rung back last.
    last_try: Instant,
    waiting: String,
    /// Music on hold for the waiting party, stopped when the slot is freed.
    _music: Option<crate::features::media_service::moh::Music>,
}

struct Retrieval {
    slot: u32,
    key: String,
    req: Message,
    leg: Leg,
    cseq: u32,
}

/// Parks the transferee of `call` on `slot` for the REFER `msg` of `ext`.
pub(super) fn park(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    call: &Arc<Mutex<B2bCall>>,
    from_a: bool,
    ext: &str,
    slot: u32,
) -> Result<(), Refusal> {
    let tune = crate::features::media_service::moh::music(engine);
    let mut lots = engine.parking().parked.lock();
    if lots.contains_key(&slot) {
        return Err((486, "Busy Here: Parking Slot Taken"));
    }
    let refer_cseq = msg.cseq().map(|c| c.0).unwrap_or(0);
    let (waiting_id, gone_id, waiting, ok, out, music) = {
        let mut guard = call.lock();
        let c = &mut *guard;
        // The waiting party becomes leg a, the transferor's leg is b.
        if from_a {
            std::mem::swap(&mut c.a, &mut c.b);
            c.relay_swapped = !c.relay_swapped;
        }
        let mut ok = response_to(msg, 202, "Accepted", Some(&c.b.local_tag));
        ok.add_header(
            "Contact",
            contact(engine, c.b.transport, c.b.dest.is_ipv6(), c.b.dest),
        );
        let out = [
            notify(engine, &mut c.b, refer_cseq, "SIP/2.0 200 OK", true),
            bye(engine, &mut c.b),
        ];
        c.parked = Some(slot);
        c.b_ack = None;
        // The waiting party (leg a now) hears music while it waits.
        let music = c.relay.as_ref().zip(tune).map(|(r, tune)| {
            crate::features::media_service::moh::play_while_kept(
                engine,
                &c.a.call_id,
                r,
                c.relay_side(true),
                tune,
            )
        });
        (
            c.a.call_id.clone(),
            c.b.call_id.clone(),
            c.a.remote_uri.clone(),
            ok,
            out,
            music,
        )
    };
    engine.reply(key, ok);
    send_all(engine, out);
    engine.transfers().mark_gone(&gone_id);
    engine.b2b_calls().lock().remove(&gone_id);
    // The call so far has its CDR; the wait gets its own.
    engine.end_call(&waiting_id, 200);
    engine.end_call(&gone_id, 200);
    let cfg = engine.config();
    let domain = cfg.domains.first().cloned().unwrap_or_default();
    track_call(
        engine,
        &waiting_id,
        &format!("<{waiting}>"),
        &format!("sip:{slot}@{domain}"),
    );
    if let Some(c) = engine.calls().get_mut(&waiting_id) {
        c.state = "established";
        c.answered = Some(Instant::now());
    }
    let now = Instant::now();
    lots.insert(
        slot,
        Parked {
            call: call.clone(),
            by: Some(ext.to_owned()),
            since: now,
            last_try: now,
            waiting,
            _music: music,
        },
    );
    tracing::info!(slot, extension = %ext, call_id = %waiting_id, "call parked");
    Ok(())
}

/// A new call whose destination is the parking lot (INVITE `msg` of server
/// transaction `key`): answered on a relay, kept on the first free slot.
pub fn arrive(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
) {
    let refuse = |code: u16, reason: &str| {
        engine.answer_with(key, msg, (code, reason), vec![]);
    };
    let cfg = engine.config();
    // Config refuses a lot destination without both; a reload may race.
    let (Some(lot), Mode::B2bua) = (cfg.parking, cfg.mode) else {
        return refuse(480, "Temporarily Unavailable: No Parking Lot");
    };
    let offer = match std::str::from_utf8(&msg.body)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .map(|b| sdp::parse(b, &cfg.media_codecs))
    {
        Some(Ok(o)) => o,
        Some(Err(e)) => return refuse(488, e.reason()),
        // Our offer would go in the 200 and the phone's answer in the ACK,
        // which the retrieval's re-INVITE does not wait for: not supported.
        None => return refuse(488, "Not Acceptable Here: Parking Needs An Offer"),
    };
    let (Some(relay), Some(ip)) = (
        crate::features::nat::open_relay(&cfg, source.is_ipv6()),
        crate::features::nat::relay_address_for(&cfg, source),
    ) else {
        return refuse(503, "Service Unavailable: No Media Port");
    };
    // The waiting party is leg a on the relay's side A.
    relay.set_target(true, offer.media, source.ip());
    let relay = Arc::new(relay);
    let a = Leg::answering(msg, engine.new_tag(), source, transport);
    let mut ok = response_to(msg, 200, "OK", Some(&a.local_tag));
    ok.add_header(
        "Contact",
        contact(engine, transport, source.is_ipv6(), source),
    );
    ok.add_header("Content-Type", "application/sdp".into());
    ok.body = sdp::answer(
        &offer,
        ip,
        relay.a_port,
        u64::from(rand::random::<u32>()),
        1,
    )
    .into_bytes();
    // Leg b is filled in by the retrieval; until then nothing is sent on it.
    let b = Leg {
        call_id: format!("{}@parked", engine.new_tag()),
        local_tag: engine.new_tag(),
        remote_tag: None,
        local_uri: a.local_uri.clone(),
        remote_uri: a.local_uri.clone(),
        remote_target: a.local_uri.clone(),
        dest: source,
        transport,
        cseq: 1,
    };
    let (call_id, waiting) = (a.call_id.clone(), a.remote_uri.clone());
    let music = crate::features::media_service::moh::music(engine).map(|tune| {
        crate::features::media_service::moh::play_while_kept(engine, &call_id, &relay, true, tune)
    });
    let mut lots = engine.parking().parked.lock();
    let Some(slot) =
        (lot.first..lot.first.saturating_add(lot.slots)).find(|s| !lots.contains_key(s))
    else {
        return refuse(486, "Busy Here: Parking Lot Full");
    };
    let now = Instant::now();
    let call = Arc::new(Mutex::new(B2bCall {
        a,
        b,
        established: Some(now),
        last_activity: now,
        session_expires: None,
        b_ack: None,
        relay: Some(relay),
        relay_swapped: false,
        media_crypto: None,
        a_ext: None,
        transfer: None,
        parked: Some(slot),
        offer: None,
    }));
    engine
        .b2b_calls()
        .lock()
        .insert(call_id.clone(), call.clone());
    let domain = cfg.domains.first().cloned().unwrap_or_default();
    track_call(
        engine,
        &call_id,
        &format!("<{waiting}>"),
        &format!("sip:{slot}@{domain}"),
    );
    if let Some(c) = engine.calls().get_mut(&call_id) {
        c.state = "established";
        c.answered = Some(now);
    }
    lots.insert(
        slot,
        Parked {
            call,
            by: None,
            since: now,
            last_try: now,
            waiting,
            _music: music,
        },
    );
    drop(lots);
    engine.reply(key, ok);
    tracing::info!(slot, %call_id, "call sent to the parking lot");
}

/// An in-dialog request of a parked call (only its waiting leg is left).
pub(super) fn intercept(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    call: &Arc<Mutex<B2bCall>>,
) -> bool {
    let reply = |code, reason| {
        engine.reply(key, response_to(msg, code, reason, None));
        true
    };
    match msg.method() {
        "BYE" => {
            let (slot, id) = {
                let mut c = call.lock();
                (c.parked.take(), c.a.call_id.clone())
            };
            reply(200, "OK");
            engine.b2b_calls().lock().remove(&id);
            if let Some(slot) = slot {
                engine.parking().parked.lock().remove(&slot);
            }
            engine.parking().retrievals.lock().remove(&id);
            engine.end_call(&id, 200);
            tracing::info!(call_id = %id, "parked party hung up");
            true
        }
        "ACK" => true,
        // A session refresh without SDP (RFC 4028) or a keepalive: the
        // waiting party must not lose its call for it.
        "UPDATE" | "INFO" | "OPTIONS" if msg.body.is_empty() || msg.method() == "INFO" => {
            call.lock().last_activity = Instant::now();
            reply(200, "OK")
        }
        // Nothing to negotiate media with until someone takes the call.
        _ => reply(491, "Request Pending: Call Parked"),
    }
}

/// An INVITE to a parking slot: retrieves the call parked there. True when
/// `msg` was answered (or is being) here.
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
    let (Some(lot), Mode::B2bua) = (cfg.parking, cfg.mode) else {
        return false;
    };
    let Some(slot) = engine.user_dialled_here(msg).and_then(|u| lot.slot(&u)) else {
        return false;
    };
    let reply = |code: u16, reason: &str| {
        engine.answer_with(key, msg, (code, reason), vec![]);
        true
    };
    let Some(retriever) = our_extension(
        engine,
        &cfg,
        key,
        msg,
        source,
        "Forbidden: Parked Calls Are For Our Extensions",
    ) else {
        return true;
    };
    let Some(call) = engine
        .parking()
        .parked
        .lock()
        .get(&slot)
        .map(|p| p.call.clone())
    else {
        return reply(404, "Not Found: Nothing Parked There");
    };
    let leg = Leg::answering(msg, engine.new_tag(), source, transport);
    let mut retrievals = engine.parking().retrievals.lock();
    let mut c = call.lock();
    if c.transfer.is_some() || retrievals.contains_key(&c.a.call_id) {
        drop(c);
        drop(retrievals);
        return reply(486, "Busy Here: Call Being Taken");
    }
    c.a.cseq += 1;
    let cseq = c.a.cseq;
    let mut re = new_request("INVITE", &c.a, cseq);
    re.add_header(
        "Contact",
        contact(engine, c.a.transport, c.a.dest.is_ipv6(), c.a.dest),
    );
    copy_body(msg, &mut re);
    // The retriever takes the parker's side of the relay; a call without
    // one gets one when the two are on two sides of the NAT boundary.
    if c.relay.is_none() && crate::features::nat::crosses(&cfg, c.a.dest.ip(), source.ip()) {
        c.relay = crate::features::nat::open_relay(&cfg, source.is_ipv6()).map(Arc::new);
        c.relay_swapped = false;
    }
    if let Some(relay) = c.relay.clone() {
        let side = c.relay_side(false);
        crate::features::nat::anchor(engine, &relay, side, source.ip(), c.a.dest, &mut re);
    }
    retrievals.insert(
        c.a.call_id.clone(),
        Retrieval {
            slot,
            key: key.to_owned(),
            req: msg.clone(),
            leg,
            cseq,
        },
    );
    drop(retrievals);
    let out = prepared(engine, re, &c.a);
    drop(c);
    tracing::info!(slot, %retriever, "retrieving a parked call");
    send_all(engine, [out]);
    true
}

/// The waiting party's answer to the retrieval's re-INVITE.
pub fn on_response(engine: &Arc<Engine>, req: &Message, resp: &Message, first: bool) {
    let code = resp.status().unwrap_or(0);
    if req.method() != "INVITE" || code < 200 || !first {
        return;
    }
    let cseq = req.cseq().map(|c| c.0).unwrap_or(0);
    let r = {
        let mut retrievals = engine.parking().retrievals.lock();
        match retrievals.get(req.call_id()) {
            Some(r) if r.cseq == cseq => retrievals.remove(req.call_id()),
            _ => None,
        }
    };
    let Some(r) = r else { return };
    let Some(call) = engine
        .parking()
        .parked
        .lock()
        .get(&r.slot)
        .map(|p| p.call.clone())
    else {
        return;
    };
    if code >= 300 {
        let reply = response_to(
            &r.req,
            480,
            "Temporarily Unavailable: Parked Party Did Not Answer",
            Some(&r.leg.local_tag),
        );
        engine.reply(&r.key, reply);
        return;
    }
    let (ack, ok, waiting_id) = {
        let mut c = call.lock();
        let ack = (c.a.transport, c.a.dest, ack_bytes(engine, &c.a, cseq, None));
        let mut ok = response_to(&r.req, 200, "OK", Some(&r.leg.local_tag));
        ok.add_header(
            "Contact",
            contact(engine, r.leg.transport, r.leg.dest.is_ipv6(), r.leg.dest),
        );
        copy_body(resp, &mut ok);
        if let Some(relay) = c.relay.clone() {
            let side = c.relay_side(true);
            let waiting = c.a.dest;
            crate::features::nat::anchor(engine, &relay, side, waiting.ip(), r.leg.dest, &mut ok);
        }
        c.b = r.leg.clone();
        c.parked = None;
        c.b_ack = None;
        c.last_activity = Instant::now();
        (ack, ok, c.a.call_id.clone())
    };
    engine.parking().parked.lock().remove(&r.slot);
    engine
        .b2b_calls()
        .lock()
        .insert(r.leg.call_id.clone(), call.clone());
    if let Some(rec) = engine.calls().get_mut(&waiting_id) {
        rec.callee = r.leg.remote_uri.clone();
    }
    engine.send(ack.0, ack.1, ack.2);
    engine.reply(&r.key, ok);
    tracing::info!(slot = r.slot, call_id = %waiting_id, "parked call retrieved");
}

/// Drops slots whose call ended, rings parkers back after the timeout.
pub fn tick(engine: &Arc<Engine>) {
    let Some(lot) = engine.config().parking else {
        return;
    };
    let due: Vec<(u32, Arc<Mutex<B2bCall>>, Option<String>)> = {
        let mut parked = engine.parking().parked.lock();
        parked.retain(|_, p| p.call.lock().parked.is_some());
        let retrievals = engine.parking().retrievals.lock();
        parked
            .iter_mut()
            .filter(|(_, p)| p.last_try.elapsed() >= lot.timeout)
            .filter(|(_, p)| {
                let c = p.call.lock();
                c.transfer.is_none() && !retrievals.contains_key(&c.a.call_id)
            })
            .map(|(slot, p)| {
                p.last_try = Instant::now();
                (*slot, p.call.clone(), p.by.clone())
            })
            .collect()
    };
    for (slot, call, by) in due {
        let Some(by) = by else {
            // Sent to the lot, not parked by anyone: nobody to ring back.
            let id = call.lock().a.call_id.clone();
            engine.parking().parked.lock().remove(&slot);
            tracing::info!(slot, call_id = %id, "parking timeout: nobody took the call, ending it");
            super::hang_up(engine, &id, "parking-timeout");
            continue;
        };
        tracing::info!(extension = %by, "parking timeout: ringing the parker back");
        if let Err((code, reason)) = ring_back(engine, &call, &by) {
            tracing::info!(extension = %by, code, reason, "ring-back not placed");
        }
    }
}

/// RFC 7951 JSON of /pbx/parking-state.
pub fn state_json(engine: &Engine) -> Value {
    let parked = engine.parking().parked.lock();
    // A call rung back and answered leaves its slot at the next tick.
    let mut slots: Vec<Value> = parked
        .iter()
        .filter(|(_, p)| p.call.lock().parked.is_some())
        .map(|(n, p)| {
            let mut slot = json!({
                "number": n,
                "parked": p.waiting,
                "waiting": p.since.elapsed().as_secs(),
                "ringing-back": p.call.lock().transfer.is_some(),
            });
            if let Some(by) = &p.by {
                slot["parked-by"] = json!(by);
            }
            slot
        })
        .collect();
    slots.sort_by_key(|s| s["number"].as_u64());
    json!({ "slot": slots })
}
