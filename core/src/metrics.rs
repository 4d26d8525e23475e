//! Prometheus metrics of the box. Each daemon renders its own families
//! (prometheus-client, OpenMetrics text) when asked over IPC (`metrics`);
//! besip-netconfd serves them all, with its own, on one `/metrics`. The
//! helpers here turn a daemon's existing counters into families at each
//! scrape, so the counting stays where it is (atomics on the hot paths).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry as MetricsRegistry;

/// The closing line of an OpenMetrics exposition.
const EOF: &str = "# EOF\n";

/// The families of `registry` as OpenMetrics text without the closing
/// `# EOF`, so the texts of several daemons can be joined.
pub fn families(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = encode(&mut out, registry) {
        tracing::warn!(error = %e, "encoding metrics");
        return String::new();
    }
    out.strip_suffix(EOF).map(str::to_owned).unwrap_or(out)
}

/// One exposition of the families texts of `parts`.
pub fn exposition(parts: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for p in parts {
        out.push_str(&p);
    }
    out.push_str(EOF);
    out
}

/// Registers a counter (`name` gets the `_total` suffix) holding `value`.
pub fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Registers a gauge holding `value`.
pub fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

/// Registers a counter family with one label: `values` are (label value,
/// count).
pub fn labelled_counter<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let family = Family::<Vec<(String, String)>, Counter<u64>>::default();
    for (v, n) in values {
        family
            .get_or_create(&vec![(label.to_owned(), v.to_owned())])
            .inc_by(n);
    }
    registry.register(name, help, family);
}

/// Registers a gauge family with one label.
pub fn labelled_gauge<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, i64)>,
) {
    let family = Family::<Vec<(String, String)>, Gauge<i64>>::default();
    for (v, n) in values {
        family
            .get_or_create(&vec![(label.to_owned(), v.to_owned())])
            .set(n);
    }
    registry.register(name, help, family);
}

/// A histogram with `buckets` (upper bounds), shared by the code that
/// observes and the scrape that registers a clone of it.
pub fn histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_two_daemons_join_into_one_exposition() {
        let mut a = Registry::with_prefix("besip_pbx");
        counter(&mut a, "requests", "SIP requests received.", 7);
        labelled_counter(
            &mut a,
            "replies",
            "Replies sent.",
            "class",
            [("2xx", 3), ("4xx", 1)],
        );
        let mut b = Registry::with_prefix("besip_security");
        gauge(&mut b, "bans", "Active bans.", 2);
        let text = exposition([families(&a), families(&b)]);
        assert!(text.contains("besip_pbx_requests_total 7\n"), "{text}");
        assert!(
            text.contains("besip_pbx_replies_total{class=\"2xx\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("besip_security_bans 2\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
