//! Location service: bindings of addresses of record to contacts, kept in
//! memory for lookups and written behind to SQLite so a restart keeps them.
//!
//! Write-back like Kamailio's usrloc `db_mode 2`: changes queue in memory and
//! a writer thread stores them in one transaction every `FLUSH_INTERVAL`.
//! A request never waits for the disk and never wakes the writer; a clean
//! stop flushes everything (`flush`), a crash loses at most one interval.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use rusqlite::{params, Connection};
use snafu::{ResultExt, Snafu};

use crate::config::Transport;

#[derive(Debug, Snafu)]
pub enum StoreError {
    #[snafu(display("cannot open location database {path}: {source} (check the directory exists and is writable)"))]
    Open {
        path: String,
        source: rusqlite::Error,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub aor: String,
    pub contact: String,
    pub source: SocketAddr,
    pub transport: Transport,
    pub expires_at: u64,
    pub user_agent: String,
    pub q: f32,
    pub call_id: String,
    pub cseq: u32,
    /// Path header values (RFC 3327), used as a route set towards the contact.
    pub path: Vec<String>,
}

enum Op {
    Put(Binding),
    Remove { aor: String, contact: String },
    Flush(mpsc::Sender<()>),
}

/// How often queued binding changes go to SQLite (the most a crash can lose).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Location {
    bindings: RwLock<HashMap<String, Vec<Binding>>>,
    writer: mpsc::Sender<Op>,
    /// (aor, contact) changed since the last `take_changes`, kept only
    /// while someone follows them (the cluster's copy): at most one entry
    /// per binding there was.
    changes: parking_lot::Mutex<Option<std::collections::HashSet<(String, String)>>>,
}

impl Location {
    /// Opens (or creates) the database and loads the bindings still valid.
    pub fn open(db_path: &Path) -> Result<Location, StoreError> {
        let path = db_path.display().to_string();
        let conn = Connection::open(db_path).context(OpenSnafu { path: path.clone() })?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS binding (
               aor TEXT NOT NULL, contact TEXT NOT NULL, source TEXT NOT NULL,
               transport TEXT NOT NULL, expires_at INTEGER NOT NULL, user_agent TEXT NOT NULL,
               q REAL NOT NULL, call_id TEXT NOT NULL, cseq INTEGER NOT NULL, path TEXT NOT NULL,
               PRIMARY KEY (aor, contact));",
        )
        .context(OpenSnafu { path: path.clone() })?;
        let mut map: HashMap<String, Vec<Binding>> = HashMap::new();
        {
            let now = unix_now();
            let mut stmt = conn
                .prepare("SELECT aor, contact, source, transport, expires_at, user_agent, q, call_id, cseq, path FROM binding WHERE expires_at > ?1")
                .context(OpenSnafu { path: path.clone() })?;
            let rows = stmt
                .query_map(params![now as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, f64>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, String>(9)?,
                    ))
                })
                .context(OpenSnafu { path: path.clone() })?;
            for row in rows.flatten() {
                let Ok(source) = row.2.parse() else { continue };
                let b = Binding {
                    aor: row.0,
                    contact: row.1,
                    source,
                    transport: Transport::from_name(&row.3).unwrap_or(Transport::Udp),
                    expires_at: row.4.max(0) as u64,
                    user_agent: row.5,
                    q: row.6 as f32,
                    call_id: row.7,
                    cseq: row.8.max(0) as u32,
                    path: row
                        .9
                        .split('\n')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                };
                map.entry(b.aor.clone()).or_default().push(b);
            }
        }
        let (writer, ops) = mpsc::channel();
        std::thread::Builder::new()
            .name("pbx-location-db".into())
            .spawn(move || write_loop(conn, ops))
            .map_err(|e| StoreError::Open {
                path,
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Location {
            bindings: RwLock::new(map),
            writer,
            changes: parking_lot::Mutex::new(None),
        })
    }

    /// Notes a change for the follower, if there is one.
    fn changed(&self, aor: &str, contact: &str) {
        if let Some(set) = self.changes.lock().as_mut() {
            set.insert((aor.to_owned(), contact.to_owned()));
        }
    }

    /// Starts (or stops) keeping the changed bindings for `take_changes`.
    pub fn follow_changes(&self, on: bool) {
        *self.changes.lock() = on.then(Default::default);
    }

    /// The (aor, contact) pairs changed since the last call, with each
    /// one's live binding now (None: gone).
    pub fn take_changes(&self) -> Vec<((String, String), Option<Binding>)> {
        let keys = match self.changes.lock().as_mut() {
            Some(set) => std::mem::take(set),
            None => return Vec::new(),
        };
        let now = unix_now();
        let map = self.bindings.read();
        keys.into_iter()
            .map(|(aor, contact)| {
                let live = map
                    .get(&aor)
                    .and_then(|l| {
                        l.iter()
                            .find(|b| b.contact == contact && b.expires_at > now)
                    })
                    .cloned();
                ((aor, contact), live)
            })
            .collect()
    }

    pub fn lookup(&self, aor: &str) -> Vec<Binding> {
        let now = unix_now();
        let map = self.bindings.read();
        let mut v: Vec<Binding> = map
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
        v
    }

    /// Calls `f` with each live binding of `aor`, highest q first, under the
    /// read lock (no copy of the bindings, unlike `lookup`). Keep `f` short.
    pub fn visit(&self, aor: &str, mut f: impl FnMut(&Binding)) {
        let now = unix_now();
        let map = self.bindings.read();
        let Some(list) = map.get(aor) else {
            return;
        };
        let mut live: Vec<&Binding> = list.iter().filter(|b| b.expires_at > now).collect();
        live.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
        for b in live {
            f(b);
        }
    }

    pub fn put(&self, b: Binding) {
        let mut map = self.bindings.write();
        // The AOR key is copied only for a new AOR.
        let list = match map.get_mut(&b.aor) {
            Some(list) => list,
            None => map.entry(b.aor.clone()).or_default(),
        };
        match list.iter_mut().find(|x| x.contact == b.contact) {
            Some(existing) => *existing = b.clone(),
            None => list.push(b.clone()),
        }
        drop(map);
        self.changed(&b.aor, &b.contact);
        let _ = self.writer.send(Op::Put(b));
    }

    pub fn remove(&self, aor: &str, contact: Option<&str>) -> usize {
        let mut map = self.bindings.write();
        let Some(list) = map.get_mut(aor) else {
            return 0;
        };
        let before = list.len();
        let mut removed = Vec::new();
        list.retain(|b| {
            let keep = contact.is_some_and(|c| c != b.contact);
            if !keep {
                removed.push(b.contact.clone());
            }
            keep
        });
        if list.is_empty() {
            map.remove(aor);
        }
        for c in removed {
            self.changed(aor, &c);
            let _ = self.writer.send(Op::Remove {
                aor: aor.to_owned(),
                contact: c,
            });
        }
        before - map.get(aor).map_or(0, Vec::len)
    }

    /// Drops expired bindings; returns how many.
    pub fn sweep(&self) -> usize {
        let now = unix_now();
        let mut expired = Vec::new();
        {
            let mut map = self.bindings.write();
            map.retain(|_, list| {
                list.retain(|b| {
                    let live = b.expires_at > now;
                    if !live {
                        expired.push((b.aor.clone(), b.contact.clone()));
                    }
                    live
                });
                !list.is_empty()
            });
        }
        for (aor, contact) in &expired {
            self.changed(aor, contact);
            let _ = self.writer.send(Op::Remove {
                aor: aor.clone(),
                contact: contact.clone(),
            });
        }
        expired.len()
    }

    /// How many unexpired bindings there are.
    pub fn count(&self) -> usize {
        let now = unix_now();
        self.bindings
            .read()
            .values()
            .flatten()
            .filter(|b| b.expires_at > now)
            .count()
    }

    pub fn all(&self) -> Vec<Binding> {
        let now = unix_now();
        self.bindings
            .read()
            .values()
            .flatten()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect()
    }

    /// Waits until every change so far is on disk (used at shutdown).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.writer.send(Op::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

fn write_loop(mut conn: Connection, ops: mpsc::Receiver<Op>) {
    let mut open = true;
    while open {
        // Sleep instead of blocking on the channel: a sender then never pays
        // for waking this thread, and a busy second costs ~10 commits.
        std::thread::sleep(FLUSH_INTERVAL);
        let mut batch = Vec::new();
        loop {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut flushes = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    // An upsert rewrites the row in place (REPLACE deletes, then inserts).
                    "INSERT INTO binding VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)
                     ON CONFLICT (aor, contact) DO UPDATE SET source = ?3, transport = ?4,
                     expires_at = ?5, user_agent = ?6, q = ?7, call_id = ?8, cseq = ?9, path = ?10",
                )?;
                let mut del =
                    tx.prepare_cached("DELETE FROM binding WHERE aor = ?1 AND contact = ?2")?;
                for op in batch {
                    match op {
                        Op::Put(b) => {
                            put.execute(params![
                                b.aor,
                                b.contact,
                                b.source.to_string(),
                                b.transport.as_param(),
                                b.expires_at as i64,
                                b.user_agent,
                                b.q as f64,
                                b.call_id,
                                b.cseq as i64,
                                b.path.join("\n"),
                            ])?;
                        }
                        Op::Remove { aor, contact } => {
                            del.execute(params![aor, contact])?;
                        }
                        Op::Flush(done) => flushes.push(done),
                    }
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot write location database; bindings kept in memory only");
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(aor: &str, contact: &str, ttl: u64) -> Binding {
        Binding {
            aor: aor.into(),
            contact: contact.into(),
            source: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            expires_at: unix_now() + ttl,
            user_agent: "ua".into(),
            q: 1.0,
            call_id: "c".into(),
            cseq: 1,
            path: vec!["<sip:edge;lr>".into()],
        }
    }

    #[test]
    fn bindings_survive_reopen_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pbx.db");
        {
            let loc = Location::open(&db).unwrap();
            loc.put(binding("100@d", "sip:100@1.2.3.4", 100));
            loc.put(binding("100@d", "sip:100@1.2.3.5", 100));
            loc.put(binding("101@d", "sip:101@1.2.3.6", 100));
            assert_eq!(loc.remove("101@d", None), 1);
            loc.flush();
        }
        let loc = Location::open(&db).unwrap();
        let got = loc.lookup("100@d");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].path, vec!["<sip:edge;lr>".to_owned()]);
        assert!(loc.lookup("101@d").is_empty());
        loc.put(binding("102@d", "sip:102@x", 0));
        assert_eq!(loc.sweep(), 1);
    }
}
