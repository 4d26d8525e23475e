//! Fuzz target over the security daemon's packet parser: link/IP/UDP/TCP
//! decoding, SIP messages in a datagram or a TCP segment:
//! `cd security && cargo +nightly fuzz run packet fuzz/corpus/packet`.
//! The first byte picks the link type and whether the payload is TCP.
#![no_main]

use besip_security::packet;
use libfuzzer_sys::fuzz_target;

const LINKTYPES: [i32; 5] = [1, 101, 113, 276, 0];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = LINKTYPES[usize::from(pick) % LINKTYPES.len()];
    if let Some(datagram) = packet::decode(linktype, frame) {
        let _ = packet::for_each_sip(datagram.payload, datagram.tcp, |_| {});
    }
    let _ = packet::for_each_sip(frame, pick & 0x80 != 0, |_| {});
    let _ = packet::parse_sip(frame);
});
