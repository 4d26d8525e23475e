//! `besip-monitord analyze` on real and synthetic captures, compared with
//! tshark's `rtp,streams` statistics and with the known truth of the
//! synthetic streams; corrupt captures are counted and skipped.
//!
//! Where RFC 3550 and tshark differ by design:
//! * duplicates: both count a duplicate as received, so `lost` (expected −
//!   received) goes down by one per duplicate (it can be negative); we also
//!   report `duplicates` separately, tshark does not;
//! * probation: RFC 3550 A.1 does not count the first packets of a source
//!   until it is validated; we count them (as tshark does) so totals agree;
//! * jitter: both run the A.8 estimator on every voice packet; tshark's
//!   "mean jitter" is the mean of the estimator over the packets, which is
//!   what we report as `jitter-ms`.

use std::path::Path;
use std::process::Command;

use besip_tests::harness::bin_path;
use besip_tests::monitoring::*;
use serde_json::Value;

fn stream<'a>(report: &'a Value, ssrc: u32) -> &'a Value {
    report["streams"]
        .as_array()
        .expect("streams array")
        .iter()
        .find(|s| s["ssrc"] == ssrc)
        .unwrap_or_else(|| panic!("no stream with ssrc {ssrc:#x} in {report:#}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Packets, loss and mean/max jitter agree with tshark for every stream tshark sees.
fn assert_agrees_with_tshark(file: &Path, report: &Value) {
    let rows = tshark_streams(file);
    assert!(
        !rows.is_empty(),
        "tshark found no RTP streams in {}",
        file.display()
    );
    for t in &rows {
        let s = stream(report, t.ssrc);
        let ctx = format!(
            "stream {:#x} in {}: ours {s} / tshark {t:?}",
            t.ssrc,
            file.display()
        );
        assert_eq!(s["source-port"], t.sport, "{ctx}");
        assert_eq!(s["destination-port"], t.dport, "{ctx}");
        assert_eq!(s["packets"].as_u64(), Some(t.packets), "{ctx}");
        assert_eq!(s["lost"].as_i64(), Some(t.lost), "{ctx}");
        let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol.max(b.abs() * 0.02);
        assert!(
            close(f(&s["jitter-ms"]), t.mean_jitter_ms, 0.01),
            "mean jitter: {ctx}"
        );
        assert!(
            close(f(&s["max-jitter-ms"]), t.max_jitter_ms, 0.01),
            "max jitter: {ctx}"
        );
        assert!(
            close(f(&s["max-delta-ms"]), t.max_delta_ms, 0.01),
            "max delta: {ctx}"
        );
    }
    assert_eq!(
        report["streams"].as_array().map(Vec::len),
        Some(rows.len()),
        "stream count vs tshark: {report:#}"
    );
}

#[test]
fn sipp_g711a_capture_matches_tshark() {
    let file = Path::new("/usr/share/sip-tester/g711a.pcap");
    if !file.exists() || !have_tshark() {
        eprintln!("SKIP: needs sip-tester's g711a.pcap and tshark (scripts/install-deps)");
        return;
    }
    let (report, _) = analyze_json(file, &[]);
    assert_agrees_with_tshark(file, &report);
    let s = &report["streams"][0];
    assert_eq!(s["codec"], "PCMA");
    assert!(
        s.get("call-id").is_none(),
        "no SIP in this capture: an orphan stream"
    );
    assert!(f(&s["mos"]) > 4.3, "clean G.711 stream scores high: {s}");
}

fn impaired_streams() -> Vec<StreamSpec> {
    let mut clean = StreamSpec::new("10.0.0.1", 40000, "10.0.0.2", 50000, 0x1111, 500);
    clean.jitter_ms = 8.0;
    let mut random = StreamSpec::new("10.0.0.2", 50000, "10.0.0.1", 40000, 0x2222, 500);
    random.dropped = (0..500).filter(|i| i % 25 == 12).collect();
    random.jitter_ms = 3.0;
    let mut bursty = StreamSpec::new("10.0.0.3", 40002, "10.0.0.4", 50002, 0x3333, 500);
    bursty.dropped = (100..110).chain(300..310).collect();
    bursty.first_seq = 65400; // wraps around
    let mut shuffled = StreamSpec::new("10.0.0.5", 40004, "10.0.0.6", 50004, 0x4444, 400);
    shuffled.swapped = vec![50, 150, 250];
    shuffled.duplicated = vec![70, 170];
    shuffled.dropped = vec![200];
    let mut v6 = StreamSpec::new("fd00::1", 40006, "fd00::2", 50006, 0x5555, 300);
    v6.jitter_ms = 12.0;
    v6.dropped = vec![10, 11, 12];
    vec![clean, random, bursty, shuffled, v6]
}

#[test]
fn synthetic_impairments_match_tshark_and_truth() {
    if !have_tshark() {
        eprintln!("SKIP: tshark not installed (scripts/install-deps)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = impaired_streams();
    let packets: Vec<_> = specs.iter().flat_map(|s| s.packets()).collect();
    for (name, linktype, vlan) in [
        ("eth-vlan.pcap", LINKTYPE_ETHERNET, Some(42)),
        ("sll.pcap", LINKTYPE_LINUX_SLL, None),
        ("sll2.pcap", LINKTYPE_LINUX_SLL2, None),
    ] {
        let file = dir.path().join(name);
        capture(linktype, vlan, packets.clone()).write(&file);
        let (report, _) = analyze_json(&file, &[]);
        assert_agrees_with_tshark(&file, &report);
        // The truth the streams were built with.
        for spec in &specs {
            let s = stream(&report, spec.ssrc);
            let sent =
                u64::from(spec.count) - spec.dropped.len() as u64 + spec.duplicated.len() as u64;
            assert_eq!(s["packets"].as_u64(), Some(sent), "{name} {s}");
            assert_eq!(
                s["expected"].as_u64(),
                Some(u64::from(spec.count)),
                "{name} {s}"
            );
            assert_eq!(
                s["duplicates"].as_u64(),
                Some(spec.duplicated.len() as u64),
                "{name} {s}"
            );
            assert_eq!(
                s["out-of-order"].as_u64(),
                Some(spec.swapped.len() as u64),
                "{name} {s}"
            );
        }
        let random = stream(&report, 0x2222);
        let bursty = stream(&report, 0x3333);
        assert!((f(&random["loss-percent"]) - 4.0).abs() < 0.01, "{random}");
        assert!((f(&bursty["loss-percent"]) - 4.0).abs() < 0.01, "{bursty}");
        assert!(f(&random["burst-ratio"]) < 1.1, "isolated losses: {random}");
        assert!(f(&bursty["burst-ratio"]) > 5.0, "bursts of 10: {bursty}");
        // RFC 3611 with Gmin 16: two bursts of 10 lost packets; spread losses are gap.
        assert_eq!(bursty["burst-count"], 2, "{bursty}");
        assert_eq!(f(&bursty["burst-density"]), 100.0, "{bursty}");
        assert_eq!(f(&bursty["gap-density"]), 0.0, "{bursty}");
        assert_eq!(random["burst-count"], 0, "{random}");
        assert!((f(&random["gap-density"]) - 4.0).abs() < 0.01, "{random}");
        assert!(
            f(&bursty["mos"]) < f(&random["mos"]),
            "same loss, bursty scores lower"
        );
        assert!(f(&random["mos"]) < f(&stream(&report, 0x1111)["mos"]));
        // 10 s intervals: the 1111 stream lasts 10 s, the bursts fall into
        // different intervals of 3333, whose minimum is below its average.
        assert!(f(&bursty["min-mos"]) <= f(&bursty["mos"]));
        assert!(bursty["intervals"].as_array().map_or(0, Vec::len) >= 1);
    }
}

#[test]
fn sip_calls_tie_streams_and_score_the_worse_direction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a: std::net::IpAddr = "10.1.0.1".parse().unwrap();
    let b: std::net::IpAddr = "10.1.0.2".parse().unwrap();
    let t0 = 1_700_000_000.0;
    let mut packets = vec![
        (
            t0 - 1.0,
            ip_udp(
                a,
                5060,
                b,
                5060,
                &sip_message(
                    "INVITE sip:bob@example.com SIP/2.0",
                    "call-1@test",
                    "1 INVITE",
                    Some(("10.1.0.1", 20000)),
                ),
            ),
        ),
        (
            t0 - 0.5,
            ip_udp(
                b,
                5060,
                a,
                5060,
                &sip_message(
                    "SIP/2.0 200 OK",
                    "call-1@test",
                    "1 INVITE",
                    Some(("10.1.0.2", 30000)),
                ),
            ),
        ),
    ];
    // a -> b clean but with a DTMF digit (telephone-event packets in the middle).
    let mut fwd = StreamSpec::new("10.1.0.1", 20000, "10.1.0.2", 30000, 0xa1, 1000);
    fwd.pt = 0;
    fwd.start = t0;
    fwd.events = (400..410).collect();
    // b -> a with 10 % loss in bursts.
    let mut back = StreamSpec::new("10.1.0.2", 30000, "10.1.0.1", 20000, 0xb2, 1000);
    back.pt = 0;
    back.start = t0;
    back.dropped = (0..1000)
        .filter(|i| (80..90).contains(&(i % 100)))
        .collect();
    // An RTP stream nobody signalled.
    let mut orphan = StreamSpec::new("10.9.0.1", 7078, "10.9.0.2", 9078, 0xc3, 200);
    orphan.start = t0;
    packets.extend(fwd.packets());
    packets.extend(back.packets());
    packets.extend(orphan.packets());
    let file = dir.path().join("call.pcap");
    capture(LINKTYPE_ETHERNET, None, packets).write(&file);
    let (report, _) = analyze_json(&file, &[]);

    let fwd_s = stream(&report, 0xa1);
    let back_s = stream(&report, 0xb2);
    assert_eq!(fwd_s["call-id"], "call-1@test");
    assert_eq!(back_s["call-id"], "call-1@test");
    assert_eq!(fwd_s["codec"], "PCMU");
    assert_eq!(
        fwd_s["lost"], 0,
        "telephone-event packets are not loss: {fwd_s}"
    );
    assert!(
        f(&fwd_s["max-jitter-ms"]) < 0.01,
        "no false jitter around the DTMF digit: {fwd_s}"
    );
    assert!((f(&back_s["loss-percent"]) - 10.0).abs() < 0.01, "{back_s}");
    assert!(
        stream(&report, 0xc3).get("call-id").is_none(),
        "orphan stream has no call"
    );

    let calls = report["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{report:#}");
    let call = &calls[0];
    assert_eq!(call["call-id"], "call-1@test");
    assert_eq!(call["from"], "sip:alice@example.com");
    assert_eq!(call["to"], "sip:bob@example.com");
    assert_eq!(call["stream-count"], 2);
    assert_eq!(
        call["mos"], back_s["mos"],
        "a call scores as its worse direction"
    );
    assert!(f(&call["mos"]) < f(&fwd_s["mos"]));

    // The simplified model is selectable and gives its own R for the same loss.
    let (simple, _) = analyze_json(&file, &["--emodel", "besip-simplified"]);
    let r_simple = f(&stream(&simple, 0xa1)["r-factor"]);
    assert!(
        (r_simple - (94.7688 - 1.4136)).abs() < 0.01,
        "clean stream, no delay: {r_simple}"
    );
}

fn run_with_timeout(args: &[&str], file: &Path) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg(bin_path("besip-monitord"))
        .args(args)
        .arg(file)
        .output()
        .expect("run besip-monitord")
}

#[test]
fn corrupt_and_garbage_captures_are_counted_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Not a capture at all: a clear error and a non-zero exit.
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all, just text\n").unwrap();
    let out = run_with_timeout(&["analyze", "--format", "json"], &junk);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read capture") && err.contains("junk.pcap"),
        "{err}"
    );

    // A good stream, garbage frames and absurd RTP headers mixed in.
    let good = StreamSpec::new("10.0.0.1", 40000, "10.0.0.2", 50000, 0x7777, 300);
    let mut pcap = capture(LINKTYPE_ETHERNET, None, good.packets());
    let t = pcap.records[10].0;
    let src: std::net::IpAddr = "10.0.0.8".parse().unwrap();
    let dst: std::net::IpAddr = "10.0.0.9".parse().unwrap();
    let absurd: Vec<Vec<u8>> = vec![
        vec![0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], // 15 CSRCs announced, none present
        vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff], // extension longer than packet
        vec![0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff],             // padding beyond packet
        vec![0x80, 200, 0xff, 0xff, 0, 0, 0, 0], // RTCP with a length far past the end
        b"INVITE sip:x SIP/2.0\r\nCall-ID\r\n\xff\xfe".to_vec(),
    ];
    for (i, p) in absurd.iter().enumerate() {
        pcap.records.insert(
            11 + i,
            (
                t,
                link(LINKTYPE_ETHERNET, None, &ip_udp(src, 5000, dst, 6000, p)),
            ),
        );
    }
    pcap.records.insert(20, (t, vec![0xff; 5])); // shorter than an Ethernet header
    pcap.records.insert(
        21,
        (
            t,
            link(
                LINKTYPE_ETHERNET,
                None,
                &[0x45, 0, 0xff, 0xff, 0, 0, 0, 0, 64, 17],
            ),
        ),
    ); // IP header cut
    let mut x: u32 = 99;
    for k in 0..200 {
        let frame: Vec<u8> = (0..(14 + k % 90))
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        pcap.records.push((t + 10.0, frame));
    }
    let mixed = dir.path().join("mixed.pcap");
    pcap.write(&mixed);
    let (report, _) = analyze_json(&mixed, &[]);
    let s = stream(&report, 0x7777);
    assert_eq!(s["packets"], 300);
    assert_eq!(s["lost"], 0);
    assert_eq!(
        report["streams"].as_array().map(Vec::len),
        Some(1),
        "garbage makes no stream: {report:#}"
    );
    let cap = &report["capture"];
    assert!(cap["malformed"].as_u64().unwrap_or(0) >= 2, "{cap}");
    assert!(cap["non-rtp"].as_u64().unwrap_or(0) >= 3, "{cap}");

    // Truncated in the middle of a record: the frames before are reported, with a warning.
    let bytes = pcap.bytes();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..24 + 150 * (16 + 14 + 20 + 8 + 172) + 40]).unwrap();
    let (report, stderr) = analyze_json(&cut, &[]);
    assert!(stderr.contains("damaged"), "{stderr}");
    let packets = stream(&report, 0x7777)["packets"].as_u64().unwrap_or(0);
    assert!((100..300).contains(&packets), "{packets}");

    // A record header claiming 4 GB.
    let mut huge = bytes[..24 + 16 + 14 + 20 + 8 + 172].to_vec();
    huge.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    huge.extend_from_slice(&[0; 64]);
    let huge_file = dir.path().join("huge.pcap");
    std::fs::write(&huge_file, &huge).unwrap();
    let out = run_with_timeout(&["analyze", "--format", "json"], &huge_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn table_and_csv_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("one.pcap");
    capture(
        LINKTYPE_ETHERNET,
        None,
        StreamSpec::new("10.0.0.1", 40000, "10.0.0.2", 50000, 0xabc, 100).packets(),
    )
    .write(&file);
    let out = run_with_timeout(&["analyze", "--format", "csv"], &file);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let row: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    assert_eq!(header.len(), row.len());
    let col = |name: &str| {
        row[header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column"))]
    };
    assert_eq!(col("packets"), "100");
    assert_eq!(col("ssrc"), "2748");
    assert_eq!(col("codec"), "PCMA");
    let out = run_with_timeout(&["analyze", "--format", "table"], &file);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("10.0.0.1:40000 -> 10.0.0.2:50000") && table.contains("(orphan)"),
        "{table}"
    );
}

fn rtcp_sr(ssrc: u32, ntp_middle: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&(ntp_middle >> 16).to_be_bytes());
    p.extend_from_slice(&(ntp_middle << 16).to_be_bytes());
    p.extend_from_slice(&[0; 12]);
    p
}

fn rtcp_rr(reporter: u32, source: u32, lsr: u32, dlsr: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&reporter.to_be_bytes());
    p.extend_from_slice(&source.to_be_bytes());
    p.extend_from_slice(&[0; 12]);
    p.extend_from_slice(&lsr.to_be_bytes());
    p.extend_from_slice(&dlsr.to_be_bytes());
    p
}

#[test]
fn rtcp_round_trip_gives_one_way_delay_and_lowers_r() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a: std::net::IpAddr = "10.2.0.1".parse().unwrap();
    let b: std::net::IpAddr = "10.2.0.2".parse().unwrap();
    let spec = StreamSpec::new("10.2.0.1", 30000, "10.2.0.2", 40000, 0xaaaa, 500);
    let t0 = spec.start;
    let mut packets = spec.packets();
    let plain = StreamSpec::new("10.2.0.3", 30002, "10.2.0.4", 40002, 0xbbbb, 500);
    packets.extend(plain.packets());
    // A's SR passes the probe at t0+1; B's RR about A passes it 0.9 s later
    // and says B held the SR for 0.5 s: 400 ms round trip, 200 ms one way.
    packets.push((
        t0 + 1.0,
        ip_udp(a, 30001, b, 40001, &rtcp_sr(0xaaaa, 0x1234_5678)),
    ));
    packets.push((
        t0 + 1.9,
        ip_udp(
            b,
            40001,
            a,
            30001,
            &rtcp_rr(0xcccc, 0xaaaa, 0x1234_5678, 0x8000),
        ),
    ));
    let file = dir.path().join("rtcp.pcap");
    capture(LINKTYPE_ETHERNET, None, packets).write(&file);
    let (report, _) = analyze_json(&file, &[]);
    assert_eq!(report["capture"]["rtcp-packets"], 2);
    let with = stream(&report, 0xaaaa);
    let without = stream(&report, 0xbbbb);
    assert!((f(&with["one-way-delay-ms"]) - 200.0).abs() < 1.0, "{with}");
    assert_eq!(f(&without["one-way-delay-ms"]), 0.0);
    assert!(
        f(&with["r-factor"]) < f(&without["r-factor"]) - 3.0,
        "200 ms one way costs R: {with} vs {without}"
    );
    // The configured default delay applies where RTCP says nothing.
    let (report, _) = analyze_json(&file, &["--delay", "150"]);
    assert_eq!(f(&stream(&report, 0xbbbb)["one-way-delay-ms"]), 150.0);
}

/// Splits an IPv4 packet into fragments of at most `chunk` payload bytes (a multiple of 8).
fn fragment_v4(packet: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let payload = &packet[20..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut f = packet[..20].to_vec();
        f[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
        let more = if end < payload.len() { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&(more | (off / 8) as u16).to_be_bytes());
        f[10] = 0;
        f[11] = 0;
        f.extend_from_slice(&payload[off..end]);
        out.push(f);
        off = end;
    }
    out
}

#[test]
fn fragmented_sip_is_reassembled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a: std::net::IpAddr = "10.3.0.1".parse().unwrap();
    let b: std::net::IpAddr = "10.3.0.2".parse().unwrap();
    let mut invite = sip_message(
        "INVITE sip:bob@example.com SIP/2.0",
        "frag@test",
        "1 INVITE",
        Some(("10.3.0.1", 30000)),
    );
    // Pad the message with a long header so it needs three fragments.
    let pad = format!("X-Padding: {}\r\n", "a".repeat(3000));
    let at = invite.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    invite.splice(at..at, pad.into_bytes());
    let mut frags = fragment_v4(&ip_udp(a, 5060, b, 5060, &invite), 1480);
    assert_eq!(frags.len(), 3);
    frags.reverse(); // arrival order does not matter
    let spec = StreamSpec::new("10.3.0.1", 30000, "10.3.0.2", 40000, 0xdddd, 50);
    let mut packets: Vec<(f64, Vec<u8>)> =
        frags.into_iter().map(|f| (spec.start - 1.0, f)).collect();
    // A lone first fragment of another datagram never completes.
    let orphan = fragment_v4(&ip_udp(b, 5060, a, 5060, &invite), 1480);
    packets.push((spec.start - 0.5, orphan[0].clone()));
    packets.extend(spec.packets());
    let file = dir.path().join("frag.pcap");
    capture(LINKTYPE_ETHERNET, None, packets).write(&file);
    let (report, _) = analyze_json(&file, &[]);
    assert_eq!(report["capture"]["fragments"], 4, "{:#}", report["capture"]);
    assert_eq!(
        report["capture"]["reassembled"], 1,
        "{:#}",
        report["capture"]
    );
    assert_eq!(report["capture"]["sip-messages"], 1);
    assert_eq!(report["calls"][0]["call-id"], "frag@test");
    assert_eq!(stream(&report, 0xdddd)["call-id"], "frag@test");
    assert_eq!(stream(&report, 0xdddd)["packets"], 50);
}

#[test]
fn sip_over_tcp_ties_streams_to_the_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a: std::net::Ipv4Addr = "10.4.0.1".parse().unwrap();
    let b: std::net::Ipv4Addr = "10.4.0.2".parse().unwrap();
    let mut fwd = StreamSpec::new("10.4.0.1", 22000, "10.4.0.2", 33000, 0xe1, 100);
    fwd.pt = 0;
    let mut back = StreamSpec::new("10.4.0.2", 33000, "10.4.0.1", 22000, 0xe2, 100);
    back.pt = 0;
    let t0 = fwd.start;
    let invite = sip_message(
        "INVITE sip:bob@example.com SIP/2.0",
        "tcp-call@test",
        "1 INVITE",
        Some(("10.4.0.1", 22000)),
    );
    let ok = sip_message(
        "SIP/2.0 200 OK",
        "tcp-call@test",
        "1 INVITE",
        Some(("10.4.0.2", 33000)),
    );
    let mut packets = vec![
        (t0 - 1.0, ip4_tcp(a, 40123, b, 5060, 1, &invite)),
        (t0 - 0.5, ip4_tcp(b, 5060, a, 40123, 1, &ok)),
    ];
    packets.extend(fwd.packets());
    packets.extend(back.packets());
    let file = dir.path().join("tcp.pcap");
    capture(LINKTYPE_ETHERNET, None, packets).write(&file);
    let (report, _) = analyze_json(&file, &[]);
    assert_eq!(report["capture"]["sip-messages"], 2, "{report:#}");
    assert_eq!(stream(&report, 0xe1)["call-id"], "tcp-call@test");
    assert_eq!(stream(&report, 0xe2)["call-id"], "tcp-call@test");
    assert_eq!(report["calls"][0]["stream-count"], 2);
}
