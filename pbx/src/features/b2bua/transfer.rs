//! Call transfer in B2BUA mode: the B2BUA executes a party's REFER itself
//! (RFC 3515), blind (Refer-To a number) or attended (Refer-To with
//! Replaces naming the transferor's other call, RFC 3891).
//!
//! The party that stays (the transferee) is bridged to the new party by
//! third-party call control (RFC 3725): the new party is invited without
//! SDP (blind: a new INVITE; attended: a re-INVITE of the other call's far
//! leg), its 2xx carries an offer, which goes to the transferee in a
//! re-INVITE; the transferee's answer goes in our ACK to the new party. The
//! transferor hears the progress in NOTIFYs (message/sipfrag) and is then
//! hung up on. No SDP of ours is stored, and nothing is renegotiated twice.
//!
//! Who may transfer: the REFER must come from the leg's own peer address,
//! that peer must be one of our extensions, and the Refer-To target is
//! placed with that extension's outbound rights and limits (a transfer to a
//! number outside is a call the extension makes: no toll fraud through
//! transfer). A Replaces must name a dialog of the same phone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{contact, new_request, B2bCall, Leg};
use crate::call::branches::track_call;
use crate::call::client::send_request_tx;
use crate::call::BranchInfo;
use crate::features::decision::Decision;
use crate::features::forwarding::Forwarding;
use crate::features::nat;
use crate::features::outbound::Origin;
use crate::features::rtp_relay::Relay;
use crate::features::state::Engine;
use crate::sip::{addr_uri, param, response_to, Message, Uri};

/// Legs hung up after a transfer are remembered this long, so their late
/// requests (the transferor's own BYE) are answered, not taken for strangers.
const GONE_FOR: Duration = Duration::from_secs(32);
/// A transfer that has not completed by then is dropped.
const PENDING_FOR: Duration = Duration::from_secs(240);

/// Transfers in progress and legs recently transferred away.
#[derive(Default)]
pub struct Transfers {
    /// By the Call-ID of the leg whose INVITE answer moves the transfer on.
    pending: Mutex<HashMap<String, Arc<Mutex<Pending>>>>,
    gone: Mutex<HashMap<String, Instant>>,
}

impl Transfers {
    pub fn is_gone(&self, call_id: &str) -> bool {
        self.gone.lock().contains_key(call_id)
    }

    /// A leg hung up on by a feature: its late requests are answered.
    pub(super) fn mark_gone(&self, call_id: &str) {
        self.gone.lock().insert(call_id.to_owned(), Instant::now());
    }
}

enum Stage {
    /// Our offerless INVITE to the new party is out.
    Offer { cseq: u32 },
    /// The new party's offer went to the transferee in a re-INVITE.
    Answer { far_cseq: u32, reinvite_cseq: u32 },
}

struct Pending {
    call: Arc<Mutex<B2bCall>>,
    /// Call-ID of the transferee's leg (stays).
    stay: String,
    /// Call-ID of the transferor's leg (NOTIFY, then BYE).
    transferor: String,
    refer_cseq: u32,
    /// The new party's leg.
    far: Leg,
    /// Attended: the transferor's other call, whose far leg is `far`.
    other: Option<Arc<Mutex<B2bCall>>>,
    /// Blind: the call list entry (CDR) of the new leg.
    blind_cdr: bool,
    stage: Stage,
    started: Instant,
    /// The relay the bridged call's media takes, once the new party offered.
    media: Option<BridgeMedia>,
}

/// A relay for the transferee and the new party: the call's own (the new
/// party takes the transferor's side), or one opened when the two are on
/// two sides of the NAT boundary and the call had none.
struct BridgeMedia {
    relay: Arc<Relay>,
    /// The side (true: A) the transferee faces.
    stay_side: bool,
}

fn bridge_media(
    engine: &Engine,
    c: &B2bCall,
    stay: &str,
    new_party: SocketAddr,
) -> Option<BridgeMedia> {
    let stay_is_a = c.a.call_id == stay;
    if let Some(relay) = &c.relay {
        return Some(BridgeMedia {
            relay: relay.clone(),
            stay_side: c.relay_side(stay_is_a),
        });
    }
    let cfg = engine.config();
    let stay_dest = if stay_is_a { c.a.dest } else { c.b.dest };
    if !nat::crosses(&cfg, stay_dest.ip(), new_party.ip()) {
        return None;
    }
    let relay = nat::open_relay(&cfg, new_party.is_ipv6())?;
    Some(BridgeMedia {
        relay: Arc::new(relay),
        stay_side: true,
    })
}

/// What a Refer-To names.
#[derive(Debug, PartialEq, Eq)]
pub struct ReferTo {
    pub uri: String,
    pub replaces: Option<Replaces>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
}

/// Parses a Refer-To value: a sip/sips URI, possibly with a Replaces header
/// (URI-escaped). Err for anything else.
pub fn parse_refer_to(value: &str) -> Result<ReferTo, &'static str> {
    let inner = addr_uri(value);
    let (base, headers) = inner.split_once('?').unwrap_or((inner, ""));
    let uri = Uri::parse(base).ok_or("Bad Request: Malformed Refer-To")?;
    if !matches!(uri.scheme.as_str(), "sip" | "sips") || uri.host.is_empty() {
        return Err("Bad Request: Refer-To Must Be A SIP URI");
    }
    let mut replaces = None;
    for h in headers.split('&').filter(|h| !h.is_empty()) {
        let (name, v) = h.split_once('=').ok_or("Bad Request: Malformed Refer-To")?;
        if !name.eq_ignore_ascii_case("Replaces") {
            continue;
        }
        let v = unescape(v).ok_or("Bad Request: Malformed Replaces")?;
        replaces = Some(parse_replaces(&v).ok_or("Bad Request: Malformed Replaces")?);
    }
    Ok(ReferTo {
        uri: base.to_owned(),
        replaces,
    })
}

/// A Replaces header value (RFC 3891): Call-ID, to-tag and from-tag.
pub(crate) fn parse_replaces(v: &str) -> Option<Replaces> {
    let mut parts = v.split(';');
    let call_id = parts.next()?.trim();
    let (mut to_tag, mut from_tag) = (None, None);
    for p in parts {
        match p.trim().split_once('=') {
            Some((n, t)) if n.eq_ignore_ascii_case("to-tag") => to_tag = Some(t.trim()),
            Some((n, t)) if n.eq_ignore_ascii_case("from-tag") => from_tag = Some(t.trim()),
            _ => {}
        }
    }
    let ok = |s: &str| !s.is_empty() && s.len() <= 256 && !s.contains(char::is_whitespace);
    let (to_tag, from_tag) = (to_tag?, from_tag?);
    (ok(call_id) && ok(to_tag) && ok(from_tag)).then(|| Replaces {
        call_id: call_id.to_owned(),
        to_tag: to_tag.to_owned(),
        from_tag: from_tag.to_owned(),
    })
}

/// %XX unescaping of a URI header value; None for a bad escape or non-UTF-8.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn leg_mut<'a>(c: &'a mut B2bCall, call_id: &str) -> Option<&'a mut Leg> {
    if c.a.call_id == call_id {
        Some(&mut c.a)
    } else if c.b.call_id == call_id {
        Some(&mut c.b)
    } else {
        None
    }
}

/// A request ready to leave: sent only once no call is locked (the
/// transaction table is locked before a call's lock, never after).
pub(super) type Out = (Message, SocketAddr, crate::config::Transport);

/// `req` (built by `new_request` on `leg`) with our Via, to send.
pub(super) fn prepared(engine: &Engine, mut req: Message, leg: &Leg) -> Out {
    let branch = engine.new_branch(0);
    req.push_header_front(
        "Via",
        engine.via_for(leg.transport, leg.dest.is_ipv6(), &branch),
    );
    (req, leg.dest, leg.transport)
}

pub(super) fn send_all(engine: &Arc<Engine>, outs: impl IntoIterator<Item = Out>) {
    for (req, dest, transport) in outs {
        send_request_tx(engine, req, dest, transport);
    }
}

/// An ACK on `leg` for our INVITE `cseq` (outside any transaction).
pub(super) fn ack_bytes(engine: &Engine, leg: &Leg, cseq: u32, body: Option<&Message>) -> Vec<u8> {
    let mut ack = new_request("ACK", leg, cseq);
    if let Some(b) = body.filter(|b| !b.body.is_empty()) {
        super::copy_body(b, &mut ack);
    }
    let branch = engine.new_branch(0);
    ack.push_header_front(
        "Via",
        engine.via_for(leg.transport, leg.dest.is_ipv6(), &branch),
    );
    ack.to_bytes()
}

/// The transferor's progress report (RFC 3515 §2.4.5).
pub(super) fn notify(
    engine: &Engine,
    leg: &mut Leg,
    refer_cseq: u32,
    frag: &str,
    done: bool,
) -> Out {
    leg.cseq += 1;
    let mut n = new_request("NOTIFY", leg, leg.cseq);
    n.add_header(
        "Contact",
        contact(engine, leg.transport, leg.dest.is_ipv6(), leg.dest),
    );
    n.add_header("Event", format!("refer;id={refer_cseq}"));
    let state = match done {
        true => "terminated;reason=noresource".to_owned(),
        false => "active;expires=60".to_owned(),
    };
    n.add_header("Subscription-State", state);
    n.add_header("Content-Type", "message/sipfrag;version=2.0".into());
    n.body = format!("{frag}\r\n").into_bytes();
    prepared(engine, n, leg)
}

pub(super) fn bye(engine: &Engine, leg: &mut Leg) -> Out {
    leg.cseq += 1;
    let req = new_request("BYE", leg, leg.cseq);
    prepared(engine, req, leg)
}

/// Our extension whose phone is registered from `addr`, if any.
fn extension_at(engine: &Engine, addr: SocketAddr) -> Option<String> {
    let cfg = engine.config();
    cfg.extensions
        .values()
        .find(|e| {
            engine
                .location()
                .lookup(&e.number)
                .iter()
                .any(|b| b.source == addr)
        })
        .map(|e| e.number.clone())
}

/// In-dialog requests of a B2BUA call that this module answers itself:
/// REFER, anything on a leg transferred away, and what would disturb a
/// transfer in progress. True when `msg` was answered here.
pub fn intercepts(engine: &Arc<Engine>, key: &str, msg: &Message) -> bool {
    let reply = |code, reason| {
        let tag = param(msg.header("To").unwrap_or(""), "tag").map(str::to_owned);
        engine.reply(key, response_to(msg, code, reason, tag.as_deref()));
        true
    };
    if engine.transfers().is_gone(msg.call_id()) {
        return match msg.method() {
            // The transferor hanging up itself after the final NOTIFY.
            "BYE" | "NOTIFY" => reply(200, "OK"),
            _ => reply(481, "Call/Transaction Does Not Exist: Transferred"),
        };
    }
    let Some(call) = engine.b2b_calls().lock().get(msg.call_id()).cloned() else {
        return false;
    };
    if call.lock().parked.is_some() {
        return super::parking::intercept(engine, key, msg, &call);
    }
    if msg.method() == "REFER" {
        let (code, reason) = match refer(engine, key, msg, &call) {
            Ok(()) => return true,
            Err(e) => e,
        };
        tracing::info!(call_id = %msg.call_id(), code, reason, "REFER refused");
        return reply(code, reason);
    }
    let transferor = {
        let c = call.lock();
        match &c.transfer {
            None => return false,
            Some(t) => t.clone(),
        }
    };
    match msg.method() {
        "BYE" if msg.call_id() == transferor => {
            // The transferor may leave at once (blind transfer): the
            // transferee stays for the new party.
            engine
                .transfers()
                .gone
                .lock()
                .insert(transferor, Instant::now());
            reply(200, "OK")
        }
        "INVITE" | "UPDATE" => reply(491, "Request Pending: Transfer In Progress"),
        _ => false,
    }
}

pub(super) type Refusal = (u16, &'static str);

fn refer(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    call: &Arc<Mutex<B2bCall>>,
) -> Result<(), Refusal> {
    let cfg = engine.config();
    let source = engine
        .tables()
        .server
        .get(key)
        .map(|t| t.source)
        .ok_or((500, "Server Internal Error"))?;
    let refer_values = msg.header_values("Refer-To");
    let [refer_to] = refer_values.as_slice() else {
        return Err((400, "Bad Request: One Refer-To Required"));
    };
    let target = parse_refer_to(refer_to).map_err(|r| (400, r))?;
    let refer_cseq = msg.cseq().map(|c| c.0).unwrap_or(0);
    let (from_a, transferor_dest, local_tag, a_ext) = {
        let c = call.lock();
        if c.established.is_none() || c.b.remote_tag.is_none() {
            return Err((481, "Call/Transaction Does Not Exist: Not Answered Yet"));
        }
        if c.transfer.is_some() {
            return Err((491, "Request Pending: Transfer In Progress"));
        }
        if c.media_crypto.is_some() {
            return Err((
                501,
                "Not Implemented: Transfer Of A Call Whose SRTP Ends Here",
            ));
        }
        let from_a = msg.call_id() == c.a.call_id;
        let leg = if from_a { &c.a } else { &c.b };
        (from_a, leg.dest, leg.local_tag.clone(), c.a_ext.clone())
    };
    // Only the leg's own peer: a Call-ID and tags are no proof of anything.
    if source != transferor_dest {
        return Err((403, "Forbidden: REFER From Elsewhere"));
    }
    let ext = match from_a {
        true => a_ext.or_else(|| extension_at(engine, source)),
        false => extension_at(engine, source),
    }
    .ok_or((403, "Forbidden: Only Extensions Transfer"))?;

    // A slot of the parking lot: the transferee waits there.
    let slot = cfg
        .parking
        .zip(Uri::parse(&target.uri))
        .and_then(|(lot, u)| {
            let ours = engine.is_our_domain(&u.host);
            u.user
                .filter(|_| ours && target.replaces.is_none())
                .and_then(|n| lot.slot(&n))
        });
    if let Some(slot) = slot {
        return super::parking::park(engine, key, msg, call, from_a, &ext, slot);
    }
    // Where the transferee goes: a new call (blind), or the far leg of the
    // transferor's other call (attended).
    let (far, other, stage, blind) = match &target.replaces {
        Some(r) => {
            let (other, far) = replaced(engine, call, r, source, &ext)?;
            (far, Some(other), None, false)
        }
        None => {
            let (far, invite) = blind_leg(engine, &cfg, msg, call, from_a, &ext, &target.uri)?;
            (far, None, Some(invite), true)
        }
    };
    // Accepted.
    let mut ok = response_to(msg, 202, "Accepted", Some(&local_tag));
    ok.add_header("Contact", {
        let t = engine
            .tables()
            .server
            .get(key)
            .map(|t| t.transport)
            .unwrap_or(crate::config::Transport::Udp);
        contact(engine, t, source.is_ipv6(), source)
    });
    engine.reply(key, ok);
    let mut out = Vec::new();
    let (stay, transferor) = {
        let mut c = call.lock();
        let ids = match from_a {
            true => (c.b.call_id.clone(), c.a.call_id.clone()),
            false => (c.a.call_id.clone(), c.b.call_id.clone()),
        };
        c.transfer = Some(ids.1.clone());
        if let Some(l) = leg_mut(&mut c, &ids.1) {
            out.push(notify(engine, l, refer_cseq, "SIP/2.0 100 Trying", false));
        }
        ids
    };
    send_all(engine, out);
    if let (Some(o), Some(r)) = (&other, &target.replaces) {
        // The transferor's leg of the other call: its BYE is absorbed too.
        o.lock().transfer = Some(r.call_id.clone());
    }
    // The new party: invited without SDP, its offer comes in its 2xx.
    let mut far = far;
    far.cseq += 1;
    let cseq = far.cseq;
    let req = match stage {
        Some(mut invite) => {
            invite.set_header("CSeq", format!("{cseq} INVITE"));
            invite
        }
        None => {
            let mut r = new_request("INVITE", &far, cseq);
            r.add_header(
                "Contact",
                contact(engine, far.transport, far.dest.is_ipv6(), far.dest),
            );
            r
        }
    };
    tracing::info!(call_id = %msg.call_id(), extension = %ext, target = %target.uri, attended = !blind, "transfer");
    let pending = Pending {
        call: call.clone(),
        stay,
        transferor,
        refer_cseq,
        far,
        other,
        blind_cdr: blind,
        stage: Stage::Offer { cseq },
        started: Instant::now(),
        media: None,
    };
    let (dest, transport) = (pending.far.dest, pending.far.transport);
    engine
        .transfers()
        .pending
        .lock()
        .insert(pending.far.call_id.clone(), Arc::new(Mutex::new(pending)));
    let mut req = req;
    let branch = engine.new_branch(0);
    req.push_header_front("Via", engine.via_for(transport, dest.is_ipv6(), &branch));
    send_request_tx(engine, req, dest, transport);
    Ok(())
}

/// Rings extension `ext` back for the call parked on `call` (leg a waits):
/// the blind transfer without a transferor.
pub(super) fn ring_back(
    engine: &Arc<Engine>,
    call: &Arc<Mutex<B2bCall>>,
    ext: &str,
) -> Result<(), Refusal> {
    let cfg = engine.config();
    let (stay, waiting) = {
        let c = call.lock();
        (c.a.call_id.clone(), c.a.remote_uri.clone())
    };
    let domain = cfg
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let target = format!("sip:{ext}@{domain}");
    // What the parker's REFER would have been: whom the checks and the
    // CDR see placing the call.
    let mut stand_in = Message {
        start: crate::sip::StartLine::Request {
            method: "INVITE".into(),
            uri: target.clone(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    stand_in.add_header("From", format!("<{waiting}>;tag={}", engine.new_tag()));
    stand_in.add_header("Call-ID", format!("ringback-{stay}"));
    stand_in.add_header("CSeq", "1 INVITE".into());
    let (mut far, mut invite) = blind_leg(engine, &cfg, &stand_in, call, false, ext, &target)?;
    invite.remove_headers("Referred-By");
    call.lock().transfer = Some(NO_TRANSFEROR.into());
    far.cseq += 1;
    let cseq = far.cseq;
    invite.set_header("CSeq", format!("{cseq} INVITE"));
    let (dest, transport) = (far.dest, far.transport);
    let pending = Pending {
        call: call.clone(),
        stay,
        transferor: NO_TRANSFEROR.into(),
        refer_cseq: 0,
        far,
        other: None,
        blind_cdr: true,
        stage: Stage::Offer { cseq },
        started: Instant::now(),
        media: None,
    };
    engine
        .transfers()
        .pending
        .lock()
        .insert(pending.far.call_id.clone(), Arc::new(Mutex::new(pending)));
    let branch = engine.new_branch(0);
    invite.push_header_front("Via", engine.via_for(transport, dest.is_ipv6(), &branch));
    send_request_tx(engine, invite, dest, transport);
    Ok(())
}

/// The transferor of a ring-back: no leg has this Call-ID.
const NO_TRANSFEROR: &str = "-";

/// The blind transfer's new leg to `target`, placed with `ext`'s rights,
/// and its INVITE (without Via and SDP).
fn blind_leg(
    engine: &Arc<Engine>,
    cfg: &crate::config::Config,
    msg: &Message,
    call: &Arc<Mutex<B2bCall>>,
    from_a: bool,
    ext: &str,
    target: &str,
) -> Result<(Leg, Message), Refusal> {
    let mut origin = Origin::Extension(ext.to_owned());
    let mut forwarding = Forwarding::for_request("INVITE");
    let decision = crate::features::routing::follow_forward(
        engine,
        cfg,
        ext,
        target,
        &mut origin,
        0,
        &mut forwarding,
    );
    let source = {
        let c = call.lock();
        if from_a {
            c.a.dest
        } else {
            c.b.dest
        }
    };
    let targets = match decision {
        Decision::Forward(t) => t,
        Decision::Reply(code, reason, _) => return Err((code, reason)),
        Decision::Refuse(r) => return Err(engine.fraud().refuse(r, msg, source, &origin)),
        _ => return Err((404, "Not Found")),
    };
    let Some(first) = targets.first() else {
        return Err((404, "Not Found"));
    };
    let outbound = targets.iter().any(|t| !t.contact);
    if let Err(r) = crate::features::admission::permitted(cfg, &origin, outbound, true, target) {
        return Err(engine.fraud().refuse(r, msg, source, &origin));
    }
    let placement = crate::features::accounting::Placement {
        origin: &origin,
        outbound,
        source,
    };
    let meta = crate::features::accounting::admit(engine, cfg, msg, target, &targets, placement)?;
    // The transferee's identity is shown to the new party.
    let shown = {
        let c = call.lock();
        let stay = if from_a { &c.b } else { &c.a };
        // On leg b the peer's URI is what was dialled; its user is its number.
        let user = Uri::parse(&stay.remote_uri).and_then(|u| u.user);
        let domain = cfg
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".into());
        format!(
            "sip:{}@{domain}",
            user.unwrap_or_else(|| "anonymous".into())
        )
    };
    let far = Leg {
        call_id: format!("{}{}@b2bua", engine.new_tag(), engine.new_tag()),
        local_tag: engine.new_tag(),
        remote_tag: None,
        local_uri: shown.clone(),
        remote_uri: target.to_owned(),
        remote_target: first.ruri.clone(),
        dest: first.dest,
        transport: first.transport,
        cseq: 0,
    };
    let mut invite = new_request("INVITE", &far, 1);
    for r in first.routes.iter().rev() {
        invite.insert_first("Route", r.clone());
    }
    invite.add_header(
        "Contact",
        contact(engine, far.transport, far.dest.is_ipv6(), far.dest),
    );
    let referrer = crate::sip::addr_uri(msg.header("From").unwrap_or("")).to_owned();
    invite.add_header("Referred-By", format!("<{referrer}>"));
    track_call(engine, &far.call_id, &format!("<{shown}>"), target);
    if let Some(meta) = meta {
        crate::features::accounting::attach(engine, &far.call_id, meta);
    }
    Ok((far, invite))
}

/// The transferor's other call named by `r` and its far leg; refused alike
/// whether the dialog does not exist or is not the transferor's.
fn replaced(
    engine: &Engine,
    call: &Arc<Mutex<B2bCall>>,
    r: &Replaces,
    source: SocketAddr,
    ext: &str,
) -> Result<(Arc<Mutex<B2bCall>>, Leg), Refusal> {
    const NOT_YOURS: Refusal = (403, "Forbidden: Replaced Dialog Not Yours");
    let other = engine
        .b2b_calls()
        .lock()
        .get(&r.call_id)
        .cloned()
        .ok_or(NOT_YOURS)?;
    if Arc::ptr_eq(&other, call) {
        return Err((400, "Bad Request: Replaces Names This Call"));
    }
    let c = other.lock();
    let (mine, far) = if c.a.call_id == r.call_id {
        (&c.a, &c.b)
    } else {
        (&c.b, &c.a)
    };
    let tags = [Some(r.to_tag.as_str()), Some(r.from_tag.as_str())];
    let ours = [Some(mine.local_tag.as_str()), mine.remote_tag.as_deref()];
    let same =
        (tags[0] == ours[0] && tags[1] == ours[1]) || (tags[0] == ours[1] && tags[1] == ours[0]);
    // The same phone, or another phone of the same extension.
    let owner = || match c.a.call_id == r.call_id {
        true => c.a_ext.clone().or_else(|| extension_at(engine, mine.dest)),
        false => extension_at(engine, mine.dest),
    };
    if !same || (mine.dest != source && owner().as_deref() != Some(ext)) {
        return Err(NOT_YOURS);
    }
    if c.established.is_none() || far.remote_tag.is_none() {
        return Err((
            481,
            "Call/Transaction Does Not Exist: Replaced Dialog Not Answered",
        ));
    }
    if c.transfer.is_some() {
        return Err((491, "Request Pending: Transfer In Progress"));
    }
    if c.media_crypto.is_some() {
        return Err((
            501,
            "Not Implemented: Transfer Of A Call Whose SRTP Ends Here",
        ));
    }
    let far = far.clone();
    drop(c);
    Ok((other, far))
}

/// A response to an INVITE the box sent itself: moves a transfer on.
pub fn on_response(
    engine: &Arc<Engine>,
    req: &Message,
    resp: &Message,
    branch: BranchInfo,
    first: bool,
) {
    if req.method() != "INVITE" {
        return;
    }
    let Some(p) = engine
        .transfers()
        .pending
        .lock()
        .get(req.call_id())
        .cloned()
    else {
        // A retransmitted 2xx of a finished transfer's INVITE: ACK again.
        if !first {
            if let Some((t, d, b)) = super::ack_again(engine, resp.call_id()) {
                engine.send(t, d, b);
            }
        }
        return;
    };
    let Some(code) = resp.status() else { return };
    let cseq = req.cseq().map(|c| c.0).unwrap_or(0);
    let mut p = p.lock();
    match p.stage {
        Stage::Offer { cseq: c } if c == cseq => {
            offer_answered(engine, &mut p, resp, code, branch, first)
        }
        Stage::Answer {
            reinvite_cseq,
            far_cseq,
        } if reinvite_cseq == cseq && first => {
            transferee_answered(engine, &mut p, resp, code, far_cseq)
        }
        _ => {}
    }
}

fn offer_answered(
    engine: &Arc<Engine>,
    p: &mut Pending,
    resp: &Message,
    code: u16,
    branch: BranchInfo,
    first: bool,
) {
    let Stage::Offer { cseq } = p.stage else {
        return;
    };
    if code < 200 {
        if p.blind_cdr && (code == 180 || code == 183) && first {
            if let Some(c) = engine.calls().get_mut(&p.far.call_id) {
                c.state = "ringing";
            }
            let reason = match code {
                180 => "Ringing",
                _ => "Session Progress",
            };
            let mut c = p.call.lock();
            let t = p.transferor.clone();
            let out = leg_mut(&mut c, &t).map(|l| {
                notify(
                    engine,
                    l,
                    p.refer_cseq,
                    &format!("SIP/2.0 {code} {reason}"),
                    false,
                )
            });
            drop(c);
            send_all(engine, out);
        }
        return;
    }
    if !first {
        return;
    }
    if code >= 300 {
        let reason = match &resp.start {
            crate::sip::StartLine::Response { reason, .. } => reason.clone(),
            _ => String::new(),
        };
        return fail(engine, p, code, &reason);
    }
    if p.blind_cdr {
        p.far.remote_tag = param(resp.header("To").unwrap_or(""), "tag").map(str::to_owned);
        if let Some(ct) = resp.header("Contact") {
            p.far.remote_target = addr_uri(ct).to_owned();
        }
        p.far.dest = branch.dest;
        p.far.transport = branch.transport;
        if let Some(c) = engine.calls().get_mut(&p.far.call_id) {
            c.state = "established";
            c.answered.get_or_insert_with(Instant::now);
        }
    }
    // The transferee gone meanwhile, or no offer: nothing to bridge.
    let alive = engine
        .b2b_calls()
        .lock()
        .get(&p.stay)
        .is_some_and(|c| Arc::ptr_eq(c, &p.call));
    if !alive || resp.body.is_empty() {
        let ack = ack_bytes(engine, &p.far, cseq, None);
        engine.send(p.far.transport, p.far.dest, ack);
        if p.blind_cdr {
            let out = bye(engine, &mut p.far);
            send_all(engine, [out]);
        }
        return fail(engine, p, 488, "Not Acceptable Here");
    }
    let mut c = p.call.lock();
    let stay = p.stay.clone();
    p.media = bridge_media(engine, &c, &stay, branch.dest);
    let Some(leg) = leg_mut(&mut c, &stay) else {
        return;
    };
    leg.cseq += 1;
    let reinvite_cseq = leg.cseq;
    let mut re = new_request("INVITE", leg, reinvite_cseq);
    re.add_header(
        "Contact",
        contact(engine, leg.transport, leg.dest.is_ipv6(), leg.dest),
    );
    super::copy_body(resp, &mut re);
    if let Some(m) = &p.media {
        // The new party's media comes to the relay; the transferee is sent
        // to the relay's port on its own side (where it sends already).
        let new_side = !m.stay_side;
        nat::anchor(
            engine,
            &m.relay,
            new_side,
            branch.dest.ip(),
            leg.dest,
            &mut re,
        );
    }
    let out = prepared(engine, re, leg);
    drop(c);
    // Filed under the transferee's leg before the re-INVITE leaves: its
    // answer may come back before this function returns.
    p.stage = Stage::Answer {
        far_cseq: cseq,
        reinvite_cseq,
    };
    {
        let mut pending = engine.transfers().pending.lock();
        if let Some(me) = pending.remove(&p.far.call_id) {
            pending.insert(stay, me);
        }
    }
    send_all(engine, [out]);
}

fn transferee_answered(
    engine: &Arc<Engine>,
    p: &mut Pending,
    resp: &Message,
    code: u16,
    far_cseq: u32,
) {
    let Stage::Answer { reinvite_cseq, .. } = p.stage else {
        return;
    };
    engine.transfers().pending.lock().remove(&p.stay);
    if code >= 300 {
        // The new party's 2xx still wants its ACK; then it is let go.
        let ack = ack_bytes(engine, &p.far, far_cseq, None);
        engine.send(p.far.transport, p.far.dest, ack);
        if p.blind_cdr {
            let out = bye(engine, &mut p.far);
            send_all(engine, [out]);
        }
        return fail(engine, p, 503, "Service Unavailable");
    }
    if code < 200 {
        return;
    }
    let mut answer = resp.clone();
    if let Some(m) = &p.media {
        let stay_ip = {
            let mut c = p.call.lock();
            leg_mut(&mut c, &p.stay).map(|l| l.dest.ip())
        };
        if let Some(ip) = stay_ip {
            nat::anchor(engine, &m.relay, m.stay_side, ip, p.far.dest, &mut answer);
        }
    }
    let far_ack = ack_bytes(engine, &p.far, far_cseq, Some(&answer));
    // The bookkeeping first, the messages last: a BYE of the bridged call
    // may follow our ACK at once.
    let mut ended = Vec::new();
    let mut gone = Vec::new();
    let mut hang_up = Vec::new();
    let stay_ack = {
        let mut c = p.call.lock();
        let stay_ack = match leg_mut(&mut c, &p.stay) {
            Some(l) => (
                l.transport,
                l.dest,
                ack_bytes(engine, l, reinvite_cseq, None),
            ),
            None => return,
        };
        let t = p.transferor.clone();
        if let Some(l) = leg_mut(&mut c, &t) {
            hang_up.push((l.clone(), true));
        }
        gone.push(t);
        ended.extend([c.a.call_id.clone(), c.b.call_id.clone()]);
        // The transferee's leg becomes a, the new party's b.
        c.a = if c.a.call_id == p.stay {
            c.a.clone()
        } else {
            c.b.clone()
        };
        c.b = p.far.clone();
        if let Some(m) = &p.media {
            c.relay = Some(m.relay.clone());
            c.relay_swapped = !m.stay_side;
        }
        c.b_ack = Some(far_ack.clone());
        c.transfer = None;
        c.parked = None;
        c.established.get_or_insert_with(Instant::now);
        c.last_activity = Instant::now();
        stay_ack
    };
    if let Some(o) = &p.other {
        let mut o = o.lock();
        let x2 = if o.a.call_id == p.far.call_id {
            o.b.clone()
        } else {
            o.a.clone()
        };
        gone.push(x2.call_id.clone());
        ended.extend([o.a.call_id.clone(), o.b.call_id.clone()]);
        hang_up.push((x2, false));
        o.transfer = None;
    }
    {
        let now = Instant::now();
        let mut g = engine.transfers().gone.lock();
        for id in &gone {
            g.insert(id.clone(), now);
        }
    }
    {
        let mut map = engine.b2b_calls().lock();
        for id in &gone {
            map.remove(id);
        }
        map.insert(p.far.call_id.clone(), p.call.clone());
    }
    // The legs' CDRs end here; the bridged call gets its own (blind: listed
    // since the new party was invited).
    for id in &ended {
        engine.end_call(id, 200);
    }
    if !p.blind_cdr {
        let (from, to) = {
            let c = p.call.lock();
            (format!("<{}>", c.a.remote_uri), c.b.remote_uri.clone())
        };
        track_call(engine, &p.far.call_id, &from, &to);
        if let Some(c) = engine.calls().get_mut(&p.far.call_id) {
            c.state = "established";
            c.answered = Some(Instant::now());
        }
    }
    engine.send(p.far.transport, p.far.dest, far_ack);
    engine.send(stay_ack.0, stay_ack.1, stay_ack.2);
    for (mut leg, transferor) in hang_up {
        if transferor {
            let n = notify(engine, &mut leg, p.refer_cseq, "SIP/2.0 200 OK", true);
            send_all(engine, [n]);
        }
        let b = bye(engine, &mut leg);
        send_all(engine, [b]);
    }
    tracing::info!(call_id = %p.stay, new_leg = %p.far.call_id, "transfer completed");
}

/// The transfer failed with `code`: the transferor hears it, the call
/// stays as it was.
fn fail(engine: &Arc<Engine>, p: &mut Pending, code: u16, reason: &str) {
    {
        let mut pending = engine.transfers().pending.lock();
        pending.remove(&p.far.call_id);
        pending.remove(&p.stay);
    }
    let mut c = p.call.lock();
    c.transfer = None;
    let t = p.transferor.clone();
    let out = leg_mut(&mut c, &t).map(|l| {
        notify(
            engine,
            l,
            p.refer_cseq,
            &format!("SIP/2.0 {code} {reason}"),
            true,
        )
    });
    drop(c);
    send_all(engine, out);
    if let Some(o) = &p.other {
        o.lock().transfer = None;
    }
    if p.blind_cdr {
        engine.end_call(&p.far.call_id, code);
    }
    tracing::info!(call_id = %p.stay, code, "transfer failed");
}

/// Forgets legs transferred away long enough ago, and stuck transfers.
pub fn sweep(engine: &Engine) {
    let t = engine.transfers();
    t.gone.lock().retain(|_, at| at.elapsed() < GONE_FOR);
    let stale: Vec<Arc<Mutex<Pending>>> = {
        let mut pending = t.pending.lock();
        let stale = pending
            .values()
            .filter(|p| p.lock().started.elapsed() >= PENDING_FOR)
            .cloned()
            .collect();
        pending.retain(|_, p| p.lock().started.elapsed() < PENDING_FOR);
        stale
    };
    for p in stale {
        let p = p.lock();
        p.call.lock().transfer = None;
        if let Some(o) = &p.other {
            o.lock().transfer = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_with_replaces_is_unescaped() {
        let r =
            parse_refer_to("<sip:102@besip.test?Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>")
                .expect("valid");
        assert_eq!(r.uri, "sip:102@besip.test");
        assert_eq!(
            r.replaces,
            Some(Replaces {
                call_id: "abc@h".into(),
                to_tag: "t1".into(),
                from_tag: "f1".into()
            })
        );
        assert_eq!(
            parse_refer_to("sip:102@besip.test")
                .expect("plain")
                .replaces,
            None
        );
    }

    #[test]
    fn malformed_refer_to_is_refused() {
        for bad in [
            "<tel:+123>",
            "<garbage>",
            "<sip:1@h?Replaces=abc%3Bto-tag%3Dt1>",
            "<sip:1@h?Replaces=%zz>",
            "<sip:1@h?Replaces=%3Bto-tag%3Dt%3Bfrom-tag%3Df>",
        ] {
            assert!(parse_refer_to(bad).is_err(), "{bad}");
        }
    }
}
