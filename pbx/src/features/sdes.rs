//! SDES (RFC 4568) in SDP: the `a=crypto` lines and RTP/SAVP profile of the
//! first audio stream, read from an offer or answer, removed for a leg that
//! speaks plain RTP, or added with our own key for a leg that speaks SRTP.
//! Keys appear only in SDP bodies, never in logs.

use base64::Engine as _;

use crate::transport::srtp::{MasterKey, Suite, MASTER_KEY_LEN, MASTER_SALT_LEN};

/// One usable `a=crypto` line of the first audio stream.
#[derive(Clone)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

/// The crypto lines of the first audio stream we can use (known suite, one
/// inline key without MKI), in the order given (the offerer's preference),
/// when its profile is RTP/SAVP or RTP/SAVPF.
pub fn offered(sdp: &str) -> Vec<Crypto> {
    let mut in_audio = false;
    let mut secure = false;
    let mut out = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                break; // only the first audio stream
            }
            in_audio = m.starts_with("audio ");
            secure = in_audio
                && m.split_whitespace()
                    .nth(2)
                    .is_some_and(|p| p.starts_with("RTP/SAVP"));
        } else if in_audio && secure {
            if let Some(c) = line.strip_prefix("a=crypto:").and_then(parse_crypto) {
                out.push(c);
            }
        }
    }
    out
}

/// `1 AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime]`
fn parse_crypto(value: &str) -> Option<Crypto> {
    let mut fields = value.split_whitespace();
    let tag: u32 = fields.next()?.parse().ok()?;
    let suite = Suite::from_name(fields.next()?)?;
    let params = fields.next()?;
    if params.contains(';') {
        return None; // several keys: not offered by phones, not taken
    }
    let inline = params.strip_prefix("inline:")?;
    let mut parts = inline.split('|');
    let encoded = parts.next()?;
    for extra in parts {
        // A lifetime is fine; an MKI would need per-packet key indexes.
        if extra.contains(':') {
            return None;
        }
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    if raw.len() != MASTER_KEY_LEN + MASTER_SALT_LEN {
        return None;
    }
    let key = MasterKey {
        key: raw[..MASTER_KEY_LEN].try_into().ok()?,
        salt: raw[MASTER_KEY_LEN..].try_into().ok()?,
    };
    Some(Crypto { tag, suite, key })
}

/// The SDP with the first audio stream in plain RTP/AVP and its crypto
/// lines removed.
pub fn strip(sdp: &str) -> String {
    rewrite(sdp, None)
}

/// The SDP with the first audio stream in RTP/SAVP carrying `crypto` as
/// its only crypto line.
pub fn set(sdp: &str, crypto: &Crypto) -> String {
    rewrite(sdp, Some(crypto))
}

fn rewrite(sdp: &str, crypto: Option<&Crypto>) -> String {
    let mut out = String::with_capacity(sdp.len() + 80);
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        let eol = &line[text.len()..];
        let eol = if eol.is_empty() { "\r\n" } else { eol };
        if let Some(m) = text.strip_prefix("m=") {
            in_audio = !seen_audio && m.starts_with("audio ");
            seen_audio |= in_audio;
            if in_audio {
                let mut f: Vec<&str> = m.split(' ').collect();
                if f.len() > 2 {
                    let profile = if crypto.is_some() {
                        "RTP/SAVP"
                    } else {
                        "RTP/AVP"
                    };
                    f[2] = if f[2].ends_with('F') && crypto.is_some() {
                        "RTP/SAVPF"
                    } else {
                        profile
                    };
                }
                out.push_str("m=");
                out.push_str(&f.join(" "));
                out.push_str(eol);
                if let Some(c) = crypto {
                    out.push_str(&line_of(c));
                    out.push_str(eol);
                }
                continue;
            }
        }
        if in_audio && text.starts_with("a=crypto:") {
            continue;
        }
        out.push_str(line);
    }
    out
}

fn line_of(c: &Crypto) -> String {
    let mut raw = Vec::with_capacity(MASTER_KEY_LEN + MASTER_SALT_LEN);
    raw.extend_from_slice(&c.key.key);
    raw.extend_from_slice(&c.key.salt);
    format!(
        "a=crypto:{} {} inline:{}",
        c.tag,
        c.suite.name(),
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\na=crypto:3 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm\r\na=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\na=rtpmap:0 PCMU/8000\r\nm=video 5000 RTP/SAVP 96\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

    #[test]
    fn usable_crypto_lines_are_read_in_order() {
        let c = offered(OFFER);
        let tags: Vec<u32> = c.iter().map(|c| c.tag).collect();
        // F8 is unknown, tag 4 has an MKI, the video stream is not ours.
        assert_eq!(tags, vec![1, 2]);
        assert_eq!(c[0].suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(c[1].suite, Suite::AesCm128HmacSha1_32);
        assert_eq!(&c[0].key.key[..4], b"YS__");
        // Plain RTP/AVP: crypto lines there mean nothing.
        assert!(offered(&OFFER.replace("RTP/SAVP 0 8", "RTP/AVP 0 8")).is_empty());
        assert!(offered("v=0\r\n").is_empty());
        assert!(offered(&OFFER.replace("inline:WVNf", "inline:!!!"))
            .iter()
            .all(|c| c.tag != 1));
    }

    #[test]
    fn strip_and_set_rewrite_only_the_first_audio_stream() {
        let plain = strip(OFFER);
        assert!(plain.contains("m=audio 4000 RTP/AVP 0 8\r\n"), "{plain}");
        let audio = plain.split("m=video").next().unwrap();
        assert!(!audio.contains("a=crypto"), "{plain}");
        assert!(
            plain.contains("m=video 5000 RTP/SAVP 96\r\na=crypto:1"),
            "{plain}"
        );
        assert!(plain.contains("a=rtpmap:0 PCMU/8000\r\n"));

        let ours = Crypto {
            tag: 2,
            suite: Suite::AesCm128HmacSha1_32,
            key: MasterKey::random(),
        };
        let secured = set(&plain, &ours);
        assert!(
            secured.contains(
                "m=audio 4000 RTP/SAVP 0 8\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"
            ),
            "{secured}"
        );
        let back = offered(&secured);
        assert_eq!(back.len(), 1);
        assert!(back[0].key == ours.key);
    }
}
