//! Offline analysis of a capture file (pcap or pcapng, through libpcap).

use std::path::Path;

use snafu::{ResultExt, Snafu};

use crate::analyzer::Analyzer;

#[derive(Debug, Snafu)]
pub enum OfflineError {
    #[snafu(display("cannot read capture {path}: {source} (is it a pcap or pcapng file?)"))]
    Open { path: String, source: pcap::Error },
}

/// Where reading stopped, if before a clean end of file.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub frames: u64,
    /// libpcap's message for a truncated or corrupt record; the frames before it are analysed.
    pub stopped_early: Option<String>,
}

/// Feeds every frame of `path` into `analyzer`.
pub fn read_file(path: &Path, analyzer: &mut Analyzer) -> Result<ReadOutcome, OfflineError> {
    let mut cap = pcap::Capture::from_file(path).context(OpenSnafu {
        path: path.display().to_string(),
    })?;
    let linktype = cap.get_datalink().0;
    let mut outcome = ReadOutcome::default();
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                analyzer.frame(ts, linktype, p.data);
                outcome.frames += 1;
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "capture ends with a damaged record; analysed what came before");
                outcome.stopped_early = Some(e.to_string());
                break;
            }
        }
    }
    Ok(outcome)
}
