//! Request routing of the stateful proxy (RFC 3261 §16): checks (501, 483,
//! 482), loose routing, authentication of our users (407), location lookup
//! with aliases, dialplan routes to trunks, and forking.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::call::branches::{send_branches, track_call};
use crate::call::Target;
use crate::config::inbound::{Destination, RingGroup};
use crate::config::{Config, Mode, Transport};
use crate::features::decision::Decision;
use crate::features::forwarding::Forwarding;
use crate::features::fraud::Refusal;
use crate::features::outbound::Origin;
use crate::features::state::Engine;
use crate::sip::{addr_uri, param, Message, Uri, Via};

fn loop_hash(msg: &Message, ruri: &str) -> u32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ruri.hash(&mut h);
    msg.call_id().hash(&mut h);
    param(msg.header("From").unwrap_or(""), "tag").hash(&mut h);
    msg.cseq().map(|c| c.0).hash(&mut h);
    h.finish() as u32
}

/// Socket address and transport of a URI whose host is an IP literal: a
/// sips: URI is reached over TLS whatever its transport parameter says
/// (RFC 3261 §26.2.2), on port 5061 unless it names one.
fn uri_target(uri: &Uri) -> Option<(SocketAddr, Transport)> {
    let named = uri.transport().and_then(Transport::from_name);
    let transport = if uri.scheme == "sips" {
        Transport::Tls
    } else {
        named.unwrap_or(Transport::Udp)
    };
    let mut addr = uri.socket_addr()?;
    if transport == Transport::Tls && uri.port.is_none() {
        addr.set_port(5061);
    }
    Some((addr, transport))
}

/// Removes the Route entries that name us (loose routing, §16.4).
fn pop_own_routes(engine: &Engine, msg: &mut Message) {
    while let Some(top) = msg.header_values("Route").first().map(|r| r.to_string()) {
        match Uri::parse(addr_uri(&top)) {
            Some(u) if engine.is_local(&u.host, u.port) => {
                msg.remove_first_value("Route");
            }
            _ => break,
        }
    }
}

/// Routes a new request of server transaction `key`.
pub fn route(
    engine: &Arc<Engine>,
    key: &str,
    mut msg: Message,
    source: SocketAddr,
    transport: Transport,
    local: SocketAddr,
) {
    if crate::features::media_service::take(engine, key, &msg)
        || crate::features::media_service::mwi::take(engine, key, &msg, source, transport)
        || crate::features::presence::take(engine, key, &msg, source, transport)
        || crate::features::pickup::take(engine, key, &msg, source, transport)
        || crate::features::b2bua::parking::take(engine, key, &msg, source, transport)
    {
        return;
    }
    let cfg = engine.config();
    if cfg.mode == Mode::B2bua && crate::features::b2bua::owns(engine, &msg) {
        let hash = loop_hash(&msg, msg.uri());
        crate::features::b2bua::in_dialog(engine, key, msg, hash);
        return;
    }
    let original_uri = msg.uri().to_owned();
    let mut origin = Origin::Stranger;
    let mut forwarding = Forwarding::for_request(msg.method());
    let mut decision = decide(
        engine,
        &cfg,
        &mut msg,
        (source, transport),
        &mut origin,
        &mut forwarding,
    );
    // What the call is placed to: a speed dial or privacy prefix resolved.
    let dialled = msg.uri().to_owned();
    let mut failover = None;
    if let Decision::Dispatch(set, number) = decision {
        (decision, failover) = dispatch(engine, &cfg, &msg, set, number);
    }
    if let Decision::ResolvedTrunk(trunk, number) = decision {
        (decision, failover) = crate::features::dns::route_to_trunk(engine, &cfg, &trunk, &number);
    }
    match decision {
        Decision::Dispatch(..) | Decision::ResolvedTrunk(..) => {}
        Decision::Local(service) => {
            crate::features::media_service::answer(engine, key, &msg, source, transport, service);
        }
        Decision::Reply(code, reason, extra) => {
            engine.answer_with(key, &msg, (code, reason), extra);
        }
        Decision::Response(r) => {
            if msg.method() == "REGISTER" && r.status() == Some(200) {
                crate::features::nat_proxy::registered(engine, &msg, source, transport, local);
            }
            engine.reply(key, r)
        }
        Decision::Refuse(refusal) => {
            let (code, reason) = engine.fraud().refuse(refusal, &msg, source, &origin);
            engine.answer_with(key, &msg, (code, reason), vec![]);
        }
        Decision::Forward(targets) => {
            let hash = loop_hash(&msg, &original_uri);
            let call_id = msg.call_id().to_owned();
            let initial = param(msg.header("To").unwrap_or(""), "tag").is_none();
            let invite = initial && msg.method() == "INVITE";
            let outbound = initial && targets.iter().any(|t| !t.contact);
            if let Err(refusal) =
                crate::features::admission::permitted(&cfg, &origin, outbound, invite, &dialled)
            {
                let (code, reason) = engine.fraud().refuse(refusal, &msg, source, &origin);
                return engine.answer_with(key, &msg, (code, reason), vec![]);
            }
            if msg.header("Proxy-Authorization").is_some() {
                crate::features::trunk_auth::consume_own_credentials(engine, &mut msg);
            }
            let placement = crate::features::accounting::Placement {
                origin: &origin,
                outbound,
                source,
            };
            let meta = match invite {
                true => match crate::features::accounting::admit(
                    engine, &cfg, &msg, &dialled, &targets, placement,
                ) {
                    Ok(meta) => meta.map(|m| (m, msg.call_id().to_owned())),
                    Err((code, reason)) => {
                        return engine.answer_with(key, &msg, (code, reason), vec![]);
                    }
                },
                false => None,
            };
            if let Err((code, reason)) = crate::features::nat_proxy::on_request(
                engine, &mut msg, source, transport, &targets,
            ) {
                return engine.answer_with(key, &msg, (code, reason), vec![]);
            }
            if cfg.mode == Mode::B2bua && invite {
                crate::features::b2bua::start(
                    engine,
                    key,
                    msg,
                    targets,
                    hash,
                    (&dialled, &origin),
                    forwarding.record,
                );
            } else {
                if invite {
                    crate::features::caller_id::rewrite(&cfg, &mut msg, &origin, &targets);
                }
                fork(engine, key, msg, targets, hash, local, &dialled);
            }
            if let (Some(mut f), true) = (failover, invite) {
                f.hash = hash;
                crate::features::dispatcher::watch(engine, key, f);
            }
            if let Some((meta, call_id)) = meta {
                crate::features::accounting::attach(engine, &call_id, meta);
            }
            if invite {
                crate::features::forwarding::started(
                    engine, key, &call_id, forwarding, &origin, hash,
                );
            }
        }
    }
}

fn decide(
    engine: &Arc<Engine>,
    cfg: &Config,
    msg: &mut Message,
    (source, transport): (SocketAddr, Transport),
    origin: &mut Origin,
    forwarding: &mut Forwarding,
) -> Decision {
    let method = msg.method().to_owned();
    if !cfg.allowed_methods.contains(&method) {
        let mut allow: Vec<&str> = cfg.allowed_methods.iter().map(String::as_str).collect();
        allow.sort_unstable();
        return Decision::Reply(501, "Not Implemented", vec![("Allow", allow.join(", "))]);
    }
    let max_forwards = msg
        .header("Max-Forwards")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(70);
    let ruri_text = msg.uri().to_owned();
    let Some(ruri) = Uri::parse(&ruri_text) else {
        return Decision::Reply(416, "Unsupported URI Scheme", vec![]);
    };
    // IP literals name us only with our port: on one host, UAs share our address.
    let to_us = engine.is_local(&ruri.host, ruri.port);
    if method == "OPTIONS" && ruri.user.is_none() && to_us && msg.header("Route").is_none() {
        let mut allow: Vec<&str> = cfg.allowed_methods.iter().map(String::as_str).collect();
        allow.sort_unstable();
        return Decision::Reply(
            200,
            "OK",
            vec![
                ("Allow", allow.join(", ")),
                ("Accept", "application/sdp".into()),
            ],
        );
    }
    if max_forwards == 0 {
        return Decision::Reply(483, "Too Many Hops", vec![]);
    }
    // Loop: one of our Via entries carries the hash of this very request (§16.3 step 4).
    // The hash is computed only when a lower Via names us (rare: a spiral or a loop).
    let mut hash: Option<String> = None;
    for v in msg
        .header_values("Via")
        .iter()
        .skip(1)
        .filter_map(|v| Via::parse(v))
    {
        if !engine.is_local(&v.host, v.port) {
            continue;
        }
        let hash =
            hash.get_or_insert_with(|| format!("z9hG4bKbsp{:08x}x", loop_hash(msg, &ruri_text)));
        if v.branch
            .as_deref()
            .is_some_and(|b| b.starts_with(hash.as_str()))
        {
            return Decision::Reply(482, "Loop Detected", vec![]);
        }
    }
    pop_own_routes(engine, msg);
    if method == "REGISTER" {
        if !to_us {
            return Decision::Reply(403, "Relaying Forbidden", vec![]);
        }
        return Decision::Response(crate::features::registrar::register(
            engine, cfg, msg, source, transport,
        ));
    }
    let in_dialog = param(msg.header("To").unwrap_or(""), "tag").is_some();
    if method == "REFER" && !in_dialog {
        // A transfer belongs to a call: a REFER outside one would make a
        // phone call anybody a stranger names.
        return Decision::Reply(403, "Forbidden: REFER Outside A Dialog", vec![]);
    }
    if in_dialog {
        // Only dialogs we record-routed: a To tag is no pass to anywhere.
        if !engine.fraud().dialog_known(msg) {
            return Decision::Refuse(Refusal::UnknownDialog);
        }
        // The dialog's route set: forward to the next hop it names.
        if let Some(next) = msg.header_values("Route").first().map(|r| r.to_string()) {
            return match Uri::parse(addr_uri(&next)).as_ref().and_then(uri_target) {
                Some((dest, transport)) => {
                    Decision::Forward(vec![Target::outside(ruri_text, dest, transport)])
                }
                None => Decision::Reply(502, "Bad Gateway: Route Not Resolvable", vec![]),
            };
        }
        // A NATed party's aliased Contact: reached where its messages came from.
        if let Some((dest, transport, uri)) =
            crate::features::nat_proxy::contact::alias_target(&ruri_text)
        {
            msg.set_uri(uri.clone());
            return Decision::Forward(vec![Target::outside(uri, dest, transport)]);
        }
        if !to_us {
            return match uri_target(&ruri) {
                Some((dest, transport)) => {
                    Decision::Forward(vec![Target::outside(ruri_text, dest, transport)])
                }
                None => Decision::Reply(502, "Bad Gateway: Request-URI Not Resolvable", vec![]),
            };
        }
    } else {
        // A pre-loaded route set is ignored (as Kamailio's default script
        // does): the next hop of a new request is ours to choose.
        msg.remove_headers("Route");
        *origin = match crate::features::admission::authenticate(engine, cfg, msg, &method, source)
        {
            Ok(origin) => origin,
            Err(d) => return d,
        };
    }
    if !to_us {
        // Only our authenticated users and trusted peers may reach other domains.
        return match (&*origin, uri_target(&ruri)) {
            (Origin::Stranger, _) => Decision::Refuse(Refusal::Relay),
            (_, Some((dest, transport))) => {
                Decision::Forward(vec![Target::outside(ruri_text, dest, transport)])
            }
            (_, None) => Decision::Reply(502, "Bad Gateway: Request-URI Not Resolvable", vec![]),
        };
    }
    let Some(mut user) = ruri.user.clone() else {
        return Decision::Reply(484, "Address Incomplete", vec![]);
    };
    if method == "INVITE" && !in_dialog && origin.extension().is_none() {
        crate::features::caller_id::phonebook(cfg, msg);
    }
    if method == "INVITE" && !in_dialog {
        if let Some(d) = crate::features::media_service::dialled(cfg, &user, origin) {
            return d;
        }
    }
    if method == "INVITE" {
        if let Some(d) = crate::features::feature_codes::dialled(engine, cfg, &user, origin) {
            return d;
        }
        if !in_dialog {
            if let Some(d) = inbound(engine, cfg, msg, source, &user, origin, forwarding) {
                return d;
            }
            // Not a DID of an inbound route: speed dials and the privacy
            // prefix stand for the number they lead to.
            match crate::features::caller_id::dialled(cfg, msg, &user) {
                Ok(Some(number)) => user = number,
                Ok(None) => {}
                Err(crate::features::caller_id::NumberMissing) => {
                    return Decision::Reply(484, "Address Incomplete", vec![])
                }
            }
        }
    }
    lookup(engine, cfg, &user, origin, 0, forwarding)
}

/// A new call from outside: refused when the caller is on the blocklist;
/// routed by an inbound route when it comes from a trunk's address or a
/// trusted peer. None: routed as any other request.
fn inbound(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    source: SocketAddr,
    did: &str,
    origin: &mut Origin,
    forwarding: &mut Forwarding,
) -> Option<Decision> {
    // Our own extensions are never blocked (they proved who they are).
    if origin.extension().is_some() {
        return None;
    }
    let from = msg.header("From").map(addr_uri).and_then(Uri::parse);
    let caller = from.and_then(|u| u.user).unwrap_or_default();
    if crate::features::inbound::blocked(cfg, &caller) {
        engine.inbound().blocked();
        tracing::info!(call_id = %msg.call_id(), %caller, %source, "caller on the blocklist refused");
        return Some(Decision::Reply(603, "Decline", vec![]));
    }
    let trunk = match &*origin {
        Origin::Peer(p) => p.clone(),
        Origin::Stranger => crate::features::inbound::trunk_of(cfg, source.ip())?.to_owned(),
        _ => return None,
    };
    let route = crate::features::inbound::route(cfg, &trunk, did, &caller)?;
    engine.inbound().routed();
    forwarding.record = forwarding.record.max(route.record);
    tracing::info!(call_id = %msg.call_id(), %trunk, %did, %caller, route = %route.name, "inbound call routed");
    forwarding.inbound = Some(crate::features::inbound::Note {
        trunk,
        did: did.to_owned(),
    });
    Some(destination(
        engine,
        cfg,
        &route.destination,
        origin,
        0,
        forwarding,
    ))
}

/// Where a configured destination (inbound route, time condition, final
/// destination of a ring group) sends a call.
pub(crate) fn to_destination(
    engine: &Engine,
    cfg: &Config,
    d: &Destination,
    origin: &mut Origin,
    forwarding: &mut Forwarding,
) -> Decision {
    let decision = destination(engine, cfg, d, origin, 0, forwarding);
    first_targets(engine, cfg, decision)
}

fn destination(
    engine: &Engine,
    cfg: &Config,
    d: &Destination,
    origin: &mut Origin,
    depth: u8,
    forwarding: &mut Forwarding,
) -> Decision {
    match crate::features::inbound::settle(cfg, d) {
        Some(Destination::Extension(n) | Destination::RingGroup(n)) => {
            lookup(engine, cfg, n, origin, depth, forwarding)
        }
        Some(Destination::External(n)) => {
            *origin = Origin::Configured(format!("destination {n}"));
            lookup(engine, cfg, n, origin, depth, forwarding)
        }
        Some(Destination::Conference(n)) => Decision::Local(
            crate::features::media_service::Service::Conference(n.clone()),
        ),
        Some(Destination::Voicemail(n)) => {
            Decision::Local(crate::features::media_service::Service::Leave(n.clone()))
        }
        Some(Destination::Ivr(n)) => {
            Decision::Local(crate::features::media_service::Service::Ivr(n.clone()))
        }
        Some(Destination::Parking) => {
            Decision::Local(crate::features::media_service::Service::Park)
        }
        Some(Destination::Hangup | Destination::TimeCondition(_)) | None => {
            Decision::Reply(480, "Temporarily Unavailable", vec![])
        }
    }
}

/// Ring group `g`: the members' branches (an extension's registered
/// phones, unless do-not-disturb; a number outside through the dialplan,
/// placed for the group), the first step sent now and the rest left to
/// `ring_group::watch`.
fn ring_group(
    engine: &Engine,
    cfg: &Config,
    g: &RingGroup,
    origin: &mut Origin,
    depth: u8,
    forwarding: &mut Forwarding,
) -> Decision {
    if forwarding.is_call() {
        engine.inbound().group_called(&g.number);
    }
    let placed_for = format!("ring group {}", g.number);
    let mut members = Vec::new();
    let mut outside = false;
    let phones = |ext: &crate::config::Extension| -> Vec<Target> {
        match engine.forwarding().effective(ext).do_not_disturb {
            true => Vec::new(),
            false => contact_targets(engine.location().lookup(&ext.number)),
        }
    };
    for m in &g.members {
        // A member's unconditional forwarding to another extension is
        // followed, one hop (as FreePBX does unless told to ignore it). A
        // member forwarded anywhere else is left out: its mailbox would
        // answer the group's call at once, and a number outside would let
        // a phone's feature code send the group's calls out of the box
        // (numbers outside are the administrator's, as members).
        let settings = cfg
            .resolve_user(m)
            .filter(|e| e.enabled)
            .map(|e| engine.forwarding().effective(e));
        if settings.as_ref().is_some_and(|s| s.do_not_disturb) {
            continue;
        }
        let forwarded = settings.and_then(|s| s.unconditional);
        let number = match &forwarded {
            Some(target) if cfg.resolve_user(target).is_some_and(|e| e.enabled) => target,
            Some(_) => continue,
            None => m.as_str(),
        };
        let targets = match cfg.resolve_user(number).filter(|e| e.enabled) {
            // The member itself: its do-not-disturb was read above.
            Some(ext) if forwarded.is_none() => {
                contact_targets(engine.location().lookup(&ext.number))
            }
            Some(ext) => phones(ext),
            // A group in the group: its extensions ring together as one
            // member of this one (its own strategy and timeouts do not
            // apply, its numbers outside and groups are not followed).
            None if cfg.inbound.ring_groups.contains_key(number) => cfg
                .inbound
                .ring_groups
                .get(number)
                .into_iter()
                .flat_map(|inner| &inner.members)
                .filter_map(|n| cfg.resolve_user(n).filter(|e| e.enabled))
                .flat_map(phones)
                .collect(),
            None => {
                let mut o = Origin::Configured(placed_for.clone());
                let d = lookup(
                    engine,
                    cfg,
                    number,
                    &mut o,
                    depth,
                    &mut Forwarding::default(),
                );
                match first_targets(engine, cfg, d) {
                    Decision::Forward(t) => {
                        outside = true;
                        t
                    }
                    _ => continue,
                }
            }
        };
        if !targets.is_empty() {
            members.push((m.clone(), targets));
        }
    }
    if outside {
        // The administrator put the number in the group: it may leave the box.
        *origin = Origin::Configured(placed_for);
    }
    if members.is_empty() {
        return match (&g.final_destination, depth < 3) {
            (Some(d), true) => destination(engine, cfg, d, origin, depth + 1, forwarding),
            _ => Decision::Reply(480, "Temporarily Unavailable", vec![]),
        };
    }
    let (first, hunt) = crate::features::ring_group::Hunt::new(g, members);
    if forwarding.is_call() {
        forwarding.group = Some(hunt);
    }
    Decision::Forward(first)
}

/// Branches to registered phones, each reached through the first hop of
/// its Path, else where it registered from.
fn contact_targets(bindings: Vec<crate::call::location::Binding>) -> Vec<Target> {
    bindings
        .into_iter()
        .map(|b| {
            let first_path = b
                .path
                .first()
                .and_then(|p| Uri::parse(addr_uri(p)))
                .and_then(|u| uri_target(&u));
            let (dest, transport) = first_path.unwrap_or((b.source, b.transport));
            Target {
                ruri: b.contact,
                dest,
                transport,
                routes: b.path,
                trunk: None,
                contact: true,
            }
        })
        .collect()
}

/// Dispatcher and DNS trunk routes resolved to their first destination
/// (a call sent on by a watcher gets no failover of its own).
pub(crate) fn first_targets(engine: &Engine, cfg: &Config, decision: Decision) -> Decision {
    let first_destination = |set: &str, number: &str| {
        let Some(sc) = cfg.dispatcher_sets.get(set) else {
            return Decision::Reply(404, "Not Found", vec![]);
        };
        // Hashed by the number (no Call-ID here): one destination per number.
        let live = crate::features::dispatcher::candidates(sc, number);
        let dests = crate::features::dispatcher::names::expand(engine, sc, live);
        match dests.first() {
            Some(d) => Decision::Forward(vec![crate::features::dispatcher::target(number, d)]),
            None => Decision::Reply(503, "Service Unavailable: No Destination Up", vec![]),
        }
    };
    match decision {
        Decision::Dispatch(set, number) => first_destination(&set, &number),
        Decision::ResolvedTrunk(trunk, number) => {
            crate::features::dns::route_to_trunk(engine, cfg, &trunk, &number).0
        }
        d => d,
    }
}

/// Where a forward of extension `ext` to `fwd` goes: an extension of ours
/// (followed, `depth` forwards deep so far) or a number or URI outside,
/// placed with the forwarding extension's rights whoever called. Dispatcher
/// and DNS trunk routes are resolved to their first destination here (a
/// forward gets no failover of its own).
pub(crate) fn follow_forward(
    engine: &Engine,
    cfg: &Config,
    ext: &str,
    fwd: &str,
    origin: &mut Origin,
    depth: u8,
    forwarding: &mut Forwarding,
) -> Decision {
    let decision = follow(engine, cfg, ext, fwd, origin, depth, forwarding);
    first_targets(engine, cfg, decision)
}

fn follow(
    engine: &Engine,
    cfg: &Config,
    ext: &str,
    fwd: &str,
    origin: &mut Origin,
    depth: u8,
    forwarding: &mut Forwarding,
) -> Decision {
    if fwd == crate::features::media_service::TO_MAILBOX {
        return Decision::Local(crate::features::media_service::Service::Leave(
            ext.to_owned(),
        ));
    }
    if let Some(u) = Uri::parse(fwd) {
        if !engine.is_our_domain(&u.host) {
            // The extension's forwarding: the call leaves the box on
            // its behalf, within its rights.
            *origin = Origin::Forwarded {
                extension: ext.to_owned(),
                number: u.user.clone().unwrap_or_default(),
            };
            return match uri_target(&u) {
                Some((dest, transport)) => {
                    Decision::Forward(vec![Target::outside(fwd.to_owned(), dest, transport)])
                }
                None => Decision::Reply(502, "Bad Gateway: Forward Target Not Resolvable", vec![]),
            };
        }
    }
    let number = Uri::parse(fwd).and_then(|u| u.user);
    let number = number.as_deref().unwrap_or(fwd);
    if cfg.resolve_user(number).is_none() {
        // A number outside (through the dialplan): placed with the
        // forwarding extension's rights, whoever called.
        *origin = Origin::Forwarded {
            extension: ext.to_owned(),
            number: number.to_owned(),
        };
    }
    lookup(engine, cfg, number, origin, depth + 1, forwarding)
}

fn lookup(
    engine: &Engine,
    cfg: &Config,
    user: &str,
    origin: &mut Origin,
    depth: u8,
    forwarding: &mut Forwarding,
) -> Decision {
    if let Some(ext) = cfg.resolve_user(user).filter(|e| e.enabled) {
        let settings = forwarding.applicable(crate::features::media_service::with_mailbox(
            cfg,
            ext,
            engine.forwarding().effective(ext),
        ));
        let bindings = engine.location().lookup(&ext.number);
        // Registered at another box of the cluster: that box delivers it.
        let remote = match bindings.is_empty() {
            true => crate::features::cluster::remote_targets(engine, &ext.number),
            false => Vec::new(),
        };
        let unregistered = bindings.is_empty() && remote.is_empty();
        // Unconditional, do-not-disturb and no registration at all decide
        // before anything rings (a bounded number of forwards deep).
        if let (Some((reason, fwd)), true) = (settings.immediate(unregistered), depth < 3) {
            forwarding.forwarded(&ext.number, &fwd, reason);
            return follow(engine, cfg, &ext.number, &fwd, origin, depth, forwarding);
        }
        if settings.do_not_disturb {
            return Decision::Reply(486, "Busy Here", vec![]);
        }
        if !remote.is_empty() {
            return Decision::Forward(remote);
        }
        if bindings.is_empty() {
            // A stranger must not tell an idle extension from none at all.
            if *origin == Origin::Stranger {
                return Decision::Reply(404, "Not Found", vec![]);
            }
            return Decision::Reply(480, "Temporarily Unavailable", vec![]);
        }
        let targets = contact_targets(bindings);
        // Busy, no answer, failure: decided as the phones answer.
        forwarding.plan(&ext.number, &settings, depth);
        return Decision::Forward(targets);
    }
    if let Some(g) = cfg.inbound.ring_groups.get(user) {
        return ring_group(engine, cfg, g, origin, depth, forwarding);
    }
    // Not a local user: a dialplan route for our own callers and trusted peers.
    let groups = match &*origin {
        Origin::Stranger => None,
        Origin::Peer(_) | Origin::Configured(_) => Some(Vec::new()),
        other => Some(
            other
                .extension()
                .and_then(|e| cfg.extensions.get(e))
                .map(|e| e.groups.clone())
                .unwrap_or_default(),
        ),
    };
    let Some(groups) = groups else {
        // A stranger dialling out through our routes is an attempt at toll fraud.
        if cfg.routes.iter().any(|r| user.starts_with(&r.prefix)) {
            return Decision::Refuse(Refusal::Relay);
        }
        return Decision::Reply(404, "Not Found", vec![]);
    };
    {
        for r in &cfg.routes {
            if !user.starts_with(&r.prefix) {
                continue;
            }
            if r.required_group
                .as_ref()
                .is_some_and(|g| !groups.contains(g))
            {
                return Decision::Reply(403, "Forbidden: Route Not Allowed", vec![]);
            }
            let number = format!("{}{}", r.prepend, user.get(r.strip..).unwrap_or(""));
            forwarding.record = forwarding.record.max(r.record);
            if let Some(set) = &r.dispatcher_set {
                return Decision::Dispatch(set.clone(), number);
            }
            let Some(trunk) = cfg.trunks.get(&r.trunk) else {
                continue;
            };
            if trunk.lookup.is_some() {
                return Decision::ResolvedTrunk(trunk.name.clone(), number);
            }
            let Ok(ip) = trunk.host.parse::<std::net::IpAddr>() else {
                return Decision::Reply(
                    502,
                    "Bad Gateway: Trunk Host Must Be An IP Address",
                    vec![],
                );
            };
            let host = crate::sip::format_host(&ip);
            return Decision::Forward(vec![Target {
                ruri: format!("sip:{number}@{host}:{}", trunk.port),
                dest: SocketAddr::new(ip, trunk.port),
                transport: trunk.transport,
                routes: vec![],
                trunk: Some(trunk.name.clone()),
                contact: false,
            }]);
        }
    }
    Decision::Reply(404, "Not Found", vec![])
}

/// The first destination of a dispatcher set for this call, and the rest
/// for failover (a destination by name as its DNS targets); 503 when every
/// destination is down or its name does not resolve.
fn dispatch(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    set: String,
    number: String,
) -> (Decision, Option<crate::features::dispatcher::Failover>) {
    let Some(sc) = cfg.dispatcher_sets.get(&set) else {
        return (Decision::Reply(404, "Not Found", vec![]), None);
    };
    let live = crate::features::dispatcher::candidates(sc, msg.call_id());
    let named = live.iter().any(|d| d.lookup.is_some());
    let mut dests = crate::features::dispatcher::names::expand(engine, sc, live);
    if dests.is_empty() {
        let reason = match named {
            true => "Service Unavailable: Destination Host Does Not Resolve",
            false => "Service Unavailable: No Destination Up",
        };
        return (Decision::Reply(503, reason, vec![]), None);
    }
    let first = dests.remove(0);
    if msg.method() == "INVITE" {
        crate::features::dispatcher::count_call(cfg, &set, &first);
    }
    let target = crate::features::dispatcher::target(&number, &first);
    let failover =
        crate::features::dispatcher::Failover::new(set, number, first, dests, sc.no_answer);
    (Decision::Forward(vec![target]), Some(failover))
}

/// A Record-Route entry naming `sock`.
fn record_route(sock: &crate::call::LocalSocket) -> String {
    format!(
        "<sip:{}:{}{};lr>",
        crate::sip::format_host(&sock.advertised.ip()),
        sock.advertised.port(),
        sock.transport.uri_param()
    )
}

/// Sends one branch per target, each a client transaction of server transaction `key`.
fn fork(
    engine: &Arc<Engine>,
    key: &str,
    msg: Message,
    targets: Vec<Target>,
    hash: u32,
    local: SocketAddr,
    original_uri: &str,
) {
    let method = msg.method().to_owned();
    let mut base = msg;
    let mf = base
        .header("Max-Forwards")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(70);
    base.set_header("Max-Forwards", mf.saturating_sub(1).min(70).to_string());
    let initial = param(base.header("To").unwrap_or(""), "tag").is_none();
    if initial && matches!(method.as_str(), "INVITE" | "SUBSCRIBE" | "REFER") {
        let sock = engine
            .socket_bound_to(local)
            .unwrap_or_else(|| engine.socket_for(Transport::Udp, local.is_ipv6()));
        base.insert_first("Record-Route", record_route(&sock));
        // Crossing transports (UDP in, TLS out, ...): a second entry for the
        // socket facing the callee, so each side routes in-dialog requests
        // to the socket it can reach (double Record-Route, RFC 5658).
        let out = targets.first().map(|t| t.transport);
        let same_out = out.filter(|o| targets.iter().all(|t| t.transport == *o));
        if let Some(out) = same_out.filter(|o| *o != sock.transport) {
            let v6 = targets.first().is_some_and(|t| t.dest.is_ipv6());
            base.insert_first("Record-Route", record_route(&engine.socket_for(out, v6)));
        }
        engine
            .fraud()
            .dialog_created(&base, engine.config().max_transactions);
    }
    if method == "INVITE" && initial {
        track_call(
            engine,
            base.call_id(),
            base.header("From").unwrap_or(""),
            original_uri,
        );
    }
    if method == "BYE" {
        engine.fraud().dialog_ended(base.call_id());
        engine.end_call(base.call_id(), 200);
    }
    send_branches(engine, key, &base, targets, hash);
}

/// Forwards a request without a transaction (ACK for 2xx): Route, else Request-URI.
pub fn forward_stateless(
    engine: &Arc<Engine>,
    mut msg: Message,
    source: SocketAddr,
    _transport: Transport,
) {
    // The ACK of a call the box answered itself (media services).
    if crate::features::media_service::ack(engine, &msg) {
        return;
    }
    if engine.config().mode == Mode::B2bua && crate::features::b2bua::owns(engine, &msg) {
        crate::features::b2bua::on_ack(engine, &msg);
        return;
    }
    if !engine.fraud().dialog_known(&msg) {
        tracing::debug!(call_id = %msg.call_id(), "ACK of no dialog of ours dropped");
        return;
    }
    pop_own_routes(engine, &mut msg);
    if !crate::features::nat_proxy::on_ack(engine, &mut msg, source) {
        tracing::info!(call_id = %msg.call_id(), "malformed SDP in ACK not anchored");
    }
    let aliased = match msg.header("Route") {
        None => crate::features::nat_proxy::contact::alias_target(msg.uri()),
        Some(_) => None,
    };
    if let Some((dest, transport, uri)) = aliased {
        msg.set_uri(uri);
        return forward_ack(engine, msg, dest, transport);
    }
    let next = match msg.header_values("Route").first() {
        Some(r) => Uri::parse(addr_uri(r)),
        None => Uri::parse(msg.uri()),
    };
    let Some(next) = next else { return };
    let target = if engine.is_local(&next.host, next.port) && msg.header("Route").is_none() {
        // An ACK sent to us by R-URI: the callee is found by the location service.
        next.user
            .as_deref()
            .and_then(|u| engine.config().resolve_user(u).map(|e| e.number.clone()))
            .and_then(|n| engine.location().lookup(&n).into_iter().next())
            .map(|b| {
                msg.set_uri(b.contact.clone());
                (b.source, b.transport)
            })
    } else {
        uri_target(&next)
    };
    let Some((dest, transport)) = target else {
        return;
    };
    forward_ack(engine, msg, dest, transport);
}

/// Sends a stateless ACK on to `dest`.
fn forward_ack(engine: &Arc<Engine>, mut msg: Message, dest: SocketAddr, transport: Transport) {
    let mf = msg
        .header("Max-Forwards")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(70);
    if mf == 0 {
        return;
    }
    msg.set_header("Max-Forwards", (mf - 1).min(70).to_string());
    let branch = engine.new_branch(loop_hash(&msg, msg.uri()));
    msg.push_header_front("Via", engine.via_for(transport, dest.is_ipv6(), &branch));
    engine.send(transport, dest, msg.to_bytes());
}
