//! Fuzz target over RFC 6242 framing (end-of-message and chunked):
//! `cd netconf-server && cargo +nightly fuzz run framing fuzz/corpus/framing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    besip_netconf::fuzzing::framing(data);
});
