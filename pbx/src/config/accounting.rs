//! /pbx/accounting as the PBX uses it (read from the generated
//! `besip_core::model::pbx` types; pricing and CDRs are in `rating` and `accounting`).

use std::collections::HashMap;

use besip_core::model::pbx::{Pbx, PbxAccounting};
use besip_core::uci::Package;

use super::Extension;

/// Parsed /pbx/accounting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub enabled: bool,
    pub max_price: Option<i64>,
    /// (prefix, price per minute), longest prefix first.
    pub rates: Vec<(String, i64)>,
    /// Balance of each account at the time of the commit.
    pub accounts: HashMap<String, i64>,
}

impl Settings {
    /// The settings of a whole package (tests and tools; the daemon reads `Pbx` once).
    pub fn from_package(
        pkg: &Package,
        extensions: &HashMap<String, Extension>,
    ) -> Result<Settings, String> {
        let pbx = Pbx::from_package(pkg).map_err(|e| e.to_string())?;
        Settings::from_model(&pbx.accounting, extensions)
    }

    /// Prices are decimal64 with 4 digits, kept as ten-thousandths; an account
    /// must name a known extension (a leafref, checked here).
    pub fn from_model(
        accounting: &PbxAccounting,
        extensions: &HashMap<String, Extension>,
    ) -> Result<Settings, String> {
        let mut rates: Vec<(String, i64)> = accounting
            .rate
            .iter()
            .map(|r| (r.prefix.clone(), r.price_per_minute.0))
            .collect();
        rates.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let mut accounts = HashMap::new();
        for account in &accounting.account {
            if !extensions.contains_key(&account.extension) {
                return Err(format!(
                    "accounting account of unknown extension {}",
                    account.extension
                ));
            }
            accounts.insert(account.extension.clone(), account.balance.0);
        }
        Ok(Settings {
            enabled: accounting.enabled,
            max_price: accounting.max_price_per_minute.map(|p| p.0),
            rates,
            accounts,
        })
    }
}
