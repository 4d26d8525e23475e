//! Certificates of the box's TLS servers (the web panel, SIP over TLS):
//! a rustls server configuration from configured PEM text, or a self-signed
//! certificate generated on the first start and kept in the etc directory
//! (key mode 0600), so a client that pinned it once keeps trusting it after
//! a restart.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use chrono::Datelike;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A generated certificate is valid this long (a self-signed one is
/// trusted by pinning, not by a CA's lifetime rules).
const GENERATED_YEARS: i32 = 10;

/// The ring provider every TLS configuration of the box uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of PEM text; `origin` names it in errors.
pub fn certificates(pem: &str, origin: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{origin}: the certificate is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{origin}: no CERTIFICATE block in the PEM text"));
    }
    Ok(chain)
}

/// A rustls server configuration (no client authentication) from PEM text;
/// `origin` names it in errors. Callers set their ALPN protocols.
pub fn server_config(cert_pem: &str, key_pem: &str, origin: &str) -> Result<ServerConfig, String> {
    let chain = certificates(cert_pem, origin)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("{origin}: the private key is not a PEM private key: {e}"))?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("{origin}: the private key cannot be used: {e}"))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing_key)
        .keys_match()
        .map_err(|e| format!("{origin}: the certificate and key cannot be used together: {e}"))?;
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{origin}: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{origin}: the certificate and key cannot be used together: {e}"))
}

/// Where a generated certificate is kept, and what it names.
pub struct Generated<'a> {
    pub dir: &'a Path,
    pub cert_file: &'a str,
    pub key_file: &'a str,
    /// Common name (the host name).
    pub common_name: &'a str,
    /// Subject alternative names (DNS names or IP addresses).
    pub names: Vec<String>,
    /// What the certificate is for, in the log ("web panel", "SIP over TLS").
    pub purpose: &'a str,
}

/// The PEM (certificate, key) generated earlier under `g.dir`, or a new pair
/// written there. Broken files are an error (not silently replaced):
/// deleting both makes a new certificate at the next start.
pub fn load_or_generate(g: &Generated<'_>) -> Result<(String, String), String> {
    let (cert_path, key_path) = (g.dir.join(g.cert_file), g.dir.join(g.key_file));
    if cert_path.exists() || key_path.exists() {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| {
                format!(
                    "cannot read {}: {e} (delete {} and {} to generate a new certificate)",
                    p.display(),
                    cert_path.display(),
                    key_path.display()
                )
            })
        };
        return Ok((read(&cert_path)?, read(&key_path)?));
    }
    let (cert, key) = generate(g.common_name, g.names.clone())?;
    fs::create_dir_all(g.dir).map_err(|e| format!("cannot create {}: {e}", g.dir.display()))?;
    write_atomically(&key_path, &key, 0o600)?;
    write_atomically(&cert_path, &cert, 0o644)?;
    tracing::info!(cert = %cert_path.display(), hostname = %g.common_name, purpose = g.purpose, "generated a self-signed certificate");
    Ok((cert, key))
}

fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let tmp = path.with_extension("pem.tmp");
    let _ = fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// A self-signed ECDSA P-256 certificate for `names`: (certificate, key) in PEM.
pub fn generate(common_name: &str, names: Vec<String>) -> Result<(String, String), String> {
    let bad = |e: rcgen::Error| format!("cannot generate a certificate: {e}");
    let mut params = rcgen::CertificateParams::new(names).map_err(bad)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    dn.push(rcgen::DnType::OrganizationName, "BESIP-rs");
    params.distinguished_name = dn;
    let today = chrono::Utc::now().date_naive();
    let start = today.pred_opt().unwrap_or(today);
    params.not_before = rcgen::date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
    // The 28th exists in every month: no 29 February ten years on.
    params.not_after = rcgen::date_time_ymd(
        today.year() + GENERATED_YEARS,
        today.month() as u8,
        today.day().min(28) as u8,
    );
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn spec(dir: &Path) -> Generated<'_> {
        Generated {
            dir,
            cert_file: "c.pem",
            key_file: "k.pem",
            common_name: "box1",
            names: vec!["localhost".into(), "127.0.0.1".into()],
            purpose: "test",
        }
    }

    #[test]
    fn generated_once_then_reused_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = load_or_generate(&spec(dir.path())).unwrap();
        server_config(&cert, &key, "t").unwrap();
        let mode = fs::metadata(dir.path().join("k.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            load_or_generate(&spec(dir.path())).unwrap().0,
            cert,
            "reused"
        );
    }

    #[test]
    fn configured_pem_must_be_a_matching_pair() {
        let names = || vec!["localhost".to_string()];
        let (c1, k1) = generate("a", names()).unwrap();
        let (_c2, k2) = generate("b", names()).unwrap();
        server_config(&c1, &k1, "t").unwrap();
        let e = server_config(&c1, &k2, "t").unwrap_err();
        assert!(e.contains("cannot be used together"), "{e}");
        let e = server_config("hello", &k1, "t").unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }
}
