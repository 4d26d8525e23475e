//! OpenWrt's `usign` key and signature files (Ed25519), written and read
//! byte for byte as usign does, so opkg on a router verifies our feed with
//! the key we publish. Layouts (all base64 under an "untrusted comment" line):
//! secret `Ed BK rounds(u32) salt[16] checksum[8] fingerprint[8] seed[32] public[32]`,
//! public `Ed fingerprint[8] public[32]`, signature `Ed fingerprint[8] sig[64]`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha512};
use snafu::{ensure, ResultExt, Snafu};

#[derive(Debug, Snafu)]
pub enum UsignError {
    #[snafu(display("cannot read {}: {source}", path.display()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("cannot write {}: {source}", path.display()))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("{} is not a usign {what}: {reason}", path.display()))]
    Format {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
}

const SECRET_LEN: usize = 2 + 2 + 4 + 16 + 8 + 8 + 64;
const PUBLIC_LEN: usize = 2 + 8 + 32;
const SIGNATURE_LEN: usize = 2 + 8 + 64;

/// A usign secret key: the Ed25519 seed and the random 8-byte fingerprint
/// that names the key (its "key id").
pub struct SecretKey {
    fingerprint: [u8; 8],
    signing: SigningKey,
}

impl SecretKey {
    pub fn generate() -> Self {
        SecretKey {
            fingerprint: rand::random(),
            signing: SigningKey::from_bytes(&rand::random()),
        }
    }

    /// The key id as usign prints it (`%PRIx64`: lower-case hex, no leading
    /// zeros); opkg looks the public key up as `/etc/opkg/keys/<key id>`.
    pub fn key_id(&self) -> String {
        key_id(&self.fingerprint)
    }

    pub fn read(path: &Path) -> Result<Self, UsignError> {
        let raw = read_base64(path, "secret key", SECRET_LEN)?;
        let bad = |reason: &str| UsignError::Format {
            path: path.to_owned(),
            what: "secret key",
            reason: reason.to_owned(),
        };
        ensure!(
            &raw[0..2] == b"Ed",
            FormatSnafu {
                path,
                what: "secret key",
                reason: "algorithm is not Ed"
            }
        );
        if raw[4..8] != [0, 0, 0, 0] {
            return Err(bad(
                "password-protected keys are not supported (usign neither)",
            ));
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&raw[32..40]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&raw[40..72]);
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().as_bytes()[..] != raw[72..104] {
            return Err(bad("the public half does not match the seed"));
        }
        Ok(SecretKey {
            fingerprint,
            signing,
        })
    }

    /// Write the secret key and its public key in usign's file format.
    pub fn write(&self, secret_path: &Path, public_path: &Path) -> Result<(), UsignError> {
        let mut secret_bytes = [0u8; 64];
        secret_bytes[..32].copy_from_slice(self.signing.as_bytes());
        secret_bytes[32..].copy_from_slice(self.signing.verifying_key().as_bytes());
        let mut raw = Vec::with_capacity(SECRET_LEN);
        raw.extend_from_slice(b"EdBK");
        raw.extend_from_slice(&0u32.to_be_bytes());
        raw.extend_from_slice(&rand::random::<[u8; 16]>());
        raw.extend_from_slice(&Sha512::digest(secret_bytes)[..8]);
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&secret_bytes);
        write_base64(secret_path, &format!("private key {}", self.key_id()), &raw)?;
        write_base64(
            public_path,
            &format!("public key {}", self.key_id()),
            &self.public_raw(),
        )
    }

    fn public_raw(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(PUBLIC_LEN);
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(self.signing.verifying_key().as_bytes());
        raw
    }

    /// Write the public key file under `dir`, named after the key id.
    pub fn write_public_into(&self, dir: &Path) -> Result<PathBuf, UsignError> {
        let path = dir.join(self.key_id());
        write_base64(
            &path,
            &format!("public key {}", self.key_id()),
            &self.public_raw(),
        )?;
        Ok(path)
    }

    /// The contents of a `.sig` file over `message`, as `usign -S` writes it.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut raw = Vec::with_capacity(SIGNATURE_LEN);
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&self.signing.sign(message).to_bytes());
        format!(
            "untrusted comment: signed by key {}\n{}\n",
            self.key_id(),
            BASE64.encode(raw)
        )
    }
}

/// Verify a usign signature file against a public key file (`usign -V`).
pub fn verify(
    public_path: &Path,
    signature_path: &Path,
    message: &[u8],
) -> Result<bool, UsignError> {
    let public = read_base64(public_path, "public key", PUBLIC_LEN)?;
    let signature = read_base64(signature_path, "signature", SIGNATURE_LEN)?;
    if public[..2] != *b"Ed" || signature[..2] != *b"Ed" || public[2..10] != signature[2..10] {
        return Ok(false);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&public[10..42]);
    let Ok(key) = VerifyingKey::from_bytes(&key) else {
        return Ok(false);
    };
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&signature[10..74]);
    Ok(key
        .verify(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok())
}

fn key_id(fingerprint: &[u8; 8]) -> String {
    format!("{:x}", u64::from_be_bytes(*fingerprint))
}

fn read_base64(path: &Path, what: &'static str, len: usize) -> Result<Vec<u8>, UsignError> {
    let text = std::fs::read_to_string(path).context(ReadSnafu { path })?;
    let body = text.lines().nth(1).unwrap_or_default().trim();
    let raw = BASE64.decode(body).map_err(|e| UsignError::Format {
        path: path.to_owned(),
        what,
        reason: e.to_string(),
    })?;
    ensure!(
        raw.len() == len,
        FormatSnafu {
            path,
            what,
            reason: format!("{} bytes, expected {len}", raw.len())
        }
    );
    Ok(raw)
}

fn write_base64(path: &Path, comment: &str, raw: &[u8]) -> Result<(), UsignError> {
    let text = format!("untrusted comment: {comment}\n{}\n", BASE64.encode(raw));
    std::fs::write(path, text).context(WriteSnafu { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_drops_leading_zeros_like_usign() {
        assert_eq!(key_id(&[0, 0, 0, 0, 0, 0, 0x0a, 0xbc]), "abc");
    }

    #[test]
    fn written_keys_sign_and_verify_and_tampering_fails() {
        let dir = std::env::temp_dir().join(format!("usign-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = SecretKey::generate();
        key.write(&dir.join("key.sec"), &dir.join("key.pub"))
            .unwrap();
        let reread = SecretKey::read(&dir.join("key.sec")).unwrap();
        std::fs::write(dir.join("msg.sig"), reread.sign(b"Package: x\n")).unwrap();
        assert!(verify(&dir.join("key.pub"), &dir.join("msg.sig"), b"Package: x\n").unwrap());
        assert!(!verify(&dir.join("key.pub"), &dir.join("msg.sig"), b"Package: y\n").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
