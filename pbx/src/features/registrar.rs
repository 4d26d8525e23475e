//! Registrar (RFC 3261 §10.3): digest authentication, expires limits (423),
//! max contacts per AOR, `*` removal, q-values and Path (RFC 3327).

use std::net::SocketAddr;

use crate::auth::Verdict;
use crate::call::location::{unix_now, Binding};
use crate::config::{Config, Transport};
use crate::features::state::Engine;
use crate::sip::{addr_uri, param, response_to, Message, Uri};

fn reply(req: &Message, code: u16, reason: &str, tag: &str) -> Message {
    response_to(req, code, reason, Some(tag))
}

/// Handles a REGISTER addressed to us and returns the response to send.
pub fn register(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
) -> Message {
    let tag = engine.new_tag();
    let Some(to) = msg.header("To").map(addr_uri).and_then(Uri::parse) else {
        return reply(msg, 400, "Bad To Header", &tag);
    };
    let Some(user) = to.user.as_deref() else {
        return reply(msg, 400, "To Has No User", &tag);
    };
    if !engine.is_our_domain(&to.host) {
        return reply(msg, 403, "Domain Not Served", &tag);
    }
    let auth = engine.auth();
    let credentials = msg
        .headers
        .iter()
        .filter(|h| h.name == "Authorization")
        .map(|h| h.value.as_str());
    let password_of = |u: &str| cfg.password_of(u);
    let verdict = auth.verify(
        credentials,
        "REGISTER",
        msg.uri(),
        |u| engine.uri_is_ours(u),
        password_of,
    );
    let challenge = |stale: bool| {
        let mut r = reply(msg, 401, "Unauthorized", &tag);
        for c in auth.challenges(stale) {
            r.add_header("WWW-Authenticate", c);
        }
        r
    };
    let auth_user = match verdict {
        Verdict::Ok(u) => u,
        Verdict::Missing => return challenge(false),
        Verdict::Stale => return challenge(true),
        Verdict::Failed(why) => {
            engine.counters().auth_failure();
            tracing::info!(%source, user, reason = why, "REGISTER authentication failed");
            return challenge(false);
        }
    };
    // The authenticated user may register only its own extension (or an alias of it).
    let Some(ext) = cfg.resolve_user(user).filter(|e| e.number == auth_user) else {
        engine.counters().auth_failure();
        return reply(msg, 403, "Forbidden: Credentials Do Not Match To", &tag);
    };
    let aor = ext.number.clone();

    let header_expires = match msg.header("Expires") {
        Some(v) => match v.trim().parse::<u32>() {
            Ok(e) => Some(e),
            Err(_) => return reply(msg, 400, "Bad Expires Header", &tag),
        },
        None => None,
    };
    let contacts = msg.header_values("Contact");
    if contacts.contains(&"*") {
        if contacts.len() != 1 || header_expires != Some(0) {
            return reply(
                msg,
                400,
                "Wildcard Contact Needs Expires 0 And No Other Contact",
                &tag,
            );
        }
        engine.location().remove(&aor, None);
        return reply(msg, 200, "OK", &tag);
    }

    // Validate every contact before changing anything.
    let mut updates = Vec::with_capacity(contacts.len());
    for c in &contacts {
        let uri_text = addr_uri(c);
        if Uri::parse(uri_text).is_none() {
            return reply(msg, 400, "Bad Contact URI", &tag);
        }
        let expires = match param(c, "expires") {
            Some(v) => match v.parse::<u32>() {
                Ok(e) => e,
                Err(_) => return reply(msg, 400, "Bad Contact Expires", &tag),
            },
            None => header_expires.unwrap_or(cfg.default_expires),
        };
        if expires != 0 && expires < cfg.min_expires {
            let mut r = reply(msg, 423, "Interval Too Brief", &tag);
            r.add_header("Min-Expires", cfg.min_expires.to_string());
            return r;
        }
        let q = match param(c, "q") {
            Some(v) => match v.parse::<f32>() {
                Ok(q) if (0.0..=1.0).contains(&q) => q,
                _ => return reply(msg, 400, "Bad Contact q-value", &tag),
            },
            None => 1.0,
        };
        updates.push((uri_text.to_owned(), expires.min(cfg.max_expires), q));
    }
    let mut kept = 0;
    engine.location().visit(&aor, |b| {
        if !updates.iter().any(|(c, _, _)| c == &b.contact) {
            kept += 1;
        }
    });
    let after = kept + updates.iter().filter(|(_, e, _)| *e > 0).count();
    if after > cfg.max_contacts {
        return reply(msg, 403, "Too Many Contacts", &tag);
    }

    let now = unix_now();
    let user_agent = msg.header("User-Agent").unwrap_or("").to_owned();
    let (cseq, _) = msg.cseq().unwrap_or((0, "REGISTER"));
    let path: Vec<String> = msg
        .header_values("Path")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let longest = updates.iter().map(|(_, e, _)| *e).max().unwrap_or(0);
    if transport.is_stream() && longest > 0 {
        // Requests for the phone go over this connection: keep it.
        engine
            .transports()
            .hold_tcp(source, std::time::Duration::from_secs(longest.into()));
    }
    for (contact, expires, q) in updates {
        if expires == 0 {
            engine.location().remove(&aor, Some(&contact));
        } else {
            engine.location().put(Binding {
                aor: aor.clone(),
                contact,
                source,
                transport,
                expires_at: now + u64::from(expires),
                user_agent: user_agent.clone(),
                q,
                call_id: msg.call_id().to_owned(),
                cseq,
                path: path.clone(),
            });
        }
    }
    let mut ok = reply(msg, 200, "OK", &tag);
    engine.location().visit(&aor, |b| {
        let mut v = Vec::with_capacity(b.contact.len() + 16);
        v.push(b'<');
        v.extend_from_slice(b.contact.as_bytes());
        v.extend_from_slice(b">;expires=");
        let left = b.expires_at.saturating_sub(now);
        crate::sip::text::push_decimal(&mut v, usize::try_from(left).unwrap_or(usize::MAX));
        // Only ASCII digits were appended to a valid string.
        ok.add_header("Contact", String::from_utf8(v).unwrap_or_default());
    });
    for p in &path {
        ok.add_header("Path", p.clone());
    }
    ok.add_header("Date", http_date(now));
    ok
}

/// The Date header value (RFC 3261 §20.17), formatted once per second per thread.
fn http_date(now: u64) -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    CACHE.with_borrow_mut(|(at, text)| {
        if *at != now || text.is_empty() {
            let t = chrono::DateTime::from_timestamp(now as i64, 0).unwrap_or_default();
            *text = t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            *at = now;
        }
        text.clone()
    })
}
