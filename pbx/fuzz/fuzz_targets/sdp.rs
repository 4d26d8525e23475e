//! Fuzz target over the PBX's SDP handling (media address for the relay's
//! latching, rewriting for NAT anchoring):
//! `cd pbx && cargo +nightly fuzz run sdp fuzz/corpus/sdp`.
#![no_main]

use besip_pbx::rtp_relay::{media_addr, rewrite_sdp};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    let _ = media_addr(&sdp);
    for ip in [
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let rewritten = rewrite_sdp(&sdp, ip, 40000);
        // Rewriting keeps every line: the relay never drops what it does not know.
        assert_eq!(rewritten.lines().count(), sdp.lines().count());
        let _ = media_addr(&rewritten);
    }
});
