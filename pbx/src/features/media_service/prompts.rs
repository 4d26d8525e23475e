//! The prompt store of the IVR menus: WAV files in the daemon's state
//! directory (prompts/<name>.wav) — uploads through the RPC upload-prompt
//! and recordings made by phone, checked before they are kept — over the
//! default set the packages install read-only (/usr/share/besip/prompts,
//! made by scripts/gen-prompts with espeak-ng when packages and images are
//! built). A prompt of the store hides the default of the same name.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use besip_media::wav;
use parking_lot::Mutex;

use super::playback::{play, record as record_call};
use super::{tones, Dialog};
use crate::features::state::Engine;

/// Longest prompt taken (2 minutes).
pub const MAX_MILLIS: u64 = 120_000;
/// A prompt recorded by phone shorter than this is nothing said.
const MIN_RECORDED_MILLIS: u64 = 500;

#[derive(Default)]
pub struct Prompts {
    dir: Mutex<Option<PathBuf>>,
    defaults: Mutex<Option<PathBuf>>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Prompts {
    /// Opens the store `dir` (created) over the read-only `defaults`.
    pub fn open(&self, dir: &Path, defaults: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        *self.dir.lock() = Some(dir.to_owned());
        *self.defaults.lock() = Some(defaults.to_owned());
        Ok(())
    }

    /// The samples of prompt `name`: the store's, else the default.
    pub fn get(&self, name: &str) -> Option<Vec<i16>> {
        if !valid_name(name) {
            return None;
        }
        let file = format!("{name}.wav");
        let dirs = [self.dir.lock().clone(), self.defaults.lock().clone()];
        dirs.into_iter().flatten().find_map(|d| {
            let audio = wav::parse(&std::fs::read(d.join(&file)).ok()?).ok()?;
            Some(audio.channel(0))
        })
    }

    /// Checks and stores an upload; its duration in milliseconds.
    pub fn store(&self, name: &str, bytes: &[u8]) -> Result<u64, String> {
        if !valid_name(name) {
            return Err(format!(
                "'{name}' is not a prompt name (letters, digits, _ . -)"
            ));
        }
        let audio = wav::parse(bytes).map_err(|e| e.to_string())?;
        if audio.channels != 1 {
            return Err("the prompt must be mono".into());
        }
        let millis = audio.millis();
        if millis == 0 || millis > MAX_MILLIS {
            return Err(format!(
                "the prompt lasts {millis} ms; 1 ms to 120 s are taken"
            ));
        }
        let dir = self
            .dir
            .lock()
            .clone()
            .ok_or("the prompt store is not open")?;
        // Written aside and renamed: a call never plays half a file.
        let part = dir.join(format!(".{name}.part"));
        std::fs::write(&part, wav::encode(1, &audio.samples)).map_err(|e| e.to_string())?;
        std::fs::rename(&part, dir.join(format!("{name}.wav"))).map_err(|e| e.to_string())?;
        Ok(millis)
    }
}

/// Records prompt `name` by phone (/pbx/prompt-recording): beep, what
/// the caller says until #, then it is played back and kept.
pub async fn record(engine: &Arc<Engine>, dialog: &Arc<Dialog>, name: &str) {
    if !play(dialog, &tones::samples(tones::BEEP)).await {
        return;
    }
    let max_ticks = u128::from(MAX_MILLIS / 20);
    let mut said: Vec<i16> = Vec::new();
    let by_key = record_call(dialog, max_ticks, |f| {
        said.extend_from_slice(f);
        Ok::<(), std::convert::Infallible>(())
    })
    .await;
    // The # itself (and what was keyed with it) is not kept: 100 ms off.
    said.truncate(said.len().saturating_sub(800));
    let millis = said.len() as u64 / 8;
    if millis < MIN_RECORDED_MILLIS {
        if by_key {
            let _ = play(dialog, &tones::samples(tones::WRONG)).await;
        }
        return;
    }
    match engine.media().prompts.store(name, &wav::encode(1, &said)) {
        Ok(ms) => tracing::info!(prompt = name, duration = ms, "prompt recorded by phone"),
        Err(e) => {
            tracing::warn!(prompt = name, error = %e, "a prompt recorded by phone not kept");
            return;
        }
    }
    if by_key && play(dialog, &said).await {
        let _ = play(dialog, &tones::samples(tones::MESSAGE_MARK)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_checked_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = Prompts::default();
        p.open(&dir.path().join("store"), &dir.path().join("none"))
            .unwrap();
        let tone = besip_media::tone::sine(440.0, 5000.0, 500);
        assert_eq!(p.store("hello", &wav::encode(1, &tone)), Ok(500));
        assert_eq!(p.get("hello").unwrap().len(), 4000);
        assert!(p.store("../x", &wav::encode(1, &tone)).is_err());
        assert!(p
            .store("st", &wav::encode(2, &tone))
            .unwrap_err()
            .contains("mono"));
        assert!(p.store("junk", b"RIFF....WAVEjunk").is_err());
        assert!(p.get("missing").is_none());
        assert!(p.get("../etc").is_none());
    }

    #[test]
    fn the_store_hides_the_shipped_default_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = dir.path().join("share");
        std::fs::create_dir_all(&defaults).unwrap();
        let short = besip_media::tone::sine(440.0, 5000.0, 100);
        std::fs::write(defaults.join("welcome.wav"), wav::encode(1, &short)).unwrap();
        let p = Prompts::default();
        p.open(&dir.path().join("store"), &defaults).unwrap();
        assert_eq!(p.get("welcome").map(|s| s.len()), Some(800), "the default");
        let long = besip_media::tone::sine(440.0, 5000.0, 200);
        p.store("welcome", &wav::encode(1, &long)).unwrap();
        assert_eq!(p.get("welcome").map(|s| s.len()), Some(1600), "the upload");
    }
}
