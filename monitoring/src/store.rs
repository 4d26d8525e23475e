//! Quality reports in SQLite (WAL): finished streams, their intervals, calls.

use std::path::Path;

use rusqlite::{params, Connection};
use snafu::{ResultExt, Snafu};

use crate::report::{CallReport, StreamReport};

#[derive(Debug, Snafu)]
pub enum StoreError {
    #[snafu(display(
        "report database {path}: {source} (check the directory exists and is writable)"
    ))]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[snafu(display("report database: {source}"))]
    Sql { source: rusqlite::Error },
}

pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
  id TEXT NOT NULL, ssrc INTEGER, source_address TEXT, source_port INTEGER,
  destination_address TEXT, destination_port INTEGER, payload_type INTEGER, codec TEXT,
  call_id TEXT, first_seen TEXT, last_seen TEXT, ended REAL NOT NULL,
  packets INTEGER, expected INTEGER, lost INTEGER, loss_percent REAL, duplicates INTEGER,
  out_of_order INTEGER, jitter_ms REAL, max_jitter_ms REAL, max_delta_ms REAL,
  burst_ratio REAL, burst_count INTEGER, burst_density REAL, gap_density REAL, one_way_delay_ms REAL, r_factor REAL, mos REAL, min_mos REAL,
  PRIMARY KEY (id, first_seen));
CREATE INDEX IF NOT EXISTS streams_ended ON streams(ended);
CREATE TABLE IF NOT EXISTS intervals (
  stream_id TEXT NOT NULL, start REAL NOT NULL, expected INTEGER, lost INTEGER,
  loss_percent REAL, r_factor REAL, mos REAL, jitter_ms REAL);
CREATE INDEX IF NOT EXISTS intervals_stream ON intervals(stream_id, start);
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY, from_uri TEXT, to_uri TEXT, start_time TEXT, ended REAL NOT NULL,
  stream_count INTEGER, r_factor REAL, mos REAL, min_mos REAL);
CREATE INDEX IF NOT EXISTS calls_ended ON calls(ended);
";

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let ctx = || OpenSnafu {
            path: path.display().to_string(),
        };
        let conn = Connection::open(path).with_context(|_| ctx())?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(|_| ctx())?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .with_context(|_| ctx())?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .with_context(|_| ctx())?;
        conn.execute_batch(SCHEMA).with_context(|_| ctx())?;
        // Databases from before per-interval jitter get the column (NULL for old rows).
        let has_jitter: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('intervals') WHERE name = 'jitter_ms'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .with_context(|_| ctx())?
            > 0;
        if !has_jitter {
            conn.execute_batch("ALTER TABLE intervals ADD COLUMN jitter_ms REAL")
                .with_context(|_| ctx())?;
        }
        Ok(Store { conn })
    }

    /// Stores streams (replacing an earlier snapshot of the same stream) and calls.
    pub fn save(
        &mut self,
        ended: f64,
        streams: &[StreamReport],
        calls: &[CallReport],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().context(SqlSnafu)?;
        for s in streams {
            tx.execute(
                "INSERT OR REPLACE INTO streams VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29)",
                params![
                    s.id, s.ssrc, s.source_address, s.source_port, s.destination_address, s.destination_port,
                    s.payload_type, s.codec, s.call_id, s.first_seen, s.last_seen, ended, s.packets as i64,
                    s.expected as i64, s.lost, s.loss_percent, s.duplicates as i64, s.out_of_order as i64,
                    s.jitter_ms, s.max_jitter_ms, s.max_delta_ms, s.burst_ratio, s.burst_count as i64, s.burst_density, s.gap_density, s.one_way_delay_ms,
                    s.r_factor, s.mos, s.min_mos
                ],
            )
            .context(SqlSnafu)?;
            // An earlier snapshot of this stream; a stream of an earlier
            // call on the same ports and SSRC has the same id but earlier intervals.
            tx.execute(
                "DELETE FROM intervals WHERE stream_id = ?1 AND start BETWEEN ?2 AND ?3",
                params![s.id, s.span.0, s.span.1],
            )
            .context(SqlSnafu)?;
            for i in &s.intervals {
                tx.execute(
                    "INSERT INTO intervals (stream_id, start, expected, lost, loss_percent, r_factor, mos, jitter_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                    params![
                        s.id,
                        i.start,
                        i.expected as i64,
                        i.lost,
                        i.loss_percent,
                        i.r_factor,
                        i.mos,
                        i.jitter_ms
                    ],
                )
                .context(SqlSnafu)?;
            }
        }
        for c in calls {
            tx.execute(
                // A call's directions may end in different flushes: merge, keeping the worse score.
                "INSERT INTO calls VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9) ON CONFLICT(call_id) DO UPDATE SET
                   ended = excluded.ended, stream_count = stream_count + excluded.stream_count,
                   from_uri = coalesce(nullif(from_uri, ''), excluded.from_uri),
                   to_uri = coalesce(nullif(to_uri, ''), excluded.to_uri),
                   r_factor = min(coalesce(r_factor, excluded.r_factor), coalesce(excluded.r_factor, r_factor)),
                   mos = min(coalesce(mos, excluded.mos), coalesce(excluded.mos, mos)),
                   min_mos = min(coalesce(min_mos, excluded.min_mos), coalesce(excluded.min_mos, min_mos))",
                params![c.call_id, c.from, c.to, c.start_time, ended, c.stream_count, c.r_factor, c.mos, c.min_mos],
            )
            .context(SqlSnafu)?;
        }
        tx.commit().context(SqlSnafu)
    }

    /// Deletes reports that ended before `before` (seconds since the epoch);
    /// returns how many streams and calls went.
    pub fn erase_before(&mut self, before: f64) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().context(SqlSnafu)?;
        tx.execute(
            "DELETE FROM intervals WHERE stream_id IN (SELECT id FROM streams WHERE ended < ?1)",
            params![before],
        )
        .context(SqlSnafu)?;
        let s = tx
            .execute("DELETE FROM streams WHERE ended < ?1", params![before])
            .context(SqlSnafu)?;
        let c = tx
            .execute("DELETE FROM calls WHERE ended < ?1", params![before])
            .context(SqlSnafu)?;
        tx.commit().context(SqlSnafu)?;
        Ok((s + c) as u64)
    }

    /// The most recent calls, newest first.
    pub fn recent_calls(&self, limit: u32) -> Result<Vec<CallReport>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT call_id, from_uri, to_uri, start_time, stream_count, r_factor, mos, min_mos FROM calls ORDER BY ended DESC LIMIT ?1")
            .context(SqlSnafu)?;
        let rows = st
            .query_map(params![limit], |r| {
                Ok(CallReport {
                    call_id: r.get(0)?,
                    from: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    to: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    start_time: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    stream_count: r.get(4)?,
                    r_factor: r.get(5)?,
                    mos: r.get(6)?,
                    min_mos: r.get(7)?,
                })
            })
            .context(SqlSnafu)?;
        rows.collect::<Result<Vec<_>, _>>().context(SqlSnafu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::IntervalScore;
    use crate::report::{rfc3339, CallReport};

    /// A stream of call `call` from `t` to `t + 4` with one interval.
    fn stream(call: &str, t: f64) -> StreamReport {
        StreamReport {
            id: "000000a1:10.0.0.1:4000-10.0.0.2:6000".into(),
            ssrc: 0xa1,
            source_address: "10.0.0.1".into(),
            source_port: 4000,
            destination_address: "10.0.0.2".into(),
            destination_port: 6000,
            payload_type: Some(0),
            codec: "PCMU".into(),
            call_id: Some(call.into()),
            first_seen: rfc3339(t),
            last_seen: rfc3339(t + 4.0),
            packets: 200,
            expected: 200,
            lost: 0,
            loss_percent: 0.0,
            duplicates: 0,
            out_of_order: 0,
            jitter_ms: 0.0,
            max_jitter_ms: 0.0,
            max_delta_ms: 20.0,
            burst_ratio: 1.0,
            burst_count: 0,
            burst_density: 0.0,
            gap_density: 0.0,
            one_way_delay_ms: 0.0,
            r_factor: 93.2,
            mos: 4.41,
            min_mos: 4.41,
            intervals: vec![IntervalScore {
                start: t,
                expected: 200,
                lost: 0,
                loss_percent: 0.0,
                r_factor: 93.2,
                mos: 4.41,
                jitter_ms: 0.0,
            }],
            span: (t, t + 4.0),
        }
    }

    fn call(id: &str) -> CallReport {
        CallReport {
            call_id: id.into(),
            from: String::new(),
            to: String::new(),
            start_time: String::new(),
            stream_count: 1,
            r_factor: Some(93.2),
            mos: Some(4.41),
            min_mos: Some(4.41),
        }
    }

    #[test]
    fn calls_reusing_a_stream_id_keep_their_own_intervals() {
        let dir = std::env::temp_dir().join(format!("besip-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.db");
        let mut store = Store::open(&path).unwrap();
        let t = 1_700_000_000.123_456;
        store
            .save(t + 5.0, &[stream("c1", t)], &[call("c1")])
            .unwrap();
        // The second call's stream, a snapshot then its final report.
        store.save(t + 8.0, &[stream("c2", t + 6.0)], &[]).unwrap();
        store
            .save(t + 11.0, &[stream("c2", t + 6.0)], &[call("c2")])
            .unwrap();
        let c = crate::web::data::open(&path).unwrap();
        for (id, start) in [("c1", t), ("c2", t + 6.0)] {
            let row = crate::web::data::call(&c, id).unwrap().unwrap();
            assert_eq!(row.directions.len(), 1, "{id}");
            let points = crate::web::data::intervals(&c, &row.directions[0]).unwrap();
            let starts: Vec<f64> = points.iter().map(|p| p.start).collect();
            assert_eq!(starts, vec![start], "{id}");
        }
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
