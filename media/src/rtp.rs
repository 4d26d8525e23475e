//! RTP packets (RFC 3550 §5.1): the fixed header, CSRCs, the header
//! extension and padding skipped to find the payload.

/// An RTP packet's header fields and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// `packet[payload.0..payload.1]` is the payload.
    pub payload: (usize, usize),
}

/// Parses `packet`; None for anything that is not RTP version 2 or whose
/// lengths do not add up (RTCP on a muxed port included: types 72–76).
pub fn parse(packet: &[u8]) -> Option<Header> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let payload_type = packet[1] & 0x7F;
    if (72..=76).contains(&payload_type) {
        return None;
    }
    let csrcs = usize::from(packet[0] & 0x0F);
    let mut start = 12 + 4 * csrcs;
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    if start > end {
        return None;
    }
    Some(Header {
        marker: packet[1] & 0x80 != 0,
        payload_type,
        sequence: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload: (start, end),
    })
}

/// Writes a packet with no CSRC, extension or padding into `out`.
pub fn write(
    out: &mut Vec<u8>,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.push(0x80);
    out.push(payload_type & 0x7F | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A sending stream's counters: sequence, timestamp and what RTCP reports.
#[derive(Debug, Clone)]
pub struct Sender {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

impl Sender {
    pub fn new(ssrc: u32, first_sequence: u16, first_timestamp: u32) -> Sender {
        Sender {
            ssrc,
            sequence: first_sequence,
            timestamp: first_timestamp,
            packets: 0,
            octets: 0,
        }
    }

    /// Writes the next packet of `samples` samples' worth of `payload`.
    pub fn next(
        &mut self,
        out: &mut Vec<u8>,
        marker: bool,
        payload_type: u8,
        payload: &[u8],
        samples: u32,
    ) {
        write(
            out,
            marker,
            payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            payload,
        );
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_packets_parse_back() {
        let mut out = Vec::new();
        write(&mut out, true, 8, 65535, 0xDEAD_BEEF, 42, &[1, 2, 3]);
        let h = parse(&out).unwrap();
        assert!(h.marker);
        assert_eq!(
            (h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (8, 65535, 0xDEAD_BEEF, 42)
        );
        assert_eq!(&out[h.payload.0..h.payload.1], &[1, 2, 3]);
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        let mut p = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&[0, 0, 0, 7]); // one CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one extension word
        p.extend_from_slice(&[5, 6]);
        p.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let h = parse(&p).unwrap();
        assert_eq!(&p[h.payload.0..h.payload.1], &[5, 6]);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x80; 11]).is_none());
        assert!(parse(&[0x40; 12]).is_none(), "version 1");
        // RTCP sender report on a muxed port.
        assert!(parse(&[0x80, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        // 15 CSRCs announced, none there.
        assert!(parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        // Padding longer than the packet.
        let mut p = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200];
        assert!(parse(&p).is_none());
        p[0] = 0x90; // extension header cut short
        assert!(parse(&p).is_none());
        for len in 0..40 {
            for b in [0x80u8, 0x9F, 0xBF, 0xFF] {
                let _ = parse(&vec![b; len]);
            }
        }
    }
}
