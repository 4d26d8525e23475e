//! The PBX's Prometheus families (`besip_pbx_*`), rendered at each scrape
//! from the counters the engine keeps anyway: requests, replies by class,
//! authentication failures, refusals by reason, registrations, calls and
//! their talk time, transactions, TCP/RTP/STUN drops.

use std::sync::atomic::Ordering;

use besip_core::metrics::{counter, families, gauge, labelled_counter, MetricsRegistry};

use crate::features::Engine;
use crate::stun;

const REPLY_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// OpenMetrics text of the PBX's families (without `# EOF`).
pub fn render(engine: &Engine, stun: &stun::Counters) -> String {
    let c = engine.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut r = MetricsRegistry::with_prefix("besip_pbx");
    counter(
        &mut r,
        "requests",
        "SIP requests received.",
        load(&c.requests),
    );
    labelled_counter(
        &mut r,
        "replies",
        "SIP replies sent, by class.",
        "class",
        REPLY_CLASSES
            .iter()
            .copied()
            .zip(c.replies.iter().map(load)),
    );
    counter(
        &mut r,
        "auth_failures",
        "Digest authentications that failed (wrong credentials, replayed or forged nonces).",
        load(&c.auth_failures),
    );
    counter(
        &mut r,
        "malformed",
        "SIP messages that could not be parsed.",
        load(&c.malformed),
    );
    let refused = engine.fraud().counters_json();
    labelled_counter(
        &mut r,
        "refused",
        "Requests refused by toll-fraud protection, by reason.",
        "reason",
        refused.as_object().into_iter().flatten().map(|(k, v)| {
            let n = v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            (k.as_str(), n)
        }),
    );
    let registrations = engine.location().count();
    gauge(
        &mut r,
        "registrations",
        "Registered contacts (bindings) in the location service.",
        i64::try_from(registrations).unwrap_or(i64::MAX),
    );
    let calls = engine.calls().len();
    gauge(
        &mut r,
        "calls",
        "Calls in progress.",
        i64::try_from(calls).unwrap_or(i64::MAX),
    );
    counter(
        &mut r,
        "calls_ended",
        "Calls ended (answered or not).",
        load(&c.calls_ended),
    );
    counter(
        &mut r,
        "calls_answered",
        "Calls ended that had been answered.",
        load(&c.calls_answered),
    );
    r.register_with_unit(
        "talk_time",
        "Talk time of answered calls, observed when they end.",
        prometheus_client::registry::Unit::Seconds,
        c.talk_time.clone(),
    );
    gauge(
        &mut r,
        "transactions",
        "SIP transactions in progress.",
        i64::try_from(engine.tables().len()).unwrap_or(i64::MAX),
    );
    counter(
        &mut r,
        "tcp_refused",
        "TCP/TLS connections refused by a connection limit.",
        engine.transports().tcp_refused(),
    );
    counter(
        &mut r,
        "rtp_dropped",
        "RTP packets the relay dropped (strangers, unlatched sources).",
        crate::features::rtp_relay::dropped_total(),
    );
    counter(
        &mut r,
        "stun_answered",
        "STUN Binding requests answered.",
        load(&stun.answered),
    );
    counter(
        &mut r,
        "stun_dropped",
        "STUN datagrams dropped unanswered.",
        load(&stun.dropped),
    );
    let hep = engine.hep().counters();
    counter(
        &mut r,
        "hep_sent",
        "Copies of SIP messages sent to the HEP collector.",
        load(&hep.sent),
    );
    counter(
        &mut r,
        "hep_dropped",
        "Copies of SIP messages not sent to the HEP collector.",
        load(&hep.dropped),
    );
    families(&r)
}
