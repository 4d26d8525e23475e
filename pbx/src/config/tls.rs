//! /pbx/tls as the PBX uses it (read from the generated
//! `besip_core::model::pbx` types; the TLS machinery is in transport::tls).

use std::time::Duration;

use besip_core::model::pbx::PbxTls;

/// A PEM private key: compared like a string, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(pub String);

impl std::fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretPem(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// /pbx/tls/certificate and private-key; None: the generated pair.
    pub configured: Option<(String, SecretPem)>,
    /// /pbx/tls/handshake-timeout
    pub handshake_timeout: Duration,
}

impl Default for TlsSettings {
    /// The YANG defaults.
    fn default() -> Self {
        TlsSettings::from_model(&PbxTls::default())
    }
}

impl TlsSettings {
    pub fn from_model(tls: &PbxTls) -> TlsSettings {
        // YANG's must keeps the two together; one alone counts as neither.
        let configured = match (&tls.certificate, &tls.private_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), SecretPem(key.clone()))),
            _ => None,
        };
        TlsSettings {
            configured,
            handshake_timeout: Duration::from_secs(u64::from(tls.handshake_timeout)),
        }
    }
}
