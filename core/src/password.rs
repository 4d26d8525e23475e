//! Password hashes of besip-system users, shared by the SSH server and the web
//! panel: argon2id (PHC string) for new hashes; argon2i and SHA-512-crypt
//! (`$6$`, as /etc/shadow and OpenWrt use) accepted when verifying.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use snafu::Snafu;

/// argon2 could not hash (in practice: a password beyond its limits).
#[derive(Debug, Snafu)]
#[snafu(display("cannot hash the password: {message}"))]
pub struct HashError {
    message: String,
}

/// For callers whose own errors are still text (the CLI's `up`, netconfd's
/// first-admin setup).
impl From<HashError> for String {
    fn from(e: HashError) -> String {
        e.to_string()
    }
}

/// Hash a new password with argon2id and a random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError {
            message: e.to_string(),
        })
}

/// Does `password` match `stored`? An unknown or malformed hash never matches.
pub fn verify(stored: &str, password: &str) -> bool {
    if stored.starts_with("$6$") {
        return sha_crypt::sha512_check(password, stored).is_ok();
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password for the first admin: 20 characters from an alphabet
/// without look-alikes (no 0/O, 1/l/I).
pub fn random_password() -> String {
    use argon2::password_hash::rand_core::RngCore;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "s3cret"));
        assert!(!verify(&h, "S3cret"));
    }

    #[test]
    fn sha512_crypt_from_shadow() {
        // glibc crypt("s3cret", "$6$saltsalt$"), as in an /etc/shadow line.
        let stored = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
        assert!(verify(stored, "s3cret"));
        assert!(!verify(stored, "nope"));
    }

    #[test]
    fn garbage_never_matches() {
        for stored in ["", "plain", "$6$", "$argon2id$broken", "$1$md5$x"] {
            assert!(!verify(stored, ""));
            assert!(!verify(stored, "plain"));
        }
    }

    #[test]
    fn random_passwords_differ_and_avoid_look_alikes() {
        let a = random_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_password());
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
    }
}
