//! The panel's TLS: either the certificate configured in besip-system or a
//! self-signed one generated on the first start and kept under /etc/besip
//! (besip_core::tls), with HTTP/1.1 as the ALPN protocol.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;

use super::settings::ConfiguredCert;

/// The generated certificate and its key, in the etc directory.
pub const CERT_FILE: &str = "web-cert.pem";
pub const KEY_FILE: &str = "web-key.pem";

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
    let mut config = besip_core::tls::server_config(cert_pem, key_pem, origin)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate generated earlier under `dir`, or a new one written there.
pub fn load_or_generate(
    dir: &Path,
    hostname: &str,
    listen: IpAddr,
) -> Result<Arc<ServerConfig>, String> {
    let spec = besip_core::tls::Generated {
        dir,
        cert_file: CERT_FILE,
        key_file: KEY_FILE,
        common_name: hostname,
        names: names(hostname, listen),
        purpose: "web panel",
    };
    let (cert, key) = besip_core::tls::load_or_generate(&spec)?;
    server_config(&cert, &key, &dir.join(CERT_FILE).display().to_string())
}

/// The host name, localhost, 127.0.0.1, ::1 and a specific listen address.
fn names(hostname: &str, listen: IpAddr) -> Vec<String> {
    let mut names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    names
}

/// A self-signed certificate for the panel: (certificate, key) in PEM.
pub fn generate(hostname: &str, listen: IpAddr) -> Result<(String, String), String> {
    besip_core::tls::generate(hostname, names(hostname, listen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
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
