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

use besip_core::uci::Package;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::{Config, Extension};
use crate::engine::{Call, Engine};
use crate::proxy::Target;
use crate::sip::{addr_uri, Message, Uri};

/// CDRs kept in memory for the IPC state.
const RECENT: usize = 50;
/// Records queued for the writer at most (a stuck disk must not grow memory).
const QUEUE: usize = 10_000;

/// Parsed /pbx/accounting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub enabled: bool,
    pub max_price: Option<i64>,
    /// (prefix, price per minute), longest prefix first.
    pub rates: Vec<(String, i64)>,
    /// Balance of each account at the time of the commit.
    pub accounts: HashMap<String, i64>,
}

/// A decimal64 with up to 4 fraction digits as ten-thousandths.
pub fn parse_price(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || frac.len() > 4
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac: i64 = format!("{frac:0<4}").parse().ok()?;
    let v = int.checked_mul(10_000)?.checked_add(frac)?;
    Some(if neg { -v } else { v })
}

/// Canonical decimal64 text (RFC 7950 §9.3.2): no trailing zeros but one.
pub fn format_price(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let frac = format!("{:04}", a % 10_000);
    let frac = frac.trim_end_matches('0');
    format!(
        "{sign}{}.{}",
        a / 10_000,
        if frac.is_empty() { "0" } else { frac }
    )
}

impl Settings {
    pub fn from_package(
        pkg: &Package,
        extensions: &HashMap<String, Extension>,
    ) -> Result<Settings, String> {
        let main = pkg.section("main");
        let price = |what: &str, v: &str| {
            parse_price(v)
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("{what}: '{v}' is not a price (0 or more, 4 decimals)"))
        };
        // /pbx/accounting/enabled, default false
        let enabled = main
            .map(|m| m.get_bool("accounting_enabled"))
            .transpose()
            .map_err(|e| e.to_string())?
            .flatten()
            .unwrap_or(false);
        let max_price = match main.and_then(|m| m.get("accounting_max_price_per_minute")) {
            Some(v) => Some(price("accounting max-price-per-minute", v)?),
            None => None,
        };
        let mut rates = Vec::new();
        for s in pkg.sections_of("accounting_rate") {
            let (Some(prefix), Some(p)) = (s.get("prefix"), s.get("price_per_minute")) else {
                return Err(format!(
                    "accounting rate {} needs prefix and price_per_minute",
                    s.name
                ));
            };
            rates.push((prefix.to_owned(), price(&format!("rate {prefix}"), p)?));
        }
        rates.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let mut accounts = HashMap::new();
        for s in pkg.sections_of("accounting_account") {
            let Some(ext) = s.get("extension") else {
                return Err(format!("accounting account {} needs extension", s.name));
            };
            if !extensions.contains_key(ext) {
                return Err(format!("accounting account of unknown extension {ext}"));
            }
            // /pbx/accounting/account/balance, default 0
            let b = match s.get("balance") {
                Some(v) => price(&format!("balance of {ext}"), v)?,
                None => 0,
            };
            accounts.insert(ext.to_owned(), b);
        }
        Ok(Settings {
            enabled,
            max_price,
            rates,
            accounts,
        })
    }

    /// Price per minute of a dialled number (longest matching prefix), 0 when none matches.
    pub fn rate_for(&self, number: &str) -> i64 {
        self.rates
            .iter()
            .find(|(p, _)| number.starts_with(p.as_str()))
            .map(|r| r.1)
            .unwrap_or(0)
    }
}

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
/// when accounting has something to remember of the call. Cheap when no
/// trunk, rate or prepaid checking is configured.
pub fn admit(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    dialled: &str,
    targets: &[Target],
) -> Result<Option<Box<Meta>>, (u16, &'static str)> {
    let acc = &cfg.accounting;
    if !acc.enabled && acc.rates.is_empty() && cfg.trunks.is_empty() {
        return Ok(None);
    }
    let trunk = targets.first().and_then(|t| {
        cfg.trunks
            .values()
            .find(|tr| {
                tr.port == t.dest.port() && tr.host.parse::<std::net::IpAddr>() == Ok(t.dest.ip())
            })
            .map(|tr| tr.name.clone())
    });
    let number = Uri::parse(dialled).and_then(|u| u.user).unwrap_or_default();
    let rate = acc.rate_for(&number);
    let caller_ext = msg
        .header("From")
        .map(addr_uri)
        .and_then(Uri::parse)
        .filter(|u| engine.is_our_domain(&u.host))
        .and_then(|u| u.user)
        .and_then(|u| cfg.resolve_user(&u).map(|e| e.number.clone()));
    let mut meta = Meta {
        caller_ext,
        trunk,
        rate,
        limit: None,
        reserved: 0,
    };
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
                meta.limit = Some(Duration::from_millis(ms as u64));
                meta.reserved = available;
            }
        }
    }
    Ok(Some(Box::new(meta)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_and_print_canonically() {
        assert_eq!(parse_price("1.5"), Some(15_000));
        assert_eq!(parse_price("0.0001"), Some(1));
        assert_eq!(parse_price("12"), Some(120_000));
        assert_eq!(parse_price("-0.25"), Some(-2_500));
        for bad in ["", ".", "1.23456", "abc", "1,5", "1.2.3"] {
            assert_eq!(parse_price(bad), None, "{bad}");
        }
        assert_eq!(format_price(15_000), "1.5");
        assert_eq!(format_price(120_000), "12.0");
        assert_eq!(format_price(-2_500), "-0.25");
        assert_eq!(format_price(1), "0.0001");
    }

    #[test]
    fn longest_prefix_wins() {
        let pkg = Package::parse(
            "besip_pbx",
            "config pbx 'main'\n\toption accounting_enabled '1'\n\nconfig accounting_rate 'a'\n\toption prefix '00'\n\toption price_per_minute '1.0'\n\nconfig accounting_rate 'b'\n\toption prefix '0049'\n\toption price_per_minute '0.2'\n",
        )
        .expect("uci");
        let s = Settings::from_package(&pkg, &HashMap::new()).expect("settings");
        assert!(s.enabled);
        assert_eq!(s.rate_for("00491234"), 2_000);
        assert_eq!(s.rate_for("00331234"), 10_000);
        assert_eq!(s.rate_for("100"), 0);
        let bad = Package::parse(
            "besip_pbx",
            "config accounting_account 'x'\n\toption extension '999'\n\toption balance '1'\n",
        )
        .expect("uci");
        assert!(Settings::from_package(&bad, &HashMap::new()).is_err());
    }
}
