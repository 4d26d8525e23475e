//! besip-monitord's HEP v3 export (/monitoring/hep): a sipp call with RTP
//! on loopback is measured, and each of its streams' reports reaches a
//! collector (a UDP socket of the test) as a HEP v3 packet of type 0x22
//! (JSON quality report) whose addresses, ports and correlation id (the
//! Call-ID) match the stream and whose JSON carries its MOS.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use besip_tests::monitoring::{free_udp_pair, have_sipp, sipp_echo_call, Monitord};

/// The chunks of a HEP v3 packet by type (generic vendor), or None when it
/// is not one.
fn hep_chunks(p: &[u8]) -> Option<HashMap<u16, Vec<u8>>> {
    if p.len() < 6 || &p[..4] != b"HEP3" || usize::from(u16::from_be_bytes([p[4], p[5]])) != p.len()
    {
        return None;
    }
    let mut out = HashMap::new();
    let mut rest = &p[6..];
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([*rest.get(4)?, *rest.get(5)?]));
        if len < 6 || len > rest.len() {
            return None;
        }
        out.insert(
            u16::from_be_bytes([rest[2], rest[3]]),
            rest[6..len].to_vec(),
        );
        rest = &rest[len..];
    }
    Some(out)
}

#[test]
fn stream_reports_reach_the_collector_with_the_call_id() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind");
    collector
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let collector_port = collector.local_addr().expect("addr").port();
    let (sip_port, mp) = (free_udp_pair(), free_udp_pair());
    let uci = format!(
        "package besip_monitoring\n\nconfig monitoring 'main'\n\tlist interface 'lo'\n\toption capture_filter 'udp port {sip_port} or udp portrange {mp}-{}'\n\tlist sip_port '{sip_port}'\n\toption mos_interval '2'\n\toption hep_collector_address '127.0.0.1'\n\toption hep_collector_port '{collector_port}'\n\toption hep_capture_id '77'\n",
        mp + 11
    );
    let _m = Monitord::start(&uci);
    sipp_echo_call(sip_port, mp);

    // Both streams (caller -> callee and the echo) end and are reported.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut reports = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while reports.len() < 2 {
        assert!(Instant::now() < deadline, "reports received: {reports:#?}");
        let Ok(n) = collector.recv(&mut buf) else {
            continue;
        };
        let chunks = hep_chunks(&buf[..n]).expect("a well-formed HEP v3 packet");
        reports.push(chunks);
    }
    let mut call_ids = Vec::new();
    for c in &reports {
        assert_eq!(c[&0x000b], vec![0x22], "a JSON quality report");
        assert_eq!(c[&0x000c], 77u32.to_be_bytes().to_vec(), "capture id");
        assert_eq!(c[&0x0001], vec![2], "IPv4");
        let json: serde_json::Value = serde_json::from_slice(&c[&0x000f]).expect("JSON payload");
        let port = |k: u16| u16::from_be_bytes([c[&k][0], c[&k][1]]);
        assert_eq!(
            json["source-port"].as_u64(),
            Some(u64::from(port(0x0007))),
            "{json}"
        );
        assert_eq!(
            json["destination-port"].as_u64(),
            Some(u64::from(port(0x0008))),
            "{json}"
        );
        assert_eq!(c[&0x0003], vec![127, 0, 0, 1]);
        let mos = json["mos"].as_f64().unwrap_or(0.0);
        assert!(mos > 3.5 && mos < 4.5, "G.711 on loopback: {json}");
        let call_id = String::from_utf8(c[&0x0011].clone()).expect("correlation id");
        assert_eq!(json["call-id"].as_str(), Some(call_id.as_str()), "{json}");
        assert!(json["packets"].as_u64().unwrap_or(0) > 100, "{json}");
        call_ids.push(call_id);
    }
    assert_eq!(call_ids[0], call_ids[1], "both streams of the one call");
}
