//! Conference rooms (/pbx/conference): callers key the room's PIN (or the
//! admin PIN) and join; one mixer task per room in use ticks every 20 ms,
//! takes a frame from each participant's jitter buffer, gives everyone the
//! mix of the others (`besip_media::mixer`) with the join and leave tones,
//! and reads the keys: 1 mutes and unmutes, * locks and unlocks the room
//! (administrators). The room's task ends with its last participant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use besip_media::jitter::Played;
use besip_media::{mixer, Frame};
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::playback::{key_in, play, ticker};
use super::tones::{self, Player};
use super::Dialog;
use crate::config::Config;
use crate::features::state::Engine;

/// Wrong PINs before the call is ended.
const PIN_TRIES: u32 = 3;

#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU32,
}

struct Room {
    number: String,
    members: Mutex<Vec<Member>>,
    locked: AtomicBool,
    chime: Mutex<Player>,
}

struct Member {
    id: u32,
    dialog: Arc<Dialog>,
    muted: bool,
    admin: bool,
    joined: Instant,
}

impl Rooms {
    /// Whether a new caller may enter `number`: (code, reason) when not.
    pub fn admits(&self, cfg: &Config, number: &str) -> Result<(), (u16, &'static str)> {
        let Some(conf) = cfg.rooms.get(number) else {
            return Err((404, "Not Found: No Such Conference"));
        };
        if let Some(room) = self.rooms.lock().get(number) {
            if room.locked.load(Ordering::Relaxed) {
                return Err((403, "Forbidden: Conference Locked"));
            }
            if room.members.lock().len() >= conf.max_participants {
                return Err((486, "Busy Here: Conference Full"));
            }
        }
        Ok(())
    }

    /// Puts the call in the room; None when it cannot enter any more.
    fn join(
        &self,
        engine: &Arc<Engine>,
        number: &str,
        max: usize,
        dialog: &Arc<Dialog>,
        admin: bool,
    ) -> Option<u32> {
        let mut rooms = self.rooms.lock();
        let room = rooms.entry(number.to_owned()).or_insert_with(|| {
            let room = Arc::new(Room {
                number: number.to_owned(),
                members: Mutex::new(Vec::new()),
                locked: AtomicBool::new(false),
                chime: Mutex::new(Player::default()),
            });
            tokio::spawn(mix_loop(engine.clone(), room.clone()));
            room
        });
        let mut members = room.members.lock();
        if members.len() >= max || room.locked.load(Ordering::Relaxed) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        members.push(Member {
            id,
            dialog: dialog.clone(),
            muted: false,
            admin,
            joined: Instant::now(),
        });
        room.chime.lock().queue(&tones::samples(tones::JOIN));
        tracing::info!(room = number, id, caller = %dialog.caller, admin, "joined the conference");
        Some(id)
    }

    /// Ends the calls of participant `id` of `number` (all when None).
    pub fn kick(&self, engine: &Arc<Engine>, number: &str, id: Option<u32>) -> u32 {
        let dialogs: Vec<Arc<Dialog>> = match self.rooms.lock().get(number) {
            Some(room) => room
                .members
                .lock()
                .iter()
                .filter(|m| !m.dialog.is_ended() && id.is_none_or(|id| m.id == id))
                .map(|m| m.dialog.clone())
                .collect(),
            None => Vec::new(),
        };
        for d in &dialogs {
            tracing::info!(room = number, caller = %d.caller, "participant kicked");
            super::end(engine, d, true);
        }
        dialogs.len() as u32
    }

    /// /pbx/conference-state.
    pub fn state_json(&self) -> Value {
        let mut rooms: Vec<Value> = self
            .rooms
            .lock()
            .values()
            .filter_map(|room| {
                let members = room.members.lock();
                let list: Vec<Value> = members
                    .iter()
                    .filter(|m| !m.dialog.is_ended())
                    .map(|m| {
                        json!({
                            "id": m.id,
                            "caller": m.dialog.caller,
                            "muted": m.muted,
                            "admin": m.admin,
                            "joined": m.joined.elapsed().as_secs() as u32,
                        })
                    })
                    .collect();
                if list.is_empty() {
                    // Emptied: its mixer removes it at its next tick.
                    return None;
                }
                Some(json!({
                    "number": room.number,
                    "participants": list.len(),
                    "locked": room.locked.load(Ordering::Relaxed),
                    "participant": list,
                }))
            })
            .collect();
        rooms.sort_by(|a, b| a["number"].as_str().cmp(&b["number"].as_str()));
        json!({ "room": rooms })
    }
}

/// The call of a caller for room `number`: PIN, then in the room until
/// the call ends.
pub async fn run(engine: &Arc<Engine>, dialog: &Arc<Dialog>, number: &str) {
    let Some(conf) = engine.config().rooms.get(number).cloned() else {
        return;
    };
    let mut admin = false;
    if conf.pin.is_some() || conf.admin_pin.is_some() {
        let mut tries = 0;
        loop {
            let Some(entered) = key_in(dialog, tones::PIN_PROMPT, 12).await else {
                return; // hung up, or keyed nothing in time
            };
            if conf.admin_pin.as_deref() == Some(entered.as_str()) {
                admin = true;
                break;
            }
            match &conf.pin {
                Some(pin) if *pin == entered => break,
                // Only an admin PIN: anyone else joins with # alone.
                None if entered.is_empty() => break,
                _ => {}
            }
            tries += 1;
            tracing::info!(room = number, caller = %dialog.caller, tries, "wrong conference PIN");
            if tries >= PIN_TRIES || !play(dialog, &tones::samples(tones::WRONG)).await {
                return;
            }
        }
    }
    let rooms = &engine.media().rooms;
    if rooms
        .join(engine, number, conf.max_participants, dialog, admin)
        .is_none()
    {
        let _ = play(dialog, &tones::samples(tones::WRONG)).await;
        return;
    }
    // The mixer serves the call from now on; wait for its end.
    while !dialog.is_ended() {
        tokio::select! {
            _ = dialog.hangup.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn mix_loop(engine: Arc<Engine>, room: Arc<Room>) {
    let mut tick = ticker();
    let mut outputs: Vec<Frame> = Vec::new();
    loop {
        tick.tick().await;
        let mut members = room.members.lock();
        let before = members.len();
        members.retain(|m| !m.dialog.is_ended());
        if members.len() < before {
            room.chime.lock().queue(&tones::samples(tones::LEAVE));
            tracing::info!(room = %room.number, left = before - members.len(), "left the conference");
        }
        if members.is_empty() {
            drop(members);
            let mut rooms = engine.media().rooms.rooms.lock();
            // Someone may have joined between the two locks.
            if room.members.lock().is_empty() {
                rooms.remove(&room.number);
                return;
            }
            continue;
        }
        for m in members.iter_mut() {
            while let Some(k) = m.dialog.endpoint.take_key() {
                match k {
                    '1' => m.muted = !m.muted,
                    '*' if m.admin => {
                        let locked = !room.locked.load(Ordering::Relaxed);
                        room.locked.store(locked, Ordering::Relaxed);
                        tracing::info!(room = %room.number, locked, "conference lock changed");
                    }
                    _ => {}
                }
            }
        }
        let frames: Vec<Option<Frame>> = members
            .iter()
            .map(|m| match m.dialog.endpoint.take_frame() {
                Played::Frame(f) if !m.muted => Some(f),
                _ => None,
            })
            .collect();
        let inputs: Vec<Option<&Frame>> = frames.iter().map(Option::as_ref).collect();
        mixer::mix(&inputs, &mut outputs);
        if let Some(chime) = room.chime.lock().next_frame() {
            for out in outputs.iter_mut() {
                for (o, c) in out.iter_mut().zip(chime.iter()) {
                    *o = o.saturating_add(*c);
                }
            }
        }
        for (m, out) in members.iter().zip(&outputs) {
            m.dialog.endpoint.send(out);
        }
    }
}
