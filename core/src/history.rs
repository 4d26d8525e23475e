//! Commit history in SQLite (WAL): every commit's full configuration, so the
//! box can roll back to any of the last `KEEP` commits.

use rusqlite::{params, Connection, OptionalExtension};
use snafu::{ResultExt, Snafu};
use std::path::Path;

/// How many commits are kept for rollback.
pub const KEEP: i64 = 50;

#[derive(Debug, Snafu)]
pub enum HistoryError {
    #[snafu(display("commit history database {path}: {source}"))]
    Database {
        path: String,
        source: rusqlite::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    pub id: i64,
    /// RFC 3339 UTC.
    pub time: String,
    pub user: String,
    pub comment: String,
}

pub struct History {
    connection: Connection,
    path: String,
}

impl History {
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let display = path.display().to_string();
        let connection = Connection::open(path).context(DatabaseSnafu {
            path: display.clone(),
        })?;
        connection
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
                 CREATE TABLE IF NOT EXISTS commits (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time TEXT NOT NULL, user TEXT NOT NULL, comment TEXT NOT NULL,
                    config TEXT NOT NULL);",
            )
            .context(DatabaseSnafu {
                path: display.clone(),
            })?;
        Ok(History {
            connection,
            path: display,
        })
    }

    pub fn record(&self, user: &str, comment: &str, config: &str) -> Result<i64, HistoryError> {
        let ctx = || DatabaseSnafu {
            path: self.path.clone(),
        };
        self.connection
            .execute(
                "INSERT INTO commits (time, user, comment, config) VALUES (?1, ?2, ?3, ?4)",
                params![crate::ipc::now_rfc3339(), user, comment, config],
            )
            .context(ctx())?;
        let id = self.connection.last_insert_rowid();
        self.connection
            .execute("DELETE FROM commits WHERE id <= ?1", params![id - KEEP])
            .context(ctx())?;
        Ok(id)
    }

    /// Newest first: index 0 is the commit that made the current running configuration.
    pub fn list(&self) -> Result<Vec<CommitRecord>, HistoryError> {
        let ctx = || DatabaseSnafu {
            path: self.path.clone(),
        };
        let mut statement = self
            .connection
            .prepare("SELECT id, time, user, comment FROM commits ORDER BY id DESC")
            .context(ctx())?;
        let rows = statement
            .query_map([], |row| {
                Ok(CommitRecord {
                    id: row.get(0)?,
                    time: row.get(1)?,
                    user: row.get(2)?,
                    comment: row.get(3)?,
                })
            })
            .context(ctx())?;
        rows.collect::<Result<Vec<_>, _>>().context(ctx())
    }

    /// Configuration of the commit `back` steps before the newest (0 = newest).
    pub fn config_back(&self, back: usize) -> Result<Option<String>, HistoryError> {
        self.connection
            .query_row(
                "SELECT config FROM commits ORDER BY id DESC LIMIT 1 OFFSET ?1",
                params![back as i64],
                |row| row.get(0),
            )
            .optional()
            .context(DatabaseSnafu {
                path: self.path.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_fifty_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(&dir.path().join("history.db")).unwrap();
        for i in 0..60 {
            history
                .record("admin", &format!("c{i}"), &format!("<config{i}/>"))
                .unwrap();
        }
        let list = history.list().unwrap();
        assert_eq!(list.len(), 50);
        assert_eq!(list[0].comment, "c59");
        assert_eq!(
            history.config_back(0).unwrap().as_deref(),
            Some("<config59/>")
        );
        assert_eq!(
            history.config_back(49).unwrap().as_deref(),
            Some("<config10/>")
        );
        assert_eq!(history.config_back(50).unwrap(), None);
    }
}
