//! Web panel settings and logins, read from the UCI package `besip_system`
//! (YANG besip-system: `/system/web/*` and the `user` list).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

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

    pub fn from_package(pkg: &Package, file: &str) -> Result<WebSettings, String> {
        let empty = besip_core::uci::Section::new("system", "main");
        let main = pkg.section("main").unwrap_or(&empty);
        let enabled = main
            .get_bool("web_enabled")
            .map_err(|e| e.to_string())?
            .unwrap_or(true);
        let ip: IpAddr = main
            .get_parsed("web_listen_address")
            .map_err(|e| e.to_string())?
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let port: u16 = main
            .get_parsed("web_port")
            .map_err(|e| e.to_string())?
            .unwrap_or(8443);
        if port == 0 {
            return Err(format!("{file}: option web_port '0' is invalid: 1..65535"));
        }
        let redirect_port: u16 = main
            .get_parsed("web_http_redirect_port")
            .map_err(|e| e.to_string())?
            .unwrap_or(8080);
        if redirect_port == port {
            return Err(format!(
                "{file}: option web_http_redirect_port '{redirect_port}' is the HTTPS port"
            ));
        }
        let certificate = match (main.get("web_certificate"), main.get("web_private_key")) {
            (Some(c), Some(k)) => Some(ConfiguredCert {
                certificate: c.to_string(),
                private_key: SecretPem(k.to_string()),
            }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{file}: options web_certificate and web_private_key go together"
                ))
            }
        };
        let hostname = main.get("hostname").unwrap_or("besip").to_string();
        let timeout: u64 = main
            .get_parsed("web_session_timeout")
            .map_err(|e| e.to_string())?
            .unwrap_or(3600);
        if !(60..=604_800).contains(&timeout) {
            return Err(format!(
                "{file}: option web_session_timeout '{timeout}' is invalid: 60..604800 seconds"
            ));
        }
        let mut users = HashMap::new();
        for sec in pkg.sections_of("user") {
            let Some(name) = sec.get("name") else {
                return Err(format!("{file}: a user section without option name"));
            };
            let group_text = sec.get("group").unwrap_or("monitor");
            let group = Group::parse(group_text).ok_or_else(|| {
                format!(
                    "{file}: user {name}: group '{group_text}' is not admin, operator or monitor"
                )
            })?;
            users.insert(
                name.to_string(),
                User {
                    password_hash: sec.get("password_hash").unwrap_or("").to_string(),
                    group,
                },
            );
        }
        Ok(WebSettings {
            enabled,
            addr: SocketAddr::new(ip, port),
            redirect_addr: (redirect_port != 0).then(|| SocketAddr::new(ip, redirect_port)),
            certificate,
            hostname,
            session_timeout: Duration::from_secs(timeout),
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
