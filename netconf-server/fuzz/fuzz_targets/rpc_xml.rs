//! Fuzz target over the `<rpc>` XML, the operations' arguments and the edit
//! of a candidate from `<config>`:
//! `cd netconf-server && cargo +nightly fuzz run rpc_xml fuzz/corpus/rpc_xml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    besip_netconf::fuzzing::rpc_xml(data);
});
