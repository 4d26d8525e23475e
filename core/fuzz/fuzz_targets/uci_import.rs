//! Fuzz target over the UCI parser and the UCI -> YANG import:
//! `cd core && cargo +nightly fuzz run uci_import fuzz/corpus/uci_import`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    besip_core::fuzzing::uci_import(data);
});
