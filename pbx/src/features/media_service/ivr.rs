//! IVR menus (/pbx/ivr): the prompt is played (a key cuts it short), then
//! the caller has the menu's timeout to press a key. A key's entry gives
//! the destination: another menu, a conference or a mailbox is served in
//! the same call; anything that rings is reached by blind transfer (REFER
//! to the caller). No key or a key with no entry replays the menu, up to
//! its repeats, then the timeout destination applies.

use std::sync::Arc;
use std::time::Duration;

use besip_media::SILENCE;

use super::playback::{play, ticker};
use super::tones::{self, Player};
use super::Dialog;
use crate::config::inbound::{Destination, Ivr};
use crate::features::state::Engine;

/// Menus one call may pass through (nested menus pointing at each other).
const MAX_MENUS: usize = 16;
/// Digits of a direct-dialled number.
const MAX_DIGITS: usize = 16;

enum Answer {
    Gone,
    Nothing,
    Key(char),
    Number(String),
}

/// Serves the call from menu `name` on.
pub async fn run(engine: &Arc<Engine>, dialog: &Arc<Dialog>, name: &str) {
    let mut name = name.to_owned();
    for _ in 0..MAX_MENUS {
        let cfg = engine.config();
        let Some(menu) = cfg.ivrs.get(&name).cloned() else {
            return;
        };
        let prompt = engine
            .media()
            .prompts
            .get(&menu.prompt)
            .unwrap_or_else(|| tones::samples(tones::PIN_PROMPT));
        let mut chosen = None;
        for _ in 0..=menu.repeats {
            match ask(dialog, &prompt, &menu).await {
                Answer::Gone => return,
                Answer::Nothing => {}
                Answer::Key(k) => match menu.entries.get(&k) {
                    Some(d) => {
                        chosen = Some(d.clone());
                        break;
                    }
                    None => {
                        if !play(dialog, &tones::samples(tones::WRONG)).await {
                            return;
                        }
                    }
                },
                Answer::Number(n) => match cfg.resolve_user(&n) {
                    Some(ext) if ext.enabled => {
                        chosen = Some(Destination::Extension(ext.number.clone()));
                        break;
                    }
                    _ => {
                        if !play(dialog, &tones::samples(tones::WRONG)).await {
                            return;
                        }
                    }
                },
            }
        }
        let Some(d) = chosen.or(menu.timeout_destination.clone()) else {
            return;
        };
        tracing::info!(call_id = %dialog.call_id, menu = %menu.name, destination = ?d, "IVR choice");
        match crate::features::inbound::settle(&cfg, &d).cloned() {
            Some(Destination::Ivr(next)) => name = next,
            Some(Destination::Conference(room)) => {
                if engine.media().rooms.admits(&cfg, &room).is_ok() {
                    super::conference::run(engine, dialog, &room).await;
                }
                return;
            }
            Some(Destination::Voicemail(mailbox)) => {
                if engine
                    .media()
                    .voicemail
                    .admits_message(&cfg, &mailbox)
                    .is_ok()
                {
                    super::voicemail::leave(engine, dialog, &mailbox).await;
                }
                return;
            }
            Some(
                Destination::Extension(n) | Destination::RingGroup(n) | Destination::External(n),
            ) => {
                transfer(engine, dialog, &n).await;
                return;
            }
            // Config keeps the lot out of menus; a time condition may still lead there.
            Some(Destination::Parking | Destination::Hangup | Destination::TimeCondition(_))
            | None => return,
        }
    }
}

/// Plays the prompt and waits for the caller's choice.
async fn ask(dialog: &Dialog, prompt: &[i16], menu: &Ivr) -> Answer {
    dialog.endpoint.clear_keys();
    let mut player = Player::new(prompt.to_vec());
    let mut tick = ticker();
    let wait_ticks = menu.timeout.as_millis() / 20;
    let mut waited = 0;
    let mut digits = String::new();
    loop {
        tick.tick().await;
        if dialog.is_ended() {
            return Answer::Gone;
        }
        let _ = dialog.endpoint.take_frame();
        while let Some(k) = dialog.endpoint.take_key() {
            if digits.is_empty() && (menu.entries.contains_key(&k) || !menu.direct_dial) {
                return Answer::Key(k);
            }
            match k {
                '#' if !digits.is_empty() => return Answer::Number(digits),
                d if d.is_ascii_digit() && digits.len() < MAX_DIGITS => {
                    digits.push(d);
                    player = Player::default();
                    waited = 0;
                }
                other if digits.is_empty() => return Answer::Key(other),
                _ => {}
            }
        }
        match player.next_frame() {
            Some(f) => dialog.endpoint.send(&f),
            None => {
                dialog.endpoint.send(&SILENCE);
                waited += 1;
                if waited >= wait_ticks {
                    return match digits.is_empty() {
                        true => Answer::Nothing,
                        false => Answer::Number(digits),
                    };
                }
            }
        }
    }
}

/// Blind transfer of the caller to `number` of our domain; our side ends
/// when the caller hangs up on us (after its new call) or after 30 s.
async fn transfer(engine: &Arc<Engine>, dialog: &Arc<Dialog>, number: &str) {
    let cfg = engine.config();
    let domain = cfg
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    super::refer(engine, dialog, &format!("sip:{number}@{domain}"));
    let mut tick = ticker();
    for _ in 0..(Duration::from_secs(30).as_millis() / 20) {
        tick.tick().await;
        if dialog.is_ended() {
            return;
        }
        let _ = dialog.endpoint.take_frame();
        dialog.endpoint.send(&SILENCE);
    }
}
