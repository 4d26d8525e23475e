//! Typed configuration generated from YANG at build time (core/build/typed.rs).
//!
//! For every besip module `besip-X` there is a module `model::X` with:
//! - `MODULE`, `NAMESPACE`, `PREFIX`, `PACKAGE` (the UCI package name);
//! - one struct per config container and list entry (the top container's
//!   struct is named after it, e.g. `model::pbx::Pbx`; inner ones carry the
//!   path, e.g. `PbxExtensionOutbound`), one enum per enumeration;
//! - leaves typed after their YANG type (integers, `bool`, `IpAddr`,
//!   `Decimal64<D>`, enums, else `String`); a leaf with a default is plain `T`
//!   holding the default when the option is absent, a mandatory leaf or key
//!   is `T` (absent: error), any other leaf is `Option<T>`, a leaf-list is
//!   `Vec<T>` (with its YANG defaults when absent); leaves of choices are `Option`;
//! - `Top::from_package(&Package)` reading the rendered UCI package by the
//!   YANG->UCI rule (docs/CONTRACTS.md): values are parsed and range-checked,
//!   a bad one is a [`ModelError`] naming package, section, option and value;
//! - `LEAVES`, a table of every config leaf (schema path, section type, option, field).
//!
//! Available without the `datastore` feature: daemons need no libyang at run time.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use snafu::Snafu;

use crate::uci::{Package, Section};

include!(concat!(env!("OUT_DIR"), "/model.rs"));

/// Where in a UCI package a fault is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub package: String,
    pub file: String,
    pub line: usize,
    pub section: String,
    pub option: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}:{}: section '{}' option '{}'",
            self.package, self.file, self.line, self.section, self.option
        )
    }
}

/// A value of the UCI package that the YANG types refuse.
#[derive(Debug, Clone, PartialEq, Eq, Snafu)]
pub enum ModelError {
    #[snafu(display("{place}: '{value}' is not a valid {expected}"))]
    BadValue {
        place: Box<Place>,
        value: String,
        expected: String,
    },
    #[snafu(display("{place}: {value} is outside the range {range}"))]
    OutOfRange {
        place: Box<Place>,
        value: String,
        range: String,
    },
    #[snafu(display("{place}: missing, and YANG requires it"))]
    Missing { place: Box<Place> },
    #[snafu(display("{place}: names '{value}', which no section of the parent list defines"))]
    Orphan { place: Box<Place>, value: String },
}

/// Where one config leaf lives in YANG, in UCI and in the generated types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafInfo {
    /// Schema path, e.g. `/besip-pbx:pbx/nat/external-address`.
    pub path: &'static str,
    /// UCI section type holding it (`pbx` for the `main` section).
    pub section_type: &'static str,
    /// UCI option name, e.g. `nat_external_address`.
    pub option: &'static str,
    /// Rust field path, e.g. `Pbx.nat.external_address` (`[]` marks a list entry).
    pub field: &'static str,
}

/// One generated module, for code that walks them all (tests, tools).
#[derive(Debug, Clone, Copy)]
pub struct ModuleTable {
    pub module: &'static str,
    pub namespace: &'static str,
    pub package: &'static str,
    pub leaves: &'static [LeafInfo],
}

/// A type a leaf's text parses into.
pub trait LeafValue: Sized {
    fn parse_leaf(text: &str) -> Option<Self>;
    /// The number YANG ranges apply to (decimal64: scaled), if numeric.
    fn magnitude(&self) -> Option<i128> {
        None
    }
}

macro_rules! integer_leaf {
    ($($t:ty),*) => {$(
        impl LeafValue for $t {
            fn parse_leaf(text: &str) -> Option<Self> {
                text.parse().ok()
            }
            fn magnitude(&self) -> Option<i128> {
                Some(*self as i128)
            }
        }
    )*};
}
integer_leaf!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! parsed_leaf {
    ($($t:ty),*) => {$(
        impl LeafValue for $t {
            fn parse_leaf(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}
parsed_leaf!(String, IpAddr, Ipv4Addr, Ipv6Addr);

impl LeafValue for bool {
    fn parse_leaf(text: &str) -> Option<Self> {
        crate::uci::parse_bool(text)
    }
}

/// A YANG decimal64 with `D` fraction digits, as an integer scaled by 10^D
/// (`Decimal64::<4>(15_000)` is 1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Decimal64<const D: u8>(pub i64);

impl<const D: u8> Decimal64<D> {
    /// The nearest `f64` (exact for the values a decimal64 of few digits holds in practice).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 10f64.powi(i32::from(D))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if (int.is_empty() && frac.is_empty())
            || frac.len() > usize::from(D)
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let int: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let scale = 10i64.checked_pow(u32::from(D))?;
        let frac: i64 = if D == 0 {
            0
        } else {
            format!("{frac:0<width$}", width = usize::from(D))
                .parse()
                .ok()?
        };
        let value = int.checked_mul(scale)?.checked_add(frac)?;
        Some(Decimal64(if negative { -value } else { value }))
    }
}

impl<const D: u8> std::fmt::Display for Decimal64<D> {
    /// Canonical decimal64 text (RFC 7950 §9.3.2): at least one fraction digit, no trailing zeros.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scale = 10u64.pow(u32::from(D));
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let frac = format!("{:0width$}", a % scale, width = usize::from(D));
        let frac = frac.trim_end_matches('0');
        write!(
            f,
            "{sign}{}.{}",
            a / scale,
            if frac.is_empty() { "0" } else { frac }
        )
    }
}

impl<const D: u8> LeafValue for Decimal64<D> {
    fn parse_leaf(text: &str) -> Option<Self> {
        Self::parse(text)
    }
    fn magnitude(&self) -> Option<i128> {
        Some(i128::from(self.0))
    }
}

/// Reads one package for the generated code: the `main` section, list
/// entries by section type, nested entries by their parent's key.
pub struct Reader<'a> {
    pkg: &'a Package,
    empty: Section,
    /// Section type -> parent key -> entries of a nested list.
    children: HashMap<&'a str, HashMap<&'a str, Vec<&'a Section>>>,
    /// Parent option of each nested section type.
    nested: &'static [(&'static str, &'static str)],
    claimed: RefCell<HashSet<(&'a str, &'a str)>>,
}

impl<'a> Reader<'a> {
    pub fn new(pkg: &'a Package, nested: &'static [(&'static str, &'static str)]) -> Self {
        let mut children: HashMap<&'a str, HashMap<&'a str, Vec<&'a Section>>> = HashMap::new();
        for section in &pkg.sections {
            if let Some((ty, parent)) = nested.iter().find(|(ty, _)| *ty == section.kind) {
                let key = section.get(parent).unwrap_or_default();
                children
                    .entry(ty)
                    .or_default()
                    .entry(key)
                    .or_default()
                    .push(section);
            }
        }
        Reader {
            pkg,
            empty: Section::new("", "main"),
            children,
            nested,
            claimed: RefCell::new(HashSet::new()),
        }
    }

    /// The `main` section of the top container (an empty one if absent: all defaults).
    pub fn main(&self, section_type: &str) -> &Section {
        self.pkg
            .section("main")
            .filter(|s| s.kind == section_type)
            .unwrap_or(&self.empty)
    }

    pub fn entries(&self, section_type: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.pkg.sections_of(section_type)
    }

    /// Entries of a nested list whose parent has key value `key`.
    pub fn children(&self, section_type: &str, key: &str) -> &[&'a Section] {
        let Some((ty, by_key)) = self.children.get_key_value(section_type) else {
            return &[];
        };
        match by_key.get_key_value(key) {
            Some((key, entries)) => {
                self.claimed.borrow_mut().insert((ty, key));
                entries
            }
            None => &[],
        }
    }

    /// Fails on a nested entry whose parent entry does not exist.
    pub fn finish(&self) -> Result<(), ModelError> {
        let claimed = self.claimed.borrow();
        let mut orphans: Vec<&&Section> = self
            .children
            .iter()
            .flat_map(|(ty, by_key)| {
                by_key
                    .iter()
                    .map(move |(key, entries)| ((*ty, *key), entries))
            })
            .filter(|(id, _)| !claimed.contains(id))
            .flat_map(|(_, entries)| entries.iter())
            .collect();
        orphans.sort_by_key(|s| s.line);
        let Some(orphan) = orphans.first() else {
            return Ok(());
        };
        let option = self
            .nested
            .iter()
            .find(|(ty, _)| *ty == orphan.kind)
            .map(|(_, p)| *p)
            .unwrap_or_default();
        Err(ModelError::Orphan {
            place: self.place(orphan, option, orphan.line),
            value: orphan.get(option).unwrap_or_default().to_owned(),
        })
    }

    /// Key value of a list entry (several keys joined by a space, as the
    /// renderer writes the parent option of nested entries).
    pub fn key_of(&self, s: &Section, keys: &[&str]) -> Result<String, ModelError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.required::<String>(s, key, "key", &[])?);
        }
        Ok(values.join(" "))
    }

    fn place(&self, s: &Section, option: &str, line: usize) -> Box<Place> {
        Box::new(Place {
            package: self.pkg.name.clone(),
            file: s.file.clone(),
            line,
            section: s.name.clone(),
            option: option.to_owned(),
        })
    }

    fn missing(&self, s: &Section, option: &str) -> ModelError {
        ModelError::Missing {
            place: self.place(s, option, s.line),
        }
    }

    fn parse<T: LeafValue>(
        &self,
        s: &Section,
        option: &str,
        raw: &str,
        expected: &str,
        ranges: &[(i128, i128)],
    ) -> Result<T, ModelError> {
        let line = s.option(option).map(|o| o.line).unwrap_or(s.line);
        let Some(value) = T::parse_leaf(raw) else {
            return Err(ModelError::BadValue {
                place: self.place(s, option, line),
                value: raw.to_owned(),
                expected: expected.to_owned(),
            });
        };
        if let Some(m) = value.magnitude() {
            if !ranges.is_empty() && !ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&m)) {
                return Err(ModelError::OutOfRange {
                    place: self.place(s, option, line),
                    value: raw.to_owned(),
                    range: ranges
                        .iter()
                        .map(|(lo, hi)| format!("{lo}..{hi}"))
                        .collect::<Vec<_>>()
                        .join(" | "),
                });
            }
        }
        Ok(value)
    }

    pub fn optional<T: LeafValue>(
        &self,
        s: &Section,
        option: &str,
        expected: &str,
        ranges: &[(i128, i128)],
    ) -> Result<Option<T>, ModelError> {
        s.get(option)
            .map(|raw| self.parse(s, option, raw, expected, ranges))
            .transpose()
    }

    pub fn required<T: LeafValue>(
        &self,
        s: &Section,
        option: &str,
        expected: &str,
        ranges: &[(i128, i128)],
    ) -> Result<T, ModelError> {
        self.optional(s, option, expected, ranges)?
            .ok_or_else(|| self.missing(s, option))
    }

    pub fn with_default<T: LeafValue>(
        &self,
        s: &Section,
        option: &str,
        default: &str,
        expected: &str,
        ranges: &[(i128, i128)],
    ) -> Result<T, ModelError> {
        let raw = s.get(option).unwrap_or(default);
        self.parse(s, option, raw, expected, ranges)
    }

    pub fn leaf_list<T: LeafValue>(
        &self,
        s: &Section,
        option: &str,
        defaults: &[&str],
        min_elements: u32,
        expected: &str,
        ranges: &[(i128, i128)],
    ) -> Result<Vec<T>, ModelError> {
        let given = s.list(option);
        let values: Vec<T> = if given.is_empty() {
            defaults
                .iter()
                .map(|raw| self.parse(s, option, raw, expected, ranges))
                .collect::<Result<_, _>>()?
        } else {
            given
                .iter()
                .map(|raw| self.parse(s, option, raw, expected, ranges))
                .collect::<Result<_, _>>()?
        };
        if values.len() < min_elements as usize {
            return Err(self.missing(s, option));
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal64_parses_and_prints_canonically() {
        assert_eq!(Decimal64::<4>::parse("1.5"), Some(Decimal64(15_000)));
        assert_eq!(Decimal64::<4>::parse("-0.25"), Some(Decimal64(-2_500)));
        assert_eq!(Decimal64::<4>::parse("12"), Some(Decimal64(120_000)));
        for bad in ["", ".", "1.23456", "abc", "1,5"] {
            assert_eq!(Decimal64::<4>::parse(bad), None, "{bad}");
        }
        assert_eq!(Decimal64::<4>(15_000).to_string(), "1.5");
        assert_eq!(Decimal64::<2>(-5).to_string(), "-0.05");
    }
}
