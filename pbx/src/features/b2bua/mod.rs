//! B2BUA mode: each call is two dialogs (A: caller↔us, B: us↔callee) with
//! their own Call-ID, tags and CSeq. Requests and responses are rebuilt, not
//! relayed, so no Via, Contact or Record-Route of one side reaches the other.
//! The B2BUA ACKs every 2xx on the far leg itself and absorbs the near ACK.
//! A call with no activity for the session interval (when the caller asked
//! for a session timer, RFC 4028) or older than the configured maximum is
//! ended with BYE on both legs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub mod dialogs;
pub mod media_crypto;
pub mod parking;
pub mod transfer;

pub use self::dialogs::{B2bCall, Calls, Leg};
use self::media_crypto::MediaCrypto;
use super::state::Engine;
use crate::call::branches::{send_branches, track_call};
use crate::call::client::send_request_tx;
use crate::call::{BranchInfo, Outgoing, Target};
use crate::config::Transport;
use crate::features::media_service::recording::Wanted;
use crate::sip::{addr_uri, param, response_to, Message, StartLine};

/// Our Contact for `peer` (NAT: the address that peer can reach).
fn contact(engine: &Engine, transport: Transport, v6: bool, peer: SocketAddr) -> String {
    let s = engine.socket_for(transport, v6);
    let ip = super::nat::address_for(&engine.config(), peer).unwrap_or(s.advertised.ip());
    let tp = transport.uri_param();
    format!(
        "<sip:b2bua@{}:{}{tp}>",
        crate::sip::format_host(&ip),
        s.advertised.port()
    )
}

/// Our Contact for a dialog with `peer` (a feature answering for the B2BUA).
pub fn contact_for(engine: &Engine, transport: Transport, peer: SocketAddr) -> String {
    contact(engine, transport, peer.is_ipv6(), peer)
}

/// A request of ours on `leg` (no Via yet: the sender adds its own).
pub(crate) fn new_request(method: &str, leg: &Leg, cseq: u32) -> Message {
    let mut m = Message {
        start: StartLine::Request {
            method: method.to_owned(),
            uri: leg.remote_target.clone(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    m.add_header("Max-Forwards", "70".into());
    m.add_header("From", format!("<{}>;tag={}", leg.local_uri, leg.local_tag));
    let to_tag = leg
        .remote_tag
        .as_deref()
        .map(|t| format!(";tag={t}"))
        .unwrap_or_default();
    m.add_header("To", format!("<{}>{to_tag}", leg.remote_uri));
    m.add_header("Call-ID", leg.call_id.clone());
    m.add_header("CSeq", format!("{cseq} {method}"));
    m
}

fn copy_body(from: &Message, to: &mut Message) {
    if let Some(ct) = from.header("Content-Type") {
        to.add_header("Content-Type", ct.to_owned());
    }
    to.body = from.body.clone();
}

/// True when `msg` is an in-dialog request of a B2BUA call.
pub fn owns(engine: &Engine, msg: &Message) -> bool {
    param(msg.header("To").unwrap_or(""), "tag").is_some()
        && (engine.b2b_calls().lock().contains_key(msg.call_id())
            || engine.transfers().is_gone(msg.call_id()))
}

/// Starts the B leg of a new call for the INVITE of server transaction `key`.
pub fn start(
    engine: &Arc<Engine>,
    key: &str,
    a_req: Message,
    targets: Vec<Target>,
    hash: u32,
    (dialled, origin): (&str, &crate::features::outbound::Origin),
    route_record: crate::config::media::RecordCalls,
) {
    // Only an extension that proved itself may later transfer as the caller.
    let caller_ext = match origin {
        crate::features::outbound::Origin::Extension(e) => Some(e.clone()),
        _ => None,
    };
    let cfg = engine.config();
    let Some((source, transport)) = engine
        .tables()
        .server
        .get(key)
        .map(|t| (t.source, t.transport))
    else {
        return;
    };
    let from = a_req.header("From").unwrap_or("");
    let caller = crate::sip::Uri::parse(addr_uri(from))
        .and_then(|u| u.user)
        .unwrap_or_else(|| "anonymous".into());
    let Some(first) = targets.first() else { return };
    let our = engine.socket_for(first.transport, first.dest.is_ipv6());
    let domain = cfg
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| crate::sip::format_host(&our.advertised.ip()));
    let a = Leg::answering(&a_req, engine.new_tag(), source, transport);
    // Towards a trunk: the caller ID of the extension (`caller_id`).
    let identity = crate::features::caller_id::outgoing(&cfg, &a_req, origin, &targets);
    let b = Leg {
        call_id: format!("{}{}@b2bua", engine.new_tag(), engine.new_tag()),
        local_tag: engine.new_tag(),
        remote_tag: None,
        local_uri: match &identity {
            Some(id) => id.uri(&domain),
            None => format!("sip:{caller}@{domain}"),
        },
        remote_uri: dialled.to_owned(),
        remote_target: dialled.to_owned(),
        dest: first.dest,
        transport: first.transport,
        cseq: 1,
    };
    let session_expires = a_req
        .header("Session-Expires")
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.max(cfg.session_expires.into())));
    let mut base = new_request("INVITE", &b, 1);
    match &identity {
        Some(id) => id.apply(&mut base, &domain, &b.local_tag),
        None => crate::features::caller_id::copy_display_name(from, &mut base),
    }
    base.add_header(
        "Contact",
        contact(engine, first.transport, first.dest.is_ipv6(), first.dest),
    );
    copy_body(&a_req, &mut base);
    let b_over_tls = targets.iter().all(|t| t.transport == Transport::Tls);
    let mut media_crypto = MediaCrypto::plan(&cfg, &base.body, first.trunk.as_deref(), b_over_tls);
    // A recorded call passes the relay, whose tap the recorder reads.
    let record = crate::features::media_service::recording::wanted(
        &cfg,
        caller_ext.as_deref(),
        dialled,
        route_record,
    );
    let relay = super::nat::anchor_offer(
        engine,
        source,
        first.dest,
        &mut base,
        media_crypto.is_some() || record != Wanted::No || cfg.music_on_hold.is_some(),
    );
    if let (true, Some(r)) = (record != Wanted::No, &relay) {
        crate::features::media_service::recording::start(
            engine,
            r,
            record,
            a_req.call_id(),
            addr_uri(from),
            dialled,
        );
    }
    match (&relay, &mut media_crypto) {
        (Some(r), Some(mc)) => mc.apply(r, true, &mut base),
        (None, Some(_)) => {
            // No relay port: the legs must agree by themselves.
            tracing::warn!("no RTP relay port for SRTP on one leg only; SDP passed unchanged");
            media_crypto = None;
        }
        _ => {}
    }
    let call = Arc::new(Mutex::new(B2bCall {
        a,
        b,
        established: None,
        last_activity: Instant::now(),
        session_expires,
        b_ack: None,
        relay,
        relay_swapped: false,
        media_crypto,
        a_ext: caller_ext,
        transfer: None,
        parked: None,
        offer: a_req
            .header("Content-Type")
            .filter(|_| !a_req.body.is_empty())
            .map(|ct| (ct.to_owned(), a_req.body.clone())),
    }));
    let b_call_id = call.lock().b.call_id.clone();
    {
        let mut map = engine.b2b_calls().lock();
        map.insert(a_req.call_id().to_owned(), call.clone());
        map.insert(b_call_id, call);
    }
    track_call(engine, a_req.call_id(), from, dialled);
    send_branches(engine, key, &base, targets, hash);
}

/// Rebuilds an in-dialog request on the other leg.
pub fn in_dialog(engine: &Arc<Engine>, key: &str, msg: Message, hash: u32) {
    if transfer::intercepts(engine, key, &msg) {
        return;
    }
    let Some(call) = engine.b2b_calls().lock().get(msg.call_id()).cloned() else {
        return;
    };
    let (req, dest, transport) = {
        let mut c = call.lock();
        c.last_activity = Instant::now();
        let from_a = msg.call_id() == c.a.call_id;
        let unanswered = if from_a {
            c.b.remote_tag.is_none()
        } else {
            c.a.remote_tag.is_none()
        };
        if unanswered {
            drop(c);
            let r = response_to(&msg, 481, "Call/Transaction Does Not Exist", None);
            engine.reply(key, r);
            return;
        }
        let far = if from_a { &mut c.b } else { &mut c.a };
        far.cseq += 1;
        let mut req = new_request(msg.method(), far, far.cseq);
        if matches!(msg.method(), "INVITE" | "UPDATE") {
            req.add_header(
                "Contact",
                contact(engine, far.transport, far.dest.is_ipv6(), far.dest),
            );
        }
        copy_body(&msg, &mut req);
        let (dest, transport) = (far.dest, far.transport);
        let sender = if from_a { c.a.dest } else { c.b.dest }.ip();
        if let Some(r) = c.relay.clone() {
            let side = c.relay_side(from_a);
            super::nat::anchor(engine, &r, side, sender, dest, &mut req);
            if let Some(mc) = &mut c.media_crypto {
                mc.apply(&r, side, &mut req);
            }
            if c.media_crypto.is_none() && !msg.body.is_empty() {
                crate::features::media_service::moh::offered(
                    engine,
                    &c.a.call_id,
                    &r,
                    side,
                    &msg.body,
                    &mut req,
                );
            }
        }
        (req, dest, transport)
    };
    let target = Target {
        ruri: req.uri().to_owned(),
        dest,
        transport,
        routes: vec![],
        trunk: None,
        contact: false,
    };
    send_branches(engine, key, &req, vec![target], hash);
}

/// The caller's ACK for our 2xx: we already ACKed the far leg; just note activity.
pub fn on_ack(engine: &Engine, msg: &Message) {
    if let Some(call) = engine.b2b_calls().lock().get(msg.call_id()) {
        call.lock().last_activity = Instant::now();
    }
}

/// The response for the near side, built from its own request; plus the ACK
/// to send on the far leg for a 2xx to INVITE.
pub fn translate(
    engine: &Engine,
    near_req: &Message,
    resp: &Message,
    branch: BranchInfo,
) -> Option<(Message, Option<Outgoing>)> {
    let call = engine.b2b_calls().lock().get(near_req.call_id()).cloned()?;
    let code = resp.status()?;
    let reason = match &resp.start {
        StartLine::Response { reason, .. } => reason.clone(),
        StartLine::Request { .. } => return None,
    };
    // A challenge of the far end is ours to answer (trunk_auth), never the
    // near side's: one we could not answer is a failure of the call.
    let (code, reason) = match code {
        401 | 407 => (403, "Forbidden: Far End Authentication Failed".to_owned()),
        _ => (code, reason),
    };
    let mut c = call.lock();
    c.last_activity = Instant::now();
    let from_a = near_req.call_id() == c.a.call_id;
    let near_tag = if from_a {
        c.a.local_tag.clone()
    } else {
        c.b.local_tag.clone()
    };
    let (near_dest, near_transport) = if from_a {
        (c.a.dest, c.a.transport)
    } else {
        (c.b.dest, c.b.transport)
    };
    let mut up = response_to(near_req, code, &reason, Some(&near_tag));
    let invite = near_req.method() == "INVITE";
    if invite && (101..300).contains(&code) {
        // The near side's own transport: a TLS phone must come back over
        // TLS (its ACK, its BYE), not to the far leg's UDP socket.
        up.add_header(
            "Contact",
            contact(engine, near_transport, near_dest.is_ipv6(), near_dest),
        );
        if let (Some(se), true) = (c.session_expires, code < 300) {
            up.add_header("Session-Expires", format!("{};refresher=uac", se.as_secs()));
        }
    }
    copy_body(resp, &mut up);
    if let Some(r) = c.relay.clone() {
        let side = c.relay_side(!from_a);
        super::nat::anchor(engine, &r, side, branch.dest.ip(), near_dest, &mut up);
        if let Some(mc) = &mut c.media_crypto {
            mc.apply(&r, side, &mut up);
        }
        crate::features::media_service::moh::answered(engine, &c.a.call_id, side, &mut up);
    }
    let mut ack = None;
    if invite && (200..300).contains(&code) {
        let far = if from_a { &mut c.b } else { &mut c.a };
        if from_a && far.remote_tag.is_none() {
            far.remote_tag = param(resp.header("To").unwrap_or(""), "tag").map(str::to_owned);
            if let Some(ct) = resp.header("Contact") {
                far.remote_target = addr_uri(ct).to_owned();
            }
            far.dest = branch.dest;
            far.transport = branch.transport;
        }
        let cseq = branch.cseq;
        let mut a = new_request("ACK", far, cseq);
        let bytes_dest = (far.transport, far.dest);
        let via_branch = engine.new_branch(0);
        a.push_header_front(
            "Via",
            engine.via_for(bytes_dest.0, bytes_dest.1.is_ipv6(), &via_branch),
        );
        let bytes = a.to_bytes();
        if from_a && c.established.is_none() {
            c.established = Some(Instant::now());
            c.b_ack = Some(bytes.clone());
            c.offer = None;
        }
        ack = Some((bytes_dest.0, bytes_dest.1, bytes));
    }
    let ended = (near_req.method() == "BYE" && code >= 200)
        || (invite && code >= 300 && c.established.is_none() && from_a);
    let ids = (c.a.call_id.clone(), c.b.call_id.clone());
    drop(c);
    if ended {
        forget(engine, &ids.0, &ids.1, if invite { code } else { 200 });
    }
    Some((up, ack))
}

/// Our ACK again for a retransmitted 2xx of the B leg.
pub fn ack_again(engine: &Engine, call_id: &str) -> Option<Outgoing> {
    let call = engine.b2b_calls().lock().get(call_id).cloned()?;
    let c = call.lock();
    if c.b.call_id != call_id {
        return None;
    }
    c.b_ack.clone().map(|b| (c.b.transport, c.b.dest, b))
}

/// `ack_again` for a 2xx of the dialog the call is in (same To tag) only.
pub fn ack_again_of(engine: &Engine, call_id: &str, to_tag: Option<&str>) -> Option<Outgoing> {
    let call = engine.b2b_calls().lock().get(call_id).cloned()?;
    let c = call.lock();
    if c.b.remote_tag.as_deref() != to_tag {
        return None;
    }
    c.b_ack.clone().map(|b| (c.b.transport, c.b.dest, b))
}

/// A 2xx on the far leg that no call uses (its branch was given up or timed
/// out): as a UAC that does not want the session, ACK it and send BYE
/// (RFC 3261 §13.2.2.4), so the destination does not hold a call for nobody.
pub fn refuse_stray_answer(
    engine: &Arc<Engine>,
    req: &Message,
    resp: &Message,
    dest: SocketAddr,
    transport: Transport,
) {
    let target = resp
        .header("Contact")
        .map_or(req.uri(), addr_uri)
        .to_owned();
    let cseq = req.cseq().map(|c| c.0).unwrap_or(1);
    let build = |method: &str, n: u32| {
        let mut m = Message {
            start: StartLine::Request {
                method: method.to_owned(),
                uri: target.clone(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        let branch = engine.new_branch(0);
        m.add_header("Via", engine.via_for(transport, dest.is_ipv6(), &branch));
        // The route set of a UAC: Record-Route in reverse (§12.1.2).
        for r in resp.header_values("Record-Route").iter().rev() {
            m.add_header("Route", (*r).to_owned());
        }
        m.add_header("Max-Forwards", "70".into());
        m.add_header("From", req.header("From").unwrap_or("").to_owned());
        m.add_header("To", resp.header("To").unwrap_or("").to_owned());
        m.add_header("Call-ID", req.call_id().to_owned());
        m.add_header("CSeq", format!("{n} {method}"));
        m
    };
    tracing::info!(call_id = %req.call_id(), to = %resp.header("To").unwrap_or(""), "2xx of a given-up branch: ACK and BYE");
    engine.send(transport, dest, build("ACK", cseq).to_bytes());
    send_request_tx(engine, build("BYE", cseq + 1), dest, transport);
}

/// Drops a call; `code` is its final answer (200 once answered) for the CDR.
fn forget(engine: &Engine, a_id: &str, b_id: &str, code: u16) {
    let mut map = engine.b2b_calls().lock();
    map.remove(a_id);
    map.remove(b_id);
    drop(map);
    engine.end_call(a_id, code);
    // After a transfer the call's record is the new leg's.
    engine.end_call(b_id, code);
}

/// Ends calls past the maximum duration or whose session timer ran out.
pub fn expire_calls(engine: &Arc<Engine>) {
    let cfg = engine.config();
    let max =
        (cfg.max_call_duration > 0).then(|| Duration::from_secs(cfg.max_call_duration.into()));
    let calls: Vec<Arc<Mutex<B2bCall>>> = {
        let map = engine.b2b_calls().lock();
        map.iter()
            .filter(|(id, c)| c.lock().a.call_id == **id)
            .map(|(_, c)| c.clone())
            .collect()
    };
    for call in calls {
        let (too_long, dead) = {
            let c = call.lock();
            let Some(est) = c.established else { continue };
            let too_long = max.is_some_and(|m| est.elapsed() >= m);
            let dead = c
                .session_expires
                .is_some_and(|s| c.last_activity.elapsed() >= s);
            (too_long, dead)
        };
        if too_long || dead {
            end_call(
                engine,
                &call,
                if too_long {
                    "max-duration"
                } else {
                    "session-timer"
                },
            );
        }
    }
}

/// Ends the established call listed under the caller's Call-ID `a_call_id`
/// (BYE on both legs); `why` goes to the log.
pub fn hang_up(engine: &Arc<Engine>, a_call_id: &str, why: &str) {
    let call = engine.b2b_calls().lock().get(a_call_id).cloned();
    if let Some(call) = call {
        end_call(engine, &call, why);
    }
}

fn end_call(engine: &Arc<Engine>, call: &Arc<Mutex<B2bCall>>, why: &str) {
    let (byes, ids) = {
        let mut c = call.lock();
        if c.established.is_none() {
            return;
        }
        tracing::info!(call_id = %c.a.call_id, why, "ending call");
        let mut out = Vec::new();
        let c = &mut *c;
        // A parked call's leg b is gone (hung up or never was).
        let legs = match c.parked {
            Some(_) => vec![&mut c.a],
            None => vec![&mut c.a, &mut c.b],
        };
        for leg in legs {
            leg.cseq += 1;
            let mut bye = new_request("BYE", leg, leg.cseq);
            let branch = engine.new_branch(0);
            bye.push_header_front(
                "Via",
                engine.via_for(leg.transport, leg.dest.is_ipv6(), &branch),
            );
            out.push((bye, leg.dest, leg.transport));
        }
        (out, (c.a.call_id.clone(), c.b.call_id.clone()))
    };
    forget(engine, &ids.0, &ids.1, 200);
    for (bye, dest, transport) in byes {
        send_request_tx(engine, bye, dest, transport);
    }
}
