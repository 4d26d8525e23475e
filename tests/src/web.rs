//! Helpers for the web panel tests: a box whose configuration is set through
//! NETCONF (besip-netconfd renders besip_system and besip_monitoring), with
//! besip-monitord serving the panel; and a small HTTP/1.1 client that can
//! also send what a browser never would (forged forms, garbage).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

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

/// besip-netconfd and besip-monitord on one root; the panel on 127.0.0.1:`port`.
pub struct Panel {
    pub monitord: Monitord,
    pub netconf: NetconfServer,
    pub port: u16,
}

impl Panel {
    /// `monitoring_xml`: children of `<monitoring>` to set (capture on lo etc.).
    pub fn start(monitoring_xml: &str) -> Panel {
        let netconf = NetconfServer::start();
        let port = free_tcp_port();
        let hash = besip_core::password::hash(MONITOR_PASSWORD).expect("hash");
        let (ok, out) = python(
            netconf.port,
            ADMIN_PASSWORD,
            &format!(
                "m = connect()\nm.edit_config(target='candidate', config='''<config>\
<system xmlns=\"urn:besip:system\"><web><listen-address>127.0.0.1</listen-address><port>{port}</port><session-timeout>60</session-timeout></web>\
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
        Panel {
            monitord,
            netconf,
            port,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
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

/// Sends raw bytes, reads until the server closes; None if it answered nothing.
pub fn raw(port: u16, request: &[u8]) -> Option<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the panel");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    // The server may answer (413, 400) and close before reading everything.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
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

/// A client with a cookie jar (one browser).
pub struct Client {
    pub port: u16,
    pub cookies: HashMap<String, String>,
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
    pub fn new(port: u16) -> Client {
        Client {
            port,
            cookies: HashMap::new(),
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
        let r = raw(self.port, &req).unwrap_or_else(|| panic!("no HTTP answer to {method} {path}"));
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
