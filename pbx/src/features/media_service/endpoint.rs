//! The RTP stream of a call the box answers itself: a port pair of /pbx/rtp
//! (RTP, and RTCP on the odd port above), what arrives decoded into a
//! jitter buffer and key presses (RFC 4733), what the service says encoded
//! and sent every 20 ms by the service's own clock. Latching is strict: a
//! packet counts only from the offer's address or the caller's signalling
//! address, and once one came, only from that address and port. The
//! offer's own address and port always win: a phone's stream from an
//! earlier call (same address, another port) that reaches a reused port
//! first is dropped as soon as the phone itself is heard.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use besip_media::codec::{Codec, Decoder, Encoder};
use besip_media::jitter::{JitterBuffer, Played};
use besip_media::{dtmf, rtcp, rtp, Frame, FRAME};
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::sdp::Offer;

/// Key presses kept unread at most (a flood of events is dropped beyond).
const MAX_KEYS: usize = 32;
/// Between our RTCP reports (RFC 3550 suggests 5 s at these rates).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

pub struct Endpoint {
    pub local_port: u16,
    state: Arc<Mutex<State>>,
    socket: Arc<UdpSocket>,
    tasks: Vec<JoinHandle<()>>,
}

struct State {
    /// Where we send: the offer's address, then where the caller's RTP
    /// comes from.
    remote: SocketAddr,
    latched: bool,
    /// The address and port the offer named.
    announced: SocketAddr,
    signalling: IpAddr,
    codec: Codec,
    payload_type: u8,
    encoder: Encoder,
    decoder: Decoder,
    /// Decoded samples of the last payload.
    decoded: Vec<i16>,
    events: Option<u8>,
    sender: rtp::Sender,
    first: bool,
    jitter: JitterBuffer,
    detector: dtmf::Detector,
    keys: VecDeque<char>,
    reception: rtcp::Reception,
    started: Instant,
    /// Packets from anywhere else (counted, dropped).
    pub foreign: u64,
    out: Vec<u8>,
    encoded: Vec<u8>,
}

/// An even port of `min..=max` (the relay's search) and the odd one
/// above it for RTCP; a few tries when the odd one is taken.
fn bind_pair(ip: IpAddr, min: u16, max: u16) -> Option<(std::net::UdpSocket, std::net::UdpSocket)> {
    (0..8).find_map(|_| {
        let rtp = crate::features::rtp_relay::bind_even(ip, min, max.checked_sub(1)?, None)?;
        let port = rtp.local_addr().ok()?.port();
        let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1)).ok()?;
        Some((rtp, rtcp))
    })
}

impl Endpoint {
    /// Opens the ports for `offer` of a caller signalling from `signalling`.
    pub fn open(
        bind: IpAddr,
        min: u16,
        max: u16,
        offer: &Offer,
        signalling: IpAddr,
    ) -> io::Result<Endpoint> {
        let (rtp_sock, rtcp_sock) = bind_pair(bind, min, max)
            .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free RTP port pair"))?;
        rtp_sock.set_nonblocking(true)?;
        rtcp_sock.set_nonblocking(true)?;
        let local_port = rtp_sock.local_addr()?.port();
        let socket = Arc::new(UdpSocket::from_std(rtp_sock)?);
        let rtcp_socket = UdpSocket::from_std(rtcp_sock)?;
        let state = Arc::new(Mutex::new(State {
            remote: offer.media,
            latched: false,
            announced: offer.media,
            signalling,
            codec: offer.codec,
            payload_type: offer.payload_type,
            encoder: offer.codec.encoder(),
            decoder: offer.codec.decoder(),
            decoded: Vec::new(),
            events: offer.events,
            sender: rtp::Sender::new(rand::random(), rand::random(), rand::random()),
            first: true,
            jitter: JitterBuffer::default(),
            detector: dtmf::Detector::default(),
            keys: VecDeque::new(),
            reception: rtcp::Reception::default(),
            started: Instant::now(),
            foreign: 0,
            out: Vec::with_capacity(200),
            encoded: Vec::with_capacity(1500),
        }));
        let receive = tokio::spawn(receive(socket.clone(), state.clone()));
        let reports = tokio::spawn(reports(rtcp_socket, state.clone()));
        Ok(Endpoint {
            local_port,
            state,
            socket,
            tasks: vec![receive, reports],
        })
    }

    /// A re-INVITE's offer: new address (unlatched again) and codec.
    pub fn update(&self, offer: &Offer) {
        let mut s = self.state.lock();
        if s.announced != offer.media {
            s.announced = offer.media;
            s.remote = offer.media;
            s.latched = false;
        }
        if s.codec != offer.codec {
            s.encoder = offer.codec.encoder();
            s.decoder = offer.codec.decoder();
            s.codec = offer.codec;
        }
        s.payload_type = offer.payload_type;
        s.events = offer.events;
    }

    /// Sends one 20 ms frame.
    pub fn send(&self, frame: &Frame) {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        if s.remote.port() == 0 {
            return; // late offer: no answer (ACK) yet
        }
        s.encoder.encode(frame, &mut s.encoded);
        if s.encoded.is_empty() {
            return;
        }
        let marker = std::mem::take(&mut s.first);
        let encoded = std::mem::take(&mut s.encoded);
        s.sender
            .next(&mut s.out, marker, s.payload_type, &encoded, FRAME as u32);
        s.encoded = encoded;
        // A full socket buffer drops the frame, as the network would.
        let _ = self.socket.try_send_to(&s.out, s.remote);
    }

    /// The next frame the caller said (jitter buffer's tick).
    pub fn take_frame(&self) -> Played {
        self.state.lock().jitter.pop()
    }

    /// The oldest key pressed and not read yet.
    pub fn take_key(&self) -> Option<char> {
        self.state.lock().keys.pop_front()
    }

    /// A key that came by SIP INFO (application/dtmf-relay).
    pub fn push_key(&self, key: char) {
        let mut s = self.state.lock();
        if s.keys.len() < MAX_KEYS {
            s.keys.push_back(key);
        }
    }

    /// Drops keys pressed so far (a prompt starts afresh).
    pub fn clear_keys(&self) {
        self.state.lock().keys.clear();
    }

    /// (received, lost, foreign) packet counts.
    pub fn counters(&self) -> (u32, u32, u64) {
        let s = self.state.lock();
        (s.reception.received, s.reception.lost(), s.foreign)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn receive(socket: Arc<UdpSocket>, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((len, source)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let packet = &buf[..len];
        let mut s = state.lock();
        let allowed = source == s.announced
            || if s.latched {
                source == s.remote
            } else {
                source.ip() == s.announced.ip() || source.ip() == s.signalling
            };
        let Some(h) = rtp::parse(packet).filter(|_| allowed) else {
            s.foreign += 1;
            continue;
        };
        if !s.latched {
            s.latched = true;
            s.remote = source;
        } else if source != s.remote {
            // The phone at its offer's address, after another stream was
            // latched: what that stream left (its timestamps, its key
            // events) must not judge the phone's.
            s.remote = source;
            s.jitter = JitterBuffer::default();
            s.detector = dtmf::Detector::default();
            s.reception = rtcp::Reception::default();
        }
        let arrival = (s.started.elapsed().as_micros() / 125) as u32;
        s.reception.packet(h.ssrc, h.sequence, h.timestamp, arrival);
        let payload = &packet[h.payload.0..h.payload.1];
        if Some(h.payload_type) == s.events {
            if let Some(key) = s.detector.packet(h.timestamp, payload) {
                if s.keys.len() < MAX_KEYS {
                    s.keys.push_back(key);
                }
            }
            continue;
        }
        if h.payload_type != s.payload_type {
            continue;
        }
        // Frames indexed by timestamp, so that any packet time fits.
        let s = &mut *s;
        s.decoder.decode(payload, &mut s.decoded);
        let first = h.timestamp / FRAME as u32;
        for (i, chunk) in s.decoded.chunks(FRAME).enumerate() {
            let mut frame = [0i16; FRAME];
            frame[..chunk.len()].copy_from_slice(chunk);
            let index = first.wrapping_add(i as u32) as u16;
            s.jitter.push(index, frame);
        }
    }
}

async fn reports(socket: UdpSocket, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 1500];
    let mut tick = tokio::time::interval(RTCP_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            // The caller's reports are read and dropped (the monitoring
            // daemon is where call quality is judged).
            _ = socket.recv_from(&mut buf) => {}
            _ = tick.tick() => {
                let (packet, to) = {
                    let mut guard = state.lock();
                    let s = &mut *guard;
                    let to = SocketAddr::new(s.remote.ip(), s.remote.port().wrapping_add(1));
                    let reception = (s.reception.received > 0).then_some(&mut s.reception);
                    let p = rtcp::sender_report(
                        s.sender.ssrc,
                        rtcp::ntp_now(),
                        s.sender.timestamp,
                        s.sender.packets,
                        s.sender.octets,
                        reception,
                    );
                    (p, to)
                };
                let _ = socket.try_send_to(&packet, to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_media::SILENCE;

    /// A PCMU packet of 160 bytes with sequence number `seq`.
    fn rtp_packet(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        p.extend(std::iter::repeat_n(0xFF, 160));
        p
    }

    /// Sends until the endpoint's next frame reaches `receiver` (true) or
    /// 30 frames went elsewhere.
    async fn frames_reach(endpoint: &Endpoint, receiver: &UdpSocket) -> bool {
        let mut buf = [0u8; 512];
        for _ in 0..30 {
            endpoint.send(&SILENCE);
            let got = tokio::time::timeout(Duration::from_millis(20), receiver.recv_from(&mut buf));
            if got.await.is_ok() {
                return true;
            }
        }
        false
    }

    #[tokio::test]
    async fn the_offer_address_wins_over_a_stream_latched_before_it() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The same phone's stream of an earlier call, still in flight.
        let earlier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let offer = Offer {
            media: phone.local_addr().unwrap(),
            codec: Codec::Pcmu,
            payload_type: 0,
            events: None,
            direction: "sendrecv",
        };
        let endpoint = Endpoint::open(lo, 30700, 30799, &offer, lo).expect("ports");
        let to = SocketAddr::new(lo, endpoint.local_port);
        // The earlier stream comes first and is latched (as a NATed phone's would be).
        earlier.send_to(&rtp_packet(1), to).await.unwrap();
        assert!(frames_reach(&endpoint, &earlier).await, "not latched");
        // What went to the offer's address before that is not the proof.
        let mut buf = [0u8; 512];
        while phone.try_recv_from(&mut buf).is_ok() {}
        endpoint.send(&SILENCE);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            phone.try_recv_from(&mut buf).is_err(),
            "still sent to the phone"
        );
        // The phone itself is heard at the address it offered: the box
        // answers it, and the earlier stream is foreign from now on.
        phone.send_to(&rtp_packet(1), to).await.unwrap();
        let mut switched = false;
        for _ in 0..50 {
            if frames_reach(&endpoint, &phone).await {
                switched = true;
                break;
            }
        }
        assert!(switched, "the phone was not answered");
        let foreign = endpoint.counters().2;
        earlier.send_to(&rtp_packet(2), to).await.unwrap();
        phone.send_to(&rtp_packet(2), to).await.unwrap();
        for _ in 0..100 {
            if endpoint.counters().2 > foreign {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(endpoint.counters().2, foreign + 1);
        assert!(frames_reach(&endpoint, &phone).await);
    }
}
