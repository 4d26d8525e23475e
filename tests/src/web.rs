//! Helpers for the web panel tests: a box whose configuration is set through
//! NETCONF (besip-netconfd renders besip_system and besip_monitoring), with
//! besip-monitord serving the panel over HTTPS; and a small HTTP/1.1 client
//! over rustls, trusting exactly the panel's certificate (pinned), that can
//! also send what a browser never would (forged forms, garbage).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::harness::TempRoot;
use crate::monitoring::Monitord;
use crate::netconf::{python, NetconfServer, ADMIN_PASSWORD};

pub const MONITOR_USER: &str = "watcher";
pub const MONITOR_PASSWORD: &str = "W4tch-only-pw";

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// besip-netconfd and besip-monitord on one root; the panel's HTTPS on
/// 127.0.0.1:`port`, its plain HTTP redirect on 127.0.0.1:`http_port`.
pub struct Panel {
    pub monitord: Monitord,
    pub netconf: NetconfServer,
    pub port: u16,
    pub http_port: u16,
    /// Trusts the certificate the panel generated on its first start.
    pub tls: Arc<ClientConfig>,
}

impl Panel {
    /// `monitoring_xml`: children of `<monitoring>` to set (capture on lo etc.).
    pub fn start(monitoring_xml: &str) -> Panel {
        let netconf = NetconfServer::start();
        let (port, http_port) = (free_tcp_port(), free_tcp_port());
        let hash = besip_core::password::hash(MONITOR_PASSWORD).expect("hash");
        let (ok, out) = python(
            netconf.port,
            ADMIN_PASSWORD,
            &format!(
                "m = connect()\nm.edit_config(target='candidate', config='''<config>\
<system xmlns=\"urn:besip:system\"><web><listen-address>127.0.0.1</listen-address><port>{port}</port><http-redirect-port>{http_port}</http-redirect-port><session-timeout>60</session-timeout></web>\
<user><name>{MONITOR_USER}</name><password-hash>{hash}</password-hash><group>monitor</group></user></system>\
<monitoring xmlns=\"urn:besip:monitoring\">{monitoring_xml}</monitoring></config>''')\nm.commit()\n"
            ),
        );
        assert!(ok, "NETCONF configuration of the panel: {out}");
        let monitord = Monitord::start_in(TempRoot::existing(netconf.root_path()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "web panel did not listen on {port}: {}",
                monitord.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let cert = std::fs::read_to_string(netconf.root_path().join("etc/besip/web-cert.pem"))
            .expect("the certificate besip-monitord generated");
        Panel {
            monitord,
            netconf,
            port,
            http_port,
            tls: pinned(&cert),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.port, self.tls.clone())
    }

    /// A client of the panel on another port (after a move through NETCONF).
    pub fn client_on(&self, port: u16) -> Client {
        Client::new(port, self.tls.clone())
    }

    /// A client whose connections come from `source` (an address of 127.0.0.0/8).
    pub fn client_from(&self, source: IpAddr) -> Client {
        let mut c = self.client();
        c.source = Some(source);
        c
    }

    /// Raw bytes over TLS to the panel (see `raw`).
    pub fn raw(&self, request: &[u8]) -> Option<Response> {
        raw(&Via::Tls(self.tls.clone()), None, self.port, request)
    }

    /// Runs ncclient code against this box's besip-netconfd as admin.
    pub fn netconf(&self, body: &str) -> String {
        let (ok, out) = python(self.netconf.port, ADMIN_PASSWORD, body);
        assert!(ok, "ncclient: {out}");
        out
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first hidden `csrf` field of the page.
    pub fn csrf(&self) -> Option<String> {
        let i = self.body.find("name=\"csrf\" value=\"")? + 19;
        let end = self.body[i..].find('"')?;
        Some(self.body[i..i + end].to_string())
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        raw = &raw[nl + 2..];
        if size == 0 || raw.len() < size {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
}

/// How a request reaches the panel.
#[derive(Clone)]
pub enum Via {
    Plain,
    Tls(Arc<ClientConfig>),
}

/// A client configuration that trusts exactly this certificate (the first of
/// `pem`), whatever name it carries: pinning, as for a self-signed panel.
pub fn pinned(pem: &str) -> Arc<ClientConfig> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate");
    tls_config(Some(cert))
}

/// A client configuration that accepts the panel's certificate unseen: for a
/// box whose self-signed certificate was generated where the test cannot read
/// it (inside a booted image). The handshake's signatures are still checked.
pub fn any_certificate() -> Arc<ClientConfig> {
    tls_config(None)
}

fn tls_config(cert: Option<CertificateDer<'static>>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCert {
        cert,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct PinnedCert {
    /// `None`: any certificate (see `any_certificate`).
    cert: Option<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .cert
            .as_ref()
            .is_none_or(|pinned| end_entity.as_ref() == pinned.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the pinned panel certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn connect(source: Option<IpAddr>, port: u16) -> TcpStream {
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let Some(source) = source else {
        return TcpStream::connect(to).expect("connect to the panel");
    };
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the client's source address");
    socket
        .connect_timeout(&to.into(), Duration::from_secs(10))
        .expect("connect to the panel");
    socket.into()
}

/// Sends raw bytes (over TLS or plain TCP, from `source` if given), reads
/// until the server closes; None if it answered nothing (or the TLS
/// handshake failed).
pub fn raw(via: &Via, source: Option<IpAddr>, port: u16, request: &[u8]) -> Option<Response> {
    let s = connect(source, port);
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut buf = Vec::new();
    match via {
        Via::Plain => exchange(s, request, &mut buf),
        Via::Tls(config) => {
            let name = ServerName::try_from("127.0.0.1").ok()?;
            let conn = rustls::ClientConnection::new(config.clone(), name).ok()?;
            exchange_tls(conn, s, request, &mut buf)
        }
    }
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// As `exchange` over TLS, driven by hand: rustls' stream would try to
/// send the rest of a request the server stopped reading before it reads
/// the answer, and give up on the error.
fn exchange_tls(
    mut conn: rustls::ClientConnection,
    mut s: TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) {
    while conn.is_handshaking() {
        if conn.complete_io(&mut s).is_err() {
            return;
        }
    }
    conn.set_buffer_limit(None);
    let _ = conn.writer().write_all(request);
    while conn.wants_write() {
        if conn.write_tls(&mut s).is_err() {
            break;
        }
    }
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        match conn.read_tls(&mut s) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    return;
                }
            }
        }
    }
}

/// The server may answer (413, 400) and close before reading everything, and
/// may close without a TLS close_notify: keep whatever arrived.
fn exchange(mut s: impl Read + Write, request: &[u8], buf: &mut Vec<u8>) {
    let _ = s.write_all(request).and_then(|()| s.flush());
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A client with a cookie jar (one browser).
pub struct Client {
    pub port: u16,
    pub cookies: HashMap<String, String>,
    pub tls: Arc<ClientConfig>,
    /// The address its connections come from (None: the system's choice).
    pub source: Option<IpAddr>,
}

pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Client {
    pub fn new(port: u16, tls: Arc<ClientConfig>) -> Client {
        Client {
            port,
            cookies: HashMap::new(),
            tls,
            source: None,
        }
    }

    fn cookie_header(&self) -> String {
        if self.cookies.is_empty() {
            return String::new();
        }
        let v: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("Cookie: {}\r\n", v.join("; "))
    }

    pub fn send(&mut self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Response {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{}",
            self.port,
            self.cookie_header()
        )
        .into_bytes();
        if let Some((ctype, b)) = body {
            req.extend_from_slice(
                format!("Content-Type: {ctype}\r\nContent-Length: {}\r\n", b.len()).as_bytes(),
            );
            req.extend_from_slice(b"\r\n");
            req.extend_from_slice(b);
        } else {
            req.extend_from_slice(b"\r\n");
        }
        let r = raw(&Via::Tls(self.tls.clone()), self.source, self.port, &req)
            .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}"));
        for (k, v) in &r.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                if let Some((name, rest)) = v.split_once('=') {
                    let value = rest.split(';').next().unwrap_or("");
                    if value.is_empty() || v.contains("Max-Age=0") {
                        self.cookies.remove(name);
                    } else {
                        self.cookies.insert(name.to_string(), value.to_string());
                    }
                }
            }
        }
        r
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = form_encode(fields);
        self.send(
            "POST",
            path,
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        )
    }

    /// GET /login then POST it with the page's token; the POST's response.
    pub fn login(&mut self, user: &str, password: &str) -> Response {
        let page = self.get("/login");
        assert_eq!(page.status, 200, "{page:?}");
        let token = page.csrf().expect("login form token");
        self.post(
            "/login",
            &[("csrf", &token), ("user", user), ("password", password)],
        )
    }

    /// Logs in (must succeed) and returns this session's CSRF token.
    pub fn login_ok(&mut self, user: &str, password: &str) -> String {
        let r = self.login(user, password);
        assert_eq!(r.status, 303, "login of {user}: {r:?}");
        assert_eq!(r.header("location"), Some("/"));
        let page = self.get("/");
        assert_eq!(page.status, 200, "{page:?}");
        page.csrf().expect("page CSRF token")
    }
}
