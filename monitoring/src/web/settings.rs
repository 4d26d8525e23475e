//! Web panel settings and logins, read from the UCI package `besip_system`
//! (YANG besip-system: `/system/web/*` and the `user` list).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use besip_core::model::system::{System, UserGroup};
use besip_core::uci::Package;

pub use besip_core::access::Group;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// argon2 PHC string or `$6$` crypt; empty when the user has SSH keys only.
    pub password_hash: String,
    pub group: Group,
}

/// A PEM private key: compared like a string, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(pub String);

impl std::fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretPem(..)")
    }
}

/// The certificate chain and key configured in besip-system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredCert {
    pub certificate: String,
    pub private_key: SecretPem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub enabled: bool,
    /// The HTTPS address.
    pub addr: SocketAddr,
    /// Plain HTTP that only redirects to `addr` (None: not served).
    pub redirect_addr: Option<SocketAddr>,
    /// None: the self-signed certificate generated under /etc/besip.
    pub certificate: Option<ConfiguredCert>,
    /// Named in a generated certificate.
    pub hostname: String,
    pub session_timeout: Duration,
    pub users: HashMap<String, User>,
}

impl WebSettings {
    /// `Ok(None)` when the file does not exist (no system configuration:
    /// the panel stays off). Absent options take the YANG defaults.
    pub fn load(path: &Path) -> Result<Option<WebSettings>, String> {
        if !path.exists() {
            return Ok(None);
        }
        let pkg = Package::load(path).map_err(|e| e.to_string())?;
        Self::from_package(&pkg, &path.display().to_string()).map(Some)
    }

    /// Settings from the package, read with the generated besip-system types
    /// (`besip_core::model::system`: YANG defaults, types and ranges).
    pub fn from_package(pkg: &Package, file: &str) -> Result<WebSettings, String> {
        let system = System::from_package(pkg).map_err(|e| e.to_string())?;
        Self::from_model(system, file)
    }

    /// The rules YANG does not state: the redirect port is not the HTTPS
    /// port, a certificate comes with its key.
    pub fn from_model(system: System, file: &str) -> Result<WebSettings, String> {
        let web = system.web;
        let ip = web.listen_address;
        if web.http_redirect_port == web.port {
            return Err(format!(
                "{file}: web http-redirect-port '{}' is the HTTPS port",
                web.http_redirect_port
            ));
        }
        let certificate = match (web.certificate, web.private_key) {
            (Some(certificate), Some(key)) => Some(ConfiguredCert {
                certificate,
                private_key: SecretPem(key),
            }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{file}: web certificate and private-key go together"
                ))
            }
        };
        let users = system
            .user
            .into_iter()
            .map(|u| {
                let group = match u.group {
                    UserGroup::Admin => Group::Admin,
                    UserGroup::Operator => Group::Operator,
                    UserGroup::Monitor => Group::Monitor,
                };
                let user = User {
                    password_hash: u.password_hash.unwrap_or_default(),
                    group,
                };
                (u.name, user)
            })
            .collect();
        Ok(WebSettings {
            enabled: web.enabled,
            addr: SocketAddr::new(ip, web.port),
            redirect_addr: (web.http_redirect_port != 0)
                .then(|| SocketAddr::new(ip, web.http_redirect_port)),
            certificate,
            hostname: system.hostname,
            session_timeout: Duration::from_secs(u64::from(web.session_timeout)),
            users,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_system_package() {
        let pkg = Package::parse(
            "besip_system",
            "package besip_system\n\nconfig system 'main'\n\toption hostname 'besip'\n\toption web_enabled '1'\n\toption web_listen_address '127.0.0.1'\n\toption web_port '8181'\n\toption web_http_redirect_port '0'\n\toption web_session_timeout '600'\n\nconfig user 'user_admin'\n\toption name 'admin'\n\toption password_hash '$argon2id$x'\n\toption group 'admin'\n\nconfig user 'user_mon'\n\toption name 'mon'\n\toption group 'monitor'\n",
        )
        .unwrap();
        let s = WebSettings::from_package(&pkg, "f").unwrap();
        assert_eq!(s.addr, "127.0.0.1:8181".parse().unwrap());
        assert_eq!(s.redirect_addr, None, "port 0: no plain HTTP");
        assert_eq!(s.session_timeout, Duration::from_secs(600));
        assert_eq!(s.users["admin"].group, Group::Admin);
        assert_eq!(s.users["mon"].password_hash, "");
        assert!(!s.users["mon"].group.may_write());
        assert!(s.users["admin"].group.may_write());
    }

    #[test]
    fn defaults_and_bad_values() {
        let pkg = Package::parse("besip_system", "package besip_system\n").unwrap();
        let s = WebSettings::from_package(&pkg, "f").unwrap();
        assert!(s.enabled);
        assert_eq!(s.addr, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(s.redirect_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(s.certificate, None);
        assert_eq!(s.hostname, "besip");
        for bad in [
            "\toption web_port 'http'\n",
            "\toption web_session_timeout '5'\n",
            "\toption web_listen_address 'localhost'\n",
            "\toption web_http_redirect_port '8443'\n",
            "\toption web_certificate '-----BEGIN CERTIFICATE-----'\n",
        ] {
            let pkg = Package::parse(
                "besip_system",
                &format!("package besip_system\n\nconfig system 'main'\n{bad}"),
            )
            .unwrap();
            assert!(WebSettings::from_package(&pkg, "f").is_err(), "{bad}");
        }
    }
}
