//! Prices and rates of /pbx/accounting: decimal64 money as ten-thousandths,
//! the rate of a dialled number by longest prefix, prepaid accounts.

pub use crate::config::accounting::Settings;

/// A decimal64 with up to 4 fraction digits as ten-thousandths.
pub fn parse_price(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || frac.len() > 4
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac: i64 = format!("{frac:0<4}").parse().ok()?;
    let v = int.checked_mul(10_000)?.checked_add(frac)?;
    Some(if neg { -v } else { v })
}

/// Canonical decimal64 text (RFC 7950 §9.3.2): no trailing zeros but one.
pub fn format_price(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let frac = format!("{:04}", a % 10_000);
    let frac = frac.trim_end_matches('0');
    format!(
        "{sign}{}.{}",
        a / 10_000,
        if frac.is_empty() { "0" } else { frac }
    )
}

impl Settings {
    /// Price per minute of a dialled number (longest matching prefix), 0 when none matches.
    pub fn rate_for(&self, number: &str) -> i64 {
        self.rates
            .iter()
            .find(|(p, _)| number.starts_with(p.as_str()))
            .map(|r| r.1)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::uci::Package;
    use std::collections::HashMap;

    #[test]
    fn prices_parse_and_print_canonically() {
        assert_eq!(parse_price("1.5"), Some(15_000));
        assert_eq!(parse_price("0.0001"), Some(1));
        assert_eq!(parse_price("12"), Some(120_000));
        assert_eq!(parse_price("-0.25"), Some(-2_500));
        for bad in ["", ".", "1.23456", "abc", "1,5", "1.2.3"] {
            assert_eq!(parse_price(bad), None, "{bad}");
        }
        assert_eq!(format_price(15_000), "1.5");
        assert_eq!(format_price(120_000), "12.0");
        assert_eq!(format_price(-2_500), "-0.25");
        assert_eq!(format_price(1), "0.0001");
    }

    #[test]
    fn longest_prefix_wins() {
        let pkg = Package::parse(
            "besip_pbx",
            "config pbx 'main'\n\toption accounting_enabled '1'\n\nconfig accounting_rate 'a'\n\toption prefix '00'\n\toption price_per_minute '1.0'\n\nconfig accounting_rate 'b'\n\toption prefix '0049'\n\toption price_per_minute '0.2'\n",
        )
        .expect("uci");
        let s = Settings::from_package(&pkg, &HashMap::new()).expect("settings");
        assert!(s.enabled);
        assert_eq!(s.rate_for("00491234"), 2_000);
        assert_eq!(s.rate_for("00331234"), 10_000);
        assert_eq!(s.rate_for("100"), 0);
        let bad = Package::parse(
            "besip_pbx",
            "config accounting_account 'x'\n\toption extension '999'\n\toption balance '1'\n",
        )
        .expect("uci");
        assert!(Settings::from_package(&bad, &HashMap::new()).is_err());
    }
}
