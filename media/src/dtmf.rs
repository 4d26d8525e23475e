//! DTMF as RFC 4733 telephone-events: each event is several packets with
//! the same RTP timestamp (the event's start) and a growing duration, the
//! last ones (sent three times) with the End bit. A key press is reported
//! once, on its first packet.

/// The key of an event code 0–15, None for the other events (tones, flash).
pub fn key(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a key.
pub fn event(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub code: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

pub fn parse(payload: &[u8]) -> Option<Event> {
    let p: &[u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(Event {
        code: p[0],
        end: p[1] & 0x80 != 0,
        volume: p[1] & 0x3F,
        duration: u16::from_be_bytes([p[2], p[3]]),
    })
}

pub fn encode(e: Event) -> [u8; 4] {
    let d = e.duration.to_be_bytes();
    [
        e.code,
        (e.volume & 0x3F) | if e.end { 0x80 } else { 0 },
        d[0],
        d[1],
    ]
}

/// Turns a stream of telephone-event packets into key presses.
#[derive(Debug, Default)]
pub struct Detector {
    /// RTP timestamp of the last event reported.
    last: Option<u32>,
}

impl Detector {
    /// The key pressed when the packet with RTP `timestamp` and `payload`
    /// starts a new event; None for the event's later packets and for
    /// anything not a key.
    pub fn packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let e = parse(payload)?;
        if self.last == Some(timestamp) {
            return None;
        }
        let k = key(e.code)?;
        self.last = Some(timestamp);
        Some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_its_repeats_is_one_key() {
        let mut d = Detector::default();
        let mut keys = String::new();
        for (ts, code) in [(1000u32, 5u8), (2000, 11)] {
            for (i, end) in [(1, false), (2, false), (3, true), (3, true), (3, true)] {
                let p = encode(Event {
                    code,
                    end,
                    volume: 10,
                    duration: 160 * i,
                });
                keys.extend(d.packet(ts, &p));
            }
        }
        assert_eq!(keys, "5#");
    }

    #[test]
    fn keys_and_codes_round_trip() {
        for k in "0123456789*#ABCD".chars() {
            assert_eq!(key(event(k).unwrap()), Some(k));
        }
        assert_eq!(key(16), None);
        assert_eq!(event('x'), None);
    }

    #[test]
    fn short_or_odd_payloads_are_no_key() {
        let mut d = Detector::default();
        assert_eq!(d.packet(1, &[1, 2]), None);
        assert_eq!(d.packet(2, &[200, 0, 0, 0]), None);
    }
}
