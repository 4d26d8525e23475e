//! /pbx/inbound-route, /pbx/ring-group, /pbx/time-condition and
//! /pbx/blocklist as the PBX uses them; the runtime side is in
//! `features::inbound`, `features::ring_group` and `features::time_condition`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use besip_core::model::pbx::{self as model, Pbx};

/// Where a call goes (YANG grouping destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Extension(String),
    RingGroup(String),
    TimeCondition(String),
    /// A number outside, through the dialplan routes.
    External(String),
    /// A conference room (/pbx/conference).
    Conference(String),
    /// The mailbox of an extension.
    Voicemail(String),
    /// An IVR menu (/pbx/ivr).
    Ivr(String),
    /// The parking lot: waits on a free slot (B2BUA mode).
    Parking,
    /// Refused with 480.
    Hangup,
}

/// The four generated containers of grouping destination have the same leaves.
macro_rules! destination_of {
    ($d:expr) => {{
        let d = $d;
        match (
            &d.extension,
            &d.ring_group,
            &d.time_condition,
            &d.external_number,
            &d.conference,
            &d.voicemail,
            &d.ivr,
            d.parking,
            d.hangup,
        ) {
            (Some(e), None, None, None, None, None, None, false, false) => {
                Some(Destination::Extension(e.clone()))
            }
            (None, Some(g), None, None, None, None, None, false, false) => {
                Some(Destination::RingGroup(g.clone()))
            }
            (None, None, Some(t), None, None, None, None, false, false) => {
                Some(Destination::TimeCondition(t.clone()))
            }
            (None, None, None, Some(n), None, None, None, false, false) => {
                Some(Destination::External(n.clone()))
            }
            (None, None, None, None, Some(c), None, None, false, false) => {
                Some(Destination::Conference(c.clone()))
            }
            (None, None, None, None, None, Some(m), None, false, false) => {
                Some(Destination::Voicemail(m.clone()))
            }
            (None, None, None, None, None, None, Some(i), false, false) => {
                Some(Destination::Ivr(i.clone()))
            }
            (None, None, None, None, None, None, None, true, false) => Some(Destination::Parking),
            (None, None, None, None, None, None, None, false, true) => Some(Destination::Hangup),
            (None, None, None, None, None, None, None, false, false) => None,
            _ => return Err("a destination names more than one target".to_owned()),
        }
    }};
}

/// A number matched exactly, or an Asterisk-style pattern (YANG typedef
/// number-pattern): X any digit, Z 1-9, N 2-9, final . one or more of
/// anything, final ! zero or more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    exact: bool,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let bad = || format!("'{text}' is not a number or an _X. pattern");
        if text.is_empty() || text.len() > 33 {
            return Err(bad());
        }
        let Some(body) = text.strip_prefix('_') else {
            let digits = text.strip_prefix('+').unwrap_or(text);
            if digits.is_empty()
                || !digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                return Err(bad());
            }
            return Ok(Pattern {
                text: text.to_owned(),
                exact: true,
            });
        };
        let head = body.strip_suffix(['.', '!']).unwrap_or(body);
        let ok = head
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 'X' | 'Z' | 'N' | '*' | '#' | '+'));
        if !ok || body.is_empty() {
            return Err(bad());
        }
        Ok(Pattern {
            text: text.to_owned(),
            exact: false,
        })
    }

    pub fn is_exact(&self) -> bool {
        self.exact
    }

    pub fn matches(&self, number: &str) -> bool {
        if self.exact {
            return self.text == number;
        }
        let body = &self.text[1..];
        let (head, tail) = match body.as_bytes().last() {
            Some(b'.') => (&body[..body.len() - 1], Some(1)),
            Some(b'!') => (&body[..body.len() - 1], Some(0)),
            _ => (body, None),
        };
        let n = number.as_bytes();
        if n.len() < head.len() {
            return false;
        }
        let fits = head.bytes().zip(n).all(|(p, c)| match p {
            b'X' => c.is_ascii_digit(),
            b'Z' => (b'1'..=b'9').contains(c),
            b'N' => (b'2'..=b'9').contains(c),
            other => other == *c,
        });
        let rest = n.len() - head.len();
        fits && match tail {
            None => rest == 0,
            Some(min) => rest >= min,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RingAll,
    Hunt,
    MemoryHunt,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::Hunt => "hunt",
            Strategy::MemoryHunt => "memory-hunt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    pub number: String,
    pub strategy: Strategy,
    pub member_timeout: Duration,
    pub group_timeout: Duration,
    /// Extension numbers (or aliases) and numbers outside, in order.
    pub members: Vec<String>,
    pub final_destination: Option<Destination>,
}

/// A weekly range: days (bit 0 Monday) and minutes of the day, end excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyRange {
    pub days: u8,
    pub start: u16,
    pub end: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl WeeklyRange {
    /// "mon-fri 08:00-17:00", "sat,sun 09:00-12:00" (a day range may wrap: fri-mon).
    pub fn parse(text: &str) -> Result<WeeklyRange, String> {
        let bad = || format!("open-hours '{text}' is not 'DAYS HH:MM-HH:MM'");
        let (days_text, times) = text.split_once(' ').ok_or_else(bad)?;
        let day = |d: &str| DAYS.iter().position(|n| *n == d).ok_or_else(bad);
        let mut days = 0u8;
        for part in days_text.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None => (day(part)?, day(part)?),
            };
            let mut d = a;
            loop {
                days |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t.split_once(':').ok_or_else(bad)?;
            let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 24 || m > 59 || (h == 24 && m > 0) {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (s, e) = times.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(s)?, minute(e)?);
        if start >= end {
            return Err(format!(
                "open-hours '{text}': the start must be before the end"
            ));
        }
        Ok(WeeklyRange { days, start, end })
    }

    /// `weekday` 0 = Monday, `minute` of the day.
    pub fn contains(&self, weekday: u32, minute: u16) -> bool {
        self.days & (1 << weekday) != 0 && self.start <= minute && minute < self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCondition {
    pub name: String,
    pub open_hours: Vec<WeeklyRange>,
    pub holidays: Vec<chrono::NaiveDate>,
    pub open: Destination,
    pub closed: Destination,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRoute {
    pub name: String,
    pub priority: u16,
    pub trunk: Option<String>,
    pub did: Pattern,
    pub caller_id: Option<Pattern>,
    pub destination: Destination,
    pub record: super::media::RecordCalls,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inbound {
    /// In the order they are tried.
    pub routes: Vec<InboundRoute>,
    pub ring_groups: HashMap<String, RingGroup>,
    pub time_conditions: HashMap<String, TimeCondition>,
    pub blocklist: Vec<Pattern>,
}

impl Inbound {
    /// `dialable`: extension numbers and aliases (a group may not take one).
    pub fn from_model(
        pbx: &Pbx,
        dialable: &HashSet<&str>,
        trunks: &HashSet<&str>,
    ) -> Result<Inbound, String> {
        let mut ring_groups = HashMap::new();
        for g in &pbx.ring_group {
            if dialable.contains(g.number.as_str()) {
                return Err(format!(
                    "ring group {} has the number of an extension or alias",
                    g.number
                ));
            }
            let strategy = match g.strategy {
                model::RingGroupStrategy::RingAll => Strategy::RingAll,
                model::RingGroupStrategy::Hunt => Strategy::Hunt,
                model::RingGroupStrategy::MemoryHunt => Strategy::MemoryHunt,
            };
            ring_groups.insert(
                g.number.clone(),
                RingGroup {
                    number: g.number.clone(),
                    strategy,
                    member_timeout: Duration::from_secs(u64::from(g.member_timeout)),
                    group_timeout: Duration::from_secs(u64::from(g.group_timeout)),
                    members: g.member.iter().map(|m| m.number.clone()).collect(),
                    final_destination: destination_of!(&g.final_destination),
                },
            );
        }
        let mut time_conditions = HashMap::new();
        for t in &pbx.time_condition {
            let name = &t.name;
            let open_hours = t
                .open_hours
                .iter()
                .map(|r| WeeklyRange::parse(r))
                .collect::<Result<_, _>>()?;
            let holidays = t
                .holiday
                .iter()
                .map(|d| {
                    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                        .map_err(|_| format!("time condition {name}: '{d}' is not a date"))
                })
                .collect::<Result<_, _>>()?;
            let need = |d: Option<Destination>, which: &str| {
                d.ok_or_else(|| format!("time condition {name} needs a {which} destination"))
            };
            time_conditions.insert(
                name.clone(),
                TimeCondition {
                    name: name.clone(),
                    open_hours,
                    holidays,
                    open: need(destination_of!(&t.open_destination), "open")?,
                    closed: need(destination_of!(&t.closed_destination), "closed")?,
                },
            );
        }
        let mut routes = Vec::new();
        for r in &pbx.inbound_route {
            let name = &r.name;
            if let Some(t) = r.trunk.as_deref().filter(|t| !trunks.contains(t)) {
                return Err(format!("inbound route {name} names unknown trunk {t}"));
            }
            let destination = destination_of!(&r.destination)
                .ok_or_else(|| format!("inbound route {name} needs a destination"))?;
            routes.push(InboundRoute {
                name: name.clone(),
                priority: r.priority,
                trunk: r.trunk.clone(),
                did: Pattern::parse(&r.did).map_err(|e| format!("inbound route {name}: {e}"))?,
                caller_id: r
                    .caller_id
                    .as_deref()
                    .map(Pattern::parse)
                    .transpose()
                    .map_err(|e| format!("inbound route {name}: {e}"))?,
                destination,
                record: r.record_calls.into(),
            });
        }
        // Asterisk's order within a priority: caller-ID routes, then exact numbers.
        routes.sort_by_key(|r| (r.priority, r.caller_id.is_none(), !r.did.is_exact()));
        let blocklist = pbx
            .blocklist
            .number
            .iter()
            .map(|n| Pattern::parse(n))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("blocklist: {e}"))?;
        let inbound = Inbound {
            routes,
            ring_groups,
            time_conditions,
            blocklist,
        };
        inbound.check_references(dialable)?;
        Ok(inbound)
    }

    /// Every destination names something that exists, and no chain of
    /// time conditions and final destinations comes back to itself.
    fn check_references(&self, dialable: &HashSet<&str>) -> Result<(), String> {
        let exists = |d: &Destination| match d {
            Destination::Extension(e) if !dialable.contains(e.as_str()) => {
                Err(format!("destination names unknown extension {e}"))
            }
            Destination::RingGroup(g) if !self.ring_groups.contains_key(g) => {
                Err(format!("destination names unknown ring group {g}"))
            }
            Destination::TimeCondition(t) if !self.time_conditions.contains_key(t) => {
                Err(format!("destination names unknown time condition {t}"))
            }
            _ => Ok(()),
        };
        for d in self.destinations() {
            exists(d)?;
        }
        for start in self
            .ring_groups
            .keys()
            .map(|g| Destination::RingGroup(g.clone()))
            .chain(
                self.time_conditions
                    .keys()
                    .map(|t| Destination::TimeCondition(t.clone())),
            )
        {
            let mut stack = vec![(start.clone(), 0usize)];
            while let Some((d, depth)) = stack.pop() {
                if depth > 0 && d == start {
                    return Err(format!("{start:?} leads back to itself"));
                }
                if depth > self.ring_groups.len() + self.time_conditions.len() {
                    continue;
                }
                stack.extend(self.next(&d).into_iter().map(|n| (n.clone(), depth + 1)));
            }
        }
        Ok(())
    }

    /// Every configured destination: inbound routes', ring groups' final
    /// ones, time conditions' open and closed ones.
    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.routes
            .iter()
            .map(|r| &r.destination)
            .chain(
                self.ring_groups
                    .values()
                    .filter_map(|g| g.final_destination.as_ref()),
            )
            .chain(
                self.time_conditions
                    .values()
                    .flat_map(|t| [&t.open, &t.closed]),
            )
    }

    /// Where a destination may lead on.
    fn next(&self, d: &Destination) -> Vec<&Destination> {
        match d {
            Destination::RingGroup(g) => self
                .ring_groups
                .get(g)
                .and_then(|g| g.final_destination.as_ref())
                .into_iter()
                .collect(),
            Destination::TimeCondition(t) => self
                .time_conditions
                .get(t)
                .map(|t| vec![&t.open, &t.closed])
                .unwrap_or_default(),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_asterisk_does() {
        let p = |t: &str| Pattern::parse(t).expect(t);
        assert!(p("0301234").matches("0301234"));
        assert!(!p("0301234").matches("03012345"));
        assert!(p("_030XXXX").matches("0301234"));
        assert!(!p("_030XXXX").matches("030123"));
        assert!(p("_030.").matches("0301"));
        assert!(!p("_030.").matches("030"));
        assert!(p("_030!").matches("030"));
        assert!(p("_NXX").matches("200"));
        assert!(!p("_NXX").matches("100"));
        assert!(p("_Z!").matches("5"));
        assert!(p("_.").matches("x"));
        assert!(p("+4930").matches("+4930"));
        for bad in [
            "",
            "_",
            "abc",
            "_03.0",
            "_a",
            "12.3",
            "_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        ] {
            assert!(Pattern::parse(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn weekly_ranges() {
        let r = WeeklyRange::parse("mon-fri 08:00-17:00").expect("range");
        assert!(r.contains(0, 8 * 60));
        assert!(!r.contains(0, 17 * 60));
        assert!(!r.contains(5, 9 * 60));
        let w = WeeklyRange::parse("fri-mon 00:00-24:00").expect("wrap");
        assert!(w.contains(6, 23 * 60 + 59) && w.contains(0, 0) && !w.contains(2, 0));
        let s = WeeklyRange::parse("sat,sun 09:00-12:00").expect("list");
        assert!(s.contains(5, 600) && s.contains(6, 600) && !s.contains(4, 600));
        for bad in [
            "mon 10:00-09:00",
            "xyz 08:00-09:00",
            "mon 25:00-26:00",
            "mon",
        ] {
            assert!(WeeklyRange::parse(bad).is_err(), "accepted {bad}");
        }
    }
}

/// An IVR menu (/pbx/ivr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ivr {
    pub name: String,
    pub number: Option<String>,
    pub prompt: String,
    pub timeout: Duration,
    pub repeats: u8,
    pub direct_dial: bool,
    pub entries: HashMap<char, Destination>,
    pub timeout_destination: Option<Destination>,
}

/// The IVR menus by name.
pub fn ivrs(pbx: &Pbx) -> Result<HashMap<String, Ivr>, String> {
    let mut out = HashMap::new();
    for m in &pbx.ivr {
        let mut entries = HashMap::new();
        for e in &m.entry {
            let key = e
                .key
                .chars()
                .next()
                .ok_or("an IVR entry has an empty key")?;
            let d = destination_of!(&e.destination)
                .ok_or_else(|| format!("ivr {} key {key}: no destination", m.name))?;
            entries.insert(key, d);
        }
        let timeout_destination = destination_of!(&m.timeout_destination);
        // A menu passes its caller on by number (REFER); no number parks.
        if entries
            .values()
            .chain(&timeout_destination)
            .any(|d| *d == Destination::Parking)
        {
            return Err(format!(
                "ivr {}: the parking lot cannot be a menu's destination",
                m.name
            ));
        }
        out.insert(
            m.name.clone(),
            Ivr {
                name: m.name.clone(),
                number: m.number.clone(),
                prompt: m.prompt.clone(),
                timeout: Duration::from_secs(u64::from(m.timeout)),
                repeats: m.repeats,
                direct_dial: m.direct_dial,
                entries,
                timeout_destination,
            },
        );
    }
    Ok(out)
}
