//! Conference load for tests/bench/media: places N calls into rooms of the
//! PBX from a trusted peer address (no digest), each with its own RTP
//! socket saying a tone every 20 ms, and counts the mixed frames each
//! participant gets back against those due. With the daemon's pid, the
//! CPU it used in the measured window.
//!
//! besip-media-load PBX_ADDR FROM_IP FIRST_ROOM ROOMS PER_ROOM SECONDS [PID]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use besip_media::codec::Codec;

struct Participant {
    rtp: UdpSocket,
    call_id: String,
    room: u32,
    box_rtp: Option<SocketAddr>,
    to_tag: String,
    received: u64,
}

fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    // CODEC=g722: the participants speak G.722 (the box decodes and
    // encodes it); G.711 µ-law otherwise.
    let codec = match std::env::var("CODEC").as_deref() {
        Ok("g722") => Codec::G722,
        _ => Codec::Pcmu,
    };
    if a.len() < 7 {
        eprintln!(
            "usage: besip-media-load PBX_ADDR FROM_IP FIRST_ROOM ROOMS PER_ROOM SECONDS [PID]"
        );
        std::process::exit(2);
    }
    let pbx: SocketAddr = a[1].parse().expect("PBX_ADDR");
    let from: IpAddr = a[2].parse().expect("FROM_IP");
    let first_room: u32 = a[3].parse().expect("FIRST_ROOM");
    let rooms: u32 = a[4].parse().expect("ROOMS");
    let per_room: u32 = a[5].parse().expect("PER_ROOM");
    let seconds: u64 = a[6].parse().expect("SECONDS");
    let pid = a.get(7).cloned();
    let sip = UdpSocket::bind((from, 0)).expect("bind SIP");
    sip.set_nonblocking(true).unwrap();
    let sip_port = sip.local_addr().unwrap().port();
    let mut people: Vec<Participant> = Vec::new();
    for r in 0..rooms {
        for p in 0..per_room {
            let rtp = UdpSocket::bind((from, 0)).expect("bind RTP");
            rtp.set_nonblocking(true).unwrap();
            people.push(Participant {
                rtp,
                call_id: format!("load-{r}-{p}-{}", std::process::id()),
                room: first_room + r,
                box_rtp: None,
                to_tag: String::new(),
                received: 0,
            });
        }
    }
    let by_call: HashMap<String, usize> = people
        .iter()
        .enumerate()
        .map(|(i, p)| (p.call_id.clone(), i))
        .collect();
    // Calls placed at 200/s, answered within 20 s.
    let mut buf = vec![0u8; 4096];
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(20 + people.len() as u64 / 100);
    let mut next_invite = 0;
    let mut refused: HashMap<String, usize> = HashMap::new();
    while answered < people.len() && Instant::now() < deadline {
        if next_invite < people.len() {
            let p = &people[next_invite];
            let port = p.rtp.local_addr().unwrap().port();
            let (pt, name) = (codec.static_payload_type(), codec.rtpmap());
            let sdp = format!("v=0\r\no=load 1 1 IN IP4 {from}\r\ns=-\r\nc=IN IP4 {from}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}\r\na=rtpmap:101 telephone-event/8000\r\n");
            let invite = format!("INVITE sip:{room}@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {from}:{sip_port};branch=z9hG4bK{cid}\r\nFrom: <sip:load@{from}>;tag=l{next_invite}\r\nTo: <sip:{room}@besip.test>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:load@{from}:{sip_port}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len(), room = p.room, cid = p.call_id);
            let _ = sip.send_to(invite.as_bytes(), pbx);
            next_invite += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
        while let Ok((n, _)) = sip.recv_from(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !msg.starts_with("SIP/2.0 200") {
                // RTCP may land here too (our SIP port is some RTP port + 1).
                if msg.starts_with("SIP/2.0 ") && !msg.starts_with("SIP/2.0 1") {
                    let status = msg.lines().next().unwrap_or("").to_owned();
                    *refused.entry(status).or_default() += 1;
                }
                continue;
            }
            let Some(&i) = header(&msg, "Call-ID").and_then(|c| by_call.get(c)) else {
                continue;
            };
            if people[i].box_rtp.is_some() {
                continue;
            }
            let port: Option<u16> = msg
                .lines()
                .find_map(|l| l.strip_prefix("m=audio "))
                .and_then(|m| m.split_whitespace().next()?.parse().ok());
            let Some(port) = port else { continue };
            let to = header(&msg, "To").unwrap_or("").to_owned();
            let tag = to.split(";tag=").nth(1).unwrap_or("").to_owned();
            let p = &mut people[i];
            p.box_rtp = Some(SocketAddr::new(pbx.ip(), port));
            p.to_tag = tag;
            let ack = format!("ACK sip:{}@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {from}:{sip_port};branch=z9hG4bKack{}\r\nFrom: <sip:load@{from}>;tag=l{i}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", p.room, p.call_id, p.call_id);
            let _ = sip.send_to(ack.as_bytes(), pbx);
            answered += 1;
        }
    }
    for (status, n) in &refused {
        eprintln!("refused {n}×: {status}");
    }
    // Talk: 1 s of warm-up, then `seconds` measured.
    // One second of a 440 Hz tone in the codec, sent in a loop.
    let mut encoder = codec.encoder();
    let payload: Vec<Vec<u8>> = (0..50)
        .map(|k| {
            let mut frame = [0i16; 160];
            for (n, s) in frame.iter_mut().enumerate() {
                let t = (k * 160 + n) as f64 / 8000.0;
                *s = (6000.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16;
            }
            let mut out = Vec::new();
            encoder.encode(&frame, &mut out);
            out
        })
        .collect();
    let mut packet = Vec::with_capacity(200);
    let start = Instant::now();
    let warm = start + Duration::from_secs(1);
    let end = warm + Duration::from_secs(seconds);
    let mut cpu_start = None;
    let mut tick = 0u64;
    let mut next = start;
    while Instant::now() < end {
        next += Duration::from_millis(20);
        if let Some(w) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let measuring = Instant::now() >= warm;
        if measuring && cpu_start.is_none() {
            cpu_start = Some((Instant::now(), pid.as_deref().and_then(cpu_ticks)));
            for p in people.iter_mut() {
                p.received = 0;
            }
        }
        for (i, p) in people.iter_mut().enumerate() {
            while let Ok(n) = p.rtp.recv(&mut buf) {
                if n >= 12 {
                    p.received += 1;
                }
            }
            let Some(dest) = p.box_rtp else { continue };
            packet.clear();
            packet.extend_from_slice(&[0x80, codec.static_payload_type()]);
            packet.extend_from_slice(&(tick as u16).to_be_bytes());
            packet.extend_from_slice(&((tick * 160) as u32).to_be_bytes());
            packet.extend_from_slice(&(i as u32 + 1).to_be_bytes());
            packet.extend_from_slice(&payload[(tick % 50) as usize]);
            let _ = p.rtp.send_to(&packet, dest);
        }
        tick += 1;
    }
    for p in people.iter_mut() {
        while let Ok(n) = p.rtp.recv(&mut buf) {
            if n >= 12 {
                p.received += 1;
            }
        }
    }
    let (t0, c0) = cpu_start.unwrap_or((warm, None));
    let elapsed = t0.elapsed().as_secs_f64();
    let due = elapsed * 50.0;
    let live: Vec<&Participant> = people.iter().filter(|p| p.box_rtp.is_some()).collect();
    let worst = live
        .iter()
        .map(|p| p.received as f64 / due)
        .fold(f64::MAX, f64::min);
    let mean = live.iter().map(|p| p.received as f64 / due).sum::<f64>() / live.len().max(1) as f64;
    let hz = 100.0; // USER_HZ on Linux
    let cpu = match (c0, pid.as_deref().and_then(cpu_ticks)) {
        (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / hz / elapsed * 100.0),
        _ => "n/a".into(),
    };
    println!(
        "participants={} answered={} rooms={rooms} per_room={per_room} frames_due={due:.0} received_mean={:.4} received_worst={:.4} daemon_cpu_pct={cpu}",
        people.len(),
        live.len(),
        mean,
        if worst == f64::MAX { 0.0 } else { worst },
    );
    // Hang up.
    for (i, p) in people.iter().enumerate() {
        if p.box_rtp.is_none() {
            continue;
        }
        let bye = format!("BYE sip:{}@besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {from}:{sip_port};branch=z9hG4bKbye{}\r\nFrom: <sip:load@{from}>;tag=l{i}\r\nTo: <sip:{}@besip.test>;tag={}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", p.room, p.call_id, p.room, p.to_tag, p.call_id);
        let _ = sip.send_to(bye.as_bytes(), pbx);
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
