//! Accounting (YANG /pbx/accounting): a call detail record per call, written
//! to SQLite by a writer thread (off the SIP path); with `enabled`, prepaid
//! credit: calls are refused when the caller's balance is gone or the
//! destination is dearer than the maximum, an answered call is limited to what
//! the balance buys (ended with BYE in B2BUA mode), and its price is deducted
//! at the end. Money is kept in ten-thousandths (YANG decimal64, 4 digits).
//! The configured balance is the credit at the time of the commit: the running
//! balance restarts from it whenever a commit changes it.

pub mod store;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use self::store::{now_text, text_before, Write, RECENT};
pub use self::store::{Accounting, Cdr, Forwarded, Meta};
use super::state::{Call, Engine};
pub use crate::call::Target;
use crate::config::Config;
pub use crate::features::rating::{format_price, parse_price, Settings};
use crate::sip::{addr_uri, Message, Uri};

/// Who a new call is placed for and whether it leaves the box.
#[derive(Clone, Copy)]
pub struct Placement<'a> {
    pub origin: &'a crate::features::outbound::Origin,
    pub outbound: bool,
    pub source: std::net::SocketAddr,
}

/// Admission of a new INVITE: Err((code, reason)) refuses it; Ok(Some(meta))
/// when accounting has something to remember of the call. Outbound calls
/// take a place among the simultaneous outbound calls and are held to the
/// caller's hourly spend limit. Cheap when nothing of this is configured.
pub fn admit(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    dialled: &str,
    targets: &[Target],
    placement: Placement,
) -> Result<Option<Box<Meta>>, (u16, &'static str)> {
    let acc = &cfg.accounting;
    let Placement {
        origin,
        outbound,
        source,
    } = placement;
    // The account charged is the one that proved itself, never a From.
    let caller_ext = origin.extension().map(str::to_owned);
    let spend_limit = caller_ext
        .as_deref()
        .filter(|_| outbound)
        .and_then(|e| cfg.extensions.get(e))
        .and_then(|e| e.outbound.max_spend_per_hour);
    if !outbound && !acc.enabled && acc.rates.is_empty() && cfg.trunks.is_empty() {
        return Ok(None);
    }
    let slot = match outbound {
        true => Some(
            engine
                .fraud()
                .take_slot(cfg, origin)
                .map_err(|r| engine.fraud().refuse(r, msg, source, origin))?,
        ),
        false => None,
    };
    let trunk = targets.first().and_then(|t| {
        t.trunk.clone().or_else(|| {
            cfg.trunks
                .values()
                .find(|tr| {
                    tr.port == t.dest.port()
                        && tr.host.parse::<std::net::IpAddr>() == Ok(t.dest.ip())
                })
                .map(|tr| tr.name.clone())
        })
    });
    // A forwarded call is priced by where it goes, not the extension dialled.
    let number = match origin {
        crate::features::outbound::Origin::Forwarded { number, .. } => number.clone(),
        _ => Uri::parse(dialled).and_then(|u| u.user).unwrap_or_default(),
    };
    let rate = acc.rate_for(&number);
    let mut meta = Meta {
        caller_ext,
        trunk,
        rate,
        limit: None,
        reserved: 0,
        slot,
        forwarded: None,
        did: None,
    };
    if let (Some(limit), Some(ext), true) = (spend_limit, meta.caller_ext.clone(), rate > 0) {
        let spent = engine.fraud().spent_last_hour(&ext) + running_cost(engine, &ext);
        if spent >= limit {
            let answer = engine.fraud().refuse(
                crate::features::fraud::Refusal::SpendLimit,
                msg,
                source,
                origin,
            );
            return Err(refused(engine, msg, dialled, meta, answer.0, answer.1));
        }
        let ms = (i128::from(limit - spent) * 60_000 / i128::from(rate)).min(u32::MAX as i128);
        meta.limit = Some(Duration::from_millis(ms as u64));
    }
    if acc.enabled {
        if acc.max_price.is_some_and(|max| rate > max) {
            return Err(refused(
                engine,
                msg,
                dialled,
                meta,
                403,
                "Forbidden: Destination Price Above Limit",
            ));
        }
        let held = match (&meta.caller_ext, rate > 0) {
            (Some(ext), true) => engine.accounting().reserve(ext),
            _ => None,
        };
        match held {
            None => {}
            Some(Err(reason)) => return Err(refused(engine, msg, dialled, meta, 402, reason)),
            Some(Ok(available)) => {
                let ms = (i128::from(available) * 60_000 / i128::from(rate)).min(u32::MAX as i128);
                let limit = Duration::from_millis(ms as u64);
                meta.limit = Some(meta.limit.map_or(limit, |l| l.min(limit)));
                meta.reserved = available;
            }
        }
    }
    Ok(Some(Box::new(meta)))
}

/// Who answered on the branch to `ruri`: the extension whose registered
/// contact it is, else the number it names (a number outside).
fn answered_by(engine: &Engine, ruri: &str) -> Option<String> {
    let bindings = engine.location().all();
    if let Some(b) = bindings.iter().find(|b| b.contact == ruri) {
        return Some(b.aor.clone());
    }
    Uri::parse(ruri).and_then(|u| u.user)
}

/// What the answered outbound calls of `ext` in progress have cost so far.
fn running_cost(engine: &Engine, ext: &str) -> i64 {
    engine
        .calls()
        .values()
        .filter_map(|c| Some((c.answered?, c.data.as_deref()?)))
        .filter(|(_, m)| m.slot.is_some() && m.caller_ext.as_deref() == Some(ext))
        .map(|(a, m)| (i128::from(m.rate) * a.elapsed().as_millis() as i128 / 60_000) as i64)
        .sum()
}

/// The CDR of a call refused by the accounting checks; hands back the answer.
fn refused(
    engine: &Engine,
    msg: &Message,
    dialled: &str,
    meta: Meta,
    code: u16,
    reason: &'static str,
) -> (u16, &'static str) {
    tracing::info!(call_id = %msg.call_id(), caller = ?meta.caller_ext, code, reason, "call refused by accounting");
    let call = Call {
        caller: addr_uri(msg.header("From").unwrap_or("")).to_owned(),
        callee: dialled.to_owned(),
        start: now_text(),
        state: "trying",
        answered: None,
        answered_uri: None,
        data: Some(Box::new(Meta {
            limit: None,
            reserved: 0,
            ..meta
        })),
    };
    ended(engine, msg.call_id(), call, code);
    (code, reason)
}

/// Remembers `meta` with the call just listed under `call_id`.
pub fn attach(engine: &Engine, call_id: &str, meta: Box<Meta>) {
    let limited = meta.limit.is_some();
    let mut calls = engine.calls();
    match calls.get_mut(call_id) {
        Some(c) => {
            c.data = Some(meta);
            if limited {
                engine.accounting().limited.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            // Not listed (table full) or over already: give the credit back.
            drop(calls);
            if let (Some(ext), true) = (&meta.caller_ext, meta.reserved > 0) {
                engine.accounting().settle(ext, meta.reserved, 0);
            }
            if let Some(slot) = &meta.slot {
                engine.fraud().release(slot);
            }
        }
    }
}

/// A call left the call list: its CDR, and the price off the caller's balance.
/// `code` is the final response (200 for an answered call).
pub fn ended(engine: &Engine, call_id: &str, call: Call, code: u16) {
    let acc = engine.accounting();
    let meta = call.data.unwrap_or_default();
    if meta.limit.is_some() {
        acc.limited.fetch_sub(1, Ordering::Relaxed);
    }
    let talk = call.answered.map(|a| a.elapsed()).unwrap_or_default();
    let answered_by = call
        .answered_uri
        .as_deref()
        .and_then(|u| answered_by(engine, u));
    let disposition = match (call.answered.is_some(), code) {
        (true, _) => "answered",
        (false, 486 | 600) => "busy",
        (false, 408 | 480) => "no-answer",
        (false, 487) => "cancelled",
        _ => "failed",
    };
    let ms = talk.as_millis() as i128;
    // Per second of talk, rounded up to the smallest unit.
    let price = ((i128::from(meta.rate) * ms + 59_999) / 60_000) as i64;
    if meta.reserved > 0 {
        if let Some(ext) = &meta.caller_ext {
            acc.settle(ext, meta.reserved, price);
        }
    }
    if let Some(slot) = &meta.slot {
        engine.fraud().release(slot);
        if let Some(ext) = &meta.caller_ext {
            engine.fraud().record_spend(ext, price);
        }
    }
    let id = {
        let mut n = acc.next_id.lock();
        let id = *n;
        *n += 1;
        id
    };
    let cdr = Arc::new(Cdr {
        id,
        call_id: call_id.to_owned(),
        caller: call.caller,
        callee: call.callee,
        start: call.start,
        answer: call.answered.map(|a| text_before(a.elapsed())),
        end: now_text(),
        duration_ms: talk.as_millis() as u64,
        disposition,
        code,
        trunk: meta.trunk,
        price,
        forwarded: meta.forwarded,
        did: meta.did,
        answered_by,
    });
    {
        let mut recent = acc.recent.lock();
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(cdr.clone());
    }
    acc.write(Write::Cdr(cdr));
}

/// Ends B2BUA calls whose talk time reached what the balance buys (proxy
/// mode cannot end a call: there its price is only deducted at the end).
pub async fn cutter(engine: Arc<Engine>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if engine.accounting().limited.load(Ordering::Relaxed) == 0
            || engine.config().mode != crate::config::Mode::B2bua
        {
            continue;
        }
        let due: Vec<String> = engine
            .calls()
            .iter()
            .filter(|(_, c)| {
                let limit = c.data.as_ref().and_then(|m| m.limit);
                matches!((c.answered, limit), (Some(a), Some(l)) if a.elapsed() >= l)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            tracing::info!(call_id = %id, "prepaid credit used up; ending the call");
            crate::features::b2bua::hang_up(&engine, &id, "credit");
        }
    }
}

/// RFC 7951 JSON of /pbx/accounting-state.
pub fn state_json(engine: &Engine) -> Value {
    let acc = engine.accounting();
    let mut balances: Vec<Value> = acc
        .balances
        .lock()
        .iter()
        .map(|(ext, b)| {
            json!({"extension": ext, "balance": format_price(b.current), "committed": format_price(b.committed)})
        })
        .collect();
    balances.sort_by(|a, b| a["extension"].as_str().cmp(&b["extension"].as_str()));
    let cdrs: Vec<Value> = acc
        .recent
        .lock()
        .iter()
        .map(|c| {
            let mut v = json!({
                "id": c.id.to_string(),
                "call-id": c.call_id,
                "caller": c.caller,
                "callee": c.callee,
                "start": c.start,
                "end": c.end,
                "duration": format!("{}.{:03}", c.duration_ms / 1000, c.duration_ms % 1000),
                "disposition": c.disposition,
                "code": c.code,
                "price": format_price(c.price),
            });
            if let Some(a) = &c.answer {
                v["answer"] = json!(a);
            }
            if let Some(t) = &c.trunk {
                v["trunk"] = json!(t);
            }
            if let Some(d) = &c.did {
                v["did"] = json!(d);
            }
            if let Some(a) = &c.answered_by {
                v["answered-by"] = json!(a);
            }
            if let Some(f) = &c.forwarded {
                v["forwarded-by"] = json!(f.by);
                v["forwarded-to"] = json!(f.to);
                v["forward-reason"] = json!(f.reason);
            }
            v
        })
        .collect();
    json!({"balance": balances, "cdr": cdrs})
}
