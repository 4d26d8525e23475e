//! /pbx/extension/forwarding, /pbx/extension/do-not-disturb and
//! /pbx/feature-codes as the PBX uses them; the runtime side (what applies
//! now, what the phones set, forwarding after a failed branch) is in
//! `features::forwarding` and `features::feature_codes`.

use std::time::Duration;

use besip_core::model::pbx::{PbxExtension, PbxFeatureCodes};

/// The administrator's forwarding of one extension (the defaults that a
/// phone's feature code may override).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    pub unconditional: Option<String>,
    pub busy: Option<String>,
    pub no_answer: Option<String>,
    pub no_answer_timeout: Duration,
    pub unavailable: Option<String>,
    pub do_not_disturb: bool,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|v| !v.is_empty())
}

impl Forwarding {
    pub fn from_model(e: &PbxExtension) -> Forwarding {
        let f = &e.forwarding;
        Forwarding {
            unconditional: non_empty(&f.unconditional),
            busy: non_empty(&f.busy),
            no_answer: non_empty(&f.no_answer),
            no_answer_timeout: Duration::from_secs(u64::from(f.no_answer_timeout)),
            unavailable: non_empty(&f.unavailable),
            do_not_disturb: e.do_not_disturb,
        }
    }
}

/// What a feature code does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureAction {
    /// Sets the forwarding the setting names to the digits after the code.
    Set(Setting),
    /// Clears it.
    Clear(Setting),
    DoNotDisturb(bool),
}

/// A forwarding setting a phone may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    Unconditional,
    Busy,
    NoAnswer,
    Unavailable,
}

impl Setting {
    pub const ALL: [Setting; 4] = [
        Setting::Unconditional,
        Setting::Busy,
        Setting::NoAnswer,
        Setting::Unavailable,
    ];

    /// The YANG (and state, and store) name.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Unconditional => "unconditional",
            Setting::Busy => "busy",
            Setting::NoAnswer => "no-answer",
            Setting::Unavailable => "unavailable",
        }
    }

    pub fn from_name(name: &str) -> Option<Setting> {
        Setting::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// /pbx/feature-codes: (code, action), longest code first so that a code
/// that is the prefix of another never hides it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureCodes {
    pub codes: Vec<(String, FeatureAction)>,
}

impl FeatureCodes {
    pub fn from_model(m: &PbxFeatureCodes) -> FeatureCodes {
        if !m.enabled {
            return FeatureCodes::default();
        }
        use FeatureAction::*;
        use Setting::*;
        let mut codes = vec![
            (m.forward_unconditional_on.clone(), Set(Unconditional)),
            (m.forward_unconditional_off.clone(), Clear(Unconditional)),
            (m.forward_busy_on.clone(), Set(Busy)),
            (m.forward_busy_off.clone(), Clear(Busy)),
            (m.forward_no_answer_on.clone(), Set(NoAnswer)),
            (m.forward_no_answer_off.clone(), Clear(NoAnswer)),
            (m.forward_unavailable_on.clone(), Set(Unavailable)),
            (m.forward_unavailable_off.clone(), Clear(Unavailable)),
            (m.do_not_disturb_on.clone(), DoNotDisturb(true)),
            (m.do_not_disturb_off.clone(), DoNotDisturb(false)),
        ];
        codes.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
        FeatureCodes { codes }
    }

    /// The action a dialled user part asks for and the digits after the code.
    pub fn parse<'a>(&self, dialled: &'a str) -> Option<(FeatureAction, &'a str)> {
        self.codes.iter().find_map(|(code, action)| {
            let rest = dialled.strip_prefix(code.as_str())?;
            match action {
                FeatureAction::Set(_) => Some((*action, rest)),
                // Codes without an argument match only exactly.
                _ => rest.is_empty().then_some((*action, rest)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_codes_parse_with_and_without_argument() {
        let codes = FeatureCodes::from_model(&PbxFeatureCodes::default());
        assert_eq!(
            codes.parse("*90200"),
            Some((FeatureAction::Set(Setting::Busy), "200"))
        );
        assert_eq!(
            codes.parse("*91"),
            Some((FeatureAction::Clear(Setting::Busy), ""))
        );
        assert_eq!(codes.parse("*91200"), None);
        assert_eq!(
            codes.parse("*78"),
            Some((FeatureAction::DoNotDisturb(true), ""))
        );
        assert_eq!(codes.parse("200"), None);
    }
}
