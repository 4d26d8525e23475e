//! Codec table: clock rate and E-model impairments per payload type.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Codec {
    pub name: String,
    pub clock_rate: u32,
    pub ie: f64,
    pub bpl: f64,
}

/// Built-in values (ITU-T G.113 Appendix I); used for payload types the
/// configured `codec` list does not name. G.711 assumes packet-loss
/// concealment (Bpl 25.1; without PLC it would be 4.3), as today's phones do.
const BUILTIN: &[(&str, u32, f64, f64)] = &[
    ("PCMU", 8000, 0.0, 25.1),
    ("PCMA", 8000, 0.0, 25.1),
    ("G729", 8000, 11.0, 19.0),
    ("G723", 8000, 15.0, 16.1),
    ("GSM", 8000, 20.0, 10.0),
    ("G722", 8000, 0.0, 25.1),
    ("iLBC", 8000, 11.0, 32.0),
    ("opus", 48000, 0.0, 25.1),
];

/// Static payload types of RFC 3551 that carry voice.
fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        8 => "PCMA",
        9 => "G722",
        18 => "G729",
        _ => return None,
    })
}

/// Whether an encoding name is not voice: DTMF events or comfort noise.
pub fn is_non_voice(name: &str) -> bool {
    name.eq_ignore_ascii_case("telephone-event") || name.eq_ignore_ascii_case("CN")
}

/// Configured overrides keyed by payload type, plus the built-in table.
#[derive(Debug, Clone, Default)]
pub struct CodecTable {
    configured: HashMap<u8, Codec>,
}

impl CodecTable {
    pub fn with(configured: HashMap<u8, Codec>) -> Self {
        CodecTable { configured }
    }

    fn builtin(name: &str) -> Option<Codec> {
        BUILTIN
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|&(n, clock_rate, ie, bpl)| Codec {
                name: n.to_string(),
                clock_rate,
                ie,
                bpl,
            })
    }

    /// The codec for a payload type; `sdp` is the name and clock announced by SDP, if any.
    pub fn lookup(&self, pt: u8, sdp: Option<(&str, u32)>) -> Codec {
        if let Some(c) = self.configured.get(&pt) {
            return c.clone();
        }
        if let Some((name, clock)) = sdp {
            let mut c = Self::builtin(name).unwrap_or(Codec {
                name: name.to_string(),
                clock_rate: clock,
                ie: 0.0,
                bpl: 25.1,
            });
            c.clock_rate = clock.max(1);
            return c;
        }
        if let Some(c) = static_name(pt).and_then(Self::builtin) {
            return c;
        }
        Codec {
            name: format!("PT{pt}"),
            clock_rate: 8000,
            ie: 0.0,
            bpl: 25.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_overrides_builtin_and_sdp_names_dynamic() {
        let mut cfg = HashMap::new();
        cfg.insert(
            8,
            Codec {
                name: "PCMA".into(),
                clock_rate: 8000,
                ie: 0.0,
                bpl: 4.3,
            },
        );
        let t = CodecTable::with(cfg);
        assert_eq!(t.lookup(8, None).bpl, 4.3);
        assert_eq!(t.lookup(0, None).bpl, 25.1);
        assert_eq!(t.lookup(18, None).ie, 11.0);
        assert_eq!(t.lookup(96, Some(("opus", 48000))).clock_rate, 48000);
        assert_eq!(t.lookup(97, None).name, "PT97");
    }
}
