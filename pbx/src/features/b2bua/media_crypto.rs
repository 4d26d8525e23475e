//! SRTP at the B2BUA's edge: when one leg speaks SRTP (SDES keys in its
//! SDP) and the other plain RTP — a TLS phone calling an RTP-only trunk, or
//! a plain phone calling a trunk set to `media-encryption sdes` — the call
//! is anchored on the relay, which opens each SRTP side's packets with the
//! key that side announced and seals what goes to it with a key of ours.
//! When both legs agree (both SRTP or both plain) nothing here is used and
//! crypto lines pass unchanged (pass-through). Keys are never logged.

use crate::config::Config;
use crate::features::rtp_relay::Relay;
use crate::features::sdes::{self, Crypto};
use crate::sip::Message;
use crate::transport::srtp::{MasterKey, Suite};

/// Which legs of a call speak SRTP, and our key towards each that does.
pub struct MediaCrypto {
    /// Leg A (the caller's side), leg B.
    secure: [bool; 2],
    /// What we send to each secure leg with (tag and suite follow that
    /// leg's choice once its SDP names them).
    ours: [Crypto; 2],
}

impl MediaCrypto {
    /// The plan for a new call whose offer from A is `offer`, routed to
    /// `trunk` (its media-encryption decides) or else to a phone or a
    /// destination reached over TLS on every branch (`b_over_tls`: it gets
    /// what A offered) or not (plain RTP: an SDES key never goes out over
    /// signaling in the clear, RFC 4568 §8.3): None when both legs speak
    /// the same.
    pub fn plan(
        cfg: &Config,
        offer: &[u8],
        trunk: Option<&str>,
        b_over_tls: bool,
    ) -> Option<MediaCrypto> {
        let offer = std::str::from_utf8(offer).ok()?;
        let a_offers = sdes::offered(offer);
        let a_secure = !a_offers.is_empty();
        let b_secure = trunk
            .and_then(|t| cfg.trunks.get(t))
            .map_or(a_secure && b_over_tls, |t| t.srtp);
        if a_secure == b_secure {
            return None;
        }
        let first = a_offers.first();
        let ours = |tag: u32, suite: Suite| Crypto {
            tag,
            suite,
            key: MasterKey::random(),
        };
        Some(MediaCrypto {
            secure: [a_secure, b_secure],
            ours: [
                ours(
                    first.map_or(1, |c| c.tag),
                    first.map_or(Suite::AesCm128HmacSha1_80, |c| c.suite),
                ),
                ours(1, Suite::AesCm128HmacSha1_80),
            ],
        })
    }

    /// SDP in `msg` comes from leg A (`from_a`) or B and goes to the other:
    /// the sender's key (if its leg is secure) goes to the relay, and the
    /// body is given the receiver's form (our crypto line, or none).
    pub fn apply(&mut self, relay: &Relay, from_a: bool, msg: &mut Message) {
        let Ok(sdp) = std::str::from_utf8(&msg.body) else {
            return;
        };
        if sdp.is_empty() {
            return;
        }
        let (sender, receiver) = if from_a { (0, 1) } else { (1, 0) };
        if self.secure[sender] {
            let theirs = sdes::offered(sdp).into_iter().next();
            if theirs.is_none() {
                // It speaks plain RTP after all (an answer without crypto):
                // so be it, both ways.
                self.secure[sender] = false;
                relay.srtp_from(from_a, None);
                relay.srtp_to(from_a, None);
            }
            if let Some(c) = &theirs {
                // Answer with the tag and suite the sender chose.
                self.ours[sender].tag = c.tag;
                self.ours[sender].suite = c.suite;
            }
            if let Some(c) = &theirs {
                let ours = &self.ours[sender];
                relay.srtp_from(from_a, Some((c.suite, &c.key)));
                relay.srtp_to(from_a, Some((ours.suite, &ours.key)));
            }
        }
        let body = if self.secure[receiver] {
            let ours = &self.ours[receiver];
            // Media may flow (early) as soon as the receiver has our key.
            relay.srtp_to(!from_a, Some((ours.suite, &ours.key)));
            sdes::set(sdp, ours)
        } else {
            sdes::strip(sdp)
        };
        msg.body = body.into_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::uci::Package;

    const SRTP_OFFER: &str = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    const RTP_OFFER: &str = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn cfg() -> Config {
        let text = "config trunk 'p'\n\toption name 'plain'\n\toption host '192.0.2.9'\n\nconfig trunk 's'\n\toption name 'sdes'\n\toption host '192.0.2.10'\n\toption media_encryption 'sdes'\n";
        let pkg = Package::parse("besip_pbx", text).expect("uci");
        Config::from_package(&pkg, "besip_pbx").expect("config")
    }

    #[test]
    fn keys_go_only_over_tls_or_to_an_sdes_trunk() {
        let c = cfg();
        let ends = |offer: &str, trunk: Option<&str>, tls: bool| {
            MediaCrypto::plan(&c, offer.as_bytes(), trunk, tls).map(|m| m.secure)
        };
        // A phone over TLS gets what the caller offered.
        assert_eq!(ends(SRTP_OFFER, None, true), None);
        assert_eq!(ends(RTP_OFFER, None, true), None);
        // Over UDP/TCP no key is sent: SRTP ends at the relay.
        assert_eq!(ends(SRTP_OFFER, None, false), Some([true, false]));
        assert_eq!(ends(RTP_OFFER, None, false), None);
        // A trunk's media-encryption decides, whatever the transport.
        assert_eq!(ends(SRTP_OFFER, Some("plain"), true), Some([true, false]));
        assert_eq!(ends(RTP_OFFER, Some("sdes"), false), Some([false, true]));
        assert_eq!(ends(SRTP_OFFER, Some("sdes"), false), None);
    }
}
