//! Music on hold (/pbx/music-on-hold) for calls anchored on the RTP relay
//! (every call in B2BUA mode while this is on; in proxy mode those the
//! media-relay policy anchors): when one party's offer holds the call
//! (a=sendonly), what it sends towards the other is dropped at the relay
//! and the other hears music instead, sent every 20 ms from the relay's
//! port it already receives from, in the codec it last used. A hold
//! offering a=inactive reaches the held party as a=sendonly (it is to hear
//! the music) and its answer goes back to the holder as a=inactive. The
//! offer that resumes (sendrecv, recvonly) stops the music. The player
//! ends with the relay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use besip_media::codec::{Codec, Encoder};
use besip_media::{rtp, tone, FRAME};
use parking_lot::Mutex;

use super::playback::ticker;
use super::tones::Player;
use crate::features::rtp_relay::Relay;
use crate::features::state::Engine;
use crate::sip::Message;

/// Players by (call, side played to).
#[derive(Default)]
pub struct Holds {
    playing: Mutex<HashMap<(String, bool), Arc<AtomicBool>>>,
    /// Holds offered as a=inactive: their answers are rewritten back.
    inactive: Mutex<std::collections::HashSet<(String, bool)>>,
}

/// The direction of the first audio stream of an SDP body.
fn direction(sdp: &[u8]) -> &'static str {
    let Ok(text) = std::str::from_utf8(sdp) else {
        return "sendrecv";
    };
    let mut dir = "sendrecv";
    let mut in_audio = false;
    for line in text.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                break;
            }
            in_audio = m.starts_with("audio");
            continue;
        }
        dir = match line {
            "a=sendonly" => "sendonly",
            "a=inactive" => "inactive",
            "a=recvonly" => "recvonly",
            "a=sendrecv" => "sendrecv",
            _ => dir,
        };
    }
    dir
}

/// A built-in melody (A major arpeggio, soft), when the store has no music.
fn melody() -> Vec<i16> {
    let mut out = Vec::new();
    for f in [440.0, 554.37, 659.25, 880.0, 659.25, 554.37] {
        let mut note = tone::sine(f, 2500.0, 300);
        let n = note.len();
        for (i, s) in note.iter_mut().enumerate() {
            // A short fade at both ends: no clicks between notes.
            let edge = i.min(n - 1 - i).min(200) as f64 / 200.0;
            *s = (f64::from(*s) * edge) as i16;
        }
        out.extend(note);
    }
    out
}

/// An offer of the party on relay side `holder_a` (`sdp` as it sent it)
/// goes on through the B2BUA as `forwarded`: starts or stops the music for
/// the other party, rewriting an a=inactive hold to a=sendonly.
pub fn offered(
    engine: &Arc<Engine>,
    call: &str,
    relay: &Arc<Relay>,
    holder_a: bool,
    sdp: &[u8],
    forwarded: &mut Message,
) {
    if engine.config().music_on_hold.is_none() {
        return;
    }
    let held_a = !holder_a;
    let key = (call.to_owned(), held_a);
    let holds = &engine.media().holds;
    let dir = direction(sdp);
    match dir {
        "sendonly" | "inactive" => {
            if dir == "inactive" {
                if let Ok(text) = std::str::from_utf8(&forwarded.body) {
                    forwarded.body = text.replace("a=inactive", "a=sendonly").into_bytes();
                }
                holds.inactive.lock().insert(key.clone());
            } else {
                holds.inactive.lock().remove(&key);
            }
            let on = Arc::new(AtomicBool::new(true));
            {
                let mut playing = holds.playing.lock();
                if playing.contains_key(&key) {
                    return;
                }
                playing.insert(key.clone(), on.clone());
            }
            relay.mute_towards(held_a, true);
            // Read outside the lock: other calls' holds do not wait on the file.
            let tune = music(engine).unwrap_or_else(melody);
            start(engine, tune, key, relay, on);
            tracing::info!(call, "music on hold started");
        }
        _ => {
            holds.inactive.lock().remove(&key);
            if let Some(on) = holds.playing.lock().remove(&key) {
                on.store(false, Ordering::Relaxed);
                relay.mute_towards(held_a, false);
                tracing::info!(call, "music on hold stopped");
            }
        }
    }
}

/// Music playing to one side of a relay until this is dropped.
pub struct Music(Arc<AtomicBool>);

impl Drop for Music {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// The music on hold's samples (read from the store: call it before
/// taking locks); None when music on hold is off.
pub fn music(engine: &Engine) -> Option<Vec<i16>> {
    let prompt = engine.config().music_on_hold.clone()?;
    Some(engine.media().prompts.get(&prompt).unwrap_or_else(melody))
}

/// `music` to relay side `held_a` of `call` for as long as the returned
/// `Music` lives (a parked call's waiting party).
pub fn play_while_kept(
    engine: &Arc<Engine>,
    call: &str,
    relay: &Arc<Relay>,
    held_a: bool,
    music: Vec<i16>,
) -> Music {
    let on = Arc::new(AtomicBool::new(true));
    start(engine, music, (call.to_owned(), held_a), relay, on.clone());
    Music(on)
}

/// Starts the player of `music` for `key`; it plays while `on` is.
fn start(
    engine: &Arc<Engine>,
    music: Vec<i16>,
    key: (String, bool),
    relay: &Arc<Relay>,
    on: Arc<AtomicBool>,
) {
    tokio::spawn(play(engine.clone(), key, Arc::downgrade(relay), on, music));
}

/// The held party (relay side `held_a`) answered: an a=inactive hold gets
/// a=inactive back, whatever the held party said to the rewritten offer.
pub fn answered(engine: &Engine, call: &str, held_a: bool, answer: &mut Message) {
    if !engine
        .media()
        .holds
        .inactive
        .lock()
        .contains(&(call.to_owned(), held_a))
    {
        return;
    }
    let Ok(text) = std::str::from_utf8(&answer.body) else {
        return;
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut said = false;
    for line in text.split_inclusive('\n') {
        match line.trim_end() {
            "a=recvonly" | "a=sendrecv" | "a=sendonly" | "a=inactive" => {
                out.push_str("a=inactive\r\n");
                said = true;
            }
            _ => out.push_str(line),
        }
    }
    if !said && !out.is_empty() {
        // No direction said (sendrecv): the answer to inactive is inactive.
        if !out.ends_with('\n') {
            out.push_str("\r\n");
        }
        out.push_str("a=inactive\r\n");
    }
    answer.body = out.into_bytes();
}

async fn play(
    engine: Arc<Engine>,
    key: (String, bool),
    relay: Weak<Relay>,
    on: Arc<AtomicBool>,
    music: Vec<i16>,
) {
    let held_a = key.1;
    let mut player = Player::new(music.clone());
    let mut sender = rtp::Sender::new(rand::random(), rand::random(), rand::random());
    let (mut packet, mut encoded) = (Vec::with_capacity(200), Vec::with_capacity(FRAME));
    // The held party's codec (G.722 keeps state: one encoder per codec).
    let mut encoder: Option<(Codec, Encoder)> = None;
    let mut tick = ticker();
    let mut first = true;
    while on.load(Ordering::Relaxed) {
        tick.tick().await;
        let Some(relay) = relay.upgrade() else { break };
        let frame = match player.next_frame() {
            Some(f) => f,
            None => {
                player = Player::new(music.clone());
                player.next_frame().unwrap_or([0; FRAME])
            }
        };
        let codec =
            Codec::from_static_payload_type(relay.payload_type_of(held_a)).unwrap_or(Codec::Pcmu);
        let e = match &mut encoder {
            Some((c, e)) if *c == codec => e,
            slot => &mut slot.insert((codec, codec.encoder())).1,
        };
        e.encode(&frame, &mut encoded);
        sender.next(
            &mut packet,
            std::mem::take(&mut first),
            codec.static_payload_type(),
            &encoded,
            FRAME as u32,
        );
        relay.send_to_side(held_a, &packet);
    }
    engine.media().holds.playing.lock().remove(&key);
    engine.media().holds.inactive.lock().remove(&key);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_audio_streams_direction() {
        let hold = b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\nm=video 5000 RTP/AVP 96\r\na=sendrecv\r\n";
        assert_eq!(super::direction(hold), "sendonly");
        assert_eq!(
            super::direction(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            "sendrecv"
        );
        assert_eq!(
            super::direction(b"v=0\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\n"),
            "inactive"
        );
        assert!(super::melody().len() == 6 * 2400);
    }
}
