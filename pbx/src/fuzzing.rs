//! One entry point that runs every parser path on untrusted bytes; used by the
//! cargo-fuzz target (`pbx/fuzz`) and by a randomized unit test on stable.

use crate::sip::message::frame_length;
use crate::sip::{addr_uri, param, split_list, stamp_via, Message, Uri, Via};

/// Parses `data` as a datagram and as a stream, and reads every header the
/// daemon reads. Must never panic.
pub fn exercise(data: &[u8]) {
    let _ = frame_length(data);
    let _ = crate::call::error_reply(data, 400, "fuzz");
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let _ = Uri::parse(msg.uri());
    let _ = msg.cseq();
    for v in msg.header_values("Via") {
        if let Some(via) = Via::parse(v) {
            let _ = via.response_target();
        }
        let _ = stamp_via(v, std::net::SocketAddr::from(([127, 0, 0, 1], 5060)));
    }
    for name in ["From", "To", "Contact", "Route", "Record-Route", "Path"] {
        for value in msg.header_values(name) {
            let _ = Uri::parse(addr_uri(value));
            let _ = param(value, "tag");
            let _ = param(value, "expires");
        }
    }
    for h in &msg.headers {
        let _ = split_list(&h.value);
    }
    let bytes = msg.to_bytes();
    // What we write must parse again to the same message.
    // (Content-Length is rewritten from the body and moved last.)
    let mut msg = msg;
    msg.remove_headers("Content-Length");
    match Message::parse(&bytes) {
        Ok(mut again) => {
            again.remove_headers("Content-Length");
            assert_eq!(again, msg, "serialised message parses differently");
        }
        Err(e) => panic!("serialised message does not parse: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::exercise;
    use rand::{Rng, SeedableRng};

    /// Random mutations of the corpus (bit flips, cuts, splices, CR/LF/colon
    /// insertions) through every parser path; deterministic seed.
    #[test]
    fn mutated_corpus_never_panics() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .expect("corpus dir")
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect();
        assert!(seeds.len() >= 5);
        let mut rng = rand::rngs::StdRng::seed_from_u64(4475);
        for i in 0..30_000 {
            let mut m = seeds[i % seeds.len()].clone();
            for _ in 0..rng.gen_range(1..6) {
                if m.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..m.len());
                match rng.gen_range(0..6) {
                    0 => m[at] ^= 1 << rng.gen_range(0..8),
                    1 => m.truncate(at),
                    2 => m.insert(
                        at,
                        *b"\r\n:;<>\"@[], \t="
                            .get(rng.gen_range(0..15))
                            .unwrap_or(&b':'),
                    ),
                    3 => {
                        m.remove(at);
                    }
                    4 => {
                        let other = &seeds[rng.gen_range(0..seeds.len())];
                        let from = rng.gen_range(0..other.len());
                        let len = rng.gen_range(0..(other.len() - from).min(64) + 1);
                        m.splice(at..at, other[from..from + len].iter().copied());
                    }
                    _ => m[at] = rng.gen(),
                }
            }
            exercise(&m);
        }
    }
}
