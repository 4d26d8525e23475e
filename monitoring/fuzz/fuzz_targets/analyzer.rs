//! Fuzz target over the monitor's whole per-frame path with state kept
//! across frames (fragment reassembly, SIP/SDP correlation, RTP sequence
//! and jitter, RTCP delay, E-model scores):
//! `cd monitoring && cargo +nightly fuzz run analyzer fuzz/corpus/analyzer`.
//! Input: frames, each as [link type pick][len hi][len lo][frame bytes].
#![no_main]

use besip_monitoring::analyzer::{Analyzer, Settings};
use besip_monitoring::decode;
use libfuzzer_sys::fuzz_target;

const LINKTYPES: [i32; 3] = [
    decode::LINKTYPE_ETHERNET,
    decode::LINKTYPE_RAW,
    decode::LINKTYPE_LINUX_SLL,
];

fuzz_target!(|data: &[u8]| {
    let mut analyzer = Analyzer::new(Settings::default());
    let mut rest = data;
    let mut ts = 1_000.0;
    while let [pick, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (frame, after) = tail.split_at(len);
        analyzer.frame(ts, LINKTYPES[usize::from(*pick) % LINKTYPES.len()], frame);
        ts += f64::from(*pick) * 0.01;
        rest = after;
    }
    let settings = Settings::default();
    for stream in analyzer.take_idle(f64::MAX, f64::MAX) {
        let _ = stream.scores(&settings, None);
        let _ = stream.loss();
    }
});
