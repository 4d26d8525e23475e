//! Fuzz target over the SIP parser and everything that reads a parsed
//! message: `cd pbx && cargo +nightly fuzz run parse_message fuzz/corpus/parse_message`.
#![no_main]

use besip_pbx::fuzzing::exercise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exercise(data);
});
