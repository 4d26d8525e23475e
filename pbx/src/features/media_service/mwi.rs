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
use crate::features::admission::our_extension;
use crate::features::b2bua::{contact_for, new_request, Leg};
use crate::features::state::Engine;
use crate::sip::{param, response_to, Message, StartLine, Uri};

#[derive(Default)]
pub struct Subscriptions {
    subs: Mutex<HashMap<String, Sub>>,
}

struct Sub {
    mailbox: String,
    /// The subscription's dialog (our NOTIFYs go on it).
    leg: Leg,
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
        engine.answer_with(key, msg, (code, reason), vec![]);
        true
    };
    let max = cfg.presence.max_expires;
    if param(msg.header("To").unwrap_or(""), "tag").is_some() {
        return refresh(engine, key, msg, source, expires(msg, max));
    }
    let Some(ruri) = Uri::parse(msg.uri()) else {
        return reply(416, "Unsupported URI Scheme");
    };
    let Some(ext) = our_extension(
        engine,
        &cfg,
        key,
        msg,
        source,
        "Forbidden: Mailboxes Are For Our Extensions",
    ) else {
        return true;
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
    if msg.header("Contact").is_none() {
        return reply(400, "Bad Request: Contact Missing");
    }
    let expires = expires(msg, max);
    let mut sub = Sub {
        mailbox: ext.clone(),
        leg: Leg::answering(msg, engine.new_tag(), source, transport),
        expires_at: Instant::now() + Duration::from_secs(expires.into()),
    };
    let mut subs = engine.media().mwi.subs.lock();
    subs.retain(|_, s| s.expires_at > Instant::now());
    let mine = subs.values().filter(|s| s.mailbox == ext).count();
    if subs.len() >= cfg.presence.total || mine >= cfg.presence.per_extension {
        drop(subs);
        return reply(503, "Service Unavailable: Too Many Subscriptions");
    }
    let mut ok = response_to(msg, 200, "OK", Some(&sub.leg.local_tag));
    ok.add_header("Expires", expires.to_string());
    ok.add_header("Contact", contact_for(engine, transport, source));
    engine.reply(key, ok);
    tracing::info!(mailbox = %ext, expires, "message-waiting subscription");
    let state = match expires {
        0 => "terminated;reason=timeout".to_owned(),
        e => format!("active;expires={e}"),
    };
    let counts = engine.media().voicemail.counts(&ext);
    notify(engine, &mut sub, counts, &state);
    if expires > 0 {
        subs.insert(sub.leg.call_id.clone(), sub);
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
    if to_tag != Some(sub.leg.local_tag.as_str()) {
        return reply(481, "Subscription Does Not Exist");
    }
    if source != sub.leg.dest {
        return reply(403, "Forbidden: Not The Subscriber");
    }
    let mut ok = response_to(msg, 200, "OK", None);
    ok.add_header("Expires", expires.to_string());
    engine.reply(key, ok);
    let counts = engine.media().voicemail.counts(&sub.mailbox);
    if expires == 0 {
        if let Some(mut sub) = subs.remove(msg.call_id()) {
            notify(engine, &mut sub, counts, "terminated;reason=timeout");
        }
        return true;
    }
    sub.expires_at = Instant::now() + Duration::from_secs(expires.into());
    notify(engine, sub, counts, &format!("active;expires={expires}"));
    true
}

/// The mailbox changed: its subscribers get the new counts.
pub fn changed(engine: &Arc<Engine>, mailbox: &str) {
    // The mailbox is read once for every phone told.
    let counts = engine.media().voicemail.counts(mailbox);
    unsolicited(engine, mailbox, counts);
    let mut subs = engine.media().mwi.subs.lock();
    let now = Instant::now();
    subs.retain(|_, s| s.expires_at > now);
    for sub in subs.values_mut().filter(|s| s.mailbox == mailbox) {
        let left = sub.expires_at.saturating_duration_since(now).as_secs();
        notify(engine, sub, counts, &format!("active;expires={left}"));
    }
}

/// Unsolicited NOTIFYs to the registered phones of `mailbox` (outside
/// any dialog; phones that expect them ignore Subscription-State).
fn unsolicited(engine: &Arc<Engine>, mailbox: &str, (new, old): (usize, usize)) {
    let cfg = engine.config();
    if !cfg.voicemail.unsolicited.contains(mailbox) {
        return;
    }
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

fn notify(engine: &Arc<Engine>, sub: &mut Sub, (new, old): (usize, usize), state: &str) {
    let leg = &mut sub.leg;
    leg.cseq += 1;
    let mut req = new_request("NOTIFY", leg, leg.cseq);
    let branch = engine.new_branch(0);
    req.push_header_front(
        "Via",
        engine.via_for(leg.transport, leg.dest.is_ipv6(), &branch),
    );
    req.add_header("Contact", contact_for(engine, leg.transport, leg.dest));
    req.add_header("Event", "message-summary".into());
    req.add_header("Subscription-State", state.to_owned());
    req.add_header("Content-Type", "application/simple-message-summary".into());
    req.body = summary(new, old, &leg.local_uri).into_bytes();
    send_request_tx(engine, req, leg.dest, leg.transport);
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
