//! Stream-to-call correlation when calls follow each other on the same
//! addresses, ports and SSRCs: live on loopback with sipp (two echo calls
//! back to back) and offline on synthetic captures (SSRC and port reuse, RTP
//! before the answer's SDP). Each call must keep both of its directions with
//! the packet counts that were sent.

use std::time::{Duration, Instant};

use besip_tests::monitoring::*;
use serde_json::Value;

/// (call-id, stream-count) of every stored call, and per call its streams as
/// (source port, destination port, packets, lost).
type Stored = Vec<(String, i64, Vec<(u16, u16, i64, i64)>)>;

fn stored(db: &std::path::Path) -> Stored {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut st) = conn.prepare("SELECT call_id, stream_count FROM calls ORDER BY start_time")
    else {
        return Vec::new();
    };
    let calls: Vec<(String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default();
    calls
        .into_iter()
        .map(|(id, n)| {
            let streams = conn
                .prepare(
                    "SELECT source_port, destination_port, packets, lost FROM streams \
                     WHERE call_id = ?1 ORDER BY source_port",
                )
                .and_then(|mut st| {
                    st.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect()
                })
                .unwrap_or_default();
            (id, n, streams)
        })
        .collect()
}

#[test]
fn back_to_back_sipp_calls_on_the_same_ports_keep_both_directions() {
    if !have_sipp() {
        eprintln!("SKIP: sip-tester (sipp) not installed (scripts/install-deps)");
        return;
    }
    let sip_port = free_udp_pair();
    let mp = free_udp_pair();
    let m = Monitord::start(&format!(
        "package besip_monitoring\n\nconfig monitoring 'main'\n\tlist interface 'lo'\n\toption capture_filter 'udp port {sip_port} or udp portrange {mp}-{}'\n\tlist sip_port '{sip_port}'\n\toption rotation_interval '3600'\n",
        mp + 11
    ));
    // Two calls between the same phones: same SIP ports, same media ports,
    // and (g711a.pcap replayed, then echoed) the same SSRC in both directions.
    sipp_echo_call(sip_port, mp);
    sipp_echo_call(sip_port, mp);

    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = loop {
        let calls = stored(&m.db());
        let streams: usize = calls.iter().map(|c| c.2.len()).sum();
        if streams >= 4 || Instant::now() > deadline {
            break calls;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // A late flush must not add anything either.
    std::thread::sleep(Duration::from_secs(2));
    let calls_after = stored(&m.db());
    let log = m.log();
    assert_eq!(calls, calls_after, "reports changed after the calls ended");
    assert_eq!(calls.len(), 2, "two calls stored: {calls:?}\n{log}");
    assert_ne!(calls[0].0, calls[1].0);
    for (id, count, streams) in &calls {
        assert_eq!(*count, 2, "call {id}: stream count: {calls:?}");
        // uas echoes from its media port mp to the uac's mp + 8, and back.
        let dirs: Vec<(u16, u16)> = streams.iter().map(|s| (s.0, s.1)).collect();
        assert_eq!(
            dirs,
            vec![(mp, mp + 8), (mp + 8, mp)],
            "call {id}: both directions: {calls:?}"
        );
        for (_, _, packets, lost) in streams {
            // g711a.pcap holds 236 RTP packets; the echo returns each of them.
            assert_eq!((*packets, *lost), (236, 0), "call {id}: {calls:?}");
        }
    }
    // Both calls' streams share their ids (same SSRC and ports): storing the
    // second must keep the first one's intervals.
    let conn = rusqlite::Connection::open(m.db()).expect("open report db");
    let per_id: Vec<(String, i64, i64)> = conn
        .prepare(
            "SELECT id, count(*), (SELECT count(*) FROM intervals i WHERE i.stream_id = s.id) \
             FROM streams s GROUP BY id",
        )
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("intervals per stream id");
    assert_eq!(per_id.len(), 2, "{per_id:?}");
    for (id, streams, intervals) in &per_id {
        assert_eq!(*streams, 2, "{id}: {per_id:?}");
        assert!(
            *intervals >= 2,
            "{id}: one interval per call at least: {per_id:?}"
        );
    }
    assert!(m.stop().success(), "clean exit on SIGTERM");
}

/// One call between 10.1.0.1:20000 and 10.1.0.2:30000, always with SSRC
/// 0xa1 from A and 0xb2 from B.
struct SynthCall {
    call_id: &'static str,
    /// INVITE with A's SDP.
    invite: f64,
    /// 200 OK with B's SDP.
    answer: f64,
    /// First RTP packet of both directions.
    rtp: f64,
    packets: u32,
    first_seq: u16,
}

impl SynthCall {
    /// SIP and RTP of the call; the BYE follows the last RTP packet.
    fn packets(&self) -> Vec<(f64, Vec<u8>)> {
        let a: std::net::IpAddr = "10.1.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.1.0.2".parse().unwrap();
        let invite = "INVITE sip:bob@example.com SIP/2.0";
        let sip = |ts: f64, from_a: bool, start: &str, cseq: &str, sdp: Option<(&str, u16)>| {
            let (src, dst) = if from_a { (a, b) } else { (b, a) };
            (
                ts,
                ip_udp(
                    src,
                    5060,
                    dst,
                    5060,
                    &sip_message(start, self.call_id, cseq, sdp),
                ),
            )
        };
        let end = self.rtp + f64::from(self.packets) * 0.020;
        let mut out = vec![
            sip(
                self.invite,
                true,
                invite,
                "1 INVITE",
                Some(("10.1.0.1", 20000)),
            ),
            sip(
                self.answer,
                false,
                "SIP/2.0 200 OK",
                "1 INVITE",
                Some(("10.1.0.2", 30000)),
            ),
            sip(
                self.answer + 0.01,
                true,
                "ACK sip:bob@example.com SIP/2.0",
                "1 ACK",
                None,
            ),
            sip(
                end + 0.05,
                true,
                "BYE sip:bob@example.com SIP/2.0",
                "2 BYE",
                None,
            ),
            sip(end + 0.06, false, "SIP/2.0 200 OK", "2 BYE", None),
        ];
        for (src, sport, dst, dport, ssrc) in [
            ("10.1.0.1", 20000, "10.1.0.2", 30000, 0xa1),
            ("10.1.0.2", 30000, "10.1.0.1", 20000, 0xb2),
        ] {
            let mut st = StreamSpec::new(src, sport, dst, dport, ssrc, self.packets);
            st.pt = 0;
            st.start = self.rtp;
            st.first_seq = self.first_seq;
            out.extend(st.packets());
        }
        out
    }
}

#[test]
fn calls_reusing_ports_and_ssrcs_are_told_apart_in_a_capture() {
    let t0 = 1_700_000_000.0;
    let calls = [
        // An ordinary call.
        SynthCall {
            call_id: "call-1@test",
            invite: t0,
            answer: t0 + 0.5,
            rtp: t0 + 0.6,
            packets: 250,
            first_seq: 1000,
        },
        // Right after the BYE, the same phones again; the recording is
        // replayed, so the sequence numbers start over.
        SynthCall {
            call_id: "call-2@test",
            invite: t0 + 5.9,
            answer: t0 + 6.0,
            rtp: t0 + 6.05,
            packets: 200,
            first_seq: 1000,
        },
        // Early media: RTP both ways before the 200 OK with B's SDP passes.
        SynthCall {
            call_id: "call-3@test",
            invite: t0 + 12.0,
            answer: t0 + 12.6,
            rtp: t0 + 12.1,
            packets: 150,
            first_seq: 5000,
        },
        // RTP captured before the INVITE that announces it (capture order
        // across interfaces), sequence numbers continuing those of call 3.
        SynthCall {
            call_id: "call-4@test",
            invite: t0 + 20.3,
            answer: t0 + 20.4,
            rtp: t0 + 20.0,
            packets: 100,
            first_seq: 5150,
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("calls.pcap");
    capture(
        LINKTYPE_ETHERNET,
        None,
        calls.iter().flat_map(SynthCall::packets).collect(),
    )
    .write(&file);
    let (report, _) = analyze_json(&file, &[]);
    let streams = report["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 8, "two directions per call: {report:#}");
    for c in &calls {
        let mine: Vec<&Value> = streams
            .iter()
            .filter(|s| s["call-id"] == c.call_id)
            .collect();
        let mut ssrcs: Vec<u64> = mine.iter().filter_map(|s| s["ssrc"].as_u64()).collect();
        ssrcs.sort_unstable();
        assert_eq!(
            ssrcs,
            vec![0xa1, 0xb2],
            "{}: both directions: {report:#}",
            c.call_id
        );
        for s in mine {
            let counts = (
                s["packets"].as_u64(),
                s["expected"].as_u64(),
                s["lost"].as_i64(),
            );
            let n = u64::from(c.packets);
            assert_eq!(counts, (Some(n), Some(n), Some(0)), "{}: {s:#}", c.call_id);
            assert_eq!(s["duplicates"], 0, "{}: {s:#}", c.call_id);
            assert_eq!(s["codec"], "PCMU", "{}: {s:#}", c.call_id);
        }
        let call = report["calls"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["call-id"] == c.call_id))
            .unwrap_or_else(|| panic!("{} in calls: {report:#}", c.call_id));
        assert_eq!(call["stream-count"], 2, "{call:#}");
    }
    // tshark keys streams by addresses, ports and SSRC alone: each of its two
    // streams spans all four calls, so the per-call counts add up to its own.
    if have_tshark() {
        let rows = tshark_streams(&file);
        assert_eq!(rows.len(), 2, "{rows:?}");
        for t in rows {
            let ours: u64 = streams
                .iter()
                .filter(|s| s["ssrc"] == t.ssrc && s["source-port"] == t.sport)
                .filter_map(|s| s["packets"].as_u64())
                .sum();
            assert_eq!(ours, t.packets, "{t:?}");
        }
    }
}
