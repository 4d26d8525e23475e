//! RFC 7951 JSON of /pbx/nat-state.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

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
            let mut r = json!({
                "call-id": call_id,
                "nated": c.nated,
                "caller-rtp-port": c.rtp.a_port,
                "callee-rtp-port": c.rtp.b_port,
                "rtcp-mux": c.rtcp_mux,
                "on-hold": c.on_hold,
                // RFC 7951: 64-bit integers are JSON strings.
                "packets-relayed": c.relayed().to_string(),
                "packets-lost": c.rtp.lost().to_string(),
                "packets-dropped": c.dropped().to_string(),
            });
            if let Some(rtcp) = &c.rtcp {
                r["caller-rtcp-port"] = json!(rtcp.a_port);
                r["callee-rtcp-port"] = json!(rtcp.b_port);
            }
            if let Some(a) = c.rtp.latched(true) {
                r["caller-latched"] = json!(a.to_string());
            }
            if let Some(b) = c.rtp.latched(false) {
                r["callee-latched"] = json!(b.to_string());
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
