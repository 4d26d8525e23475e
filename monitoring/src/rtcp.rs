//! RTCP compound packets: sender/receiver reports and RTCP-XR VoIP metrics.

/// What one RTCP packet of a compound says.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcpItem {
    /// Sender report: the middle 32 bits of its NTP timestamp (later echoed as LSR).
    SenderReport { ssrc: u32, ntp_middle: u32 },
    /// A report block about `source` from `reporter`.
    ReportBlock {
        reporter: u32,
        source: u32,
        fraction_lost: u8,
        lsr: u32,
        dlsr: u32,
    },
    /// RTCP-XR VoIP metrics (RFC 3611 §4.7) about `source`.
    VoipMetrics {
        source: u32,
        loss_rate: u8,
        round_trip_ms: u16,
        end_system_ms: u16,
        r_factor: u8,
        mos_lq: u8,
        mos_cq: u8,
    },
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// True when the payload starts like RTCP (version 2, packet type 200..=207).
pub fn looks_like_rtcp(p: &[u8]) -> bool {
    p.len() >= 8 && p[0] >> 6 == 2 && (200..=207).contains(&p[1])
}

/// Parses a compound packet; stops quietly at the first inconsistent length.
pub fn parse(mut p: &[u8]) -> Vec<RtcpItem> {
    let mut out = Vec::new();
    while p.len() >= 4 && p[0] >> 6 == 2 {
        let count = usize::from(p[0] & 0x1f);
        let pt = p[1];
        let len = (usize::from(u16::from_be_bytes([p[2], p[3]])) + 1) * 4;
        let Some(pkt) = p.get(..len) else { break };
        match pt {
            200 | 201 => {
                let Some(reporter) = be32(pkt, 4) else { break };
                let mut at = 8;
                if pt == 200 {
                    let (Some(msw), Some(lsw)) = (be32(pkt, 8), be32(pkt, 12)) else {
                        break;
                    };
                    out.push(RtcpItem::SenderReport {
                        ssrc: reporter,
                        ntp_middle: (msw << 16) | (lsw >> 16),
                    });
                    at = 28;
                }
                for i in 0..count {
                    let b = at + i * 24;
                    let (Some(source), Some(lost), Some(lsr), Some(dlsr)) = (
                        be32(pkt, b),
                        be32(pkt, b + 4),
                        be32(pkt, b + 16),
                        be32(pkt, b + 20),
                    ) else {
                        break;
                    };
                    out.push(RtcpItem::ReportBlock {
                        reporter,
                        source,
                        fraction_lost: (lost >> 24) as u8,
                        lsr,
                        dlsr,
                    });
                }
            }
            207 => {
                let mut at = 8;
                while at + 4 <= pkt.len() {
                    let bt = pkt[at];
                    let Some(words) = be16(pkt, at + 2) else {
                        break;
                    };
                    let blen = (usize::from(words) + 1) * 4;
                    if bt == 7 && blen >= 36 && at + 36 <= pkt.len() {
                        let b = &pkt[at..at + 36];
                        if let (Some(source), Some(rtt), Some(esd)) =
                            (be32(b, 4), be16(b, 16), be16(b, 18))
                        {
                            out.push(RtcpItem::VoipMetrics {
                                source,
                                loss_rate: b[8],
                                round_trip_ms: rtt,
                                end_system_ms: esd,
                                r_factor: b[24],
                                mos_lq: b[26],
                                mos_cq: b[27],
                            });
                        }
                    }
                    at += blen;
                }
            }
            _ => {}
        }
        p = &p[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr_with_block_and_truncation() {
        let mut sr = vec![0x81, 200, 0, 12];
        sr.extend_from_slice(&1u32.to_be_bytes());
        sr.extend_from_slice(&0x0001_0002u32.to_be_bytes());
        sr.extend_from_slice(&0x0003_0004u32.to_be_bytes());
        sr.extend_from_slice(&[0; 12]);
        sr.extend_from_slice(&2u32.to_be_bytes());
        sr.extend_from_slice(&[5, 0, 0, 0]);
        sr.extend_from_slice(&[0; 8]);
        sr.extend_from_slice(&0xabcdu32.to_be_bytes());
        sr.extend_from_slice(&0x8000u32.to_be_bytes());
        let items = parse(&sr);
        assert_eq!(
            items[0],
            RtcpItem::SenderReport {
                ssrc: 1,
                ntp_middle: 0x0002_0003
            }
        );
        assert_eq!(
            items[1],
            RtcpItem::ReportBlock {
                reporter: 1,
                source: 2,
                fraction_lost: 5,
                lsr: 0xabcd,
                dlsr: 0x8000
            }
        );
        for cut in 0..sr.len() {
            let _ = parse(&sr[..cut]);
        }
    }

    #[test]
    fn xr_voip_metrics_block() {
        let mut xr = vec![0x80, 207, 0, 10];
        xr.extend_from_slice(&9u32.to_be_bytes());
        xr.extend_from_slice(&[7, 0, 0, 8]);
        xr.extend_from_slice(&2u32.to_be_bytes()); // source
        xr.extend_from_slice(&[12, 0, 0, 0, 0, 0, 0, 0]); // loss, discard, densities, durations
        xr.extend_from_slice(&180u16.to_be_bytes()); // round trip
        xr.extend_from_slice(&40u16.to_be_bytes()); // end system delay
        xr.extend_from_slice(&[0, 0, 0, 16, 85, 127, 41, 39, 0, 0]); // levels, Gmin, R, ext R, MOS-LQ, MOS-CQ, config, reserved
        xr.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(&xr),
            vec![RtcpItem::VoipMetrics {
                source: 2,
                loss_rate: 12,
                round_trip_ms: 180,
                end_system_ms: 40,
                r_factor: 85,
                mos_lq: 41,
                mos_cq: 39
            }]
        );
    }
}
