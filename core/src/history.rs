//! Commit history in SQLite (WAL): every commit's full configuration, so the
//! box can roll back to any of the last `KEEP` commits.
//!
//! One thread owns the database. A commit only queues its record (the id is
//! handed out here, at once), so the SQLite write of a whole configuration
//! runs on the other core instead of delaying the commit's reply; reads go
//! through the same queue, so they always see every record queued before them.
//! The commit's durability is running.xml's, not the history's: a power cut
//! can lose at most the records still queued, never the running configuration.

use rusqlite::{params, Connection, OptionalExtension};
use snafu::{ResultExt, Snafu};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;

/// How many commits are kept for rollback.
pub const KEEP: i64 = 50;

#[derive(Debug, Snafu)]
pub enum HistoryError {
    #[snafu(display("commit history database {path}: {source}"))]
    Database {
        path: String,
        source: rusqlite::Error,
    },
    #[snafu(display("the commit history writer has stopped; restart the server"))]
    WriterGone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    pub id: i64,
    /// RFC 3339 UTC.
    pub time: String,
    pub user: String,
    pub comment: String,
}

type Reply<T> = mpsc::Sender<Result<T, HistoryError>>;

enum Request {
    Record {
        id: i64,
        time: String,
        user: String,
        comment: String,
        config: String,
    },
    List(Reply<Vec<CommitRecord>>),
    ConfigBack(usize, Reply<Option<String>>),
}

/// Records that may wait for the writer before a commit has to wait too
/// (each holds a whole configuration: memory stays bounded).
const QUEUE_DEPTH: usize = 8;

pub struct History {
    queue: Option<mpsc::SyncSender<Request>>,
    writer: Option<std::thread::JoinHandle<()>>,
    next_id: Mutex<i64>,
}

impl History {
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let store = Store::open(path)?;
        let next_id = store.last_id()? + 1;
        let (queue, requests) = mpsc::sync_channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("commit-history".into())
            .spawn(move || store.serve(requests))
            .map_err(|_| HistoryError::WriterGone)?;
        Ok(History {
            queue: Some(queue),
            writer: Some(writer),
            next_id: Mutex::new(next_id),
        })
    }

    /// Queue a commit's record (the configuration moves to the writer, no
    /// copy); returns its id at once.
    pub fn record(
        &self,
        user: &str,
        comment: &str,
        config: impl Into<String>,
    ) -> Result<i64, HistoryError> {
        let mut next = self.next_id.lock().map_err(|_| HistoryError::WriterGone)?;
        let id = *next;
        self.send(Request::Record {
            id,
            time: crate::ipc::now_rfc3339(),
            user: user.to_owned(),
            comment: comment.to_owned(),
            config: config.into(),
        })?;
        *next += 1;
        Ok(id)
    }

    /// Newest first: index 0 is the commit that made the current running configuration.
    pub fn list(&self) -> Result<Vec<CommitRecord>, HistoryError> {
        self.ask(Request::List)
    }

    /// Configuration of the commit `back` steps before the newest (0 = newest).
    pub fn config_back(&self, back: usize) -> Result<Option<String>, HistoryError> {
        self.ask(|reply| Request::ConfigBack(back, reply))
    }

    fn send(&self, request: Request) -> Result<(), HistoryError> {
        self.queue
            .as_ref()
            .ok_or(HistoryError::WriterGone)?
            .send(request)
            .map_err(|_| HistoryError::WriterGone)
    }

    fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, HistoryError> {
        let (reply, answer) = mpsc::channel();
        self.send(request(reply))?;
        answer.recv().map_err(|_| HistoryError::WriterGone)?
    }
}

impl Drop for History {
    /// Let the writer finish what is queued, so a clean stop loses nothing.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The database itself, owned by the writer thread.
struct Store {
    connection: Connection,
    path: String,
}

impl Store {
    fn open(path: &Path) -> Result<Store, HistoryError> {
        let display = path.display().to_string();
        restrict_to_owner(path);
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
        Ok(Store {
            connection,
            path: display,
        })
    }

    fn context(&self) -> DatabaseSnafu<String> {
        DatabaseSnafu {
            path: self.path.clone(),
        }
    }

    fn last_id(&self) -> Result<i64, HistoryError> {
        self.connection
            .query_row("SELECT COALESCE(MAX(id), 0) FROM commits", [], |row| {
                row.get(0)
            })
            .context(self.context())
    }

    fn serve(mut self, requests: mpsc::Receiver<Request>) {
        for request in requests {
            match request {
                Request::Record {
                    id,
                    time,
                    user,
                    comment,
                    config,
                } => {
                    if let Err(e) = self.insert(id, &time, &user, &comment, &config) {
                        tracing::error!(error = %e, id, "commit applied but not recorded in the history");
                    }
                }
                Request::List(reply) => {
                    let _ = reply.send(self.list());
                }
                Request::ConfigBack(back, reply) => {
                    let _ = reply.send(self.config_back(back));
                }
            }
        }
    }

    fn insert(
        &mut self,
        id: i64,
        time: &str,
        user: &str,
        comment: &str,
        config: &str,
    ) -> Result<(), HistoryError> {
        let context = self.context();
        let transaction = self.connection.transaction().context(context.clone())?;
        transaction
            .execute(
                "INSERT INTO commits (id, time, user, comment, config) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, time, user, comment, config],
            )
            .context(context.clone())?;
        transaction
            .execute("DELETE FROM commits WHERE id <= ?1", params![id - KEEP])
            .context(context.clone())?;
        transaction.commit().context(context)
    }

    fn list(&self) -> Result<Vec<CommitRecord>, HistoryError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, time, user, comment FROM commits ORDER BY id DESC")
            .context(self.context())?;
        let rows = statement
            .query_map([], |row| {
                Ok(CommitRecord {
                    id: row.get(0)?,
                    time: row.get(1)?,
                    user: row.get(2)?,
                    comment: row.get(3)?,
                })
            })
            .context(self.context())?;
        rows.collect::<Result<Vec<_>, _>>().context(self.context())
    }

    fn config_back(&self, back: usize) -> Result<Option<String>, HistoryError> {
        self.connection
            .query_row(
                "SELECT config FROM commits ORDER BY id DESC LIMIT 1 OFFSET ?1",
                params![back as i64],
                |row| row.get(0),
            )
            .optional()
            .context(self.context())
    }
}

/// Every record is a whole configuration (password hashes, SIP passwords):
/// the database is its owner's only, like running.xml. SQLite gives its WAL
/// and shared-memory files the database file's mode, so creating that file
/// first (and narrowing one an older version left) covers all three.
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(crate::persist::OWNER_ONLY)
        .open(path);
    if let Err(e) = created {
        // Connection::open reports the real problem right after.
        tracing::debug!(error = %e, "cannot create the history database file");
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let _ = std::fs::set_permissions(
            &file,
            std::fs::Permissions::from_mode(crate::persist::OWNER_ONLY),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_and_its_wal_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let history = History::open(&path).unwrap();
        history.record("admin", "c", "<config/>").unwrap();
        assert_eq!(history.list().unwrap().len(), 1);
        for suffix in ["", "-wal"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }

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

    #[test]
    fn queued_records_survive_a_clean_stop_and_ids_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let first = History::open(&path).unwrap();
        let a = first.record("admin", "one", "<a/>").unwrap();
        let b = first.record("admin", "two", "<b/>").unwrap();
        assert_eq!(b, a + 1);
        drop(first);
        let again = History::open(&path).unwrap();
        let c = again.record("admin", "three", "<c/>").unwrap();
        assert_eq!(c, b + 1);
        let comments: Vec<String> = again
            .list()
            .unwrap()
            .into_iter()
            .map(|r| r.comment)
            .collect();
        assert_eq!(comments, ["three", "two", "one"]);
    }
}
