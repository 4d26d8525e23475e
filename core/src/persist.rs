//! Crash-safe file replacement: write a temporary file in the same directory,
//! fsync it, rename it over the target, fsync the directory. A crash at any
//! point leaves either the old or the new file, never a torn one.

use std::io::Write;
use std::path::Path;

pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_replacing(path, contents, true)
}

/// Atomic replacement without waiting for the disk: for derived files (the
/// rendered UCI packages) that are rebuilt from running.xml at every start, so
/// a power cut can cost them nothing that matters.
pub fn replace_derived(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_replacing(path, contents, false)
}

fn write_replacing(path: &Path, contents: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
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
}
