//! Crash-safe file replacement: write the new version into a file beside the
//! target, fsync it, rename it over the target, fsync the directory. A crash
//! at any point leaves either the old or the new file, never a torn one.
//!
//! The file written into is the inode the previous replacement displaced,
//! kept under a spare name (`.<name>.spare-<pid>`), not a fresh one: renaming
//! over the last link of a file frees its blocks inside rename(2), and on a
//! filesystem mounted with `discard` (SSDs, cloud disks) freeing waits for the
//! device. On this machine's ext4 that made a durable replacement 580 µs
//! instead of 350 µs, and a derived one 210 µs instead of 30 µs — on every
//! commit. The cost: a reader that keeps the file open across two
//! replacements sees the later one's bytes; every reader here (daemons at
//! reload, imports) reads the file whole at once.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Mode of files holding the configuration itself (password hashes, SIP
/// passwords): running.xml, backups, exports, the commit history.
pub const OWNER_ONLY: u32 = 0o600;

/// Narrow a file written before its kind was owner-only (an upgraded box):
/// it is not rewritten while its contents stay the same.
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(OWNER_ONLY))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    stage(path, contents)?.install()
}

/// Atomic replacement without waiting for the disk: for derived files (the
/// rendered UCI packages) that are rebuilt from running.xml at every start, so
/// a power cut can cost them nothing that matters.
pub fn replace_derived(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let spare = write_spare(path, contents, false)?;
    install_spare(&spare, path)
}

/// A derived file (a UCI package) written into `staged` for daemons to check
/// before it replaces `path` (two-phase reload). `staged` doubles as the
/// spare: after `install` it holds the displaced inode, reused next time.
pub fn stage_derived(path: &Path, staged: &Path, contents: &[u8]) -> std::io::Result<StagedFile> {
    std::fs::create_dir_all(parent_dir(staged))?;
    write_into(staged, contents, false)?;
    Ok(StagedFile {
        spare: staged.to_owned(),
        target: path.to_owned(),
    })
}

/// A new version of a file, written and fsynced beside it but not yet in
/// place: the slow disk wait can overlap other work (the commit stages
/// running.xml while its daemons reload) and the rename is decided later.
/// Dropped without `install`, it leaves the old file untouched.
pub struct StagedFile {
    spare: PathBuf,
    target: PathBuf,
}

pub fn stage(path: &Path, contents: &[u8]) -> std::io::Result<StagedFile> {
    Ok(StagedFile {
        spare: write_spare(path, contents, true)?,
        target: path.to_owned(),
    })
}

impl StagedFile {
    /// Rename over the target and make the rename durable.
    pub fn install(self) -> std::io::Result<()> {
        install_spare(&self.spare, &self.target)?;
        File::open(parent_dir(&self.target))?.sync_all()
    }

    /// Rename over the target without waiting for the disk (a derived
    /// file: start-up renders it again from running.xml).
    pub fn install_derived(self) -> std::io::Result<()> {
        install_spare(&self.spare, &self.target)
    }

    /// The file `install` replaces.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where the new contents wait until `install`.
    pub fn staged_path(&self) -> &Path {
        &self.spare
    }

    /// Drop the new contents without installing them.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.spare);
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `.<name>.<kind>-<pid>` beside `path`: the pid keeps two processes that
/// write the same file from writing into one spare.
fn side_path(path: &Path, kind: &str) -> PathBuf {
    parent_dir(path).join(format!(
        ".{}.{kind}-{}",
        file_name(path),
        std::process::id()
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Write `contents` into the spare of `path` (created on first use).
/// Every file written here holds configuration with secrets (running.xml,
/// backups, exports: password hashes; the UCI packages besip_system and
/// besip_pbx: hashes, SIP passwords), so all are readable by their owner
/// only (the daemons that read the packages run as that owner, root).
fn write_spare(path: &Path, contents: &[u8], durable: bool) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(parent_dir(path))?;
    remove_stale_side_files(path);
    let spare = side_path(path, "spare");
    write_into(&spare, contents, durable)?;
    Ok(spare)
}

/// Write `contents` into `spare`, reusing its inode when it exists.
fn write_into(spare: &Path, contents: &[u8], durable: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    // A spare that is a symlink (planted, or a target that was one) is not
    // written through.
    options.custom_flags(libc::O_NOFOLLOW);
    options.mode(OWNER_ONLY);
    let mut file = match options.open(spare) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            std::fs::remove_file(spare)?;
            options.open(spare)?
        }
        other => other?,
    };
    // A reused spare may be an inode written before with a wider mode.
    file.set_permissions(std::fs::Permissions::from_mode(OWNER_ONLY))?;
    file.write_all(contents)?;
    file.set_len(contents.len() as u64)?;
    if durable {
        file.sync_all()?;
    }
    Ok(())
}

/// Rename the spare over `path`, keeping the inode it displaces as the next spare.
fn install_spare(spare: &Path, path: &Path) -> std::io::Result<()> {
    // Only a plain file nobody else links to is reused: a hard link the user
    // made (a quick backup) must keep its contents, as it did with fresh files.
    let reusable = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.nlink() == 1);
    if !reusable {
        std::fs::rename(spare, path)?;
        return Ok(());
    }
    let displaced = side_path(path, "displaced");
    let kept = match std::fs::hard_link(path, &displaced) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_file(&displaced).is_ok() && std::fs::hard_link(path, &displaced).is_ok()
        }
        // No hard links on this filesystem: a fresh spare next time.
        Err(_) => false,
    };
    std::fs::rename(spare, path)?;
    if kept {
        std::fs::rename(&displaced, spare)?;
    }
    Ok(())
}

/// Once per file and process: remove side files an earlier process left
/// (its pid is in their names), so restarts do not pile up spares.
fn remove_stale_side_files(path: &Path) {
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let Ok(mut cleaned) = CLEANED.lock() else {
        return;
    };
    if !cleaned
        .get_or_insert_with(HashSet::new)
        .insert(path.to_owned())
    {
        return;
    }
    let prefix = format!(".{}.", file_name(path));
    let own_suffix = format!("-{}", std::process::id());
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(&prefix) {
            let ours = rest.ends_with(&own_suffix);
            let side_file = ["spare-", "displaced-", "tmp-", "staged-"]
                .iter()
                .any(|kind| rest.starts_with(kind));
            if side_file && !ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("running.xml");
        super::write_atomically(&path, b"one").unwrap();
        super::write_atomically(&path, b"two, longer").unwrap();
        super::write_atomically(&path, b"three").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(visible_files(dir.path()), ["running.xml"]);
        // Two inodes take turns: the target and one spare, nothing else.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_staged_file_replaces_only_when_installed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("running.xml");
        super::write_atomically(&path, b"old").unwrap();
        drop(super::stage(&path, b"abandoned").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        super::stage(&path, b"new").unwrap().install().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(visible_files(dir.path()), ["running.xml"]);
    }

    #[test]
    fn the_displaced_file_is_reused_not_freed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("besip_pbx");
        let inode = || std::fs::metadata(&path).unwrap().ino();
        super::replace_derived(&path, b"first").unwrap();
        let first = inode();
        super::replace_derived(&path, b"second").unwrap();
        let second = inode();
        super::replace_derived(&path, b"3").unwrap();
        assert_ne!(first, second);
        assert_eq!(
            inode(),
            first,
            "the third version reuses the first one's inode"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"3",
            "a shorter version is cut to length"
        );
    }

    #[test]
    fn a_file_linked_elsewhere_keeps_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("running.xml");
        let backup = dir.path().join("backup.xml");
        super::write_atomically(&path, b"one").unwrap();
        std::fs::hard_link(&path, &backup).unwrap();
        for version in [&b"two"[..], b"three", b"four"] {
            super::write_atomically(&path, version).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"four");
        assert_eq!(std::fs::read(&backup).unwrap(), b"one");
    }

    #[test]
    fn a_symlinked_spare_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("besip_pbx");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let spare = dir
            .path()
            .join(format!(".besip_pbx.spare-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &spare).unwrap();
        super::replace_derived(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    }

    #[test]
    fn the_configuration_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("running.xml");
        std::fs::write(&path, b"old, world-readable").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        for version in [&b"two"[..], b"three", b"four"] {
            super::write_atomically(&path, version).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Rendered UCI packages hold SIP passwords too.
        let package = dir.path().join("besip_pbx");
        std::fs::write(&package, b"old, world-readable").unwrap();
        std::fs::set_permissions(&package, std::fs::Permissions::from_mode(0o644)).unwrap();
        for version in [&b"two"[..], b"three", b"four"] {
            super::replace_derived(&package, version).unwrap();
            let mode = std::fs::metadata(&package).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn side_files_of_another_process_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.xml");
        std::fs::write(dir.path().join(".stale.xml.spare-999999999"), b"x").unwrap();
        std::fs::write(dir.path().join(".stale.xml.staged-999999999"), b"x").unwrap();
        std::fs::write(dir.path().join(".other.spare-999999999"), b"x").unwrap();
        super::write_atomically(&path, b"new").unwrap();
        let mut names = all_files(dir.path());
        names.sort();
        assert_eq!(
            names,
            [
                ".other.spare-999999999".to_string(),
                "stale.xml".to_string()
            ]
        );
    }

    fn all_files(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn visible_files(dir: &std::path::Path) -> Vec<String> {
        all_files(dir)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    }
}
