//! The signing key of an apk-tools v3 repository and the SIG block it
//! writes (src/adb.c adb_trust_write_signatures, src/crypto_openssl.c).
//!
//! apk-tools loads keys through OpenSSL's generic EVP interface and signs
//! with `EVP_DigestSign*` and SHA-512, which works for RSA and ECDSA keys
//! but not Ed25519 (a one-shot-only algorithm there); OpenWrt 25 signs its
//! feeds with ECDSA P-256 keys (`openssl ecparam -name prime256v1 -genkey`),
//! so that is what this module reads, generates and signs with.
//!
//! The key id is the first 16 bytes of SHA-512 over the public key as
//! OpenSSL's `i2d_PublicKey` writes it (for EC: the uncompressed point).
//! A signature (`struct adb_sign_v0`) is `sign_ver 0`, `hash_alg 4`
//! (SHA-512), the key id, then the DER ECDSA signature with SHA-512 over
//! `le32(schema) ‖ sign_ver ‖ hash_alg ‖ key id ‖ SHA-512(ADB block)`.

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use p256::SecretKey;
use sha2::{Digest, Sha512};
use snafu::{ResultExt, Snafu};

/// `APK_DIGEST_SHA512` (src/apk_crypto.h).
pub const HASH_SHA512: u8 = 4;

#[derive(Debug, Snafu)]
pub enum KeyError {
    #[snafu(display("cannot read {}: {source}", path.display()))]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("cannot write {}: {source}", path.display()))]
    WriteKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("{} is not an EC P-256 private key in PEM (SEC1 or PKCS#8)", path.display()))]
    KeyFormat { path: PathBuf },
    #[snafu(display("encoding the key: {reason}"))]
    Encode { reason: String },
    #[snafu(display("ECDSA signing failed: {reason}"))]
    Sign { reason: String },
}

/// An ECDSA P-256 signing key for `packages.adb`.
pub struct ApkKey {
    signing: SigningKey,
}

impl ApkKey {
    pub fn generate() -> Self {
        loop {
            // Almost every 32-byte string is a valid scalar; retry the rest.
            if let Ok(signing) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                return ApkKey { signing };
            }
        }
    }

    /// Read a private key as `openssl ecparam -genkey -noout` ("EC PRIVATE
    /// KEY", SEC1) or `openssl genpkey` ("PRIVATE KEY", PKCS#8) writes it.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).context(ReadKeySnafu { path })?;
        let secret = SecretKey::from_sec1_pem(&text)
            .ok()
            .or_else(|| SecretKey::from_pkcs8_pem(&text).ok())
            .ok_or_else(|| KeyError::KeyFormat {
                path: path.to_owned(),
            })?;
        Ok(ApkKey {
            signing: SigningKey::from(&secret),
        })
    }

    /// Write the private key (SEC1 PEM, as OpenWrt's build keys) and the
    /// public key (SubjectPublicKeyInfo PEM, for /etc/apk/keys/).
    pub fn write(&self, secret_path: &Path, public_path: &Path) -> Result<(), KeyError> {
        let secret = SecretKey::from(self.signing.as_nonzero_scalar());
        let pem = secret
            .to_sec1_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode {
                reason: e.to_string(),
            })?;
        std::fs::write(secret_path, pem.as_bytes()).context(WriteKeySnafu { path: secret_path })?;
        std::fs::write(public_path, self.public_pem()?).context(WriteKeySnafu { path: public_path })
    }

    /// The public key as `openssl ec -pubout` writes it.
    pub fn public_pem(&self) -> Result<String, KeyError> {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode {
                reason: e.to_string(),
            })
    }

    /// apk's intrinsic key id: SHA-512 of the uncompressed EC point, first 16 bytes.
    pub fn key_id(&self) -> [u8; 16] {
        let point = self.signing.verifying_key().to_sec1_point(false);
        let digest = Sha512::digest(point.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id
    }

    /// Name of the published public key file: apk finds keys by id, not by
    /// name, so any name under /etc/apk/keys/ ending in .pem works.
    pub fn public_file_name(&self) -> String {
        format!("besip-{}.pem", hex::encode(&self.key_id()[..8]))
    }

    /// The payload of a SIG block over the ADB block `adb` of a file whose
    /// schema is `schema`.
    pub fn sign(&self, schema: [u8; 4], adb: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut header = vec![0u8, HASH_SHA512];
        header.extend_from_slice(&self.key_id());
        let mut message = Sha512::new();
        // `schema` is the file's four id bytes, i.e. le32 of the schema id.
        message.update(schema);
        message.update(&header);
        message.update(Sha512::digest(adb));
        let prehash = message.finalize();
        // ECDSA truncates the SHA-512 digest to the curve's 256 bits, as
        // OpenSSL's EVP_DigestSign with SHA-512 on a P-256 key does.
        let signature: DerSignature =
            self.signing
                .sign_prehash(&prehash)
                .map_err(|e| KeyError::Sign {
                    reason: e.to_string(),
                })?;
        header.extend_from_slice(signature.as_bytes());
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::VerifyingKey;
    use p256::pkcs8::DecodePublicKey;

    #[test]
    fn written_keys_read_back_and_signatures_verify() {
        let dir = std::env::temp_dir().join(format!("apk-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = ApkKey::generate();
        key.write(&dir.join("k.pem"), &dir.join("k.pub.pem"))
            .unwrap();
        let reread = ApkKey::read(&dir.join("k.pem")).unwrap();
        assert_eq!(reread.key_id(), key.key_id());
        let text = std::fs::read_to_string(dir.join("k.pem")).unwrap();
        assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let public = std::fs::read_to_string(dir.join("k.pub.pem")).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        let verifying = VerifyingKey::from_public_key_pem(&public).unwrap();

        let adb = b"\0\0\0\0\0\0\0\0some adb block";
        let sig = reread.sign(*b"indx", adb).unwrap();
        assert_eq!(sig[0], 0, "sign_ver");
        assert_eq!(sig[1], HASH_SHA512);
        assert_eq!(&sig[2..18], &key.key_id());
        let rebuild = |schema: &[u8], adb: &[u8]| {
            let mut m = Sha512::new();
            m.update(schema);
            m.update(&sig[..18]);
            m.update(Sha512::digest(adb));
            m.finalize()
        };
        let der = p256::ecdsa::Signature::from_der(&sig[18..]).unwrap();
        assert!(verifying
            .verify_prehash(&rebuild(b"indx", adb), &der)
            .is_ok());
        assert!(verifying
            .verify_prehash(&rebuild(b"indx", b"another block"), &der)
            .is_err());
        assert!(verifying
            .verify_prehash(&rebuild(b"pckg", adb), &der)
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
