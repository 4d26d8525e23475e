//! Crash-safe file replacement: write a temporary file in the same directory,
//! fsync it, rename it over the target, fsync the directory. A crash at any
//! point leaves either the old or the new file, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_replacing(path, contents, true)
}

/// Atomic replacement without waiting for the disk: for derived files (the
/// rendered UCI packages) that are rebuilt from running.xml at every start, so
/// a power cut can cost them nothing that matters.
pub fn replace_derived(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_replacing(path, contents, false)
}

/// A new version of a file, written and fsynced beside it but not yet in
/// place: the slow disk wait can overlap other work (the commit stages
/// running.xml while its daemons reload) and the rename is decided later.
/// Dropped without `install`, it leaves the old file untouched.
pub struct StagedFile {
    temp: PathBuf,
    target: PathBuf,
    installed: bool,
}

pub fn stage(path: &Path, contents: &[u8]) -> std::io::Result<StagedFile> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = temp_path(path, "staged");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(StagedFile {
        temp,
        target: path.to_owned(),
        installed: false,
    })
}

impl StagedFile {
    /// Rename over the target and make the rename durable.
    pub fn install(mut self) -> std::io::Result<()> {
        std::fs::rename(&self.temp, &self.target)?;
        self.installed = true;
        let dir = self.target.parent().unwrap_or_else(|| Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.installed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn temp_path(path: &Path, kind: &str) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{file_name}.{kind}-{}", std::process::id()))
}

fn write_replacing(path: &Path, contents: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = temp_path(path, "tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&temp, path)?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("running.xml");
        super::write_atomically(&path, b"one").unwrap();
        super::write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_staged_file_replaces_only_when_installed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("running.xml");
        super::write_atomically(&path, b"old").unwrap();
        drop(super::stage(&path, b"abandoned").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        super::stage(&path, b"new").unwrap().install().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
