//! G.711 µ-law (PCMU, payload type 0) and A-law (PCMA, 8): the segment
//! arithmetic of ITU-T G.711, one byte per 16-bit sample.

/// The two laws of G.711.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Mu,
    A,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => mu_encode(sample),
            Law::A => a_encode(sample),
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => mu_decode(byte),
            Law::A => a_decode(byte),
        }
    }

    /// Encodes `samples` into `out` (cleared first).
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        out.clear();
        out.extend(samples.iter().map(|&s| self.encode(s)));
    }

    /// Decodes `bytes` into `out` (cleared first).
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.clear();
        out.extend(bytes.iter().map(|&b| self.decode(b)));
    }
}

const MU_BIAS: i32 = 0x84;
const MU_CLIP: i32 = 32635;

pub fn mu_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(MU_CLIP) + MU_BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while pcm & mask == 0 && exponent > 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

pub fn mu_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + MU_BIAS) << exponent) - MU_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Upper ends of the A-law segments, on the 13-bit magnitude.
const A_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

pub fn a_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let Some(segment) = A_SEGMENT_END.iter().position(|&end| pcm <= end) else {
        return (0x7F ^ mask) as u8;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let value = ((segment as i32) << 4) | ((pcm >> shift) & 0x0F);
    (value ^ mask) as u8
}

pub fn a_decode(byte: u8) -> i16 {
    let a = i32::from(byte ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let segment = (a & 0x70) >> 4;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        s => {
            t += 0x108;
            t <<= s - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        assert_eq!(mu_encode(0), 0xFF);
        assert_eq!(mu_decode(0xFF), 0);
        assert_eq!(mu_decode(0x00), -32124);
        assert_eq!(mu_decode(0x80), 32124);
        assert_eq!(a_encode(0), 0xD5);
        assert_eq!(a_decode(0xD5), 8);
        assert_eq!(a_decode(0x2A), -32256);
        assert_eq!(a_decode(0xAA), 32256);
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for b in 0..=255u8 {
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0.
            if b != 0x7F {
                assert_eq!(mu_encode(mu_decode(b)), b, "µ-law {b:#x}");
            }
            assert_eq!(a_encode(a_decode(b)), b, "A-law {b:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_the_segment_step() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            for law in [Law::Mu, Law::A] {
                let back = i32::from(law.decode(law.encode(s)));
                let err = (back - i32::from(s)).abs();
                // The largest step of either law is 1024 (µ) / 1024 (A) at
                // the top segment; half of it is the worst rounding, plus
                // the clip above 32635.
                assert!(err <= 1024, "{law:?} {s} -> {back}");
                assert_eq!(back.signum() * i32::from(s).signum() >= 0, true);
            }
        }
    }
}
