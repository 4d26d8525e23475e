//! RFC 7951 JSON of /pbx/nat-state.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::features::rtp_relay::Relay;
use crate::features::state::Engine;

/// /pbx/nat-state: counters and the relay of each proxied call.
pub fn state_json(engine: &Engine) -> Value {
    let np = engine.nat_proxy();
    let nated = np.bindings.lock().len();
    let relays = np.relays.lock();
    let list: Vec<Value> = relays
        .map
        .iter()
        .map(|(call_id, c)| {
            let mut r = relay_json(call_id, c.nated, &c.rtp);
            r["rtcp-mux"] = json!(c.rtcp_mux);
            r["on-hold"] = json!(c.on_hold);
            // RFC 7951: 64-bit integers are JSON strings.
            r["packets-relayed"] = json!(c.relayed().to_string());
            r["packets-dropped"] = json!(c.dropped().to_string());
            if let Some(rtcp) = &c.rtcp {
                r["caller-rtcp-port"] = json!(rtcp.a_port);
                r["callee-rtcp-port"] = json!(rtcp.b_port);
            }
            r
        })
        .collect();
    json!({
        "nated-registrations": nated,
        "keepalives-sent": np.keepalives_sent.load(Ordering::Relaxed).to_string(),
        "relays-open": relays.map.len(),
        "relays-refused": np.relays_refused.load(Ordering::Relaxed).to_string(),
        "media-timeouts": np.media_timeouts.load(Ordering::Relaxed).to_string(),
        "relay": list,
    })
}

/// One entry of /pbx/nat-state/relay: the RTP ports, latched addresses and
/// packet counters of `rtp` (side A the caller's), for the call `call_id`.
pub fn relay_json(call_id: &str, nated: bool, rtp: &Relay) -> Value {
    let mut r = json!({
        "call-id": call_id,
        "nated": nated,
        "caller-rtp-port": rtp.a_port,
        "callee-rtp-port": rtp.b_port,
        // RFC 7951: 64-bit integers are JSON strings.
        "packets-relayed": rtp.relayed().to_string(),
        "packets-lost": rtp.lost().to_string(),
        "packets-dropped": rtp.dropped().to_string(),
        "kernel-forwarded": rtp.kernel_forwarded(),
    });
    if let Some(a) = rtp.latched(true) {
        r["caller-latched"] = json!(a.to_string());
    }
    if let Some(b) = rtp.latched(false) {
        r["callee-latched"] = json!(b.to_string());
    }
    r
}
