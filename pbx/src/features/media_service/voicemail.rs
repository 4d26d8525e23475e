//! Voicemail (/pbx/voicemail, /pbx/extension/voicemail): a caller hears a
//! beep and speaks; the message is written as it comes (WAV, 8 kHz mono,
//! from the jitter buffer, silence where packets were lost) and filed with
//! a JSON note of caller, time and duration when the call ends, # is
//! pressed or the maximum length is reached. The owner listens by the
//! mailbox code after its PIN. Message-waiting subscribers are told of
//! every change (`mwi`). Files live in the daemon's state directory:
//! voicemail/<extension>/<id>.wav and <id>.json.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use besip_media::{wav, SILENCE};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::playback::{key_in, play, record, ticker};
use super::tones;
use super::Dialog;
use crate::config::Config;
use crate::features::state::Engine;

/// A message shorter than this is nothing said (a caller hanging up at the beep).
const MIN_MESSAGE_MS: u64 = 500;
/// Wrong PINs before the call ends.
const PIN_TRIES: u32 = 3;
/// Ticks the mailbox menu waits for a key before hanging up (30 s).
const MENU_TICKS: u32 = 1500;
/// The prompt played before the beep when the owner recorded no greeting.
pub const DEFAULT_GREETING: &str = "vm-greeting";
/// Longest greeting (ticks of 20 ms: 60 s).
const GREETING_TICKS: u128 = 3000;

#[derive(Default)]
pub struct Voicemail {
    dir: Mutex<Option<PathBuf>>,
    sessions: AtomicUsize,
}

/// The note filed beside a message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub caller: String,
    /// RFC 3339, UTC.
    pub received: String,
    /// Seconds since the epoch (retention).
    pub received_unix: u64,
    pub duration: u64,
    pub heard: bool,
}

/// Counts a call in voicemail while it lives.
struct Session<'a>(&'a AtomicUsize);

impl<'a> Session<'a> {
    fn start(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Session(counter)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A message or recording id, or a mailbox: nothing that names another path.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Voicemail {
    /// Where the mailboxes are kept (created if missing).
    pub fn open(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        *self.dir.lock() = Some(dir.to_owned());
        Ok(())
    }

    fn mailbox_dir(&self, mailbox: &str) -> Option<PathBuf> {
        // Mailboxes are extension numbers (YANG sip-user); nothing else
        // names a directory.
        if !valid_id(mailbox) {
            return None;
        }
        self.dir.lock().as_ref().map(|d| d.join(mailbox))
    }

    /// Calls in voicemail now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    pub fn admits_message(&self, cfg: &Config, mailbox: &str) -> Result<(), (u16, &'static str)> {
        if !cfg.voicemail.mailboxes.contains_key(mailbox) {
            return Err((404, "Not Found: No Such Mailbox"));
        }
        if self.mailbox_dir(mailbox).is_none() {
            return Err((503, "Service Unavailable: No Voicemail Storage"));
        }
        if self.message_count(mailbox) >= cfg.voicemail.max_messages {
            return Err((486, "Busy Here: Mailbox Full"));
        }
        Ok(())
    }

    pub fn admits_listener(&self, cfg: &Config, mailbox: &str) -> Result<(), (u16, &'static str)> {
        match cfg.voicemail.mailboxes.get(mailbox) {
            None => Err((404, "Not Found: No Mailbox")),
            Some(None) => Err((403, "Forbidden: Mailbox Has No PIN")),
            Some(Some(_)) => Ok(()),
        }
    }

    /// The messages of `mailbox`, oldest first.
    pub fn messages(&self, mailbox: &str) -> Vec<(String, Note)> {
        let Some(dir) = self.mailbox_dir(mailbox) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Note)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?.to_owned();
                let note = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                Some((id, note))
            })
            .collect();
        out.sort_by(|a, b| {
            a.1.received_unix
                .cmp(&b.1.received_unix)
                .then(a.0.cmp(&b.0))
        });
        out
    }

    /// Messages filed in `mailbox` (their notes counted, not read).
    fn message_count(&self, mailbox: &str) -> usize {
        let Some(dir) = self.mailbox_dir(mailbox) else {
            return 0;
        };
        std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
                    .count()
            })
            .unwrap_or(0)
    }

    /// (new, old) counts.
    pub fn counts(&self, mailbox: &str) -> (usize, usize) {
        let m = self.messages(mailbox);
        let new = m.iter().filter(|(_, n)| !n.heard).count();
        (new, m.len() - new)
    }

    /// The audio of a message.
    pub fn audio(&self, mailbox: &str, id: &str) -> Option<Vec<i16>> {
        if !valid_id(id) {
            return None;
        }
        let path = self.mailbox_dir(mailbox)?.join(format!("{id}.wav"));
        let bytes = std::fs::read(path).ok()?;
        wav::parse(&bytes).ok().map(|a| a.channel(0))
    }

    /// The WAV file of message `id` of `mailbox`, when it exists.
    pub fn file(&self, mailbox: &str, id: &str) -> Option<std::path::PathBuf> {
        if !valid_id(id) {
            return None;
        }
        let path = self.mailbox_dir(mailbox)?.join(format!("{id}.wav"));
        path.is_file().then_some(path)
    }

    /// The greeting the owner recorded, if any.
    pub fn greeting(&self, mailbox: &str) -> Option<Vec<i16>> {
        let path = self.mailbox_dir(mailbox)?.join("greeting.wav");
        let bytes = std::fs::read(path).ok()?;
        wav::parse(&bytes).ok().map(|a| a.channel(0))
    }

    fn set_heard(&self, mailbox: &str, id: &str) {
        let Some(dir) = self.mailbox_dir(mailbox) else {
            return;
        };
        let path = dir.join(format!("{id}.json"));
        let Some(mut note) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Note>(&b).ok())
        else {
            return;
        };
        note.heard = true;
        if let Ok(text) = serde_json::to_vec(&note) {
            let _ = std::fs::write(&path, text);
        }
    }

    fn delete(&self, mailbox: &str, id: &str) {
        let Some(dir) = self.mailbox_dir(mailbox) else {
            return;
        };
        if !valid_id(id) {
            return;
        }
        let _ = std::fs::remove_file(dir.join(format!("{id}.json")));
        let _ = std::fs::remove_file(dir.join(format!("{id}.wav")));
    }

    /// Deletes messages older than the retention.
    pub fn expire(&self, cfg: &Config) -> usize {
        let now = unix_now();
        let limit = cfg.voicemail.retention.as_secs();
        let mut gone = 0;
        for mailbox in cfg.voicemail.mailboxes.keys() {
            for (id, note) in self.messages(mailbox) {
                if now.saturating_sub(note.received_unix) > limit {
                    self.delete(mailbox, &id);
                    gone += 1;
                }
            }
        }
        gone
    }

    /// /pbx/voicemail-state (without sessions).
    pub fn state_json(&self) -> Value {
        let Some(dir) = self.dir.lock().clone() else {
            return json!({ "mailbox": [] });
        };
        let mut boxes: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| valid_id(n))
                    .collect()
            })
            .unwrap_or_default();
        boxes.sort();
        let list: Vec<Value> = boxes
            .iter()
            .filter_map(|mailbox| {
                let messages = self.messages(mailbox);
                if messages.is_empty() {
                    return None;
                }
                let new = messages.iter().filter(|(_, n)| !n.heard).count();
                Some(json!({
                    "extension": mailbox,
                    "new-messages": new,
                    "old-messages": messages.len() - new,
                    "message": messages.iter().map(|(id, n)| json!({
                        "id": id,
                        "caller": n.caller,
                        "received": n.received,
                        "duration": n.duration,
                        "heard": n.heard,
                    })).collect::<Vec<_>>(),
                }))
            })
            .collect();
        json!({ "mailbox": list })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A caller leaves a message in `mailbox`.
pub async fn leave(engine: &Arc<Engine>, dialog: &Arc<Dialog>, mailbox: &str) {
    let vm = &engine.media().voicemail;
    let _session = Session::start(&vm.sessions);
    let cfg = engine.config();
    let Some(dir) = vm.mailbox_dir(mailbox) else {
        return;
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(error = %e, mailbox, "cannot create the mailbox directory");
        return;
    }
    // The owner's greeting, else the default one of the prompt store.
    let greeting = vm
        .greeting(mailbox)
        .or_else(|| engine.media().prompts.get(DEFAULT_GREETING));
    if let Some(g) = greeting {
        if !play(dialog, &g).await {
            return;
        }
    }
    if !play(dialog, &tones::samples(tones::BEEP)).await {
        return;
    }
    let id = super::new_id();
    let part = dir.join(format!("{id}.part"));
    let mut writer = match wav::Writer::create(&part, 1) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, mailbox, "cannot write a voicemail message");
            return;
        }
    };
    let received = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let received_unix = unix_now();
    let by_key = record(dialog, cfg.voicemail.max_message.as_millis() / 20, |f| {
        writer.write(f)
    })
    .await;
    let duration = match writer.finish() {
        Ok(ms) => ms,
        Err(e) => {
            tracing::warn!(error = %e, mailbox, "cannot finish a voicemail message");
            let _ = std::fs::remove_file(&part);
            return;
        }
    };
    if duration < MIN_MESSAGE_MS {
        let _ = std::fs::remove_file(&part);
        return;
    }
    let note = Note {
        caller: dialog.caller.clone(),
        received,
        received_unix,
        duration,
        heard: false,
    };
    let filed = std::fs::rename(&part, dir.join(format!("{id}.wav"))).and_then(|_| {
        let text = serde_json::to_vec(&note).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("{id}.json")), text)
    });
    if let Err(e) = filed {
        tracing::warn!(error = %e, mailbox, "cannot file a voicemail message");
        return;
    }
    tracing::info!(mailbox, id, caller = %note.caller, duration, "voicemail message left");
    if let Ok(wav) = std::fs::read(dir.join(format!("{id}.wav"))) {
        super::mail::message_left(engine, mailbox, &id, &note, wav);
    }
    super::mwi::changed(engine, mailbox);
    if by_key {
        let _ = play(dialog, &tones::samples(tones::MESSAGE_MARK)).await;
    }
}

/// The any-mailbox code: the caller keys a mailbox number and #, then its
/// PIN (`listen`). A mailbox that does not exist, or has no PIN, is asked
/// for a PIN all the same and refuses every one, so that a caller cannot
/// tell which mailboxes exist.
pub async fn listen_any(engine: &Arc<Engine>, dialog: &Arc<Dialog>) {
    if let Some(number) = key_in(dialog, tones::PIN_PROMPT, 16).await {
        listen(engine, dialog, &number).await;
    }
}

/// Asks for `pin` up to PIN_TRIES times; None (no such mailbox, or no
/// PIN) takes none, the same way, so the two cannot be told apart.
async fn pin_accepted(dialog: &Dialog, mailbox: &str, pin: Option<&str>) -> bool {
    for tries in 1..=PIN_TRIES {
        let Some(entered) = key_in(dialog, tones::PIN_PROMPT, 12).await else {
            return false;
        };
        if Some(entered.as_str()) == pin {
            return true;
        }
        tracing::info!(mailbox, tries, "wrong voicemail PIN");
        if tries == PIN_TRIES || !play(dialog, &tones::samples(tones::WRONG)).await {
            return false;
        }
    }
    false
}

/// The owner of `mailbox` listens: PIN, then 1 next, 7 delete, 9 keep, # end.
pub async fn listen(engine: &Arc<Engine>, dialog: &Arc<Dialog>, mailbox: &str) {
    let vm = &engine.media().voicemail;
    let _session = Session::start(&vm.sessions);
    let pin = engine
        .config()
        .voicemail
        .mailboxes
        .get(mailbox)
        .cloned()
        .flatten();
    if !pin_accepted(dialog, mailbox, pin.as_deref()).await {
        return;
    }
    // As many marks as new messages (up to 10).
    let (new, _) = vm.counts(mailbox);
    let mut marks = Vec::new();
    for _ in 0..new.min(10) {
        marks.extend(tones::samples(tones::MESSAGE_MARK));
        marks.extend(std::iter::repeat_n(0i16, 800));
    }
    if !play(dialog, &marks).await {
        return;
    }
    let mut current: Option<String> = None;
    let mut heard_now: Vec<String> = Vec::new();
    loop {
        let Some(key) = wait_key(dialog).await else {
            return;
        };
        match key {
            '1' => {
                // New messages first, then the kept ones, each once a call.
                let messages = vm.messages(mailbox);
                let next = messages
                    .iter()
                    .filter(|(id, _)| !heard_now.contains(id))
                    .min_by_key(|(_, n)| n.heard)
                    .map(|(id, _)| id.clone());
                let Some(id) = next else {
                    if !play(dialog, &tones::samples(tones::NONE_LEFT)).await {
                        return;
                    }
                    continue;
                };
                let audio = vm.audio(mailbox, &id).unwrap_or_default();
                heard_now.push(id.clone());
                current = Some(id.clone());
                if !play(dialog, &audio).await {
                    return;
                }
                vm.set_heard(mailbox, &id);
                super::mwi::changed(engine, mailbox);
            }
            '7' => {
                if let Some(id) = current.take() {
                    vm.delete(mailbox, &id);
                    tracing::info!(mailbox, id, "voicemail message deleted by phone");
                    super::mwi::changed(engine, mailbox);
                    if !play(dialog, &tones::samples(tones::MESSAGE_MARK)).await {
                        return;
                    }
                }
            }
            '9' => {
                if current.take().is_some()
                    && !play(dialog, &tones::samples(tones::MESSAGE_MARK)).await
                {
                    return;
                }
            }
            '0' => {
                // The owner records its greeting: beep, speak, #.
                if !record_greeting(engine, dialog, mailbox).await {
                    return;
                }
            }
            '#' => return,
            _ => {}
        }
    }
}

/// Records the greeting of `mailbox`; false when the call ended.
async fn record_greeting(engine: &Arc<Engine>, dialog: &Arc<Dialog>, mailbox: &str) -> bool {
    let vm = &engine.media().voicemail;
    let Some(dir) = vm.mailbox_dir(mailbox) else {
        return false;
    };
    if std::fs::create_dir_all(&dir).is_err() || !play(dialog, &tones::samples(tones::BEEP)).await {
        return false;
    }
    let part = dir.join("greeting.part");
    let Ok(mut writer) = wav::Writer::create(&part, 1) else {
        return false;
    };
    let by_key = record(dialog, GREETING_TICKS, |f| writer.write(f)).await;
    match writer.finish() {
        Ok(ms) if ms >= MIN_MESSAGE_MS => {
            if std::fs::rename(&part, dir.join("greeting.wav")).is_ok() {
                tracing::info!(
                    mailbox,
                    duration = ms,
                    "voicemail greeting recorded by phone"
                );
            }
        }
        _ => {
            let _ = std::fs::remove_file(&part);
        }
    }
    by_key && play(dialog, &tones::samples(tones::MESSAGE_MARK)).await
}

/// The next key, silence played meanwhile; None when the call ended or
/// nothing was pressed for the menu's time.
async fn wait_key(dialog: &Dialog) -> Option<char> {
    let mut tick = ticker();
    for _ in 0..MENU_TICKS {
        tick.tick().await;
        if dialog.is_ended() {
            return None;
        }
        if let Some(k) = dialog.endpoint.take_key() {
            return Some(k);
        }
        let _ = dialog.endpoint.take_frame();
        dialog.endpoint.send(&SILENCE);
    }
    None
}
