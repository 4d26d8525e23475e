//! Turns captured frames into streams, calls and scores; shared by offline
//! analysis and the live daemon.

use std::collections::{HashMap, HashSet};

use crate::codec::{is_non_voice, Codec, CodecTable};
pub use crate::correlate::Call;
use crate::correlate::{Signalling, END_GRACE_S};
use crate::decode::{self, Skip, Transport};
use crate::emodel::{self, Impairments, Variant};
use crate::rtcp::{self, RtcpItem};
use crate::rtp::{self, Jitter, SeqStats, StreamKey};
use crate::sip;

/// RTP streams measured at once. A small office's box carries a few
/// hundred calls at most, and the daemon takes streams idle for 5 s: past
/// this, packets of new streams are counted (`untracked-rtp`) but not
/// measured, so a spray of distinct ports or SSRCs cannot grow memory
/// (about 1 KiB a stream, more with a long call's intervals).
pub const MAX_STREAMS: usize = 20_000;
/// Scores kept per stream: a day of the default 10 s intervals; a longer
/// stream keeps its most recent day.
pub const MAX_INTERVALS: usize = 8_640;
/// Round-trip times remembered by SSRC (as many as sender reports).
const MAX_RTT: usize = 100_000;

/// Analysis settings (from the UCI package in the daemon, defaults offline).
#[derive(Debug, Clone)]
pub struct Settings {
    pub variant: Variant,
    pub interval_s: f64,
    pub default_delay_ms: f64,
    pub sip_ports: Vec<u16>,
    pub codecs: CodecTable,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            variant: Variant::ItuG107,
            interval_s: 10.0,
            default_delay_ms: 0.0,
            sip_ports: vec![5060],
            codecs: CodecTable::default(),
        }
    }
}

/// What happened to the frames fed in.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counters {
    pub frames: u64,
    pub not_udp: u64,
    pub malformed: u64,
    pub fragments: u64,
    /// Datagrams rebuilt from IPv4 fragments.
    pub reassembled: u64,
    pub sip_messages: u64,
    pub rtcp_packets: u64,
    pub rtp_packets: u64,
    pub non_rtp: u64,
    /// RTP packets of new streams not measured: MAX_STREAMS reached.
    pub untracked_rtp: u64,
    /// IPv4 fragments dropped by the reassembly limits or given up.
    pub fragments_dropped: u64,
}

/// Score of one interval of a stream.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct IntervalScore {
    pub start: f64,
    pub expected: u64,
    pub lost: i64,
    pub loss_percent: f64,
    pub r_factor: f64,
    pub mos: f64,
    /// RFC 3550 interarrival jitter at the interval's end, in ms.
    pub jitter_ms: f64,
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub key: StreamKey,
    pub first_seen: f64,
    pub last_seen: f64,
    pub seq: SeqStats,
    pub jitter: Jitter,
    pub main_pt: Option<u8>,
    pub codec: Option<Codec>,
    pub non_voice_packets: u64,
    in_non_voice_run: bool,
    pub intervals: Vec<IntervalScore>,
    /// The call the stream was bound to when its endpoint was first announced.
    pub call_id: Option<String>,
    interval_start: f64,
    prior_expected: u64,
    prior_received: u64,
}

pub struct Analyzer {
    pub settings: Settings,
    pub counters: Counters,
    pub streams: HashMap<StreamKey, Stream>,
    /// Streams ended by a later call on the same key, until taken.
    pub finished: Vec<Stream>,
    pub signalling: Signalling,
    /// (sender SSRC, NTP middle 32 bits) -> capture time of the SR.
    sr_seen: HashMap<(u32, u32), f64>,
    /// SSRC -> last RTT (s) measured from the capture point to the reporter.
    pub rtt: HashMap<u32, f64>,
    reassembler: crate::reassembly::Reassembler,
}

impl Analyzer {
    pub fn new(settings: Settings) -> Self {
        Analyzer {
            settings,
            counters: Counters::default(),
            streams: HashMap::new(),
            finished: Vec::new(),
            signalling: Signalling::default(),
            sr_seen: HashMap::new(),
            rtt: HashMap::new(),
            reassembler: Default::default(),
        }
    }

    /// Feeds one captured frame (`ts` in seconds since the epoch).
    pub fn frame(&mut self, ts: f64, linktype: i32, data: &[u8]) {
        self.counters.frames += 1;
        let dg = match decode::decode(linktype, data) {
            Ok(d) => d,
            Err(Skip::NotUdp) => {
                self.counters.not_udp += 1;
                return;
            }
            Err(Skip::Fragment) => {
                self.counters.fragments += 1;
                let Some(frag) = decode::ipv4_fragment(linktype, data) else {
                    return;
                };
                let whole = self.reassembler.add(ts, &frag);
                self.counters.fragments_dropped = self.reassembler.dropped;
                let Some(whole) = whole else {
                    return;
                };
                if let Ok(dg) = decode::reassembled(frag.protocol, frag.src, frag.dst, &whole) {
                    self.counters.reassembled += 1;
                    self.datagram(ts, dg);
                }
                return;
            }
            Err(Skip::Malformed) => {
                self.counters.malformed += 1;
                return;
            }
        };
        self.datagram(ts, dg);
    }

    fn datagram(&mut self, ts: f64, dg: decode::Datagram<'_>) {
        let sip_port = self.settings.sip_ports.contains(&dg.src_port)
            || self.settings.sip_ports.contains(&dg.dst_port);
        if sip_port || sip::looks_like_sip(dg.payload) {
            if let Some(info) = sip::parse(dg.payload) {
                self.counters.sip_messages += 1;
                self.sip(ts, info);
                return;
            }
            if sip_port || dg.transport == Transport::Tcp {
                self.counters.non_rtp += 1;
                return;
            }
        }
        if dg.transport != Transport::Udp {
            self.counters.not_udp += 1;
            return;
        }
        if rtcp::looks_like_rtcp(dg.payload) {
            self.counters.rtcp_packets += 1;
            for item in rtcp::parse(dg.payload) {
                self.rtcp(ts, item);
            }
            return;
        }
        let Some(h) = rtp::parse_header(dg.payload) else {
            self.counters.non_rtp += 1;
            return;
        };
        self.counters.rtp_packets += 1;
        let key = StreamKey {
            src: dg.src,
            dst: dg.dst,
            src_port: dg.src_port,
            dst_port: dg.dst_port,
            ssrc: h.ssrc,
        };
        let owner = self.signalling.owner(ts, &key);
        let announced = owner
            .and_then(|e| e.rtpmap.iter().find(|(pt, ..)| *pt == h.payload_type))
            .map(|(_, n, c)| (n.as_str(), *c));
        let non_voice = match announced {
            Some((name, _)) => is_non_voice(name),
            // Without SDP: CN is static 13 (19 in old drafts); 101 is the usual telephone-event.
            None => matches!(h.payload_type, 13 | 19 | 101),
        };
        let interval = self.settings.interval_s.max(1.0);
        let ends = self.streams.get(&key).is_some_and(|s| {
            s.call_id
                .as_deref()
                .is_some_and(|c| self.signalling.ends_stream(c, s.first_seen, ts, owner))
        });
        if ends {
            // Same addresses, ports and SSRC, but another call: a new stream.
            self.finished.extend(self.streams.remove(&key));
        }
        if self.streams.len() >= MAX_STREAMS && !self.streams.contains_key(&key) {
            self.counters.untracked_rtp += 1;
            return;
        }
        let stream = self
            .streams
            .entry(key)
            .or_insert_with(|| Stream::new(key, ts, h.seq));
        if stream.call_id.is_none() {
            // RTP may come before the SDP that announces it.
            stream.call_id = owner.map(|o| o.call_id.clone());
        }
        if ts >= stream.interval_start + interval {
            stream.close_interval(&self.settings, self.rtt.get(&h.ssrc).copied());
            if ts >= stream.interval_start + interval {
                // A silent gap: skip the empty intervals in one step.
                stream.interval_start +=
                    ((ts - stream.interval_start) / interval).floor() * interval;
            }
        }
        stream.last_seen = stream.last_seen.max(ts);
        stream.seq.update(h.seq);
        if non_voice {
            stream.non_voice_packets += 1;
            stream.in_non_voice_run = true;
            return;
        }
        if stream.main_pt.is_none() {
            stream.main_pt = Some(h.payload_type);
            stream.codec = Some(self.settings.codecs.lookup(h.payload_type, announced));
        }
        if stream.main_pt != Some(h.payload_type) {
            // A codec change mid-stream: timestamps follow another clock.
            stream.jitter.resync();
        }
        if stream.in_non_voice_run {
            stream.in_non_voice_run = false;
            stream.jitter.resync();
        }
        let clock = stream.codec.as_ref().map_or(8000, |c| c.clock_rate);
        stream.jitter.update(ts, h.timestamp, f64::from(clock));
    }

    fn sip(&mut self, ts: f64, info: sip::SipInfo) {
        self.signalling.sip(ts, info);
    }

    fn rtcp(&mut self, ts: f64, item: RtcpItem) {
        match item {
            RtcpItem::SenderReport { ssrc, ntp_middle } => {
                if self.sr_seen.len() > 100_000 {
                    self.sr_seen.clear();
                }
                self.sr_seen.insert((ssrc, ntp_middle), ts);
            }
            RtcpItem::ReportBlock {
                source, lsr, dlsr, ..
            } if lsr != 0 => {
                // Capture point -> reporter -> capture point: the SR passed us at
                // `sent`, the reporter held it `dlsr`, its RR passes us now.
                if let Some(&sent) = self.sr_seen.get(&(source, lsr)) {
                    let rtt = ts - sent - f64::from(dlsr) / 65536.0;
                    if (0.0..10.0).contains(&rtt) {
                        self.remember_rtt(source, rtt);
                    }
                }
            }
            RtcpItem::VoipMetrics {
                source,
                round_trip_ms,
                ..
            } if round_trip_ms > 0 => {
                self.remember_rtt(source, f64::from(round_trip_ms) / 1000.0);
            }
            _ => {}
        }
    }

    fn remember_rtt(&mut self, ssrc: u32, rtt: f64) {
        if self.rtt.len() >= MAX_RTT && !self.rtt.contains_key(&ssrc) {
            // Keep the streams being measured; forget the rest.
            let live: HashSet<u32> = self.streams.keys().map(|k| k.ssrc).collect();
            self.rtt.retain(|s, _| live.contains(s));
        }
        self.rtt.insert(ssrc, rtt);
    }

    /// The call a stream belongs to: the one it was bound to, else (RTP
    /// seen only before its SDP) the current owner of its endpoints.
    pub fn call_of<'a>(&'a self, s: &'a Stream) -> Option<&'a str> {
        s.call_id.as_deref().or_else(|| {
            self.signalling
                .owner(s.last_seen, &s.key)
                .map(|e| e.call_id.as_str())
        })
    }

    pub fn calls(&self) -> &[Call] {
        &self.signalling.calls
    }

    pub fn call(&self, call_id: &str) -> Option<&Call> {
        self.signalling.call(call_id)
    }

    /// One-way delay (ms) used for a stream: half the RTCP RTT, else the default.
    pub fn one_way_delay_ms(&self, ssrc: u32) -> f64 {
        self.rtt
            .get(&ssrc)
            .map_or(self.settings.default_delay_ms, |rtt| rtt * 500.0)
    }

    /// Forgets signalling older than `before` that no live stream uses.
    pub fn forget_signalling(&mut self, before: f64) {
        let live: HashSet<String> = self
            .streams
            .values()
            .chain(&self.finished)
            .filter_map(|s| self.call_of(s).map(str::to_string))
            .collect();
        self.signalling.forget(before, &live);
        self.sr_seen.retain(|_, t| *t >= before);
    }

    /// Takes the streams that have ended, for the daemon to store: those
    /// idle since `idle_before`, those whose call ended (BYE) more than the
    /// grace before `now` with no packet since, and those a later call ended.
    pub fn take_idle(&mut self, idle_before: f64, now: f64) -> Vec<Stream> {
        let over = |s: &Stream| {
            s.call_id
                .as_deref()
                .and_then(|c| self.signalling.ended(c))
                .is_some_and(|end| {
                    let done = end + END_GRACE_S;
                    now > done && s.last_seen < now - END_GRACE_S
                })
        };
        let keys: Vec<StreamKey> = self
            .streams
            .values()
            .filter(|s| s.last_seen < idle_before || over(s))
            .map(|s| s.key)
            .collect();
        let mut taken = std::mem::take(&mut self.finished);
        taken.extend(keys.into_iter().filter_map(|k| self.streams.remove(&k)));
        taken
    }
}

impl Stream {
    fn new(key: StreamKey, ts: f64, seq: u16) -> Self {
        Stream {
            key,
            first_seen: ts,
            last_seen: ts,
            seq: SeqStats::new(seq),
            jitter: Jitter::default(),
            main_pt: None,
            codec: None,
            non_voice_packets: 0,
            in_non_voice_run: false,
            intervals: Vec::new(),
            call_id: None,
            interval_start: ts,
            prior_expected: 0,
            prior_received: 0,
        }
    }

    /// Loss since the start of the stream: (expected, lost, percent).
    pub fn loss(&self) -> (u64, i64, f64) {
        let expected = self.seq.expected();
        let lost = expected as i64 - self.seq.received as i64;
        let pct = if expected > 0 {
            (lost.max(0) as f64) * 100.0 / expected as f64
        } else {
            0.0
        };
        (expected, lost, pct)
    }

    fn impairments(&self, settings: &Settings, rtt: Option<f64>, loss_percent: f64) -> Impairments {
        let codec = self
            .codec
            .clone()
            .unwrap_or_else(|| settings.codecs.lookup(0, None));
        Impairments {
            one_way_delay_ms: rtt.map_or(settings.default_delay_ms, |r| r * 500.0),
            loss_percent,
            burst_ratio: self.seq.burst_ratio(),
            ie: codec.ie,
            bpl: codec.bpl,
        }
    }

    /// Score of the interval in progress (None when it expected no packet).
    pub fn current_interval(&self, settings: &Settings, rtt: Option<f64>) -> Option<IntervalScore> {
        let expected = self.seq.expected().saturating_sub(self.prior_expected);
        let received = self.seq.received.saturating_sub(self.prior_received);
        if expected == 0 {
            return None;
        }
        let lost = expected as i64 - received as i64;
        let pct = (lost.max(0) as f64) * 100.0 / expected as f64;
        let r = emodel::r_factor(settings.variant, &self.impairments(settings, rtt, pct));
        Some(IntervalScore {
            start: self.interval_start,
            expected,
            lost,
            loss_percent: pct,
            r_factor: r,
            mos: emodel::mos_from_r(r),
            jitter_ms: self.jitter.last_ms,
        })
    }

    fn close_interval(&mut self, settings: &Settings, rtt: Option<f64>) {
        if let Some(score) = self.current_interval(settings, rtt) {
            if self.intervals.len() >= MAX_INTERVALS {
                self.intervals.remove(0);
            }
            self.intervals.push(score);
        }
        self.prior_expected = self.seq.expected();
        self.prior_received = self.seq.received;
        self.interval_start += settings.interval_s.max(1.0);
    }

    /// Whole-stream R, and the average and minimum interval MOS (the interval
    /// in progress included).
    pub fn scores(&self, settings: &Settings, rtt: Option<f64>) -> (f64, f64, f64) {
        let (_, _, pct) = self.loss();
        let r = emodel::r_factor(settings.variant, &self.impairments(settings, rtt, pct));
        let mut all: Vec<f64> = self.intervals.iter().map(|i| i.mos).collect();
        if let Some(cur) = self.current_interval(settings, rtt) {
            all.push(cur.mos);
        }
        if all.is_empty() {
            let m = emodel::mos_from_r(r);
            return (r, m, m);
        }
        let avg = all.iter().sum::<f64>() / all.len() as f64;
        let min = all.iter().copied().fold(f64::INFINITY, f64::min);
        (r, avg, min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// An RTP packet (version 2, PCMU) with this sequence number and SSRC.
    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    fn feed(a: &mut Analyzer, ts: f64, src_port: u16, ssrc: u32, seq: u16) {
        let payload = rtp(seq, ssrc);
        a.datagram(
            ts,
            decode::Datagram {
                transport: Transport::Udp,
                src: IpAddr::from([192, 0, 2, 1]),
                dst: IpAddr::from([192, 0, 2, 2]),
                src_port,
                dst_port: 40_000,
                payload: &payload,
            },
        );
    }

    #[test]
    fn a_flood_of_distinct_streams_is_bounded_and_idle_streams_go() {
        let mut a = Analyzer::new(Settings::default());
        // A spray of distinct SSRCs: the table stops at MAX_STREAMS.
        for n in 0..(MAX_STREAMS as u32 + 5_000) {
            feed(&mut a, 1.0, 20_000, n, 1);
        }
        assert_eq!(a.streams.len(), MAX_STREAMS);
        assert_eq!(a.counters.untracked_rtp, 5_000);
        // Idle streams are taken, and a new one is measured again.
        let taken = a.take_idle(10.0, 20.0);
        assert_eq!(taken.len(), MAX_STREAMS);
        feed(&mut a, 21.0, 30_000, 1, 1);
        feed(&mut a, 21.02, 30_000, 1, 2);
        assert_eq!(a.streams.len(), 1);
        assert_eq!(a.counters.untracked_rtp, 5_000);
    }

    #[test]
    fn a_long_stream_keeps_a_bounded_history() {
        let mut a = Analyzer::new(Settings::default());
        // One packet per interval, for longer than MAX_INTERVALS intervals.
        let interval = a.settings.interval_s;
        for i in 0..(MAX_INTERVALS + 100) {
            feed(&mut a, i as f64 * interval, 20_000, 7, i as u16);
        }
        let s = a.streams.values().next().expect("stream");
        assert!(s.intervals.len() <= MAX_INTERVALS, "{}", s.intervals.len());
    }

    #[test]
    fn rtt_table_is_bounded() {
        let mut a = Analyzer::new(Settings::default());
        for ssrc in 0..(MAX_RTT as u32 + 10) {
            a.remember_rtt(ssrc, 0.05);
        }
        assert!(a.rtt.len() <= MAX_RTT);
    }
}
