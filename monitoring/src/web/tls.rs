//! The panel's TLS: rustls (ring provider) with either the certificate
//! configured in besip-system or a self-signed one generated on the first
//! start and kept under /etc/besip (key mode 0600), so a browser that
//! accepted it once keeps accepting it after a restart.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use chrono::Datelike;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::settings::ConfiguredCert;

/// The generated certificate and its key, in the etc directory.
pub const CERT_FILE: &str = "web-cert.pem";
pub const KEY_FILE: &str = "web-key.pem";
/// A generated certificate is valid this long (a self-signed one is
/// trusted by pinning, not by a CA's lifetime rules).
const GENERATED_YEARS: i32 = 10;

/// The server configuration for `settings` (configured PEM or the generated
/// files under `etc_dir`, made now if absent).
pub fn server_config_for(
    configured: Option<&ConfiguredCert>,
    etc_dir: &Path,
    hostname: &str,
    listen: IpAddr,
) -> Result<Arc<ServerConfig>, String> {
    match configured {
        Some(c) => server_config(
            &c.certificate,
            &c.private_key.0,
            "besip-system web certificate",
        ),
        None => load_or_generate(etc_dir, hostname, listen),
    }
}

/// A rustls server configuration from PEM text; `origin` names it in errors.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    origin: &str,
) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{origin}: the certificate is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{origin}: no CERTIFICATE block in the PEM text"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("{origin}: the private key is not a PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("{origin}: the private key cannot be used: {e}"))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing_key)
        .keys_match()
        .map_err(|e| format!("{origin}: the certificate and key cannot be used together: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{origin}: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{origin}: the certificate and key cannot be used together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate generated earlier under `dir`, or a new one written there.
/// Broken files are an error (not silently replaced): deleting both makes a
/// new certificate at the next start or reload.
pub fn load_or_generate(
    dir: &Path,
    hostname: &str,
    listen: IpAddr,
) -> Result<Arc<ServerConfig>, String> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
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
        let (cert, key) = (read(&cert_path)?, read(&key_path)?);
        return server_config(&cert, &key, &cert_path.display().to_string());
    }
    let (cert, key) = generate(hostname, listen)?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_atomically(&key_path, &key, 0o600)?;
    write_atomically(&cert_path, &cert, 0o644)?;
    tracing::info!(cert = %cert_path.display(), %hostname, "web panel: generated a self-signed certificate");
    server_config(&cert, &key, &cert_path.display().to_string())
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

/// A self-signed ECDSA P-256 certificate for the host name, localhost,
/// 127.0.0.1, ::1 and a specific listen address: (certificate, key) in PEM.
pub fn generate(hostname: &str, listen: IpAddr) -> Result<(String, String), String> {
    let mut names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    let bad = |e: rcgen::Error| format!("cannot generate the web certificate: {e}");
    let mut params = rcgen::CertificateParams::new(names).map_err(bad)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, hostname);
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

    #[test]
    fn generated_once_then_reused_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let ip = "0.0.0.0".parse().unwrap();
        load_or_generate(dir.path(), "box1", ip).unwrap();
        let cert = fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        load_or_generate(dir.path(), "box2", ip).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(CERT_FILE)).unwrap(),
            cert,
            "reused"
        );
        fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let e = load_or_generate(dir.path(), "box1", ip).unwrap_err();
        assert!(e.contains("private key"), "{e}");
    }

    #[test]
    fn configured_pem_must_be_a_matching_pair() {
        let ip = "127.0.0.1".parse().unwrap();
        let (c1, k1) = generate("a", ip).unwrap();
        let (_c2, k2) = generate("b", ip).unwrap();
        server_config(&c1, &k1, "t").unwrap();
        let e = server_config(&c1, &k2, "t").unwrap_err();
        assert!(e.contains("cannot be used together"), "{e}");
        let e = server_config("hello", &k1, "t").unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }
}
