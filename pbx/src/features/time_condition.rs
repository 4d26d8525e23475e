//! Time conditions (YANG /pbx/time-condition): office hours by weekly
//! ranges and holidays in the local time of the box, choosing the open or
//! the closed destination of a call.

use chrono::{Datelike, NaiveDateTime, Timelike};
use serde_json::{json, Value};

use crate::config::inbound::{Destination, TimeCondition};
use crate::config::Config;

/// The local time of the box (TZ) now.
fn now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// Open at `at`: within a weekly range and not a holiday.
pub fn is_open(tc: &TimeCondition, at: NaiveDateTime) -> bool {
    if tc.holidays.contains(&at.date()) {
        return false;
    }
    let weekday = at.weekday().num_days_from_monday();
    let minute = (at.hour() * 60 + at.minute()) as u16;
    tc.open_hours.iter().any(|r| r.contains(weekday, minute))
}

/// The destination time condition `name` picks now.
pub fn pick<'a>(cfg: &'a Config, name: &str) -> Option<&'a Destination> {
    let tc = cfg.inbound.time_conditions.get(name)?;
    let open = is_open(tc, now());
    tracing::debug!(time_condition = name, open, "time condition");
    Some(if open { &tc.open } else { &tc.closed })
}

/// The time-condition list of /pbx/inbound-state.
pub fn state_json(cfg: &Config) -> Vec<Value> {
    let at = now();
    let mut names: Vec<&String> = cfg.inbound.time_conditions.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| cfg.inbound.time_conditions.get(n))
        .map(|tc| json!({"name": tc.name, "open": is_open(tc, at)}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::inbound::WeeklyRange;

    #[test]
    fn holidays_close_and_ranges_open() {
        let tc = TimeCondition {
            name: "office".into(),
            open_hours: vec![WeeklyRange::parse("mon-fri 08:00-17:00").expect("range")],
            holidays: vec![chrono::NaiveDate::from_ymd_opt(2026, 12, 24).expect("date")],
            open: Destination::Hangup,
            closed: Destination::Hangup,
        };
        let at = |d: u32, h: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, d)
                .and_then(|d| d.and_hms_opt(h, 0, 0))
                .expect("time")
        };
        assert!(is_open(&tc, at(23, 9)), "a Wednesday morning");
        assert!(!is_open(&tc, at(23, 18)), "after hours");
        assert!(!is_open(&tc, at(24, 9)), "a holiday");
        assert!(!is_open(&tc, at(26, 9)), "a Saturday");
    }
}
