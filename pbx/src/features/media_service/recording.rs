//! Call recording (/pbx/recording, /pbx/extension/record-calls), B2BUA
//! mode: a call of a recorded extension is anchored on the RTP relay,
//! whose tap hands this module every packet in the clear. Each side's
//! G.711 goes through its own jitter buffer; a 20 ms clock writes one
//! stereo frame (left the caller, right the callee, silence where a side
//! said nothing) until the relay is gone with the call, or the maximum
//! length. The WAV and a JSON note are kept in recordings/ of the state
//! directory, within the retention and the count limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use besip_media::codec::{Codec, Decoder};

use crate::config::media::RecordCalls;
use besip_media::jitter::{JitterBuffer, Played};
use besip_media::{rtp, wav, FRAME};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::playback::ticker;
use crate::config::Config;
use crate::features::rtp_relay::{Relay, Tap};
use crate::features::state::Engine;
use crate::sip::Uri;

#[derive(Default)]
pub struct Recordings {
    dir: Mutex<Option<PathBuf>>,
}

/// The note kept beside a recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub started: String,
    pub started_unix: u64,
    pub duration: u64,
}

/// Whether a call is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    No,
    Always,
    /// While a party keyed the toggle code.
    OnDemand,
}

/// What the relay's tap fills: one jitter buffer per side; for an
/// on-demand recording, the keys each side pressed and whether it runs.
struct Capture {
    sides: Mutex<[Side; 2]>,
    running: std::sync::atomic::AtomicBool,
    /// The toggle code, when the recording is on demand.
    toggle: Option<String>,
    keys: Mutex<[(besip_media::dtmf::Detector, String); 2]>,
}

/// One direction of the recorded call: its decoder (G.722 keeps state),
/// remade when the codec changes, and its jitter buffer.
#[derive(Default)]
struct Side {
    decoder: Option<(Codec, Decoder)>,
    decoded: Vec<i16>,
    jitter: JitterBuffer,
}

impl Capture {
    /// A key pressed on side `side`: toggles when the code is complete.
    fn key(&self, side: usize, key: char) {
        let Some(code) = &self.toggle else { return };
        let mut keys = self.keys.lock();
        let typed = &mut keys[side].1;
        typed.push(key);
        if typed.len() > code.len() {
            typed.remove(0);
        }
        if typed == code {
            typed.clear();
            let running = !self.running.load(std::sync::atomic::Ordering::Relaxed);
            self.running
                .store(running, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(running, "on-demand recording toggled");
        }
    }
}

impl Tap for Capture {
    fn packet(&self, from_a: bool, packet: &[u8]) {
        let Some(h) = rtp::parse(packet) else { return };
        let Some(codec) = Codec::from_static_payload_type(h.payload_type) else {
            // A dynamic payload of 4 bytes is taken for an RFC 4733 event
            // (the relay does not read the SDP's rtpmap).
            let payload = &packet[h.payload.0..h.payload.1];
            if self.toggle.is_some() && h.payload_type >= 96 && payload.len() == 4 {
                let side = usize::from(!from_a);
                let key = self.keys.lock()[side].0.packet(h.timestamp, payload);
                if let Some(k) = key {
                    self.key(side, k);
                }
            }
            return;
        };
        let payload = &packet[h.payload.0..h.payload.1];
        let mut sides = self.sides.lock();
        let side = &mut sides[usize::from(!from_a)];
        let decoder = match &mut side.decoder {
            Some((c, d)) if *c == codec => d,
            slot => &mut slot.insert((codec, codec.decoder())).1,
        };
        decoder.decode(payload, &mut side.decoded);
        for (i, chunk) in side.decoded.chunks(FRAME).enumerate() {
            let mut frame = [0i16; FRAME];
            frame[..chunk.len()].copy_from_slice(chunk);
            side.jitter.push(
                (h.timestamp / FRAME as u32).wrapping_add(i as u32) as u16,
                frame,
            );
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn user_of(uri: &str) -> Option<String> {
    Uri::parse(uri).and_then(|u| u.user)
}

/// Whether a call from `caller_ext` to `dialled` is recorded: the most
/// either party's extension or the route the call took (`route`) asks.
pub fn wanted(cfg: &Config, caller_ext: Option<&str>, dialled: &str, route: RecordCalls) -> Wanted {
    let r = &cfg.recording;
    let callee = user_of(dialled).and_then(|u| cfg.resolve_user(&u).map(|e| e.number.clone()));
    let parties = [caller_ext.map(str::to_owned), callee];
    let any =
        |set: &std::collections::HashSet<String>| parties.iter().flatten().any(|p| set.contains(p));
    let by_extension = if any(&r.extensions) {
        RecordCalls::Always
    } else if any(&r.on_demand) {
        RecordCalls::OnDemand
    } else {
        RecordCalls::Never
    };
    match by_extension.max(route) {
        RecordCalls::Always => Wanted::Always,
        RecordCalls::OnDemand => Wanted::OnDemand,
        RecordCalls::Never => Wanted::No,
    }
}

impl Recordings {
    pub fn open(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        *self.dir.lock() = Some(dir.to_owned());
        Ok(())
    }

    fn list(&self) -> Vec<(String, Note)> {
        let Some(dir) = self.dir.lock().clone() else {
            return Vec::new();
        };
        let mut out: Vec<(String, Note)> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let id = name.strip_suffix(".json")?.to_owned();
                        let note = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                        Some((id, note))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.1.started_unix.cmp(&b.1.started_unix).then(a.0.cmp(&b.0)));
        out
    }

    /// The WAV file of recording `id`, when it exists (`id` checked by the caller).
    pub fn file(&self, id: &str) -> Option<PathBuf> {
        let path = self.dir.lock().as_ref()?.join(format!("{id}.wav"));
        path.is_file().then_some(path)
    }

    fn delete(&self, id: &str) {
        if let Some(dir) = self.dir.lock().clone() {
            let _ = std::fs::remove_file(dir.join(format!("{id}.wav")));
            let _ = std::fs::remove_file(dir.join(format!("{id}.json")));
        }
    }

    /// Drops recordings beyond the retention and the count limit.
    pub fn expire(&self, cfg: &Config) {
        let now = unix_now();
        let list = self.list();
        let over = list.len().saturating_sub(cfg.recording.max_recordings);
        for (i, (id, note)) in list.iter().enumerate() {
            if i < over || now.saturating_sub(note.started_unix) > cfg.recording.retention.as_secs()
            {
                self.delete(id);
            }
        }
    }

    /// /pbx/recording-state.
    pub fn state_json(&self) -> Value {
        let list: Vec<Value> = self
            .list()
            .into_iter()
            .map(|(id, n)| {
                json!({
                    "id": id,
                    "call-id": n.call_id,
                    "caller": n.caller,
                    "callee": n.callee,
                    "started": n.started,
                    "duration": n.duration,
                })
            })
            .collect();
        json!({ "recording": list })
    }
}

/// Starts recording the call whose media `relay` carries (side A the caller).
pub fn start(
    engine: &Arc<Engine>,
    relay: &Relay,
    wanted: Wanted,
    call_id: &str,
    caller: &str,
    callee: &str,
) {
    let Some(dir) = engine.media().recordings.dir.lock().clone() else {
        return;
    };
    let on_demand = wanted == Wanted::OnDemand;
    let capture = Arc::new(Capture {
        sides: Mutex::new(Default::default()),
        running: std::sync::atomic::AtomicBool::new(!on_demand),
        toggle: on_demand.then(|| engine.config().recording.toggle_code.clone()),
        keys: Mutex::new(Default::default()),
    });
    if !relay.tap(capture.clone()) {
        return;
    }
    let id = super::new_id();
    let note = Note {
        call_id: call_id.to_owned(),
        caller: caller.to_owned(),
        callee: callee.to_owned(),
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        started_unix: unix_now(),
        duration: 0,
    };
    tracing::info!(call_id, id, "call recording started");
    tokio::spawn(write(engine.clone(), capture, dir, id, note));
}

async fn write(
    engine: Arc<Engine>,
    capture: Arc<Capture>,
    dir: PathBuf,
    id: String,
    mut note: Note,
) {
    let part = dir.join(format!("{id}.part"));
    // Opened when the recording first runs (an on-demand one may never).
    let mut writer: Option<wav::Writer> = None;
    let max_ticks = engine.config().recording.max_length.as_millis() / 20;
    let mut tick = ticker();
    let mut started = false;
    let mut frame = [0i16; 2 * FRAME];
    let mut ticks = 0u128;
    // The relay holds the other reference: alone means the call is over.
    while Arc::strong_count(&capture) > 1 && ticks < max_ticks {
        tick.tick().await;
        let (a, b) = {
            let mut sides = capture.sides.lock();
            (sides[0].jitter.pop(), sides[1].jitter.pop())
        };
        let heard = matches!(a, Played::Frame(_)) || matches!(b, Played::Frame(_));
        if !capture.running.load(std::sync::atomic::Ordering::Relaxed) || (!started && !heard) {
            continue;
        }
        if writer.is_none() {
            match wav::Writer::create(&part, 2) {
                Ok(w) => writer = Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write a call recording");
                    return;
                }
            }
        }
        let Some(writer) = writer.as_mut() else {
            return;
        };
        started = true;
        ticks += 1;
        for (side, played) in [a, b].into_iter().enumerate() {
            let samples = match played {
                Played::Frame(f) => f,
                _ => [0; FRAME],
            };
            for (i, s) in samples.iter().enumerate() {
                frame[2 * i + side] = *s;
            }
        }
        if let Err(e) = writer.write(&frame) {
            tracing::warn!(error = %e, "call recording cut short");
            break;
        }
        if ticks % 250 == 0 {
            let _ = writer.flush();
        }
    }
    let Some(writer) = writer else {
        return; // never started (on demand, not asked for)
    };
    note.duration = match writer.finish() {
        Ok(ms) => ms,
        Err(e) => {
            tracing::warn!(error = %e, "cannot finish a call recording");
            return;
        }
    };
    let filed = std::fs::rename(&part, dir.join(format!("{id}.wav"))).and_then(|_| {
        let text = serde_json::to_vec(&note).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("{id}.json")), text)
    });
    match filed {
        Ok(()) => {
            tracing::info!(id, call_id = %note.call_id, duration = note.duration, "call recording kept")
        }
        Err(e) => tracing::warn!(error = %e, "cannot file a call recording"),
    }
    // The count limit right away; a scan of the notes, off the runtime.
    tokio::task::spawn_blocking(move || engine.media().recordings.expire(&engine.config()));
}
