//! The codecs a call answered by the box may use, each seen through the
//! same narrowband door: 20 ms frames of 8 kHz linear audio in and out.
//! G.711 is ours (g711.rs); G.722 comes from the pure-Rust `audio-codec`
//! crate: what a phone sends is decoded to its lower sub-band (0-4 kHz at
//! 8 kHz, no resampling), what we send is interpolated to 16 kHz and
//! encoded whole (the crate's 8 kHz encoder mode emits a constant), so
//! mixing, recording and key detection stay at one rate whatever the
//! phone speaks.
//!
//! No Opus: the pure-Rust decoder of that crate (opus-rs) panics on
//! crafted packets, which with the router builds' `panic = "abort"` would
//! let any caller's RTP kill the PBX; libopus (C) does not fit the static
//! musl router build. Phones offering Opus also offer G.711 or G.722.

use audio_codec::g722::{Bitrate, G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};

use crate::g711::Law;
use crate::{Frame, FRAME};

/// A codec the box speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
}

/// Most samples one received payload may decode to (120 ms at 8 kHz);
/// longer payloads are cut here.
const MAX_DECODED: usize = 960;

impl Codec {
    /// All of them, in the box's default preference.
    pub const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::G722];

    /// The static RTP payload type (RFC 3551).
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
        }
    }

    /// The codec of an `a=rtpmap` encoding (`PCMU/8000`, `G722/8000`).
    pub fn from_rtpmap(encoding: &str) -> Option<Codec> {
        let mut parts = encoding.split('/');
        let name = parts.next()?.to_ascii_lowercase();
        let rate = parts.next().unwrap_or("");
        match (name.as_str(), rate) {
            ("pcmu", "8000") => Some(Codec::Pcmu),
            ("pcma", "8000") => Some(Codec::Pcma),
            // RFC 3551: G.722's RTP clock is 8000 though it samples at 16 kHz.
            ("g722", "8000") => Some(Codec::G722),
            _ => None,
        }
    }

    /// The codec a static payload type means without an rtpmap.
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.static_payload_type() == pt)
    }

    /// The `a=rtpmap` encoding.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000",
            Codec::Pcma => "PCMA/8000",
            Codec::G722 => "G722/8000",
        }
    }

    /// The name configuration and state use.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
        }
    }

    pub fn encoder(self) -> Encoder {
        Encoder(match self {
            Codec::Pcmu => EncoderKind::G711(Law::Mu),
            Codec::Pcma => EncoderKind::G711(Law::A),
            Codec::G722 => EncoderKind::G722(Box::new(G722 {
                encoder: G722Encoder::with_options(Bitrate::Mode1_64000, false, false),
                upsampler: Upsampler::default(),
                wide: [0; 2 * FRAME],
            })),
        })
    }

    pub fn decoder(self) -> Decoder {
        Decoder(match self {
            Codec::Pcmu => DecoderKind::G711(Law::Mu),
            Codec::Pcma => DecoderKind::G711(Law::A),
            Codec::G722 => DecoderKind::G722(Box::new(G722Decoder::with_options(
                Bitrate::Mode1_64000,
                false,
                true,
            ))),
        })
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One stream's encoder (G.722 keeps state between frames).
pub struct Encoder(EncoderKind);

enum EncoderKind {
    G711(Law),
    G722(Box<G722>),
}

struct G722 {
    encoder: G722Encoder,
    upsampler: Upsampler,
    wide: [i16; 2 * FRAME],
}

/// Taps of a half-band interpolator (windowed sinc at ±0.5, ±1.5, ±2.5,
/// ±3.5 samples; they sum to 1 on both sides): the 16 kHz samples between
/// two of ours, without the images plain repetition leaves at 4-8 kHz.
const HALF_BAND: [f32; 4] = [0.6013, -0.1295, 0.0345, -0.0063];

/// 8 kHz to 16 kHz, streaming (3.5 samples of delay).
#[derive(Default)]
struct Upsampler {
    history: [i16; 7],
}

impl Upsampler {
    fn run(&mut self, frame: &Frame, out: &mut [i16; 2 * FRAME]) {
        let mut buf = [0i16; FRAME + 7];
        buf[..7].copy_from_slice(&self.history);
        buf[7..].copy_from_slice(frame);
        for n in 0..FRAME {
            let mid: f32 = HALF_BAND
                .iter()
                .enumerate()
                .map(|(k, a)| a * (f32::from(buf[n + 3 - k]) + f32::from(buf[n + 4 + k])))
                .sum();
            out[2 * n] = buf[n + 3];
            out[2 * n + 1] = mid.clamp(-32768.0, 32767.0) as i16;
        }
        self.history.copy_from_slice(&buf[FRAME..]);
    }
}

impl Encoder {
    /// Encodes one frame into `out` (cleared first); empty when the codec
    /// refused it (the frame is then not sent).
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        out.clear();
        let written = match &mut self.0 {
            EncoderKind::G711(law) => {
                law.encode_into(frame, out);
                return;
            }
            EncoderKind::G722(g) => {
                let g = &mut **g;
                g.upsampler.run(frame, &mut g.wide);
                out.resize(FRAME + 1, 0);
                g.encoder.encode_into(&g.wide, out).unwrap_or(0)
            }
        };
        out.truncate(written);
    }
}

/// One stream's decoder.
pub struct Decoder(DecoderKind);

enum DecoderKind {
    G711(Law),
    G722(Box<G722Decoder>),
}

impl Decoder {
    /// Decodes one RTP payload into `out` (cleared first): 8 kHz samples,
    /// none when the payload is not valid for the codec.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        // One sample per byte for both (G.722 in its 8 kHz mode).
        let n = payload.len().min(MAX_DECODED);
        out.clear();
        match &mut self.0 {
            DecoderKind::G711(law) => out.extend(payload[..n].iter().map(|&b| law.decode(b))),
            DecoderKind::G722(d) => {
                out.resize(n, 0);
                let written = d.decode_into(&payload[..n], out).unwrap_or(0);
                out.truncate(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;

    /// Each codec carries a 1 kHz tone through encode and decode.
    #[test]
    fn every_codec_carries_a_tone() {
        let signal = tone::sine(1000.0, 8000.0, 1000);
        for codec in Codec::ALL {
            let mut enc = codec.encoder();
            let mut dec = codec.decoder();
            let mut heard = Vec::new();
            let (mut bytes, mut pcm) = (Vec::new(), Vec::new());
            for chunk in signal.chunks_exact(FRAME) {
                let mut frame = [0i16; FRAME];
                frame.copy_from_slice(chunk);
                enc.encode(&frame, &mut bytes);
                assert!(!bytes.is_empty(), "{codec} encoded nothing");
                dec.decode(&bytes, &mut pcm);
                assert_eq!(pcm.len(), FRAME, "{codec}: one frame back");
                heard.extend_from_slice(&pcm);
            }
            // Past the codecs' start-up.
            let tail = &heard[heard.len() / 2..];
            assert!(tone::holds(tail, 1000.0, 0.8), "{codec}: the tone is lost");
            assert!(!tone::holds(tail, 1700.0, 0.2), "{codec}: a tone appeared");
        }
    }

    #[test]
    fn rtpmap_names_are_understood_both_ways() {
        for codec in Codec::ALL {
            assert_eq!(Codec::from_rtpmap(codec.rtpmap()), Some(codec));
        }
        assert_eq!(Codec::from_rtpmap("G722/16000"), None);
        assert_eq!(Codec::from_rtpmap("g722/8000"), Some(Codec::G722));
        assert_eq!(Codec::from_rtpmap("opus/48000/2"), None);
        assert_eq!(Codec::from_static_payload_type(9), Some(Codec::G722));
    }

    /// Garbage from the network decodes to something or nothing, never a
    /// panic, for every codec.
    #[test]
    fn garbage_payloads_do_not_panic() {
        let mut seed = 0x1234_5678u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut pcm = Vec::new();
        for codec in Codec::ALL {
            let mut dec = codec.decoder();
            for len in [0usize, 1, 2, 3, 7, 60, 160, 500, 1500, 4000] {
                for _ in 0..50 {
                    let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    dec.decode(&payload, &mut pcm);
                    assert!(pcm.len() <= MAX_DECODED);
                }
            }
        }
    }
}
