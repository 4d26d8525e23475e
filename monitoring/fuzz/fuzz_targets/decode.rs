//! Fuzz target over one captured frame, stateless: link/IP/UDP/TCP decoding,
//! IPv4 fragments, RTP and RTCP headers, SIP and SDP as the monitor reads
//! them: `cd monitoring && cargo +nightly fuzz run decode fuzz/corpus/decode`.
//! The first byte picks the link type.
#![no_main]

use besip_monitoring::{decode, rtcp, rtp, sip};
use libfuzzer_sys::fuzz_target;

const LINKTYPES: [i32; 7] = [
    decode::LINKTYPE_ETHERNET,
    decode::LINKTYPE_RAW,
    decode::LINKTYPE_LINUX_SLL,
    decode::LINKTYPE_LINUX_SLL2,
    decode::LINKTYPE_IPV4,
    decode::LINKTYPE_IPV6,
    decode::LINKTYPE_NULL,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = LINKTYPES[usize::from(pick) % LINKTYPES.len()];
    if let Some(fragment) = decode::ipv4_fragment(linktype, frame) {
        let _ = decode::reassembled(fragment.protocol, fragment.src, fragment.dst, fragment.data);
    }
    // The payload parsers also run on the raw frame: a short or odd frame
    // must not get further through them than a decoded one.
    let payload = match decode::decode(linktype, frame) {
        Ok(datagram) => datagram.payload,
        Err(_) => frame,
    };
    let _ = rtp::parse_header(payload);
    if rtcp::looks_like_rtcp(payload) {
        let _ = rtcp::parse(payload);
    }
    if sip::looks_like_sip(payload) {
        let _ = sip::parse(payload);
    }
    let _ = sip::parse_sdp(&String::from_utf8_lossy(payload));
});
