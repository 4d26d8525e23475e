//! Read-only queries of the report database for the panel: the filtered
//! calls list, one call's directions and intervals, the 24 h summary.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};

pub const PAGE_SIZE: u32 = 25;
/// Most rows a CSV export carries.
pub const EXPORT_MAX: u32 = 100_000;

/// ITU-T G.109 speech transmission quality categories, by MOS (R 90/80/70/60).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Best,
    High,
    Medium,
    Low,
    Poor,
}

impl Band {
    pub const ALL: [Band; 5] = [Band::Best, Band::High, Band::Medium, Band::Low, Band::Poor];

    pub fn of(mos: f64) -> Band {
        if mos >= 4.34 {
            Band::Best
        } else if mos >= 4.03 {
            Band::High
        } else if mos >= 3.60 {
            Band::Medium
        } else if mos >= 3.10 {
            Band::Low
        } else {
            Band::Poor
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Band::Best => "best",
            Band::High => "high",
            Band::Medium => "medium",
            Band::Low => "low",
            Band::Poor => "poor",
        }
    }

    /// Lower MOS bound of the band (1.0 for poor).
    pub fn floor(self) -> f64 {
        match self {
            Band::Best => 4.34,
            Band::High => 4.03,
            Band::Medium => 3.60,
            Band::Low => 3.10,
            Band::Poor => 1.0,
        }
    }

    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            Band::Best => (0x1b, 0x8a, 0x3c),
            Band::High => (0x7c, 0xb3, 0x42),
            Band::Medium => (0xf2, 0xc0, 0x1b),
            Band::Low => (0xf5, 0x7c, 0x00),
            Band::Poor => (0xc6, 0x28, 0x28),
        }
    }

    pub fn css(self) -> String {
        let (r, g, b) = self.rgb();
        format!("#{r:02x}{g:02x}{b:02x}")
    }
}

/// The calls list filter, from the query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// RFC 3339 UTC bounds on the call's start time.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Part of the caller's or callee's URI.
    pub number: Option<String>,
    pub mos_below: Option<f64>,
    /// 1-based.
    pub page: u32,
}

/// `2026-11-23T13:00` (an HTML datetime-local, taken as UTC), with seconds,
/// or full RFC 3339 -> RFC 3339 UTC with milliseconds, as the store writes.
fn parse_time(name: &str, s: &str) -> Result<String, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
                .map(|n| n.and_utc())
        })
        .map_err(|_| {
            format!("'{name}' must be a date and time such as 2026-11-23T13:00 (UTC), not '{s}'")
        })?;
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl Filter {
    pub fn parse(q: &HashMap<String, String>) -> Result<Filter, String> {
        let mut f = Filter {
            page: 1,
            ..Filter::default()
        };
        for (k, v) in q {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "from" => f.from = Some(parse_time("from", v)?),
                "to" => f.to = Some(parse_time("to", v)?),
                "number" => {
                    if v.len() > 64 || v.chars().any(char::is_control) {
                        return Err("'number' must be at most 64 printable characters".into());
                    }
                    f.number = Some(v.to_string());
                }
                "mos_below" => {
                    let m: f64 = v
                        .parse()
                        .ok()
                        .filter(|m: &f64| (1.0..=5.0).contains(m))
                        .ok_or_else(|| format!("'mos_below' must be a MOS 1..5, not '{v}'"))?;
                    f.mos_below = Some(m);
                }
                "page" => {
                    f.page = v
                        .parse()
                        .ok()
                        .filter(|p| (1..=1_000_000).contains(p))
                        .ok_or_else(|| format!("'page' must be 1..1000000, not '{v}'"))?;
                }
                other => {
                    return Err(format!(
                        "unknown parameter '{}' (from, to, number, mos_below, page)",
                        other.chars().take(40).collect::<String>()
                    ))
                }
            }
        }
        Ok(f)
    }

    /// The WHERE clause (on `calls c`) and its parameters.
    pub fn where_sql(&self) -> (String, Vec<SqlValue>) {
        let mut parts = Vec::new();
        let mut args = Vec::new();
        if let Some(t) = &self.from {
            parts.push("c.start_time >= ?");
            args.push(SqlValue::Text(t.clone()));
        }
        if let Some(t) = &self.to {
            parts.push("c.start_time <= ?");
            args.push(SqlValue::Text(t.clone()));
        }
        if let Some(n) = &self.number {
            parts.push("(c.from_uri LIKE ? ESCAPE '\\' OR c.to_uri LIKE ? ESCAPE '\\')");
            let pattern = format!(
                "%{}%",
                n.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            args.push(SqlValue::Text(pattern.clone()));
            args.push(SqlValue::Text(pattern));
        }
        if let Some(m) = self.mos_below {
            parts.push("c.mos < ?");
            args.push(SqlValue::Real(m));
        }
        if parts.is_empty() {
            (String::new(), args)
        } else {
            (format!(" WHERE {}", parts.join(" AND ")), args)
        }
    }

    /// The query string of this filter at another page (for links).
    pub fn query(&self, page: u32) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("number", &self.number),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", super::url_encode(v)));
            }
        }
        if let Some(m) = self.mos_below {
            q.push(format!("mos_below={m}"));
        }
        if page > 1 {
            q.push(format!("page={page}"));
        }
        q.join("&")
    }
}

/// One direction (RTP stream) of a call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Direction {
    pub id: String,
    pub source: String,
    pub destination: String,
    pub codec: String,
    pub first_seen: String,
    pub last_seen: String,
    pub packets: i64,
    pub expected: i64,
    pub lost: i64,
    pub loss_percent: f64,
    pub burst_ratio: f64,
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub delay_ms: f64,
    pub r_factor: f64,
    pub mos: f64,
    pub min_mos: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CallRow {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub start_time: String,
    pub duration_s: Option<f64>,
    /// The call's score: its worse direction.
    pub mos: Option<f64>,
    pub r_factor: Option<f64>,
    /// In order of first packet: A->B is the side that sent first.
    pub directions: Vec<Direction>,
}

impl CallRow {
    pub fn codecs(&self) -> String {
        let mut c: Vec<&str> = self.directions.iter().map(|d| d.codec.as_str()).collect();
        c.dedup();
        c.join("/")
    }
    pub fn max_loss(&self) -> Option<f64> {
        self.directions
            .iter()
            .map(|d| d.loss_percent)
            .reduce(f64::max)
    }
    pub fn max_jitter(&self) -> Option<f64> {
        self.directions.iter().map(|d| d.jitter_ms).reduce(f64::max)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct IntervalPoint {
    pub start: f64,
    pub mos: f64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
}

pub struct Summary {
    pub calls: i64,
    pub avg_mos: Option<f64>,
    pub worst_mos: Option<f64>,
    pub below_threshold: i64,
    /// (ended, MOS) of each call with a score, oldest first.
    pub points: Vec<(f64, f64)>,
}

/// Opens the daemon's database read-only (a short-lived connection per request).
pub fn open(path: &Path) -> Result<Connection, String> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("report database {}: {e}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    Ok(c)
}

fn seconds(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

fn directions(c: &Connection, call_id: &str) -> rusqlite::Result<Vec<Direction>> {
    let mut st = c.prepare_cached(
        "SELECT id, source_address, source_port, destination_address, destination_port, codec,
                first_seen, last_seen, packets, expected, lost, loss_percent, burst_ratio, jitter_ms,
                max_jitter_ms, one_way_delay_ms, r_factor, mos, min_mos
         FROM streams WHERE call_id = ?1 ORDER BY first_seen, id",
    )?;
    let rows = st.query_map(params![call_id], |r| {
        let addr = |a: String, p: i64| {
            if a.contains(':') {
                format!("[{a}]:{p}")
            } else {
                format!("{a}:{p}")
            }
        };
        Ok(Direction {
            id: r.get(0)?,
            source: addr(r.get(1)?, r.get(2)?),
            destination: addr(r.get(3)?, r.get(4)?),
            codec: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
            first_seen: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            last_seen: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
            packets: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
            expected: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
            lost: r.get::<_, Option<i64>>(10)?.unwrap_or(0),
            loss_percent: r.get::<_, Option<f64>>(11)?.unwrap_or(0.0),
            burst_ratio: r.get::<_, Option<f64>>(12)?.unwrap_or(0.0),
            jitter_ms: r.get::<_, Option<f64>>(13)?.unwrap_or(0.0),
            max_jitter_ms: r.get::<_, Option<f64>>(14)?.unwrap_or(0.0),
            delay_ms: r.get::<_, Option<f64>>(15)?.unwrap_or(0.0),
            r_factor: r.get::<_, Option<f64>>(16)?.unwrap_or(0.0),
            mos: r.get::<_, Option<f64>>(17)?.unwrap_or(0.0),
            min_mos: r.get::<_, Option<f64>>(18)?.unwrap_or(0.0),
        })
    })?;
    rows.collect()
}

fn call_row(c: &Connection, r: &rusqlite::Row<'_>) -> rusqlite::Result<CallRow> {
    let call_id: String = r.get(0)?;
    let dirs = directions(c, &call_id)?;
    let first = dirs
        .iter()
        .filter_map(|d| seconds(&d.first_seen))
        .reduce(f64::min);
    let last = dirs
        .iter()
        .filter_map(|d| seconds(&d.last_seen))
        .reduce(f64::max);
    Ok(CallRow {
        from: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        to: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        start_time: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        mos: r.get(4)?,
        r_factor: r.get(5)?,
        duration_s: first.zip(last).map(|(a, b)| (b - a).max(0.0)),
        directions: dirs,
        call_id,
    })
}

const CALL_COLUMNS: &str = "c.call_id, c.from_uri, c.to_uri, c.start_time, c.mos, c.r_factor";

/// One page of the filtered list (newest first) and the number of matches.
pub fn list(c: &Connection, f: &Filter, limit: u32) -> rusqlite::Result<(Vec<CallRow>, i64)> {
    let (clause, args) = f.where_sql();
    let total: i64 = c.query_row(
        &format!("SELECT count(*) FROM calls c{clause}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let offset = i64::from(f.page.saturating_sub(1)) * i64::from(limit);
    let mut all = args;
    all.push(SqlValue::Integer(i64::from(limit)));
    all.push(SqlValue::Integer(offset));
    let mut st = c.prepare(&format!(
        "SELECT {CALL_COLUMNS} FROM calls c{clause} ORDER BY c.start_time DESC, c.call_id LIMIT ? OFFSET ?"
    ))?;
    let mut rows = st.query(params_from_iter(all.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(call_row(c, r)?);
    }
    Ok((out, total))
}

pub fn call(c: &Connection, call_id: &str) -> rusqlite::Result<Option<CallRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {CALL_COLUMNS} FROM calls c WHERE c.call_id = ?1"
    ))?;
    let mut rows = st.query(params![call_id])?;
    match rows.next()? {
        Some(r) => call_row(c, r).map(Some),
        None => Ok(None),
    }
}

/// The intervals of one direction; streams of other calls on the same ports
/// and SSRC share its id, so only those within its first and last packet.
pub fn intervals(c: &Connection, d: &Direction) -> rusqlite::Result<Vec<IntervalPoint>> {
    // The stored times are cut to milliseconds.
    let from = seconds(&d.first_seen).map_or(f64::NEG_INFINITY, |t| t - 0.001);
    let to = seconds(&d.last_seen).map_or(f64::INFINITY, |t| t + 0.001);
    let mut st = c.prepare_cached(
        "SELECT start, mos, loss_percent, jitter_ms FROM intervals
         WHERE stream_id = ?1 AND start BETWEEN ?2 AND ?3 ORDER BY start",
    )?;
    let rows = st.query_map(params![d.id, from, to], |r| {
        Ok(IntervalPoint {
            start: r.get(0)?,
            mos: r.get::<_, Option<f64>>(1)?.unwrap_or(1.0),
            loss_percent: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
            jitter_ms: r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
        })
    })?;
    rows.collect()
}

/// Calls that ended since `since` (seconds since the epoch).
pub fn summary(c: &Connection, since: f64, threshold: f64) -> rusqlite::Result<Summary> {
    let (calls, avg_mos, worst_mos, below) = c.query_row(
        "SELECT count(*), avg(mos), min(mos), coalesce(sum(mos < ?2), 0) FROM calls WHERE ended >= ?1",
        params![since, threshold],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut st = c.prepare(
        "SELECT ended, mos FROM calls WHERE ended >= ?1 AND mos IS NOT NULL ORDER BY ended",
    )?;
    let points = st
        .query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Summary {
        calls,
        avg_mos,
        worst_mos,
        below_threshold: below,
        points,
    })
}

pub fn count_calls(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .optional()
        .map(|n| n.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn g109_bands() {
        assert_eq!(Band::of(4.41), Band::Best);
        assert_eq!(Band::of(4.34), Band::Best);
        assert_eq!(Band::of(4.33), Band::High);
        assert_eq!(Band::of(4.03), Band::High);
        assert_eq!(Band::of(3.60), Band::Medium);
        assert_eq!(Band::of(3.59), Band::Low);
        assert_eq!(Band::of(3.10), Band::Low);
        assert_eq!(Band::of(2.0), Band::Poor);
        assert_eq!(Band::Best.css(), "#1b8a3c");
    }

    #[test]
    fn filter_to_sql() {
        let f = Filter::parse(&q(&[
            ("from", "2026-11-23T13:00"),
            ("number", "10%_0"),
            ("mos_below", "3.6"),
            ("to", ""),
            ("page", "3"),
        ]))
        .unwrap();
        assert_eq!(f.from.as_deref(), Some("2026-11-23T13:00:00.000Z"));
        assert_eq!(f.to, None);
        assert_eq!(f.page, 3);
        let (sql, args) = f.where_sql();
        assert_eq!(
            sql,
            " WHERE c.start_time >= ? AND (c.from_uri LIKE ? ESCAPE '\\' OR c.to_uri LIKE ? ESCAPE '\\') AND c.mos < ?"
        );
        assert_eq!(args[1], SqlValue::Text("%10\\%\\_0%".into()));
        assert_eq!(args[3], SqlValue::Real(3.6));
        assert_eq!(
            f.query(4),
            "from=2026-11-23T13%3A00%3A00.000Z&number=10%25_0&mos_below=3.6&page=4"
        );
        assert_eq!(Filter::parse(&q(&[])).unwrap().where_sql().0, "");
    }

    #[test]
    fn bad_filters_are_refused() {
        for (k, v) in [
            ("mos_below", "7"),
            ("mos_below", "NaN"),
            ("page", "0"),
            ("page", "-1"),
            ("from", "yesterday"),
            ("number", "1\n2"),
            ("drop", "table"),
        ] {
            let e = Filter::parse(&q(&[(k, v)])).unwrap_err();
            assert!(e.contains('\''), "{k}={v}: {e}");
        }
    }

    #[test]
    fn queries_on_a_real_store() {
        use crate::report::CallReport;
        let dir = std::env::temp_dir().join(format!("besip-web-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.db");
        let mut store = crate::store::Store::open(&path).unwrap();
        let report = |id: &str, from: &str, mos: f64| CallReport {
            call_id: id.into(),
            from: from.into(),
            to: "sip:200@b".into(),
            start_time: format!("2026-11-23T1{}:00:00.000Z", id.len()),
            stream_count: 0,
            r_factor: Some(80.0),
            mos: Some(mos),
            min_mos: Some(mos),
        };
        store
            .save(
                1000.0,
                &[],
                &[
                    report("a", "sip:100@a", 4.4),
                    report("bb", "sip:101@a", 3.0),
                ],
            )
            .unwrap();
        let c = open(&path).unwrap();
        let all = Filter::parse(&q(&[])).unwrap();
        let (rows, total) = list(&c, &all, 10).unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows[0].call_id, "bb", "newest first");
        let low = Filter::parse(&q(&[("mos_below", "3.6")])).unwrap();
        assert_eq!(list(&c, &low, 10).unwrap().1, 1);
        let mut paged = Filter::parse(&q(&[("page", "2")])).unwrap();
        let (rows, total) = list(&c, &paged, 1).unwrap();
        assert_eq!((rows.len(), total, rows[0].call_id.as_str()), (1, 2, "a"));
        paged.page = 3;
        assert!(list(&c, &paged, 1).unwrap().0.is_empty());
        let window = Filter::parse(&q(&[
            ("from", "2026-11-23T11:30"),
            ("to", "2026-11-23T12:30:00Z"),
        ]))
        .unwrap();
        assert_eq!(list(&c, &window, 10).unwrap().0[0].call_id, "bb");
        assert_eq!(list(&c, &window, 10).unwrap().1, 1);
        let num = Filter::parse(&q(&[("number", "100")])).unwrap();
        assert_eq!(list(&c, &num, 10).unwrap().0[0].call_id, "a");
        let s = summary(&c, 0.0, 3.6).unwrap();
        assert_eq!((s.calls, s.below_threshold), (2, 1));
        assert_eq!(s.worst_mos, Some(3.0));
        assert!(call(&c, "none").unwrap().is_none());
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
