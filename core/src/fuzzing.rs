//! Entry point for the cargo-fuzz target (`core/fuzz`): a UCI file as
//! `besip import` and daemons read it, and its import into YANG data
//! (the reverse mapping of DESIGN.md §4) with validation. Must never panic.

use crate::schema::Schema;
use crate::uci::Package;
use std::collections::HashMap;
use yang2::data::{DataTree, DataValidationFlags};

/// The first byte picks the package; the rest is its text.
pub fn uci_import(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let Ok(schema) = Schema::get() else {
        return;
    };
    let modules: Vec<_> = schema.besip_modules().collect();
    let Some(module) = modules.get(usize::from(pick) % modules.len().max(1)) else {
        return;
    };
    let name = module.uci_package().unwrap_or_default();
    let Ok(package) = Package::parse(&name, &String::from_utf8_lossy(text)) else {
        return;
    };
    // What we render, we read back.
    let rendered = package.render();
    if let Err(e) = Package::parse(&name, &rendered) {
        panic!("a rendered package does not parse again: {e}\n{rendered}");
    }
    let mut tree = DataTree::new(schema.context());
    let mut lines = HashMap::new();
    if crate::uci_map::import_package(&mut tree, &package, module, &mut lines).is_ok() {
        if let Err(e) = tree.validate(DataValidationFlags::NO_STATE) {
            let _ = crate::uci_map::line_for_path(&lines, e.path.as_deref().unwrap_or_default());
        }
    }
}
