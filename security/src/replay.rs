//! `besip-secd replay FILE.pcap`: run a capture file through the detector
//! offline (nothing is banned) and report what would have been banned and how
//! fast the detector went. Used by tests/bench/security to measure throughput.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::Config;
use crate::detect::Detector;
use crate::packet::{decode, for_each_sip};

pub fn replay(cfg: Config, file: &Path) -> Result<Value, String> {
    let mut cap = pcap::Capture::from_file(file)
        .map_err(|e| format!("cannot open capture {}: {e}", file.display()))?;
    let linktype = cap.get_datalink().0;
    // Load first so the figure is the detector's speed, not the disk's.
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ms = p.header.ts.tv_sec as u64 * 1000 + p.header.ts.tv_usec as u64 / 1000;
                frames.push((ms, p.data.to_vec()));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => return Err(format!("reading {}: {e}", file.display())),
        }
    }
    let mut det = Detector::new(cfg, Vec::new());
    let (mut sip, mut malformed, mut verdicts) = (0u64, 0u64, Vec::new());
    let start = Instant::now();
    for (ms, frame) in &frames {
        let Some(d) = decode(linktype, frame) else {
            malformed += 1;
            continue;
        };
        let found = for_each_sip(d.payload, d.tcp, |info| {
            if let Some(v) = det.observe(*ms, d.src, d.dst, info) {
                verdicts.push(json!({"address": v.address.to_string(), "rule": v.rule}));
            }
        });
        if found == 0 {
            malformed += 1;
            continue;
        }
        sip += found as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "frames": frames.len(),
        "sip": sip,
        "malformed": malformed,
        "seconds": secs,
        "packets-per-second": (frames.len() as f64 / secs.max(1e-9)).round(),
        "bans": verdicts.len(),
        "tracked-sources": det.tracked(),
        "first-bans": verdicts.into_iter().take(5).collect::<Vec<_>>(),
    }))
}
