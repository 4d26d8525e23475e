//! Accounting (YANG /pbx/accounting): a call detail record per call, written
//! to SQLite by a writer thread (off the SIP path); with `enabled`, prepaid
//! credit: calls are refused when the caller's balance is gone or the
//! destination is dearer than the maximum, an answered call is limited to what
//! the balance buys (ended with BYE in B2BUA mode), and its price is deducted
//! at the end. Money is kept in ten-thousandths (YANG decimal64, 4 digits).
//! The configured balance is the credit at the time of the commit: the running
//! balance restarts from it whenever a commit changes it.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::Config;
use crate::engine::{Call, Engine};
use crate::proxy::Target;
pub use crate::rating::{format_price, parse_price, Settings};
use crate::sip::{addr_uri, Message, Uri};

/// CDRs kept in memory for the IPC state.
const RECENT: usize = 50;
/// Records queued for the writer at most (a stuck disk must not grow memory).
const QUEUE: usize = 10_000;

/// What accounting knows of a call beyond the call list.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub caller_ext: Option<String>,
    pub trunk: Option<String>,
    pub rate: i64,
    /// Longest talk time the balance pays for.
    pub limit: Option<Duration>,
    /// Credit held for this call (0: not a prepaid call).
    pub reserved: i64,
    /// Its place among the simultaneous outbound calls (calls that leave the box).
    pub slot: Option<crate::fraud::Slot>,
}

/// Who a new call is placed for and whether it leaves the box.
#[derive(Clone, Copy)]
pub struct Placement<'a> {
    pub origin: &'a crate::outbound::Origin,
    pub outbound: bool,
    pub source: std::net::SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Cdr {
    pub id: u64,
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub start: String,
    pub answer: Option<String>,
    pub end: String,
    pub duration_ms: u64,
    pub disposition: &'static str,
    pub code: u16,
    pub trunk: Option<String>,
    pub price: i64,
}

enum Write {
    Cdr(Arc<Cdr>),
    Balance(String, i64, i64),
    Forget(String),
}

#[derive(Clone, Copy)]
struct Balance {
    committed: i64,
    current: i64,
    /// Held by prepaid calls in progress (memory only).
    reserved: i64,
}

#[derive(Default)]
pub struct Accounting {
    recent: Mutex<VecDeque<Arc<Cdr>>>,
    balances: Mutex<HashMap<String, Balance>>,
    writer: Mutex<Option<SyncSender<Write>>>,
    next_id: Mutex<u64>,
    /// Answered or ringing calls with a time limit (the cutter idles at 0).
    limited: AtomicUsize,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn text_before(d: Duration) -> String {
    let t = chrono::Utc::now() - chrono::Duration::milliseconds(d.as_millis() as i64);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Accounting {
    /// Opens (creates) the database, loads balances and recent CDRs, starts the writer.
    pub fn open(&self, path: &Path, settings: &Settings) -> Result<(), String> {
        let db = rusqlite::Connection::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS cdr (id INTEGER PRIMARY KEY, call_id TEXT NOT NULL,
               caller TEXT NOT NULL, callee TEXT NOT NULL, start TEXT NOT NULL, answer TEXT,
               end TEXT NOT NULL, duration_ms INTEGER NOT NULL, disposition TEXT NOT NULL,
               code INTEGER NOT NULL, trunk TEXT, price INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS balance (extension TEXT PRIMARY KEY,
               committed INTEGER NOT NULL, current INTEGER NOT NULL);",
        )
        .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
        let load = || -> rusqlite::Result<(Vec<Cdr>, HashMap<String, Balance>)> {
            let mut st = db.prepare(
                "SELECT id, call_id, caller, callee, start, answer, end, duration_ms, disposition, code, trunk, price FROM cdr ORDER BY id DESC LIMIT ?1",
            )?;
            let mut cdrs: Vec<Cdr> = st
                .query_map([RECENT as i64], |r| {
                    Ok(Cdr {
                        id: r.get::<_, i64>(0)? as u64,
                        call_id: r.get(1)?,
                        caller: r.get(2)?,
                        callee: r.get(3)?,
                        start: r.get(4)?,
                        answer: r.get(5)?,
                        end: r.get(6)?,
                        duration_ms: r.get::<_, i64>(7)? as u64,
                        disposition: disposition_name(&r.get::<_, String>(8)?),
                        code: r.get(9)?,
                        trunk: r.get(10)?,
                        price: r.get(11)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            cdrs.reverse();
            let mut st = db.prepare("SELECT extension, committed, current FROM balance")?;
            let balances = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Balance {
                            committed: r.get(1)?,
                            current: r.get(2)?,
                            reserved: 0,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            Ok((cdrs, balances))
        };
        let (cdrs, balances) =
            load().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let max_id: i64 = db
            .query_row("SELECT COALESCE(MAX(id), 0) FROM cdr", [], |r| r.get(0))
            .unwrap_or(0);
        *self.next_id.lock() = max_id as u64 + 1;
        *self.recent.lock() = cdrs.into_iter().map(Arc::new).collect();
        *self.balances.lock() = balances;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || writer(db, rx))
            .map_err(|e| format!("cannot start the CDR writer: {e}"))?;
        *self.writer.lock() = Some(tx);
        self.on_config(settings);
        Ok(())
    }

    fn write(&self, w: Write) {
        if let Some(tx) = self.writer.lock().as_ref() {
            if tx.try_send(w).is_err() {
                tracing::warn!("CDR writer queue full or gone; record not stored");
            }
        }
    }

    /// A commit: accounts whose configured balance changed restart from it.
    pub fn on_config(&self, settings: &Settings) {
        let mut balances = self.balances.lock();
        let gone: Vec<String> = balances
            .keys()
            .filter(|k| !settings.accounts.contains_key(*k))
            .cloned()
            .collect();
        for ext in gone {
            balances.remove(&ext);
            self.write(Write::Forget(ext));
        }
        for (ext, &committed) in &settings.accounts {
            if balances.get(ext).is_some_and(|b| b.committed == committed) {
                continue;
            }
            let reserved = balances.get(ext).map(|b| b.reserved).unwrap_or(0);
            balances.insert(
                ext.clone(),
                Balance {
                    committed,
                    current: committed,
                    reserved,
                },
            );
            self.write(Write::Balance(ext.clone(), committed, committed));
        }
    }

    pub fn balance(&self, ext: &str) -> Option<i64> {
        self.balances.lock().get(ext).map(|b| b.current)
    }

    /// Holds all the credit not yet held for a new prepaid call of `ext`:
    /// None without an account, Err(reason) when nothing is left to hold.
    fn reserve(&self, ext: &str) -> Option<Result<i64, &'static str>> {
        let mut balances = self.balances.lock();
        let b = balances.get_mut(ext)?;
        if b.current <= 0 {
            return Some(Err("Payment Required: Credit Exhausted"));
        }
        let available = b.current - b.reserved;
        if available <= 0 {
            return Some(Err("Payment Required: Credit Held By Another Call"));
        }
        b.reserved += available;
        Some(Ok(available))
    }

    /// Gives back what a call held; charges `price` to the account.
    fn settle(&self, ext: &str, reserved: i64, price: i64) {
        let mut balances = self.balances.lock();
        let Some(b) = balances.get_mut(ext) else {
            return;
        };
        b.reserved = (b.reserved - reserved).max(0);
        if price == 0 {
            return;
        }
        b.current -= price;
        let (committed, current) = (b.committed, b.current);
        drop(balances);
        self.write(Write::Balance(ext.to_owned(), committed, current));
    }
}

fn disposition_name(s: &str) -> &'static str {
    match s {
        "answered" => "answered",
        "busy" => "busy",
        "no-answer" => "no-answer",
        "cancelled" => "cancelled",
        _ => "failed",
    }
}

fn writer(mut db: rusqlite::Connection, rx: Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        // Everything queued meanwhile goes in the same transaction.
        let mut batch = vec![first];
        while let Ok(w) = rx.try_recv() {
            batch.push(w);
            if batch.len() >= 5000 {
                break;
            }
        }
        let r = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            for w in &batch {
                match w {
                    Write::Cdr(c) => {
                        tx.prepare_cached(
                            "INSERT INTO cdr (id, call_id, caller, callee, start, answer, end, duration_ms, disposition, code, trunk, price) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
                        )?
                        .execute(rusqlite::params![c.id as i64, c.call_id, c.caller, c.callee, c.start, c.answer, c.end, c.duration_ms as i64, c.disposition, c.code, c.trunk, c.price])?;
                    }
                    Write::Balance(ext, committed, current) => {
                        tx.execute(
                            "INSERT INTO balance (extension, committed, current) VALUES (?1,?2,?3) ON CONFLICT(extension) DO UPDATE SET committed=?2, current=?3",
                            rusqlite::params![ext, committed, current],
                        )?;
                    }
                    Write::Forget(ext) => {
                        tx.execute("DELETE FROM balance WHERE extension=?1", [ext])?;
                    }
                }
            }
            tx.commit()
        })();
        if let Err(e) = r {
            tracing::error!(error = %e, records = batch.len(), "cannot store accounting records");
        }
    }
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
                .fraud
                .take_slot(cfg, origin)
                .map_err(|r| engine.fraud.refuse(r, msg, source, origin))?,
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
        crate::outbound::Origin::Forwarded { number, .. } => number.clone(),
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
    };
    if let (Some(limit), Some(ext), true) = (spend_limit, meta.caller_ext.clone(), rate > 0) {
        let spent = engine.fraud.spent_last_hour(&ext) + running_cost(engine, &ext);
        if spent >= limit {
            let answer =
                engine
                    .fraud
                    .refuse(crate::fraud::Refusal::SpendLimit, msg, source, origin);
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
            (Some(ext), true) => engine.accounting.reserve(ext),
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

/// What the answered outbound calls of `ext` in progress have cost so far.
fn running_cost(engine: &Engine, ext: &str) -> i64 {
    engine
        .calls
        .lock()
        .values()
        .filter_map(|c| Some((c.answered?, c.acct.as_deref()?)))
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
        acct: Some(Box::new(Meta {
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
    let mut calls = engine.calls.lock();
    match calls.get_mut(call_id) {
        Some(c) => {
            c.acct = Some(meta);
            if limited {
                engine.accounting.limited.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            // Not listed (table full) or over already: give the credit back.
            drop(calls);
            if let (Some(ext), true) = (&meta.caller_ext, meta.reserved > 0) {
                engine.accounting.settle(ext, meta.reserved, 0);
            }
            if let Some(slot) = &meta.slot {
                engine.fraud.release(slot);
            }
        }
    }
}

/// A call left the call list: its CDR, and the price off the caller's balance.
/// `code` is the final response (200 for an answered call).
pub fn ended(engine: &Engine, call_id: &str, call: Call, code: u16) {
    let acc = &engine.accounting;
    let meta = call.acct.unwrap_or_default();
    if meta.limit.is_some() {
        acc.limited.fetch_sub(1, Ordering::Relaxed);
    }
    let talk = call.answered.map(|a| a.elapsed()).unwrap_or_default();
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
        engine.fraud.release(slot);
        if let Some(ext) = &meta.caller_ext {
            engine.fraud.record_spend(ext, price);
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
        if engine.accounting.limited.load(Ordering::Relaxed) == 0
            || engine.config().mode != crate::config::Mode::B2bua
        {
            continue;
        }
        let due: Vec<String> = engine
            .calls
            .lock()
            .iter()
            .filter(|(_, c)| {
                let limit = c.acct.as_ref().and_then(|m| m.limit);
                matches!((c.answered, limit), (Some(a), Some(l)) if a.elapsed() >= l)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            tracing::info!(call_id = %id, "prepaid credit used up; ending the call");
            crate::b2bua::hang_up(&engine, &id, "credit");
        }
    }
}

/// RFC 7951 JSON of /pbx/accounting-state.
pub fn state_json(engine: &Engine) -> Value {
    let acc = &engine.accounting;
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
            v
        })
        .collect();
    json!({"balance": balances, "cdr": cdrs})
}

/// Instant of the answer, for the call list hook in `responses`.
pub fn answered_now(call: &mut Call) {
    call.answered.get_or_insert_with(Instant::now);
}
