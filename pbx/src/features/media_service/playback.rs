//! What a service does on its call, frame by frame: the 20 ms clock,
//! playing samples to the caller, and collecting keyed digits with a
//! prompt. Conferences, voicemail, IVR, music on hold and recording share
//! them.

use std::time::Duration;

use besip_media::jitter::Played;
use besip_media::{Frame, SILENCE};

use super::tones::{self, Player};
use super::Dialog;

/// Ticks (20 ms) a caller has to key a PIN.
const PIN_TICKS: u32 = 500;

/// Plays `samples` to the caller (what it says is dropped); false when the
/// call ended meanwhile.
pub async fn play(dialog: &Dialog, samples: &[i16]) -> bool {
    let mut player = Player::new(samples.to_vec());
    let mut tick = ticker();
    while let Some(frame) = player.next_frame() {
        tick.tick().await;
        if dialog.is_ended() {
            return false;
        }
        let _ = dialog.endpoint.take_frame();
        dialog.endpoint.send(&frame);
    }
    true
}

/// A 20 ms clock on a fixed schedule: a tick served late does not push
/// the next ones back (Delay would: every millisecond of timer lateness
/// would stretch the stream), and a tick missed altogether is skipped, not
/// sent in a burst.
pub fn ticker() -> tokio::time::Interval {
    let mut t = tokio::time::interval(Duration::from_millis(20));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    t
}

/// Plays `prompt` (repeated every 3 s) and collects keys until #, up to
/// `max` digits. None when the call ended or nothing came in time.
pub async fn key_in(dialog: &Dialog, prompt: (f64, u32), max: usize) -> Option<String> {
    dialog.endpoint.clear_keys();
    let prompt = tones::samples(prompt);
    let mut player = Player::new(prompt.clone());
    let mut entered = String::new();
    let mut tick = ticker();
    for n in 0..PIN_TICKS {
        tick.tick().await;
        if dialog.is_ended() {
            return None;
        }
        let _ = dialog.endpoint.take_frame();
        while let Some(k) = dialog.endpoint.take_key() {
            match k {
                '#' => return Some(entered),
                d if d.is_ascii_digit() && entered.len() < max => {
                    entered.push(d);
                    // Keying stops the prompt.
                    player = Player::default();
                }
                _ => {}
            }
        }
        if entered.is_empty() && n % 150 == 149 {
            player.queue(&prompt);
        }
        dialog
            .endpoint
            .send(&player.next_frame().unwrap_or(SILENCE));
    }
    None
}

/// Hands what the caller says to `keep` (from its first packet, with
/// silence for lost ones) until #, the call's end, `max_ticks` or an
/// error of `keep`; true when # ended it.
pub async fn record<E: std::fmt::Display>(
    dialog: &Dialog,
    max_ticks: u128,
    mut keep: impl FnMut(&Frame) -> Result<(), E>,
) -> bool {
    dialog.endpoint.clear_keys();
    let mut tick = ticker();
    let mut started = false;
    for _ in 0..max_ticks {
        tick.tick().await;
        if dialog.is_ended() {
            return false;
        }
        if dialog.endpoint.take_key() == Some('#') {
            return true;
        }
        dialog.endpoint.send(&SILENCE);
        let frame = match dialog.endpoint.take_frame() {
            Played::Frame(f) => {
                started = true;
                f
            }
            // Before the first packet: nothing to keep yet.
            _ if !started => continue,
            _ => SILENCE,
        };
        if let Err(e) = keep(&frame) {
            tracing::warn!(error = %e, call_id = %dialog.call_id, "recording cut short");
            return false;
        }
    }
    false
}
