//! Message-waiting indication (RFC 3842): an extension that authenticated
//! its SUBSCRIBE (Event: message-summary) to its own address (or the
//! mailbox code) gets a NOTIFY with the new/old counts at once and at every
//! change of its mailbox. Bounded by /pbx/presence's subscription limits;
//! a subscription lapses at its expiry unless refreshed. Another
//! extension's mailbox is refused (403), strangers too. Mailboxes with
//! unsolicited-mwi also notify their registered phones without a
//! subscription.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::call::client::send_request_tx;
use crate::config::Transport;
use crate::features::b2bua::contact_for;
use crate::features::decision::Decision;
use crate::features::outbound::Origin;
use crate::features::state::Engine;
use crate::sip::{addr_uri, param, response_to, Message, StartLine, Uri};

#[derive(Default)]
pub struct Subscriptions {
    subs: Mutex<HashMap<String, Sub>>,
}

struct Sub {
    mailbox: String,
    dest: SocketAddr,
    transport: Transport,
    call_id: String,
    local_tag: String,
    remote_tag: String,
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    cseq: u32,
    expires_at: Instant,
}

fn is_mwi(msg: &Message) -> bool {
    msg.header("Event")
        .or_else(|| msg.header("o"))
        .is_some_and(|e| {
            e.split(';')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("message-summary"))
        })
}

fn expires(msg: &Message, max: u32) -> u32 {
    msg.header("Expires")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(3600)
        .min(max)
}

/// Takes a message-summary SUBSCRIBE; true when answered here.
pub fn take(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
) -> bool {
    if msg.method() != "SUBSCRIBE" || !is_mwi(msg) {
        return false;
    }
    let cfg = engine.config();
    let reply = |code: u16, reason: &str| {
        engine.reply(key, response_to(msg, code, reason, Some(&engine.new_tag())));
        true
    };
    let max = cfg.presence.max_expires;
    if param(msg.header("To").unwrap_or(""), "tag").is_some() {
        return refresh(engine, key, msg, source, expires(msg, max));
    }
    let Some(ruri) = Uri::parse(msg.uri()) else {
        return reply(416, "Unsupported URI Scheme");
    };
    let ext = match crate::features::admission::authenticate(engine, &cfg, msg, "SUBSCRIBE", source)
    {
        Ok(Origin::Extension(e)) => e,
        Ok(_) => return reply(403, "Forbidden: Mailboxes Are For Our Extensions"),
        Err(Decision::Reply(code, reason, extra)) => {
            let mut r = response_to(msg, code, reason, Some(&engine.new_tag()));
            for (n, v) in extra {
                r.add_header(n, v);
            }
            engine.reply(key, r);
            return true;
        }
        Err(_) => return reply(403, "Forbidden"),
    };
    let user = ruri.user.unwrap_or_default();
    let own = user == cfg.voicemail.mailbox_code
        || cfg.resolve_user(&user).is_some_and(|e| e.number == ext);
    if !own {
        return reply(403, "Forbidden: Not Your Mailbox");
    }
    if !cfg.voicemail.mailboxes.contains_key(&ext) {
        return reply(404, "Not Found: No Mailbox");
    }
    let Some(contact) = msg.header("Contact").map(addr_uri).map(str::to_owned) else {
        return reply(400, "Bad Request: Contact Missing");
    };
    let expires = expires(msg, max);
    let from = msg.header("From").unwrap_or("");
    let mut sub = Sub {
        mailbox: ext.clone(),
        dest: source,
        transport,
        call_id: msg.call_id().to_owned(),
        local_tag: engine.new_tag(),
        remote_tag: param(from, "tag").unwrap_or("").to_owned(),
        local_uri: addr_uri(msg.header("To").unwrap_or("")).to_owned(),
        remote_uri: addr_uri(from).to_owned(),
        remote_target: contact,
        cseq: 0,
        expires_at: Instant::now() + Duration::from_secs(expires.into()),
    };
    let mut subs = engine.media().mwi.subs.lock();
    subs.retain(|_, s| s.expires_at > Instant::now());
    let mine = subs.values().filter(|s| s.mailbox == ext).count();
    if subs.len() >= cfg.presence.total || mine >= cfg.presence.per_extension {
        drop(subs);
        return reply(503, "Service Unavailable: Too Many Subscriptions");
    }
    let mut ok = response_to(msg, 200, "OK", Some(&sub.local_tag));
    ok.add_header("Expires", expires.to_string());
    ok.add_header("Contact", contact_for(engine, transport, source));
    engine.reply(key, ok);
    tracing::info!(mailbox = %ext, expires, "message-waiting subscription");
    let state = match expires {
        0 => "terminated;reason=timeout".to_owned(),
        e => format!("active;expires={e}"),
    };
    notify(engine, &mut sub, &state);
    if expires > 0 {
        subs.insert(sub.call_id.clone(), sub);
    }
    true
}

fn refresh(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    expires: u32,
) -> bool {
    let mut subs = engine.media().mwi.subs.lock();
    let Some(sub) = subs.get_mut(msg.call_id()) else {
        return false;
    };
    let reply = |code: u16, reason: &str| {
        engine.reply(key, response_to(msg, code, reason, None));
        true
    };
    let to_tag = param(msg.header("To").unwrap_or(""), "tag");
    if to_tag != Some(sub.local_tag.as_str()) {
        return reply(481, "Subscription Does Not Exist");
    }
    if source != sub.dest {
        return reply(403, "Forbidden: Not The Subscriber");
    }
    let mut ok = response_to(msg, 200, "OK", None);
    ok.add_header("Expires", expires.to_string());
    engine.reply(key, ok);
    if expires == 0 {
        if let Some(mut sub) = subs.remove(msg.call_id()) {
            notify(engine, &mut sub, "terminated;reason=timeout");
        }
        return true;
    }
    sub.expires_at = Instant::now() + Duration::from_secs(expires.into());
    notify(engine, sub, &format!("active;expires={expires}"));
    true
}

/// The mailbox changed: its subscribers get the new counts.
pub fn changed(engine: &Arc<Engine>, mailbox: &str) {
    unsolicited(engine, mailbox);
    let mut subs = engine.media().mwi.subs.lock();
    let now = Instant::now();
    subs.retain(|_, s| s.expires_at > now);
    for sub in subs.values_mut().filter(|s| s.mailbox == mailbox) {
        let left = sub.expires_at.saturating_duration_since(now).as_secs();
        notify(engine, sub, &format!("active;expires={left}"));
    }
}

/// Unsolicited NOTIFYs to the registered phones of `mailbox` (outside
/// any dialog; phones that expect them ignore Subscription-State).
fn unsolicited(engine: &Arc<Engine>, mailbox: &str) {
    let cfg = engine.config();
    if !cfg.voicemail.unsolicited.contains(mailbox) {
        return;
    }
    let (new, old) = engine.media().voicemail.counts(mailbox);
    let domain = cfg
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let account = format!("sip:{mailbox}@{domain}");
    for b in engine.location().lookup(mailbox) {
        let mut req = Message {
            start: StartLine::Request {
                method: "NOTIFY".into(),
                uri: b.contact.clone(),
            },
            headers: Vec::new(),
            body: summary(new, old, &account).into_bytes(),
        };
        let branch = engine.new_branch(0);
        req.add_header(
            "Via",
            engine.via_for(b.transport, b.source.is_ipv6(), &branch),
        );
        req.add_header("Max-Forwards", "70".into());
        req.add_header("From", format!("<{account}>;tag={}", engine.new_tag()));
        req.add_header("To", format!("<{}>", b.contact));
        req.add_header(
            "Call-ID",
            format!("{}{}@mwi", engine.new_tag(), engine.new_tag()),
        );
        req.add_header("CSeq", "1 NOTIFY".into());
        req.add_header("Event", "message-summary".into());
        req.add_header("Subscription-State", "active".into());
        req.add_header("Content-Type", "application/simple-message-summary".into());
        send_request_tx(engine, req, b.source, b.transport);
    }
}

/// The body of a NOTIFY (RFC 3842 §5.2).
pub fn summary(new: usize, old: usize, account: &str) -> String {
    let waiting = if new > 0 { "yes" } else { "no" };
    format!("Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/{old} (0/0)\r\n")
}

fn notify(engine: &Arc<Engine>, sub: &mut Sub, state: &str) {
    let (new, old) = engine.media().voicemail.counts(&sub.mailbox);
    sub.cseq += 1;
    let mut req = Message {
        start: StartLine::Request {
            method: "NOTIFY".into(),
            uri: sub.remote_target.clone(),
        },
        headers: Vec::new(),
        body: summary(new, old, &sub.local_uri).into_bytes(),
    };
    let branch = engine.new_branch(0);
    req.add_header(
        "Via",
        engine.via_for(sub.transport, sub.dest.is_ipv6(), &branch),
    );
    req.add_header("Max-Forwards", "70".into());
    req.add_header("From", format!("<{}>;tag={}", sub.local_uri, sub.local_tag));
    req.add_header("To", format!("<{}>;tag={}", sub.remote_uri, sub.remote_tag));
    req.add_header("Call-ID", sub.call_id.clone());
    req.add_header("CSeq", format!("{} NOTIFY", sub.cseq));
    req.add_header("Contact", contact_for(engine, sub.transport, sub.dest));
    req.add_header("Event", "message-summary".into());
    req.add_header("Subscription-State", state.to_owned());
    req.add_header("Content-Type", "application/simple-message-summary".into());
    send_request_tx(engine, req, sub.dest, sub.transport);
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_body() {
        let b = super::summary(2, 1, "sip:*97@besip.test");
        assert_eq!(
            b,
            "Messages-Waiting: yes\r\nMessage-Account: sip:*97@besip.test\r\nVoice-Message: 2/1 (0/0)\r\n"
        );
        assert!(super::summary(0, 3, "a").starts_with("Messages-Waiting: no\r\n"));
    }
}
