//! HEP v3 export of the SIP traffic (/pbx/hep), as Kamailio's siptrace:
//! every message the transports send or receive is copied, wrapped in a
//! HEP v3 packet (besip_core::hep: addresses, ports, transport, time,
//! capture id, the Call-ID as correlation id) and sent to the collector
//! over UDP. The socket is non-blocking and nothing is queued: when the
//! collector or the network cannot keep up, copies are dropped and
//! counted, never delaying a SIP message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use besip_core::hep::{Packet, Payload, Sender};
use parking_lot::Mutex;

use crate::config::{HepSettings, Transport};
use crate::features::state::Engine;
use crate::transport::tap::{Copy, Direction, Tap};

/// Exported and dropped copies since start (kept across reconfigurations).
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// The running export: its settings and socket.
struct Exporter {
    capture_id: u32,
    sender: Sender,
    counters: Arc<Counters>,
}

impl Tap for Exporter {
    fn copy(&self, m: &Copy<'_>) {
        let (source, destination) = match m.direction {
            Direction::Received => (m.peer, m.local),
            Direction::Sent => (m.local, m.peer),
        };
        let packet = Packet {
            source,
            destination,
            ip_protocol: match m.transport {
                Transport::Udp => 17,
                Transport::Tcp | Transport::Tls => 6,
            },
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            payload_type: Payload::Sip,
            capture_id: self.capture_id,
            correlation_id: call_id(m.bytes),
            payload: m.bytes,
        };
        let counter = match self.sender.send(&packet) {
            true => &self.counters.sent,
            false => &self.counters.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The export of the daemon: follows /pbx/hep.
#[derive(Default)]
pub struct Export {
    running: Mutex<Option<HepSettings>>,
    counters: Arc<Counters>,
}

impl Export {
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Starts, moves or stops the export as the running configuration says
/// (at start and after each reload).
pub fn reconcile(engine: &Engine) {
    let want = engine.config().hep;
    let export = engine.hep();
    let mut running = export.running.lock();
    if *running == want {
        return;
    }
    let tap = want.and_then(|settings| match Sender::open(settings.collector) {
        Ok(sender) => {
            tracing::info!(collector = %settings.collector, "HEP export of SIP messages");
            Some(Arc::new(Exporter {
                capture_id: settings.capture_id,
                sender,
                counters: export.counters.clone(),
            }) as Arc<dyn Tap>)
        }
        Err(e) => {
            tracing::error!(collector = %settings.collector, error = %e, "no HEP export: cannot open a socket");
            None
        }
    });
    if want.is_none() {
        tracing::info!("HEP export stopped");
    }
    engine.transports().set_tap(tap);
    *running = want;
}

/// The Call-ID of a SIP message (its long or compact header), without
/// parsing the whole message: at most 256 bytes, else none.
fn call_id(bytes: &[u8]) -> Option<&[u8]> {
    let head_end = memchr::memmem::find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = &bytes[..head_end];
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = line[colon + 1..].trim_ascii();
            return (!value.is_empty() && value.len() <= 256).then_some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_id_is_found_in_long_and_compact_form() {
        let long = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID:  abc@x \r\n\r\nCall-ID: body";
        assert_eq!(call_id(long), Some(&b"abc@x"[..]));
        assert_eq!(call_id(b"SIP/2.0 200 OK\r\ni: k\r\n\r\n"), Some(&b"k"[..]));
        assert!(call_id(b"OPTIONS x SIP/2.0\r\nCall-ID:\r\n\r\n").is_none());
        assert!(call_id(b"OPTIONS x SIP/2.0\r\n\r\nCall-ID: in-body").is_none());
    }
}
