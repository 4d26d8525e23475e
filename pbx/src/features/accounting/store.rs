//! The accounting store: CDRs and prepaid balances in SQLite, written by a
//! thread of its own (off the SIP path), and what accounting keeps of a call.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::Settings;

/// CDRs kept in memory for the IPC state.
pub(super) const RECENT: usize = 50;
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
    pub slot: Option<crate::features::fraud::Slot>,
    /// The forwarding that sent the call on, if any.
    pub forwarded: Option<Forwarded>,
    /// The DID of a call from a trunk routed by an inbound route.
    pub did: Option<String>,
}

/// A call forwarded by an extension, as the CDR records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The extension whose forwarding applied first.
    pub by: String,
    /// The last forward's target.
    pub to: String,
    /// YANG forward-reason of the first forward.
    pub reason: &'static str,
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
    pub forwarded: Option<Forwarded>,
    pub did: Option<String>,
    /// The extension or number outside that answered.
    pub answered_by: Option<String>,
}

pub(super) enum Write {
    Cdr(Arc<Cdr>),
    Balance(String, i64, i64),
    Forget(String),
}

#[derive(Clone, Copy)]
pub(super) struct Balance {
    pub(super) committed: i64,
    pub(super) current: i64,
    /// Held by prepaid calls in progress (memory only).
    pub(super) reserved: i64,
}

#[derive(Default)]
pub struct Accounting {
    pub(super) recent: Mutex<VecDeque<Arc<Cdr>>>,
    pub(super) balances: Mutex<HashMap<String, Balance>>,
    writer: Mutex<Option<SyncSender<Write>>>,
    pub(super) next_id: Mutex<u64>,
    /// Answered or ringing calls with a time limit (the cutter idles at 0).
    pub(super) limited: AtomicUsize,
    /// The database, for readers besides the writer (the cluster's copy).
    path: Mutex<Option<std::path::PathBuf>>,
}

/// The columns of a CDR, in the order `cdr_of_row` reads them.
const CDR_SELECT: &str = "SELECT id, call_id, caller, callee, start, answer, end, duration_ms, disposition, code, trunk, price, forwarded_by, forwarded_to, forward_reason, did, answered_by FROM cdr";

fn cdr_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cdr> {
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
        forwarded: match (r.get::<_, Option<String>>(12)?, r.get(13)?) {
            (Some(by), Some(to)) => Some(Forwarded {
                by,
                to,
                reason: forward_reason_name(&r.get::<_, Option<String>>(14)?.unwrap_or_default()),
            }),
            _ => None,
        },
        did: r.get(15)?,
        answered_by: r.get(16)?,
    })
}

pub(super) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn text_before(d: Duration) -> String {
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
               code INTEGER NOT NULL, trunk TEXT, price INTEGER NOT NULL,
               forwarded_by TEXT, forwarded_to TEXT, forward_reason TEXT,
               did TEXT, answered_by TEXT);
             CREATE TABLE IF NOT EXISTS balance (extension TEXT PRIMARY KEY,
               committed INTEGER NOT NULL, current INTEGER NOT NULL);",
        )
        .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
        // A database of a release before forwarding was recorded: its columns added.
        for column in [
            "forwarded_by",
            "forwarded_to",
            "forward_reason",
            "did",
            "answered_by",
        ] {
            let _ = db.execute(&format!("ALTER TABLE cdr ADD COLUMN {column} TEXT"), []);
        }
        let load = || -> rusqlite::Result<(Vec<Cdr>, HashMap<String, Balance>)> {
            let mut st = db.prepare(&format!("{CDR_SELECT} ORDER BY id DESC LIMIT ?1"))?;
            let mut cdrs: Vec<Cdr> = st
                .query_map([RECENT as i64], cdr_of_row)?
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
        *self.path.lock() = Some(path.to_owned());
        self.on_config(settings);
        Ok(())
    }

    /// The id of the newest CDR (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.next_id.lock().saturating_sub(1)
    }

    /// The stored CDRs after `id`, oldest first, at most `limit` (read from
    /// the database, so none is missed however many ended meanwhile).
    pub fn cdrs_after(&self, id: u64, limit: u32) -> Result<Vec<Cdr>, String> {
        let Some(path) = self.path.lock().clone() else {
            return Ok(Vec::new());
        };
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(|e| e.to_string())?;
        let mut st = db
            .prepare(&format!("{CDR_SELECT} WHERE id > ?1 ORDER BY id LIMIT ?2"))
            .map_err(|e| e.to_string())?;
        let rows = st
            .query_map(rusqlite::params![id as i64, limit], cdr_of_row)
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    pub(super) fn write(&self, w: Write) {
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
    pub(super) fn reserve(&self, ext: &str) -> Option<Result<i64, &'static str>> {
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
    pub(super) fn settle(&self, ext: &str, reserved: i64, price: i64) {
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

/// The YANG forward-reason a stored one names.
pub fn forward_reason_name(s: &str) -> &'static str {
    match s {
        "busy" => "busy",
        "no-answer" => "no-answer",
        "unavailable" => "unavailable",
        _ => "unconditional",
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
                            "INSERT INTO cdr (id, call_id, caller, callee, start, answer, end, duration_ms, disposition, code, trunk, price, forwarded_by, forwarded_to, forward_reason, did, answered_by) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)",
                        )?
                        .execute(rusqlite::params![c.id as i64, c.call_id, c.caller, c.callee, c.start, c.answer, c.end, c.duration_ms as i64, c.disposition, c.code, c.trunk, c.price,
                            c.forwarded.as_ref().map(|f| &f.by), c.forwarded.as_ref().map(|f| &f.to), c.forwarded.as_ref().map(|f| f.reason), c.did, c.answered_by])?;
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
