//! The per-stream and per-call report, and its table/JSON/CSV renderings.
//! Field names are the YANG leaf names of besip-monitoring.

use serde::Serialize;

use crate::analyzer::{Analyzer, Counters, IntervalScore, Stream};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StreamReport {
    pub id: String,
    pub ssrc: u32,
    pub source_address: String,
    pub source_port: u16,
    pub destination_address: String,
    pub destination_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<u8>,
    pub codec: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub packets: u64,
    pub expected: u64,
    pub lost: i64,
    pub loss_percent: f64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub max_delta_ms: f64,
    pub burst_ratio: f64,
    pub burst_count: u64,
    pub burst_density: f64,
    pub gap_density: f64,
    pub one_way_delay_ms: f64,
    pub r_factor: f64,
    pub mos: f64,
    pub min_mos: f64,
    pub intervals: Vec<IntervalScore>,
    /// first-seen and last-seen in seconds since the epoch (the stored
    /// intervals of this stream lie between them).
    #[serde(skip)]
    pub span: (f64, f64),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallReport {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub start_time: String,
    pub stream_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mos: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_mos: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub streams: Vec<StreamReport>,
    pub calls: Vec<CallReport>,
    pub capture: Counters,
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// RFC 3339 (UTC, milliseconds) from seconds since the epoch.
pub fn rfc3339(ts: f64) -> String {
    let secs = ts.floor() as i64;
    let nanos = ((ts - ts.floor()) * 1e9) as u32;
    chrono::DateTime::from_timestamp(secs, nanos.min(999_999_999))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

impl StreamReport {
    pub fn from_stream(a: &Analyzer, s: &Stream) -> StreamReport {
        let k = &s.key;
        let (expected, lost, pct) = s.loss();
        let rtt = a.rtt.get(&k.ssrc).copied();
        let (r, mos, min_mos) = s.scores(&a.settings, rtt);
        let bg = s.seq.burst_gap.summary();
        StreamReport {
            id: format!(
                "{:08x}:{}:{}-{}:{}",
                k.ssrc, k.src, k.src_port, k.dst, k.dst_port
            ),
            ssrc: k.ssrc,
            source_address: k.src.to_string(),
            source_port: k.src_port,
            destination_address: k.dst.to_string(),
            destination_port: k.dst_port,
            payload_type: s.main_pt,
            codec: s
                .codec
                .as_ref()
                .map_or_else(|| "-".to_string(), |c| c.name.clone()),
            call_id: a.call_of(s).map(str::to_string),
            first_seen: rfc3339(s.first_seen),
            last_seen: rfc3339(s.last_seen),
            packets: s.seq.received,
            expected,
            lost,
            loss_percent: round(pct, 2),
            duplicates: s.seq.duplicates,
            out_of_order: s.seq.out_of_order,
            jitter_ms: round(s.jitter.mean_ms(), 3),
            max_jitter_ms: round(s.jitter.max_ms, 3),
            max_delta_ms: round(s.jitter.max_delta_ms, 3),
            burst_ratio: round(s.seq.burst_ratio(), 3),
            burst_count: bg.bursts,
            burst_density: round(bg.burst_density, 2),
            gap_density: round(bg.gap_density, 2),
            one_way_delay_ms: round(a.one_way_delay_ms(k.ssrc), 1),
            r_factor: round(r, 2),
            mos: round(mos, 2),
            min_mos: round(min_mos, 2),
            intervals: s
                .intervals
                .iter()
                .copied()
                .chain(s.current_interval(&a.settings, rtt))
                .collect(),
            span: (s.first_seen, s.last_seen),
        }
    }
}

/// Builds the report of everything the analyzer holds. Only streams that
/// passed RTP source validation (two sequential packets) are reported.
pub fn build(a: &Analyzer) -> Report {
    let mut streams: Vec<StreamReport> = a
        .streams
        .values()
        .chain(&a.finished)
        .filter(|s| s.seq.validated() && s.main_pt.is_some())
        .map(|s| StreamReport::from_stream(a, s))
        .collect();
    streams.sort_by(|x, y| x.first_seen.cmp(&y.first_seen).then(x.id.cmp(&y.id)));
    let calls = a
        .calls()
        .iter()
        .map(|c| call_report(&c.call_id, &c.from, &c.to, c.start, &streams))
        .collect();
    Report {
        streams,
        calls,
        capture: a.counters.clone(),
    }
}

/// A call's score is that of its worse direction.
pub fn call_report(
    call_id: &str,
    from: &str,
    to: &str,
    start: f64,
    streams: &[StreamReport],
) -> CallReport {
    let mine: Vec<&StreamReport> = streams
        .iter()
        .filter(|s| s.call_id.as_deref() == Some(call_id))
        .collect();
    let worst = mine.iter().min_by(|a, b| a.mos.total_cmp(&b.mos));
    CallReport {
        call_id: call_id.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        start_time: rfc3339(start),
        stream_count: mine.len() as u32,
        r_factor: worst.map(|s| s.r_factor),
        mos: worst.map(|s| s.mos),
        min_mos: mine.iter().map(|s| s.min_mos).reduce(f64::min),
    }
}

pub fn to_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn to_csv(r: &Report) -> String {
    let mut out = String::from("id,ssrc,source-address,source-port,destination-address,destination-port,payload-type,codec,call-id,first-seen,last-seen,packets,expected,lost,loss-percent,duplicates,out-of-order,jitter-ms,max-jitter-ms,max-delta-ms,burst-ratio,one-way-delay-ms,r-factor,mos,min-mos\n");
    for s in &r.streams {
        let pt = s.payload_type.map(|p| p.to_string()).unwrap_or_default();
        let row = [
            csv_field(&s.id),
            s.ssrc.to_string(),
            s.source_address.clone(),
            s.source_port.to_string(),
            s.destination_address.clone(),
            s.destination_port.to_string(),
            pt,
            csv_field(&s.codec),
            csv_field(s.call_id.as_deref().unwrap_or("")),
            s.first_seen.clone(),
            s.last_seen.clone(),
            s.packets.to_string(),
            s.expected.to_string(),
            s.lost.to_string(),
            s.loss_percent.to_string(),
            s.duplicates.to_string(),
            s.out_of_order.to_string(),
            s.jitter_ms.to_string(),
            s.max_jitter_ms.to_string(),
            s.max_delta_ms.to_string(),
            s.burst_ratio.to_string(),
            s.one_way_delay_ms.to_string(),
            s.r_factor.to_string(),
            s.mos.to_string(),
            s.min_mos.to_string(),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out.push_str("\ncall-id,from,to,start-time,stream-count,r-factor,mos,min-mos\n");
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for c in &r.calls {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            csv_field(&c.call_id),
            csv_field(&c.from),
            csv_field(&c.to),
            c.start_time,
            c.stream_count,
            opt(c.r_factor),
            opt(c.mos),
            opt(c.min_mos)
        ));
    }
    out
}

pub fn to_table(r: &Report) -> String {
    let mut out = format!(
        "{:<44} {:>8} {:<6} {:>7} {:>6} {:>6} {:>4} {:>4} {:>8} {:>8} {:>8} {:>6} {:>6} {:>5} {:>5}  {}\n",
        "stream (src -> dst)", "ssrc", "codec", "packets", "lost", "loss%", "dup", "ooo", "jit ms", "maxjit", "maxdelta", "burstR", "R", "MOS", "min", "call-id"
    );
    for s in &r.streams {
        let ends = format!(
            "{}:{} -> {}:{}",
            s.source_address, s.source_port, s.destination_address, s.destination_port
        );
        out.push_str(&format!(
            "{:<44} {:>08x} {:<6} {:>7} {:>6} {:>6.2} {:>4} {:>4} {:>8.3} {:>8.3} {:>8.3} {:>6.2} {:>6.2} {:>5.2} {:>5.2}  {}\n",
            ends, s.ssrc, s.codec, s.packets, s.lost, s.loss_percent, s.duplicates, s.out_of_order, s.jitter_ms,
            s.max_jitter_ms, s.max_delta_ms, s.burst_ratio, s.r_factor, s.mos, s.min_mos, s.call_id.as_deref().unwrap_or("(orphan)")
        ));
    }
    out.push_str(&format!(
        "\n{:<40} {:<30} {:<30} {:>7} {:>6} {:>5} {:>5}\n",
        "call-id", "from", "to", "streams", "R", "MOS", "min"
    ));
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
    for c in &r.calls {
        out.push_str(&format!(
            "{:<40} {:<30} {:<30} {:>7} {:>6} {:>5} {:>5}\n",
            c.call_id,
            c.from,
            c.to,
            c.stream_count,
            f(c.r_factor),
            f(c.mos),
            f(c.min_mos)
        ));
    }
    let k = &r.capture;
    out.push_str(&format!(
        "\nframes {} rtp {} rtcp {} sip {} non-rtp {} not-udp {} fragments {} malformed {}\n",
        k.frames,
        k.rtp_packets,
        k.rtcp_packets,
        k.sip_messages,
        k.non_rtp,
        k.not_udp,
        k.fragments,
        k.malformed
    ));
    out
}
