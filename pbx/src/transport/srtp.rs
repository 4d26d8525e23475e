//! SRTP and SRTCP (RFC 3711) with the SDES suites phones and providers use,
//! AES_CM_128_HMAC_SHA1_80 and _32: session keys derived from the master
//! key and salt, AES counter mode over the payload, HMAC-SHA1 over the
//! packet and rollover counter, a 64-packet replay window. One `Context` per
//! direction of one leg (its key is that sender's). The primitives come from
//! RustCrypto; only the packet transform is ours.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha1 = Hmac<Sha1>;

pub const MASTER_KEY_LEN: usize = 16;
pub const MASTER_SALT_LEN: usize = 14;
const RTP_HEADER: usize = 12;
const RTCP_HEADER: usize = 8;
const SRTCP_INDEX_LEN: usize = 4;
/// SRTCP always carries the 80-bit tag (RFC 4568 §6.2.1 for both suites).
const SRTCP_TAG: usize = 10;
const REPLAY_WINDOW: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    fn rtp_tag(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// Why a packet was refused; the relay drops it and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    TooShort,
    Authentication,
    Replay,
    NoRoom,
}

/// Master key and salt of one sender (the `inline:` of an SDES line).
/// Deliberately without Debug: keys are never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; MASTER_KEY_LEN],
    pub salt: [u8; MASTER_SALT_LEN],
}

impl MasterKey {
    pub fn random() -> MasterKey {
        MasterKey {
            key: rand::random(),
            salt: rand::random(),
        }
    }
}

struct SessionKeys {
    cipher: [u8; 16],
    salt: [u8; 14],
    auth: [u8; 20],
}

impl SessionKeys {
    /// RFC 3711 §4.3.1 with key_derivation_rate 0: labels 0/1/2 for SRTP,
    /// 3/4/5 for SRTCP.
    fn derive(master: &MasterKey, first_label: u8) -> SessionKeys {
        let prf = |label: u8, out: &mut [u8]| {
            let mut iv = [0u8; 16];
            iv[..14].copy_from_slice(&master.salt);
            iv[7] ^= label;
            out.fill(0);
            Aes128Ctr::new(&master.key.into(), &iv.into()).apply_keystream(out);
        };
        let mut keys = SessionKeys {
            cipher: [0; 16],
            salt: [0; 14],
            auth: [0; 20],
        };
        prf(first_label, &mut keys.cipher);
        prf(first_label + 1, &mut keys.auth);
        prf(first_label + 2, &mut keys.salt);
        keys
    }

    /// AES-CM over `data` for packet `index` of `ssrc` (§4.1.1).
    fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        Aes128Ctr::new(&self.cipher.into(), &iv.into()).apply_keystream(data);
    }

    fn tag(&self, parts: &[&[u8]], len: usize) -> Vec<u8> {
        // HMAC takes keys of any length; 20 bytes cannot fail.
        let Ok(mut mac) = HmacSha1::new_from_slice(&self.auth) else {
            return vec![0; len];
        };
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes()[..len].to_vec()
    }
}

/// The state of one sender's stream (one SSRC is expected per direction of
/// a leg; a new SSRC restarts the counters, as a phone's restart would).
#[derive(Default)]
struct StreamState {
    ssrc: Option<u32>,
    /// Highest packet index seen (ROC << 16 | SEQ) and the replay bitmap below it.
    highest: Option<u64>,
    window: u64,
    rtcp_index: u32,
}

/// One direction of one leg: protects what we send, or checks and opens
/// what the phone sends.
pub struct Context {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    state: StreamState,
}

impl Context {
    pub fn new(suite: Suite, master: &MasterKey) -> Context {
        Context {
            suite,
            rtp: SessionKeys::derive(master, 0),
            rtcp: SessionKeys::derive(master, 3),
            state: StreamState::default(),
        }
    }

    /// RTP in `buf[..len]` encrypted and tagged in place; the new length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let header = rtp_header_len(&buf[..len])?;
        let tag_len = self.suite.rtp_tag();
        if buf.len() < len + tag_len {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let index = self.sender_index(ssrc, seq);
        self.rtp.crypt(ssrc, index, &mut buf[header..len]);
        let roc = ((index >> 16) as u32).to_be_bytes();
        let tag = self.rtp.tag(&[&buf[..len], &roc], tag_len);
        buf[len..len + tag_len].copy_from_slice(&tag);
        Ok(len + tag_len)
    }

    /// SRTP in `buf[..len]` checked and decrypted in place; the RTP length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag();
        if len < RTP_HEADER + tag_len {
            return Err(SrtpError::TooShort);
        }
        let body = len - tag_len;
        let header = rtp_header_len(&buf[..body])?;
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        if self.state.ssrc != Some(ssrc) {
            // Not adopted before the tag is checked below.
            let fresh = StreamState {
                ssrc: Some(ssrc),
                ..StreamState::default()
            };
            let index = u64::from(seq);
            let roc = 0u32.to_be_bytes();
            self.check_tag(&buf[..body], &roc, &buf[body..len])?;
            self.state = fresh;
            self.accept(index);
            self.rtp.crypt(ssrc, index, &mut buf[header..body]);
            return Ok(body);
        }
        let index = self.estimate_index(seq);
        self.check_replay(index)?;
        let roc = ((index >> 16) as u32).to_be_bytes();
        self.check_tag(&buf[..body], &roc, &buf[body..len])?;
        self.accept(index);
        self.rtp.crypt(ssrc, index, &mut buf[header..body]);
        Ok(body)
    }

    /// RTCP in `buf[..len]` encrypted, indexed and tagged in place.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < RTCP_HEADER {
            return Err(SrtpError::TooShort);
        }
        if buf.len() < len + SRTCP_INDEX_LEN + SRTCP_TAG {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let index = self.state.rtcp_index & 0x7FFF_FFFF;
        self.state.rtcp_index = self.state.rtcp_index.wrapping_add(1);
        self.rtcp
            .crypt(ssrc, u64::from(index), &mut buf[RTCP_HEADER..len]);
        // The E bit: the payload is encrypted.
        let e_index = (index | 0x8000_0000).to_be_bytes();
        buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&e_index);
        let signed = len + SRTCP_INDEX_LEN;
        let tag = self.rtcp.tag(&[&buf[..signed]], SRTCP_TAG);
        buf[signed..signed + SRTCP_TAG].copy_from_slice(&tag);
        Ok(signed + SRTCP_TAG)
    }

    /// SRTCP in `buf[..len]` checked and decrypted in place; the RTCP length.
    /// (Replay of RTCP is not tracked: reports are idempotent.)
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < RTCP_HEADER + SRTCP_INDEX_LEN + SRTCP_TAG {
            return Err(SrtpError::TooShort);
        }
        let signed = len - SRTCP_TAG;
        let expected = self.rtcp.tag(&[&buf[..signed]], SRTCP_TAG);
        if !constant_time_eq(&expected, &buf[signed..len]) {
            return Err(SrtpError::Authentication);
        }
        let body = signed - SRTCP_INDEX_LEN;
        let e_index = u32::from_be_bytes([buf[body], buf[body + 1], buf[body + 2], buf[body + 3]]);
        if e_index & 0x8000_0000 != 0 {
            let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            self.rtcp.crypt(
                ssrc,
                u64::from(e_index & 0x7FFF_FFFF),
                &mut buf[RTCP_HEADER..body],
            );
        }
        Ok(body)
    }

    /// Our own packet index for `seq`: the rollover counter moves on when
    /// the sequence number wraps.
    fn sender_index(&mut self, ssrc: u32, seq: u16) -> u64 {
        if self.state.ssrc != Some(ssrc) {
            self.state = StreamState {
                ssrc: Some(ssrc),
                ..StreamState::default()
            };
        }
        let index = match self.state.highest {
            None => u64::from(seq),
            Some(_) => self.estimate_index(seq),
        };
        if self.state.highest.is_none_or(|h| index > h) {
            self.state.highest = Some(index);
        }
        index
    }

    /// RFC 3711 Appendix A: the index whose SEQ is `seq` nearest the highest.
    fn estimate_index(&self, seq: u16) -> u64 {
        let Some(highest) = self.state.highest else {
            return u64::from(seq);
        };
        let roc = highest >> 16;
        let s_l = highest & 0xFFFF;
        let seq = u64::from(seq);
        let guess_roc = if s_l < 32768 {
            if seq > s_l + 32768 && roc > 0 {
                roc - 1
            } else {
                roc
            }
        } else if s_l - 32768 > seq {
            roc + 1
        } else {
            roc
        };
        guess_roc << 16 | seq
    }

    fn check_replay(&self, index: u64) -> Result<(), SrtpError> {
        let Some(highest) = self.state.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= REPLAY_WINDOW || self.state.window & (1 << behind) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        match self.state.highest {
            Some(h) if index <= h => self.state.window |= 1 << (h - index),
            Some(h) => {
                let shift = index - h;
                self.state.window = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    self.state.window << shift | 1
                };
                self.state.highest = Some(index);
            }
            None => {
                self.state.window = 1;
                self.state.highest = Some(index);
            }
        }
    }

    fn check_tag(&self, signed: &[u8], roc: &[u8], tag: &[u8]) -> Result<(), SrtpError> {
        let expected = self.rtp.tag(&[signed, roc], tag.len());
        if constant_time_eq(&expected, tag) {
            Ok(())
        } else {
            Err(SrtpError::Authentication)
        }
    }
}

/// Length of the RTP header (fixed part, CSRCs, extension) of `packet`.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < RTP_HEADER {
        return Err(SrtpError::TooShort);
    }
    let mut len = RTP_HEADER + 4 * usize::from(packet[0] & 0x0F);
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(len + 2..len + 4).ok_or(SrtpError::TooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(len)
}

/// Whether an RTP-port packet is RTCP (RFC 5761 §4: payload types 64–95 with
/// the marker bit are RTCP's 192–223).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && (192..=223).contains(&packet[1])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn rfc3711_master() -> MasterKey {
        MasterKey {
            key: hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap(),
            salt: hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap(),
        }
    }

    #[test]
    fn key_derivation_matches_rfc3711_b3() {
        let keys = SessionKeys::derive(&rfc3711_master(), 0);
        assert_eq!(
            keys.cipher.to_vec(),
            hex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(keys.salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(
            keys.auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    #[test]
    fn keystream_matches_rfc3711_b2() {
        let keys = SessionKeys {
            cipher: hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap(),
            salt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
            auth: [0; 20],
        };
        let mut stream = vec![0u8; 48];
        keys.crypt(0, 0, &mut stream);
        assert_eq!(
            stream,
            hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0")
        );
    }

    #[test]
    fn libsrtp_reference_packet() {
        // libsrtp's srtp_driver reference: AES_CM_128_HMAC_SHA1_80, the
        // RFC 3711 master key and salt, SSRC cafebabe, SEQ 0x1234.
        let mut buf = [0u8; 64];
        let plain = hex("800f1234decafbadcafebabeabababababababababababababababab");
        buf[..plain.len()].copy_from_slice(&plain);
        let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &rfc3711_master());
        let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        assert_eq!(
            buf[..n].to_vec(),
            hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        );
        let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &rfc3711_master());
        assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(plain.len()));
        assert_eq!(buf[..plain.len()].to_vec(), plain);
    }

    fn rtp(seq: u16, payload: u8) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0x11, 0x22, 0x33, 0x44]);
        p.extend(std::iter::repeat_n(payload, 160));
        p
    }

    #[test]
    fn round_trip_across_the_sequence_wrap_and_replays_refused() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let master = MasterKey::random();
            let (mut tx, mut rx) = (Context::new(suite, &master), Context::new(suite, &master));
            let mut sent = Vec::new();
            for i in 0..200u16 {
                let seq = 65500u16.wrapping_add(i);
                let plain = rtp(seq, i as u8);
                let mut buf = [0u8; 256];
                buf[..plain.len()].copy_from_slice(&plain);
                let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
                assert_eq!(n, plain.len() + suite.rtp_tag());
                assert_ne!(buf[12..plain.len()], plain[12..], "payload encrypted");
                sent.push(buf[..n].to_vec());
                let mut copy = buf;
                assert_eq!(
                    rx.unprotect_rtp(&mut copy, n),
                    Ok(plain.len()),
                    "{suite:?} seq {seq}"
                );
                assert_eq!(copy[..plain.len()], plain[..]);
            }
            // Replays, a flipped bit, a truncated packet: refused.
            let mut again = [0u8; 256];
            let last = sent.last().unwrap();
            again[..last.len()].copy_from_slice(last);
            assert_eq!(
                rx.unprotect_rtp(&mut again, last.len()),
                Err(SrtpError::Replay)
            );
            let mut forged = [0u8; 256];
            let mut next = rtp(65500u16.wrapping_add(200), 7);
            let len = next.len();
            next.resize(256, 0);
            forged.copy_from_slice(&next);
            let n = tx.protect_rtp(&mut forged, len).unwrap();
            forged[20] ^= 1;
            assert_eq!(
                rx.unprotect_rtp(&mut forged, n),
                Err(SrtpError::Authentication)
            );
            assert_eq!(rx.unprotect_rtp(&mut forged, 11), Err(SrtpError::TooShort));
            // Another key: nothing opens.
            let mut other = Context::new(suite, &MasterKey::random());
            let mut p = [0u8; 256];
            p[..sent[0].len()].copy_from_slice(&sent[0]);
            assert_eq!(
                other.unprotect_rtp(&mut p, sent[0].len()),
                Err(SrtpError::Authentication)
            );
        }
    }

    #[test]
    fn srtcp_round_trip() {
        let master = MasterKey::random();
        let (mut tx, mut rx) = (
            Context::new(Suite::AesCm128HmacSha1_80, &master),
            Context::new(Suite::AesCm128HmacSha1_80, &master),
        );
        // A receiver report with one block.
        let mut plain = vec![0x81, 201, 0, 7, 0x11, 0x22, 0x33, 0x44];
        plain.extend_from_slice(&[9u8; 24]);
        let mut buf = [0u8; 128];
        buf[..plain.len()].copy_from_slice(&plain);
        assert!(is_rtcp(&buf));
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_eq!(n, plain.len() + 14);
        assert_ne!(buf[8..plain.len()], plain[8..]);
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(plain.len()));
        assert_eq!(buf[..plain.len()], plain[..]);
        assert!(!is_rtcp(&rtp(1, 0)));
    }
}
