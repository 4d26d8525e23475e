//! The prompt store of the IVR menus: WAV files in the daemon's state
//! directory (prompts/<name>.wav), the default set written there when the
//! box is set up (scripts/gen-prompts, espeak-ng) and uploads through the
//! RPC upload-prompt, checked before they are kept.

use std::path::{Path, PathBuf};

use besip_media::wav;
use parking_lot::Mutex;

/// Longest prompt taken (2 minutes).
pub const MAX_MILLIS: u64 = 120_000;

#[derive(Default)]
pub struct Prompts {
    dir: Mutex<Option<PathBuf>>,
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
    pub fn open(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        *self.dir.lock() = Some(dir.to_owned());
        Ok(())
    }

    /// The samples of prompt `name`, when the store has it.
    pub fn get(&self, name: &str) -> Option<Vec<i16>> {
        if !valid_name(name) {
            return None;
        }
        let path = self.dir.lock().as_ref()?.join(format!("{name}.wav"));
        let audio = wav::parse(&std::fs::read(path).ok()?).ok()?;
        Some(audio.channel(0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_checked_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = Prompts::default();
        p.open(dir.path()).unwrap();
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
}
