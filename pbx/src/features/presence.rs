//! Busy-lamp fields (YANG /pbx/presence): the dialog event package (RFC
//! 4235) served by the PBX itself, in both modes. An extension that
//! authenticated its SUBSCRIBE (Event: dialog) to another extension of ours
//! gets a NOTIFY with application/dialog-info+xml at once and whenever the
//! calls of that extension change; the dialogs are those of the call list
//! (trying, early, confirmed; a dialog gone is sent once as terminated).
//!
//! Changes are found by comparing each subscription's last report with the
//! call list once a second and when a call ends: no hook in the call path,
//! and a burst of call changes costs one NOTIFY per watcher and second.
//!
//! Bounded: subscriptions per watching extension and in total (503 beyond),
//! an expiry no longer than max-expires; a NOTIFY refused (481, 4xx-6xx)
//! ends its subscription (RFC 6665 §4.1.3). Strangers get 403.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::call::client::send_request_tx;
use crate::config::{Config, Transport};
use crate::features::admission::our_extension;
use crate::features::state::Engine;
use crate::sip::{addr_uri, param, response_to, Message, StartLine, Uri};

/// Dialog-event subscriptions, by the Call-ID of their dialog.
#[derive(Default)]
pub struct Presence {
    subs: Mutex<HashMap<String, Sub>>,
}

struct Sub {
    /// The watching extension.
    watcher: String,
    /// The watched extension.
    target: String,
    dest: SocketAddr,
    transport: Transport,
    call_id: String,
    local_tag: String,
    remote_tag: String,
    /// The watched resource (our From).
    local_uri: String,
    remote_uri: String,
    /// The watcher's Contact: Request-URI of our NOTIFYs.
    remote_target: String,
    cseq: u32,
    expires_at: Instant,
    version: u32,
    /// The dialogs of the last NOTIFY: (id, direction, state).
    last: Vec<Dialog>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct Dialog {
    id: String,
    initiator: bool,
    state: &'static str,
    /// A call ringing at the extension (B2BUA): the Call-ID and our tag of
    /// its leg, for a phone that picks it up with Replaces.
    pickup: Option<(String, String)>,
}

/// What a lamp shows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lamp {
    Idle,
    Ringing,
    Busy,
}

impl Lamp {
    fn name(self) -> &'static str {
        match self {
            Lamp::Idle => "idle",
            Lamp::Ringing => "ringing",
            Lamp::Busy => "busy",
        }
    }
}

fn lamp(dialogs: &[Dialog]) -> Lamp {
    let live = dialogs.iter().filter(|d| d.state != "terminated");
    let mut l = Lamp::Idle;
    for d in live {
        if d.state == "confirmed" || d.initiator {
            return Lamp::Busy;
        }
        l = Lamp::Ringing;
    }
    l
}

/// True for an Event header of the dialog package.
fn is_dialog_event(msg: &Message) -> bool {
    msg.header("Event")
        .and_then(|e| e.split(';').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("dialog"))
}

/// Takes the SUBSCRIBEs of the dialog package addressed to an extension of
/// ours, and the refreshes of our subscriptions; true when `msg` was
/// answered here.
pub fn take(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
) -> bool {
    if msg.method() != "SUBSCRIBE" {
        return false;
    }
    let cfg = engine.config();
    let to_tag = param(msg.header("To").unwrap_or(""), "tag");
    if to_tag.is_some() {
        if !engine.presence().subs.lock().contains_key(msg.call_id()) {
            return false;
        }
        refresh(engine, &cfg, key, msg, source);
        return true;
    }
    if !is_dialog_event(msg) {
        return false;
    }
    let Some(target) = engine
        .user_dialled_here(msg)
        .and_then(|u| cfg.resolve_user(&u).map(|e| e.number.clone()))
    else {
        return false;
    };
    let reply = |code: u16, reason: &str| {
        engine.answer_with(key, msg, (code, reason), vec![]);
        true
    };
    // Who is on the phone is our users' business only.
    let Some(watcher) = our_extension(
        engine,
        &cfg,
        key,
        msg,
        source,
        "Forbidden: Busy Lamps Are For Our Extensions",
    ) else {
        return true;
    };
    let expires = requested_expires(msg, cfg.presence.max_expires);
    let Some(contact) = msg.header("Contact").map(addr_uri).map(str::to_owned) else {
        return reply(400, "Bad Request: Contact Missing");
    };
    if expires == 0 {
        // A fetch: one NOTIFY, no subscription kept.
        let tag = engine.new_tag();
        let mut ok = response_to(msg, 200, "OK", Some(&tag));
        ok.add_header("Expires", "0".into());
        add_contact(engine, &mut ok, transport, source);
        engine.reply(key, ok);
        let mut sub = new_sub(
            engine, &cfg, msg, watcher, target, source, transport, tag, contact, 0,
        );
        let now = dialogs_of(engine, &cfg);
        notify(engine, &mut sub, &now, "terminated;reason=timeout");
        return true;
    }
    let tag = engine.new_tag();
    let sub = new_sub(
        engine, &cfg, msg, watcher, target, source, transport, tag, contact, expires,
    );
    let now = dialogs_of(engine, &cfg);
    // Counted and filed under one lock: parallel SUBSCRIBEs of one phone
    // cannot pass the limit together.
    let mut subs = engine.presence().subs.lock();
    if subs.len() >= cfg.presence.total {
        drop(subs);
        tracing::warn!(watcher = %sub.watcher, "presence: subscription limit reached");
        return reply(503, "Service Unavailable: Too Many Subscriptions");
    }
    let own = subs.values().filter(|s| s.watcher == sub.watcher).count();
    if own >= cfg.presence.per_extension {
        drop(subs);
        tracing::info!(watcher = %sub.watcher, "presence: per-extension subscription limit reached");
        return reply(503, "Service Unavailable: Too Many Subscriptions");
    }
    let mut ok = response_to(msg, 200, "OK", Some(&sub.local_tag));
    ok.add_header("Expires", expires.to_string());
    add_contact(engine, &mut ok, transport, source);
    engine.reply(key, ok);
    tracing::info!(watcher = %sub.watcher, target = %sub.target, expires, "presence: subscribed");
    let sub = subs.entry(sub.call_id.clone()).or_insert(sub);
    notify(engine, sub, &now, &format!("active;expires={expires}"));
    true
}

fn requested_expires(msg: &Message, max: u32) -> u32 {
    msg.header("Expires")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(3600)
        .min(max)
}

fn add_contact(engine: &Engine, r: &mut Message, transport: Transport, peer: SocketAddr) {
    let s = engine.socket_for(transport, peer.is_ipv6());
    r.add_header(
        "Contact",
        format!(
            "<sip:{}:{}{}>",
            crate::sip::format_host(&s.advertised.ip()),
            s.advertised.port(),
            transport.uri_param()
        ),
    );
}

#[allow(clippy::too_many_arguments)]
fn new_sub(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    watcher: String,
    target: String,
    source: SocketAddr,
    transport: Transport,
    local_tag: String,
    contact: String,
    expires: u32,
) -> Sub {
    let from = msg.header("From").unwrap_or("");
    let domain = cfg.domains.first().cloned().unwrap_or_else(|| {
        crate::sip::format_host(
            &engine
                .socket_for(transport, source.is_ipv6())
                .advertised
                .ip(),
        )
    });
    Sub {
        watcher,
        local_uri: format!("sip:{target}@{domain}"),
        target,
        dest: source,
        transport,
        call_id: msg.call_id().to_owned(),
        local_tag,
        remote_tag: param(from, "tag").unwrap_or("").to_owned(),
        remote_uri: addr_uri(from).to_owned(),
        remote_target: contact,
        cseq: 0,
        expires_at: Instant::now() + Duration::from_secs(expires.into()),
        version: 0,
        last: Vec::new(),
    }
}

/// A SUBSCRIBE in one of our subscriptions: refresh, or end with Expires: 0.
fn refresh(engine: &Arc<Engine>, cfg: &Config, key: &str, msg: &Message, source: SocketAddr) {
    let expires = requested_expires(msg, cfg.presence.max_expires);
    let mut subs = engine.presence().subs.lock();
    let Some(sub) = subs.get_mut(msg.call_id()) else {
        return;
    };
    let reply = |code: u16, reason: &str| {
        engine.reply(key, response_to(msg, code, reason, None));
    };
    let to_tag = param(msg.header("To").unwrap_or(""), "tag");
    let from_tag = param(msg.header("From").unwrap_or(""), "tag");
    if to_tag != Some(sub.local_tag.as_str()) || from_tag != Some(sub.remote_tag.as_str()) {
        return reply(481, "Subscription Does Not Exist");
    }
    // The subscriber's own phone only: a Call-ID and tags prove nothing.
    if source != sub.dest {
        return reply(403, "Forbidden: Not The Subscriber");
    }
    let mut ok = response_to(msg, 200, "OK", None);
    ok.add_header("Expires", expires.to_string());
    add_contact(engine, &mut ok, sub.transport, source);
    engine.reply(key, ok);
    let now = dialogs_of(engine, cfg);
    if expires == 0 {
        let mut sub = match subs.remove(msg.call_id()) {
            Some(s) => s,
            None => return,
        };
        drop(subs);
        tracing::info!(watcher = %sub.watcher, target = %sub.target, "presence: unsubscribed");
        notify(engine, &mut sub, &now, "terminated;reason=timeout");
        return;
    }
    sub.expires_at = Instant::now() + Duration::from_secs(expires.into());
    // A refresh is answered with the full state (RFC 6665 §4.2.2).
    sub.last.clear();
    notify(engine, sub, &now, &format!("active;expires={expires}"));
}

/// The dialogs of every extension in a call now, from the call list.
fn dialogs_of(engine: &Engine, cfg: &Config) -> HashMap<String, Vec<Dialog>> {
    let mut out: HashMap<String, Vec<Dialog>> = HashMap::new();
    let ext_of = |uri: &str| {
        Uri::parse(uri)
            .and_then(|u| u.user)
            .and_then(|u| cfg.resolve_user(&u).map(|e| e.number.clone()))
    };
    // A snapshot first: no lock is held across another.
    let calls: Vec<(String, String, String, &'static str)> = engine
        .calls()
        .iter()
        .map(|(id, c)| (id.clone(), c.caller.clone(), c.callee.clone(), c.state))
        .collect();
    for (call_id, caller, callee, state) in calls {
        let state = match state {
            "established" => "confirmed",
            "ringing" => "early",
            _ => "trying",
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        call_id.hash(&mut h);
        let id = format!("{:016x}", h.finish());
        let pickup = match state {
            "confirmed" => None,
            _ => {
                let call = engine.b2b_calls().lock().get(&call_id).cloned();
                call.map(|c| {
                    let c = c.lock();
                    (c.b.call_id.clone(), c.b.local_tag.clone())
                })
            }
        };
        for (uri, initiator) in [(&caller, true), (&callee, false)] {
            if let Some(ext) = ext_of(uri) {
                out.entry(ext).or_default().push(Dialog {
                    id: id.clone(),
                    initiator,
                    state,
                    pickup: pickup.clone().filter(|_| !initiator),
                });
            }
        }
    }
    out
}

/// Sends the state of `sub`'s extension (its dialogs now, and those of the
/// last report that are gone, as terminated); remembers what was sent.
fn notify(
    engine: &Arc<Engine>,
    sub: &mut Sub,
    now: &HashMap<String, Vec<Dialog>>,
    subscription_state: &str,
) {
    let current = now.get(&sub.target).cloned().unwrap_or_default();
    let mut report = current.clone();
    for d in &sub.last {
        if d.state != "terminated" && !current.iter().any(|c| c.id == d.id) {
            report.push(Dialog {
                state: "terminated",
                ..d.clone()
            });
        }
    }
    let body = dialog_info(&sub.local_uri, sub.version, &report);
    sub.version += 1;
    sub.last = current;
    sub.cseq += 1;
    let mut n = Message {
        start: StartLine::Request {
            method: "NOTIFY".into(),
            uri: sub.remote_target.clone(),
        },
        headers: Vec::new(),
        body: body.into_bytes(),
    };
    let branch = engine.new_branch(0);
    n.add_header(
        "Via",
        engine.via_for(sub.transport, sub.dest.is_ipv6(), &branch),
    );
    n.add_header("Max-Forwards", "70".into());
    n.add_header("From", format!("<{}>;tag={}", sub.local_uri, sub.local_tag));
    n.add_header("To", format!("<{}>;tag={}", sub.remote_uri, sub.remote_tag));
    n.add_header("Call-ID", sub.call_id.clone());
    n.add_header("CSeq", format!("{} NOTIFY", sub.cseq));
    add_contact(engine, &mut n, sub.transport, sub.dest);
    n.add_header("Event", "dialog".into());
    n.add_header("Subscription-State", subscription_state.to_owned());
    n.add_header("Content-Type", "application/dialog-info+xml".into());
    send_request_tx(engine, n, sub.dest, sub.transport);
}

/// application/dialog-info+xml (RFC 4235), full state.
fn dialog_info(entity: &str, version: u32, dialogs: &[Dialog]) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{}\">\r\n",
        xml_escape(entity)
    );
    for d in dialogs {
        let direction = if d.initiator {
            "initiator"
        } else {
            "recipient"
        };
        // What a phone needs to pick the call up (RFC 4235 §4.1.1):
        // Replaces: call-id;to-tag=<local-tag>;from-tag=<remote-tag>.
        let ids = match &d.pickup {
            Some((call_id, ours)) => format!(
                " call-id=\"{}\" remote-tag=\"{}\"",
                xml_escape(call_id),
                xml_escape(ours)
            ),
            None => String::new(),
        };
        x.push_str(&format!(
            "<dialog id=\"{}\"{ids} direction=\"{direction}\"><state>{}</state></dialog>\r\n",
            d.id, d.state
        ));
    }
    x.push_str("</dialog-info>\r\n");
    x
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Sends what changed since each subscription's last report, and ends the
/// subscriptions that expired.
pub fn tick(engine: &Arc<Engine>) {
    let presence = engine.presence();
    if presence.subs.lock().is_empty() {
        return;
    }
    let cfg = engine.config();
    let now = dialogs_of(engine, &cfg);
    let mut subs = presence.subs.lock();
    let expired: Vec<String> = subs
        .values()
        .filter(|s| s.expires_at <= Instant::now())
        .map(|s| s.call_id.clone())
        .collect();
    for id in expired {
        if let Some(mut s) = subs.remove(&id) {
            notify(engine, &mut s, &now, "terminated;reason=timeout");
        }
    }
    for sub in subs.values_mut() {
        let current = now.get(&sub.target).map(Vec::as_slice).unwrap_or(&[]);
        if current != sub.last.as_slice() {
            let left = sub.expires_at.saturating_duration_since(Instant::now());
            notify(
                engine,
                sub,
                &now,
                &format!("active;expires={}", left.as_secs()),
            );
        }
    }
}

/// A NOTIFY refused by the watcher ends its subscription.
pub fn on_response(engine: &Engine, req: &Message, resp: &Message) {
    if req.method() != "NOTIFY" || !is_dialog_event(req) {
        return;
    }
    let code = resp.status().unwrap_or(0);
    if code >= 300 && code != 408 {
        if let Some(s) = engine.presence().subs.lock().remove(req.call_id()) {
            tracing::info!(watcher = %s.watcher, target = %s.target, code, "presence: NOTIFY refused, subscription ended");
        }
    }
}

/// RFC 7951 JSON of /pbx/presence-state.
pub fn state_json(engine: &Engine) -> Value {
    let cfg = engine.config();
    let subs = engine.presence().subs.lock();
    let mut watched: HashMap<&str, u32> = HashMap::new();
    for s in subs.values() {
        *watched.entry(s.target.as_str()).or_default() += 1;
    }
    let total = subs.len();
    let targets: Vec<(String, u32)> = watched
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    drop(subs);
    let now = dialogs_of(engine, &cfg);
    let mut list: Vec<Value> = targets
        .into_iter()
        .map(|(t, n)| {
            let l = lamp(now.get(&t).map(Vec::as_slice).unwrap_or(&[]));
            json!({"number": t, "state": l.name(), "watchers": n})
        })
        .collect();
    list.sort_by(|a, b| a["number"].as_str().cmp(&b["number"].as_str()));
    json!({"subscriptions": total, "extension": list})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(initiator: bool, state: &'static str) -> Dialog {
        Dialog {
            id: "x".into(),
            initiator,
            state,
            pickup: None,
        }
    }

    #[test]
    fn lamps_follow_the_dialogs() {
        assert_eq!(lamp(&[]), Lamp::Idle);
        assert_eq!(lamp(&[d(false, "early")]), Lamp::Ringing);
        assert_eq!(lamp(&[d(false, "trying")]), Lamp::Ringing);
        assert_eq!(lamp(&[d(true, "trying")]), Lamp::Busy);
        assert_eq!(lamp(&[d(false, "confirmed")]), Lamp::Busy);
        assert_eq!(lamp(&[d(false, "terminated")]), Lamp::Idle);
    }

    #[test]
    fn dialog_info_is_full_state_xml() {
        let x = dialog_info("sip:101@a&b", 3, &[d(false, "early")]);
        assert!(x.contains("version=\"3\" state=\"full\" entity=\"sip:101@a&amp;b\""));
        assert!(
            x.contains("<dialog id=\"x\" direction=\"recipient\"><state>early</state></dialog>")
        );
    }
}
