//! The boxes' SSH host keys, checked as `ssh` does: the first connection to
//! a host:port stores its key (trust on first use), later connections must
//! offer the same key, and a different key is refused until the user accepts
//! it (`--accept-new-host-key`) or removes the stored line. The file uses
//! OpenSSH's known_hosts line format (`[host]:port algorithm base64`).

use russh::keys::ssh_key::HashAlg;
use russh::keys::PublicKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where host keys are kept and whether a changed key may replace the stored one.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    pub file: PathBuf,
    pub accept_new: bool,
}

impl HostKeyPolicy {
    /// `$BESIP_KNOWN_HOSTS`, else `~/.besip/known_hosts`.
    pub fn default_file() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("BESIP_KNOWN_HOSTS").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        Some(PathBuf::from(home).join(".besip").join("known_hosts"))
    }
}

/// What the check concluded about the offered key.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The stored key.
    Known,
    /// First connection: the key is now stored.
    Stored,
    /// A different key replaced the stored one (`accept_new`).
    Replaced,
    /// A different key than the one stored at this line: refuse.
    Changed { line: usize, stored: String },
}

/// How the file names a host: `host` for port 22, else `[host]:port` (as ssh).
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Compare `key` with what `policy.file` holds for `name`, storing it when new
/// (or when changed and `accept_new`).
pub fn check(policy: &HostKeyPolicy, name: &str, key: &PublicKey) -> Result<Verdict, String> {
    let text = match std::fs::read_to_string(&policy.file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", policy.file.display())),
    };
    let offered = key_line(key)?;
    let mut changed = None;
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(names), Some(algorithm), Some(data)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if line.starts_with('#') || !names.split(',').any(|h| h == name) {
            continue;
        }
        if format!("{algorithm} {data}") == offered {
            return Ok(Verdict::Known);
        }
        if changed.is_none() {
            let stored = PublicKey::from_openssh(&format!("{algorithm} {data}"))
                .map(|k| fingerprint(&k))
                .unwrap_or_else(|_| format!("{algorithm} (unreadable)"));
            changed = Some((n + 1, stored));
        }
    }
    match changed {
        None => {
            append(&policy.file, &format!("{name} {offered}\n"))?;
            Ok(Verdict::Stored)
        }
        Some((line, stored)) if !policy.accept_new => Ok(Verdict::Changed { line, stored }),
        Some(_) => {
            let mut kept: String = text
                .lines()
                .filter(|l| {
                    l.starts_with('#')
                        || !l
                            .split_whitespace()
                            .next()
                            .is_some_and(|names| names.split(',').any(|h| h == name))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            kept.push_str(&format!("{name} {offered}\n"));
            replace(&policy.file, &kept)?;
            Ok(Verdict::Replaced)
        }
    }
}

fn key_line(key: &PublicKey) -> Result<String, String> {
    let text = key
        .to_openssh()
        .map_err(|e| format!("cannot encode the host key: {e}"))?;
    // "algorithm base64 [comment]" without the comment.
    Ok(text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

fn open_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.mode(0o600);
    options
}

fn make_parent(file: &Path) -> Result<(), String> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

fn append(file: &Path, line: &str) -> Result<(), String> {
    make_parent(file)?;
    open_options()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Write the whole file anew through a temporary file and a rename.
fn replace(file: &Path, text: &str) -> Result<(), String> {
    make_parent(file)?;
    let temporary = file.with_extension("new");
    open_options()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&temporary)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|_| std::fs::rename(&temporary, file))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        let private = russh::keys::PrivateKey::from(
            russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]),
        );
        private.public_key().clone()
    }

    #[test]
    fn stores_first_key_refuses_a_changed_one_and_replaces_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = HostKeyPolicy {
            file: dir.path().join("sub/known_hosts"),
            accept_new: false,
        };
        let name = host_name("192.0.2.1", 830);
        assert_eq!(name, "[192.0.2.1]:830");
        assert_eq!(check(&policy, &name, &key(1)), Ok(Verdict::Stored));
        assert_eq!(check(&policy, &name, &key(1)), Ok(Verdict::Known));
        // Another port is another host.
        assert_eq!(
            check(&policy, &host_name("192.0.2.1", 22), &key(2)),
            Ok(Verdict::Stored)
        );
        let Ok(Verdict::Changed { line: 1, stored }) = check(&policy, &name, &key(2)) else {
            panic!("a changed key must be refused");
        };
        assert_eq!(stored, fingerprint(&key(1)));
        policy.accept_new = true;
        assert_eq!(check(&policy, &name, &key(2)), Ok(Verdict::Replaced));
        policy.accept_new = false;
        assert_eq!(check(&policy, &name, &key(2)), Ok(Verdict::Known));
        assert_eq!(check(&policy, "192.0.2.1", &key(2)), Ok(Verdict::Known));
    }
}
