//! A minimal RTP relay for B2BUA calls that cross the NAT boundary: one UDP
//! socket facing each leg, ports from /pbx/rtp, served by the epoll workers
//! of transport::media. What arrives on the A-facing socket leaves from the
//! B-facing one towards B, and back. The B2BUA relays RTP only; the proxy
//! (features::nat_proxy) opens a second relay on the next odd ports for
//! RTCP (`open_rtcp_beside`). Gaps in the RTP sequence numbers relayed
//! are counted as lost.
//!
//! Only a side's own phone is heard and answered (no audio injection, no
//! RTP bleed to whoever sprays the ports): packets are taken from the media
//! address its SDP announced or, for a phone behind a NAT (whose SDP names
//! an address packets do not come from), from the first source seen at its
//! signalling IP within LEARNING of the media being negotiated; that source
//! is latched and answered (symmetric RTP). Every other packet is dropped
//! and counted; nothing is ever sent to an address not learnt so.
//!
//! With /pbx/rtp/kernel-forwarding, a call whose packets need nothing from
//! the box (both phones latched, no SRTP ending here, no recording, no
//! music on hold) is handed to the kernel after OFFLOAD_AFTER packets
//! (transport::kernel_forward); anything that changes that takes it back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::transport::kernel_forward::{self, Direction, Offload};
use crate::transport::media::{self, MediaPair, MediaRoute};
use crate::transport::srtp::{self, MasterKey, Suite};

/// How long after an offer or answer a NATed phone's source may be learnt:
/// phones start sending at once, and rtpengine's learning also lasts 3 s.
/// Short, so a stranger at the same NAT address has little time to race.
pub const LEARNING: Duration = Duration::from_secs(3);

/// Packets relayed in userspace before a call may go to the kernel: a
/// second of both directions, time for hold or music on hold set up with
/// the answer to show.
const OFFLOAD_AFTER: u64 = 100;

/// Packets dropped by every relay since start (from a source not the phone's).
static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Whom a packet came from, as one side's `Peer` judges it.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Phone,
    /// The phone at its announced address, after another source was learnt.
    PhoneInsteadOfLearnt,
    Stranger,
}

/// Who one side's phone is, as the signalling and its first packets told.
#[derive(Default)]
struct Peer {
    /// The media address its SDP announced.
    announced: Option<SocketAddr>,
    /// The address its signalling comes from.
    signalling: Option<IpAddr>,
    /// A packet came from `announced`: no other source will be learnt.
    confirmed: bool,
    /// The source learnt at `signalling` (a NATed phone).
    latched: Option<SocketAddr>,
    /// Until when a source may be learnt.
    learn_until: Option<Instant>,
}

impl Peer {
    /// Whether a packet from `source` comes from this side's phone; learns
    /// the source of a NATed phone on the way. The announced address wins
    /// over a source learnt before it was heard: that source was someone
    /// else at the phone's IP (its stream of an earlier call reaching a
    /// reused port).
    fn accepts(&mut self, source: SocketAddr, now: Instant) -> Heard {
        if Some(source) == self.announced {
            self.confirmed = true;
            return match self.latched.take() {
                Some(_) => Heard::PhoneInsteadOfLearnt,
                None => Heard::Phone,
            };
        }
        if Some(source) == self.latched {
            return Heard::Phone;
        }
        let learning = self.learn_until.is_some_and(|until| now < until);
        if learning
            && !self.confirmed
            && self.latched.is_none()
            && Some(source.ip()) == self.signalling
        {
            self.latched = Some(source);
            return Heard::Phone;
        }
        Heard::Stranger
    }

    /// Where this side's packets go: the learnt source, else the announced address.
    fn target(&self) -> Option<SocketAddr> {
        self.latched.or(self.announced)
    }

    /// The address this side's packets come from and go to, once heard.
    fn heard(&self) -> Option<SocketAddr> {
        self.latched.or(self.announced.filter(|_| self.confirmed))
    }
}

/// Sees each RTP packet the relay forwards, in the clear (call recording).
pub trait Tap: Send + Sync + 'static {
    /// A packet from side A (`from_a`) or B, SRTP already opened.
    fn packet(&self, from_a: bool, rtp: &[u8]);
}

struct Inner {
    /// Set once, before media flows: no lock on the packet path.
    tap: std::sync::OnceLock<Arc<dyn Tap>>,
    /// What goes to side A (0) or B (1) is dropped: the box plays to it
    /// instead (music on hold).
    muted_towards: [std::sync::atomic::AtomicBool; 2],
    /// The payload type each side sent last (the codec to play to it).
    last_payload_type: [std::sync::atomic::AtomicU8; 2],
    a: Mutex<Peer>,
    b: Mutex<Peer>,
    /// SRTP ends at the relay for side A, and for side B.
    crypto: [Mutex<SideCrypto>; 2],
    relayed: AtomicU64,
    dropped: AtomicU64,
    /// RTP packets missing from each side's sequence numbers.
    lost: AtomicU64,
    /// The highest RTP sequence number seen from side A, and from B.
    seq: [Mutex<Option<u16>>; 2],
    /// When the relay opened, and milliseconds after it of the last packet relayed.
    born: Instant,
    last_relayed_ms: AtomicU64,
    /// The relay's ports facing side A and side B.
    ports: [u16; 2],
    /// The flow in the kernel's hands (or asked to be), if any.
    kernel: Mutex<Option<Offload>>,
    /// Packets the kernel forwarded for flows of this relay taken back since.
    kernel_before: AtomicU64,
}

/// Where one side speaks SRTP and the other not, the relay opens what the
/// side's phone sends (its key) and seals what goes to it (our key).
#[derive(Default)]
struct SideCrypto {
    inbound: Option<Keyed>,
    outbound: Option<Keyed>,
}

/// A context and the key it was made from (to tell a new key from the same).
struct Keyed {
    suite: Suite,
    key: MasterKey,
    ctx: srtp::Context,
}

fn rekey(slot: &mut Option<Keyed>, key: Option<(Suite, &MasterKey)>) {
    match key {
        None => *slot = None,
        Some((suite, key)) => {
            if slot
                .as_ref()
                .is_some_and(|k| k.suite == suite && k.key == *key)
            {
                return;
            }
            *slot = Some(Keyed {
                suite,
                key: key.clone(),
                ctx: srtp::Context::new(suite, key),
            });
        }
    }
}

/// The relay of one call; dropping it closes its ports.
pub struct Relay {
    pub a_port: u16,
    pub b_port: u16,
    inner: Arc<Inner>,
    _media: MediaPair,
}

/// Per port range (first, last even port): the slot after the one handed
/// out last, where the next search starts. Ranges are few (the relay's and
/// the media services' of /pbx/rtp); the map is emptied should a run of
/// reconfigurations ever leave many.
static NEXT_SLOT: LazyLock<Mutex<HashMap<(u16, u16), u32>>> = LazyLock::new(Default::default);

/// Binds an even port of `min..=max` on `ip`: the first free one after the
/// port handed out last (starting at a random one), as rtpengine does. A
/// port just closed is thus taken again only once the whole range has gone
/// round, so a phone's stream of a call just ended (still in flight, or a
/// phone slow to stop) does not reach the next call given its port.
pub(crate) fn bind_even(ip: IpAddr, min: u16, max: u16, skip: Option<u16>) -> Option<UdpSocket> {
    let first = min + (min % 2);
    if first > max {
        return None;
    }
    let slots = u32::from((max - first) / 2) + 1;
    let start = {
        let mut next = NEXT_SLOT.lock();
        if next.len() > 64 {
            next.clear();
        }
        *next
            .entry((first, max))
            .or_insert_with(|| rand::random::<u32>() % slots)
            % slots
    };
    let (slot, socket) = (0..slots)
        .map(|i| (start + i) % slots)
        .map(|slot| (slot, first + (slot * 2) as u16))
        .filter(|(_, port)| Some(*port) != skip)
        .find_map(|(slot, port)| Some((slot, UdpSocket::bind(SocketAddr::new(ip, port)).ok()?)))?;
    NEXT_SLOT.lock().insert((first, max), slot + 1);
    Some(socket)
}

impl Relay {
    /// Opens both sockets and starts relaying; None when no port is free.
    pub fn open(bind: IpAddr, min: u16, max: u16) -> Option<Relay> {
        let a = bind_even(bind, min, max, None)?;
        let a_port = a.local_addr().ok()?.port();
        let b = bind_even(bind, min, max, Some(a_port))?;
        Relay::serve(a, b)
    }

    /// A relay on the ports just above `rtp`'s (RTCP beside RTP, RFC 3550
    /// §11); None when either is taken or beyond the range's `max`.
    pub fn open_rtcp_beside(rtp: &Relay, bind: IpAddr, max: u16) -> Option<Relay> {
        let (a_port, b_port) = (rtp.a_port.checked_add(1)?, rtp.b_port.checked_add(1)?);
        if a_port > max || b_port > max {
            return None;
        }
        let a = UdpSocket::bind(SocketAddr::new(bind, a_port)).ok()?;
        let b = UdpSocket::bind(SocketAddr::new(bind, b_port)).ok()?;
        Relay::serve(a, b)
    }

    fn serve(a: UdpSocket, b: UdpSocket) -> Option<Relay> {
        let a_port = a.local_addr().ok()?.port();
        let b_port = b.local_addr().ok()?.port();
        let inner = Arc::new(Inner {
            tap: std::sync::OnceLock::new(),
            muted_towards: Default::default(),
            last_payload_type: Default::default(),
            a: Mutex::default(),
            b: Mutex::default(),
            crypto: Default::default(),
            relayed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            seq: Default::default(),
            born: Instant::now(),
            last_relayed_ms: AtomicU64::new(0),
            ports: [a_port, b_port],
            kernel: Mutex::new(None),
            kernel_before: AtomicU64::new(0),
        });
        let media = match media::serve(a, b, inner.clone()) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serve RTP relay ports");
                return None;
            }
        };
        Some(Relay {
            a_port,
            b_port,
            inner,
            _media: media,
        })
    }

    /// The media address announced in the SDP of side A (true) or B, and
    /// the IP its signalling came from. Media starts now (offer or answer):
    /// both sides may learn a NATed phone's source for LEARNING; a side
    /// announcing a new address forgets what it learnt.
    pub fn set_target(&self, a: bool, media: SocketAddr, signalling: IpAddr) {
        self.inner.take_back();
        let until = Instant::now() + LEARNING;
        for (side, this) in [(&self.inner.a, a), (&self.inner.b, !a)] {
            let mut peer = side.lock();
            if this {
                if peer.announced != Some(media) {
                    peer.confirmed = false;
                    peer.latched = None;
                }
                peer.announced = Some(media);
                peer.signalling = Some(signalling);
            }
            peer.learn_until = Some(until);
        }
    }

    /// Side A (true) or B sends SRTP with `key` (None: plain RTP). The same
    /// key again keeps the stream's replay state.
    pub fn srtp_from(&self, a: bool, key: Option<(Suite, &MasterKey)>) {
        if key.is_some() {
            self.inner.take_back();
        }
        let mut side = self.inner.crypto[usize::from(!a)].lock();
        rekey(&mut side.inbound, key);
    }

    /// What goes to side A (true) or B is sealed with `key` (None: plain).
    pub fn srtp_to(&self, a: bool, key: Option<(Suite, &MasterKey)>) {
        if key.is_some() {
            self.inner.take_back();
        }
        let mut side = self.inner.crypto[usize::from(!a)].lock();
        rekey(&mut side.outbound, key);
    }

    /// Hands every packet relayed from now on to `tap`; false when the
    /// relay has one already.
    pub fn tap(&self, tap: Arc<dyn Tap>) -> bool {
        let set = self.inner.tap.set(tap).is_ok();
        self.inner.take_back();
        set
    }

    /// Drops what the other side sends to side A (`a`) or B while `muted`
    /// (the box plays to it instead).
    pub fn mute_towards(&self, a: bool, muted: bool) {
        self.inner.muted_towards[usize::from(!a)].store(muted, Ordering::Relaxed);
        if muted {
            self.inner.take_back();
        }
    }

    /// The payload type side A (`a`) or B sent last (0 before any).
    pub fn payload_type_of(&self, a: bool) -> u8 {
        self.inner.last_payload_type[usize::from(!a)].load(Ordering::Relaxed)
    }

    /// Sends `packet` to side A's (`a`) or B's phone from the relay's socket
    /// facing it; false when that side's address is not known.
    pub fn send_to_side(&self, a: bool, packet: &[u8]) -> bool {
        let peer = if a { &self.inner.a } else { &self.inner.b };
        let Some(target) = peer.lock().target() else {
            return false;
        };
        self._media.send_from(a, packet, target);
        true
    }

    /// Packets relayed so far, both directions (by the kernel too, as of
    /// its last counter reading, every 10 s).
    pub fn relayed(&self) -> u64 {
        let kernel = self
            .inner
            .kernel
            .lock()
            .as_ref()
            .map_or(0, |o| o.counters().packets());
        self.inner.relayed.load(Ordering::Relaxed)
            + self.inner.kernel_before.load(Ordering::Relaxed)
            + kernel
    }

    /// Whether the kernel forwards this relay's packets now.
    pub fn kernel_forwarded(&self) -> bool {
        self.inner
            .kernel
            .lock()
            .as_ref()
            .is_some_and(|o| o.counters().installed())
    }

    /// Packets dropped so far (not from either side's phone).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// RTP packets lost so far (gaps in the sequence numbers relayed).
    pub fn lost(&self) -> u64 {
        self.inner.lost.load(Ordering::Relaxed)
    }

    /// The address side A's (true) or B's media is taken from and sent to,
    /// once a packet came from it.
    pub fn latched(&self, a: bool) -> Option<SocketAddr> {
        let peer = if a { &self.inner.a } else { &self.inner.b }.lock();
        peer.latched.or(peer.announced.filter(|_| peer.confirmed))
    }

    /// Time since the last packet relayed (or since the relay opened).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.inner.last_relayed_ms.load(Ordering::Relaxed));
        let here = self.inner.born.elapsed().saturating_sub(last);
        match &*self.inner.kernel.lock() {
            Some(o) if o.counters().installed() => here.min(o.counters().idle()),
            _ => here,
        }
    }
}

/// Packets dropped by all relays since start (/pbx/counters/rtp-dropped).
pub fn dropped_total() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed)
}

impl MediaRoute for Inner {
    /// Only the side's own phone is heard; its packet goes to the other
    /// side's phone.
    fn route(
        &self,
        from_a: bool,
        source: SocketAddr,
        packet: &mut [u8],
        len: usize,
    ) -> Option<(SocketAddr, usize)> {
        let (from, to) = if from_a {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        };
        let now = Instant::now();
        let heard = from.lock().accepts(source, now);
        match heard {
            Heard::Phone => {}
            // The kernel may forward the wrongly learnt source.
            Heard::PhoneInsteadOfLearnt => self.take_back(),
            Heard::Stranger => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        let target = to.lock().target()?;
        let (sender, receiver) = if from_a { (0, 1) } else { (1, 0) };
        if len >= 12 && !srtp::is_rtcp(&packet[..len]) {
            self.last_payload_type[sender].store(packet[1] & 0x7F, Ordering::Relaxed);
        }
        if self.muted_towards[receiver].load(Ordering::Relaxed) {
            return None;
        }
        let Some(len) = self.transform(sender, receiver, packet, len) else {
            // Forged, replayed or undecryptable: never forwarded.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let relayed = self.relayed.fetch_add(1, Ordering::Relaxed) + 1;
        if relayed >= OFFLOAD_AFTER && relayed.is_multiple_of(32) && kernel_forward::active() {
            self.offer_to_kernel();
        }
        let ms =
            u64::try_from(now.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX);
        self.last_relayed_ms.store(ms, Ordering::Relaxed);
        self.count_loss(sender, &packet[..len]);
        Some((target, len))
    }
}

/// A forward jump of the sequence number larger than this is a restart
/// (a new stream, a re-INVITE), not loss.
const MAX_GAP: u16 = 3000;

impl Inner {
    /// Hands the flow to the kernel when nothing of it needs the box: both
    /// phones heard at the addresses their packets go to, no SRTP ending
    /// here, no recording, no side muted. A flow the kernel refused,
    /// or whose table went, is offered again once expired.
    fn offer_to_kernel(&self) {
        let mut kernel = self.kernel.lock();
        if kernel.as_ref().is_some_and(|o| !o.expired())
            || self.tap.get().is_some()
            || self.muted_towards.iter().any(|m| m.load(Ordering::Relaxed))
        {
            return;
        }
        let plain = self.crypto.iter().all(|c| {
            let c = c.lock();
            c.inbound.is_none() && c.outbound.is_none()
        });
        if !plain {
            return;
        }
        // As the kernel sees it: an IPv4 phone on a dual-stack socket is
        // heard at a v4-mapped address but its packets are IPv4.
        let symmetric = |peer: &Mutex<Peer>| {
            let peer = peer.lock();
            let heard = peer.heard().filter(|h| peer.target() == Some(*h))?;
            Some(SocketAddr::new(heard.ip().to_canonical(), heard.port()))
        };
        // (A call between the two families: `offload` declines it.)
        let (Some(a), Some(b)) = (symmetric(&self.a), symmetric(&self.b)) else {
            return;
        };
        let [a_port, b_port] = self.ports;
        if let Some(expired) = kernel.take() {
            self.kernel_before
                .fetch_add(expired.counters().packets(), Ordering::Relaxed);
        }
        *kernel = kernel_forward::offload([
            Direction {
                source: a,
                port: a_port,
                out_port: b_port,
                target: b,
            },
            Direction {
                source: b,
                port: b_port,
                out_port: a_port,
                target: a,
            },
        ]);
    }

    /// Takes the flow back from the kernel: the relay's sockets see its
    /// packets again (within a moment: the rule goes with the next batch).
    fn take_back(&self) {
        if let Some(offload) = self.kernel.lock().take() {
            self.kernel_before
                .fetch_add(offload.counters().packets(), Ordering::Relaxed);
        }
    }

    /// Counts the RTP packets missing before this one from side `sender`
    /// (late and repeated packets count nothing).
    fn count_loss(&self, sender: usize, packet: &[u8]) {
        if packet.len() < 12 || packet[0] >> 6 != 2 || srtp::is_rtcp(packet) {
            return;
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let mut last = self.seq[sender].lock();
        match *last {
            None => *last = Some(seq),
            Some(prev) => {
                let ahead = seq.wrapping_sub(prev);
                if ahead == 0 || ahead >= 0x8000 {
                    return;
                }
                if ahead <= MAX_GAP {
                    self.lost.fetch_add(u64::from(ahead - 1), Ordering::Relaxed);
                }
                *last = Some(seq);
            }
        }
    }

    /// Opens SRTP from side `sender` and seals it for side `receiver`, as
    /// each side's `SideCrypto` says; RTCP muxed on the port (RFC 5761) is
    /// told apart by its payload type.
    fn transform(
        &self,
        sender: usize,
        receiver: usize,
        packet: &mut [u8],
        len: usize,
    ) -> Option<usize> {
        let rtcp = srtp::is_rtcp(&packet[..len]);
        let len = match &mut self.crypto[sender].lock().inbound {
            Some(k) if rtcp => k.ctx.unprotect_rtcp(packet, len).ok()?,
            Some(k) => k.ctx.unprotect_rtp(packet, len).ok()?,
            None => len,
        };
        if let Some(tap) = self.tap.get().filter(|_| !rtcp) {
            tap.packet(sender == 0, &packet[..len]);
        }
        match &mut self.crypto[receiver].lock().outbound {
            Some(k) if rtcp => k.ctx.protect_rtcp(packet, len).ok(),
            Some(k) => k.ctx.protect_rtp(packet, len).ok(),
            None => Some(len),
        }
    }
}

/// The media address of an SDP body: connection address and first audio port.
pub fn media_addr(sdp: &str) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(c) = line.strip_prefix("c=") {
            // c=IN IP4 192.0.2.1 (session or media level; the last one wins)
            if let Some(a) = c.split_whitespace().nth(2) {
                ip = a.split('/').next().and_then(|a| a.parse().ok()).or(ip);
            }
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            if port.is_none() {
                port = m.split_whitespace().next().and_then(|p| p.parse().ok());
            }
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// The SDP with its connection and origin addresses set to `ip` and its
/// first audio port set to `port`.
pub fn rewrite_sdp(sdp: &str, ip: IpAddr, port: u16) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut audio_done = false;
    let mut out = String::with_capacity(sdp.len() + 16);
    for line in sdp.split_inclusive('\n') {
        let eol = &line[line.trim_end_matches(['\r', '\n']).len()..];
        let text = line.trim_end_matches(['\r', '\n']);
        let new = if text.starts_with("c=") {
            format!("c=IN {family} {ip}")
        } else if let Some(o) = text.strip_prefix("o=") {
            // o=<user> <sess-id> <version> IN IP4 <address>
            let f: Vec<&str> = o.split_whitespace().collect();
            if f.len() == 6 {
                format!("o={} {} {} IN {family} {ip}", f[0], f[1], f[2])
            } else {
                text.to_owned()
            }
        } else if let (Some(m), false) = (text.strip_prefix("m=audio "), audio_done) {
            audio_done = true;
            match m.split_once(' ') {
                Some((_, rest)) => format!("m=audio {port} {rest}"),
                None => text.to_owned(),
            }
        } else {
            text.to_owned()
        };
        out.push_str(&new);
        out.push_str(eol);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=u 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn sdp_is_read_and_rewritten() {
        assert_eq!(media_addr(SDP), Some("10.0.0.5:4000".parse().unwrap()));
        let out = rewrite_sdp(SDP, "198.51.100.7".parse().unwrap(), 12000);
        assert!(out.contains("c=IN IP4 198.51.100.7\r\n"), "{out}");
        assert!(out.contains("o=u 1 2 IN IP4 198.51.100.7\r\n"), "{out}");
        assert!(out.contains("m=audio 12000 RTP/AVP 0\r\n"), "{out}");
        assert!(out.ends_with("a=rtpmap:0 PCMU/8000\r\n"));
        assert_eq!(media_addr("v=0\r\n"), None);
    }

    #[test]
    fn a_port_just_closed_is_handed_out_again_only_after_the_range_went_round() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        // Ten even ports, of a range no other test uses.
        let (min, max) = (30600, 30619);
        let first = bind_even(lo, min, max, None).expect("a port");
        let first_port = first.local_addr().unwrap().port();
        drop(first);
        let mut ports = vec![first_port];
        for _ in 0..9 {
            let socket = bind_even(lo, min, max, None).expect("a port");
            ports.push(socket.local_addr().unwrap().port());
        }
        // Nine more calls (their sockets closed as they go): none had the
        // first call's port, each had a port of its own, then it comes back.
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 10, "{ports:?}");
        assert!(ports.iter().all(|p| p % 2 == 0 && (min..=max).contains(p)));
        let again = bind_even(lo, min, max, None).expect("a port");
        assert_eq!(again.local_addr().unwrap().port(), first_port);
    }

    #[test]
    fn the_announced_address_wins_over_a_source_learnt_before_it() {
        let now = Instant::now();
        let phone: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let earlier_call: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut peer = Peer {
            announced: Some(phone),
            signalling: Some(phone.ip()),
            learn_until: Some(now + LEARNING),
            ..Peer::default()
        };
        // A stream at the phone's IP comes first and is learnt (as a NATed
        // phone's would be)...
        assert_eq!(peer.accepts(earlier_call, now), Heard::Phone);
        assert_eq!(peer.target(), Some(earlier_call));
        // ...until the phone is heard at the address it announced.
        assert_eq!(peer.accepts(phone, now), Heard::PhoneInsteadOfLearnt);
        assert_eq!(peer.target(), Some(phone));
        assert_eq!(peer.heard(), Some(phone));
        assert_eq!(peer.accepts(earlier_call, now), Heard::Stranger);
        assert_eq!(peer.accepts(phone, now), Heard::Phone);
    }

    #[test]
    fn relays_both_ways_and_latches() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let relay = Relay::open(lo, 30000, 30100).expect("ports");
        assert!(relay.a_port.is_multiple_of(2) && relay.b_port.is_multiple_of(2));
        assert_ne!(relay.a_port, relay.b_port);
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        relay.set_target(false, b.local_addr().unwrap(), lo);
        // A announced a wrong address (behind a NAT): its packets, from its
        // signalling address, teach the real one.
        relay.set_target(true, "127.0.0.1:9".parse().unwrap(), lo);
        a.send_to(b"from-a", (lo, relay.a_port)).unwrap();
        let mut buf = [0u8; 64];
        let (n, src) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from-a");
        assert_eq!(src.port(), relay.b_port);
        b.send_to(b"from-b", (lo, relay.b_port)).unwrap();
        let (n, src) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from-b");
        assert_eq!(src.port(), relay.a_port);
        // Counted just after the send: give the pump a moment.
        for _ in 0..100 {
            if relay.relayed() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(relay.relayed(), 2);
    }

    #[test]
    fn strangers_are_neither_heard_nor_answered() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let relay = Relay::open(lo, 30200, 30300).expect("ports");
        let bind = |ip: &str| {
            let s = UdpSocket::bind((ip, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        };
        let (a, b) = (bind("127.0.0.1"), bind("127.0.0.1"));
        let (elsewhere, same_ip) = (bind("127.0.0.3"), bind("127.0.0.1"));
        // A is behind a NAT (announces a port nothing comes from); B is not.
        relay.set_target(true, "127.0.0.1:9".parse().unwrap(), lo);
        relay.set_target(false, b.local_addr().unwrap(), lo);
        let mut buf = [0u8; 64];
        let recv = |s: &UdpSocket| {
            let mut buf = [0u8; 64];
            let n = s.recv_from(&mut buf).expect("relayed").0;
            buf[..n].to_vec()
        };
        // A stranger at another address is never learnt, on either side.
        for port in [relay.a_port, relay.b_port] {
            elsewhere.send_to(b"inject", (lo, port)).unwrap();
        }
        assert!(b.recv_from(&mut buf).is_err(), "injected audio reached B");
        a.send_to(b"from-a", (lo, relay.a_port)).unwrap();
        assert_eq!(recv(&b), b"from-a");
        b.send_to(b"from-b", (lo, relay.b_port)).unwrap();
        assert_eq!(recv(&a), b"from-b");
        // Once A is learnt and B confirmed, not even its own IP is learnt again.
        for port in [relay.a_port, relay.b_port] {
            same_ip.send_to(b"inject", (lo, port)).unwrap();
            elsewhere.send_to(b"inject", (lo, port)).unwrap();
        }
        b.send_to(b"from-b-2", (lo, relay.b_port)).unwrap();
        assert_eq!(recv(&a), b"from-b-2");
        a.send_to(b"from-a-2", (lo, relay.a_port)).unwrap();
        assert_eq!(recv(&b), b"from-a-2");
        for s in [&elsewhere, &same_ip] {
            assert!(s.recv_from(&mut buf).is_err(), "a stranger got media");
        }
        for _ in 0..100 {
            if relay.dropped() == 6 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(relay.dropped(), 6);
        assert!(dropped_total() >= 6);
    }

    #[test]
    fn srtp_ends_at_the_relay_for_one_side() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let relay = Relay::open(lo, 30400, 30500).expect("ports");
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        relay.set_target(true, a.local_addr().unwrap(), lo);
        relay.set_target(false, b.local_addr().unwrap(), lo);
        // A speaks SRTP (its key KA, ours to it KO); B plain RTP.
        let suite = Suite::AesCm128HmacSha1_80;
        let (ka, ko) = (MasterKey::random(), MasterKey::random());
        relay.srtp_from(true, Some((suite, &ka)));
        relay.srtp_to(true, Some((suite, &ko)));
        let mut phone_tx = srtp::Context::new(suite, &ka);
        let mut phone_rx = srtp::Context::new(suite, &ko);
        let plain: Vec<u8> = [0x80u8, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0x55, 160))
            .collect();
        let mut buf = [0u8; 256];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = phone_tx.protect_rtp(&mut buf, plain.len()).unwrap();
        a.send_to(&buf[..n], (lo, relay.a_port)).unwrap();
        let (got, _) = b.recv_from(&mut buf).expect("B gets plain RTP");
        assert_eq!(&buf[..got], &plain[..]);
        // The same packet again (a replay) and a forged one are dropped.
        let mut again = [0u8; 256];
        again[..plain.len()].copy_from_slice(&plain);
        let mut fresh = srtp::Context::new(suite, &ka);
        let n = fresh.protect_rtp(&mut again, plain.len()).unwrap();
        a.send_to(&again[..n], (lo, relay.a_port)).unwrap();
        a.send_to(&plain, (lo, relay.a_port)).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            b.recv_from(&mut buf).is_err(),
            "a replay or plain RTP passed"
        );
        // B's plain RTP reaches A sealed with our key.
        b.send_to(&plain, (lo, relay.b_port)).unwrap();
        let (got, _) = a.recv_from(&mut buf).expect("A gets SRTP");
        assert_eq!(got, plain.len() + 10);
        assert_ne!(&buf[12..plain.len()], &plain[12..]);
        let opened = phone_rx
            .unprotect_rtp(&mut buf, got)
            .expect("our key opens it");
        assert_eq!(&buf[..opened], &plain[..]);
    }
}
