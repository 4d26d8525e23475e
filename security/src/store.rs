//! SQLite log of every ban and lift (ROOT/var/lib/besip/security.db); the
//! unexpired, unlifted rows are restored into the kernel at start.

use std::path::Path;

use rusqlite::{params, Connection};
use snafu::{ResultExt, Snafu};

#[derive(Debug, Snafu)]
#[snafu(display("ban database {path}: {source} (check the directory is writable)"))]
pub struct StoreError {
    path: String,
    source: rusqlite::Error,
}

pub struct Store {
    db: Connection,
    path: String,
}

#[derive(Debug, Clone)]
pub struct BanRow {
    pub address: String,
    pub rule: String,
    pub reason: String,
    /// `sip` or `all` (config::Scope).
    pub scope: String,
    pub since: u64,
    pub expires: u64,
    pub offences: u32,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let db = Connection::open(path).context(StoreSnafu { path: p.clone() })?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS bans (
               id INTEGER PRIMARY KEY, address TEXT NOT NULL, rule TEXT NOT NULL,
               reason TEXT NOT NULL, since INTEGER NOT NULL, expires INTEGER NOT NULL,
               offences INTEGER NOT NULL, evidence TEXT NOT NULL,
               lifted_at INTEGER, lift_reason TEXT);
             CREATE INDEX IF NOT EXISTS bans_address ON bans(address);",
        )
        .context(StoreSnafu { path: p.clone() })?;
        // Added with ban scopes; a database of an older version gets the column.
        let has_scope = db.prepare("SELECT scope FROM bans LIMIT 0").is_ok();
        if !has_scope {
            db.execute_batch("ALTER TABLE bans ADD COLUMN scope TEXT NOT NULL DEFAULT 'sip'")
                .context(StoreSnafu { path: p.clone() })?;
        }
        Ok(Store { db, path: p })
    }

    fn ctx(&self) -> StoreSnafu<String> {
        StoreSnafu {
            path: self.path.clone(),
        }
    }

    pub fn add(&self, row: &BanRow, evidence: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO bans (address, rule, reason, since, expires, offences, evidence, scope) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![row.address, row.rule, row.reason, row.since, row.expires, row.offences, evidence, row.scope],
            )
            .context(self.ctx())?;
        Ok(())
    }

    pub fn lift(&self, address: &str, at: u64, reason: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE bans SET lifted_at = ?2, lift_reason = ?3 WHERE address = ?1 AND lifted_at IS NULL",
                params![address, at, reason],
            )
            .context(self.ctx())?;
        Ok(())
    }

    /// Bans not lifted and not yet expired at `now`.
    pub fn active(&self, now: u64) -> Result<Vec<BanRow>, StoreError> {
        let mut st = self
            .db
            .prepare("SELECT address, rule, reason, since, expires, offences, scope FROM bans WHERE lifted_at IS NULL AND expires > ?1 ORDER BY id")
            .context(self.ctx())?;
        let rows = st
            .query_map([now], |r| {
                Ok(BanRow {
                    address: r.get(0)?,
                    rule: r.get(1)?,
                    reason: r.get(2)?,
                    since: r.get(3)?,
                    expires: r.get(4)?,
                    offences: r.get(5)?,
                    scope: r.get(6)?,
                })
            })
            .context(self.ctx())?;
        rows.collect::<Result<Vec<_>, _>>().context(self.ctx())
    }

    /// How many times each address was banned before (for escalation).
    pub fn offences(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let mut st = self
            .db
            .prepare("SELECT address, MAX(offences) FROM bans GROUP BY address")
            .context(self.ctx())?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .context(self.ctx())?;
        rows.collect::<Result<Vec<_>, _>>().context(self.ctx())
    }
}
