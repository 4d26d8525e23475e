//! The panel over HTTPS and its logins under attack: plain HTTP only
//! redirects; a certificate configured in besip-system is served (checked
//! with `openssl s_client`); 200 parallel wrong passwords from one address
//! are answered quickly with few hashes computed; an attacker's failures
//! on the admin account from one address do not lock the admin out of
//! another.

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;

use besip_tests::netconf::ADMIN_PASSWORD;
use besip_tests::web::{form_encode, pinned, raw, Panel, Via, MONITOR_PASSWORD, MONITOR_USER};

const QUIET_CAPTURE: &str = "<interface>lo</interface><capture-filter>udp port 9</capture-filter>";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn plain_http_only_redirects_and_the_cookie_is_secure() {
    let p = Panel::start(QUIET_CAPTURE);
    // The redirect keeps the path and query, names the host asked for.
    let request = format!(
        "GET /calls?number=100 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        p.http_port
    );
    let r = raw(&Via::Plain, None, p.http_port, request.as_bytes()).expect("an HTTP answer");
    assert!(matches!(r.status, 301 | 308), "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{}/calls?number=100", p.port).as_str())
    );
    // A POST with a password over plain HTTP is not served either.
    let body = "user=admin&password=x";
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        p.http_port,
        body.len()
    );
    let r = raw(&Via::Plain, None, p.http_port, request.as_bytes()).expect("an HTTP answer");
    assert!(matches!(r.status, 301 | 308), "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://localhost:{}/login", p.port).as_str())
    );
    assert!(r.header("set-cookie").is_none(), "{r:?}");

    // The HTTPS port speaks only TLS: plain HTTP there gets no page.
    let request = format!("GET /login HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", p.port);
    let r = raw(&Via::Plain, None, p.port, request.as_bytes());
    assert!(
        r.as_ref().is_none_or(|r| !r.body.contains("password")),
        "{r:?}"
    );

    // curl follows the redirect and checks the chain and the name 127.0.0.1
    // against the panel's own (self-signed) certificate as its only CA.
    let cert = p.netconf.root_path().join("etc/besip/web-cert.pem");
    let out = Command::new("curl")
        .args(["-sS", "-L", "--max-time", "20", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{url_effective}"])
        .arg("--cacert")
        .arg(&cert)
        .arg(format!("http://127.0.0.1:{}/", p.http_port))
        .output()
        .expect("run curl");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said, format!("200 https://127.0.0.1:{}/login", p.port));

    // The session cookie (and the login form's) is Secure.
    let mut c = p.client();
    let page = c.get("/login");
    let login_cookie = page.header("set-cookie").expect("login form cookie");
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let r = c.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.header("set-cookie").expect("session cookie");
    assert!(
        cookie.starts_with("besip_session=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    assert_eq!(c.get("/").status, 200);
}

/// SHA-256 fingerprint as `openssl x509 -fingerprint` prints it.
fn fingerprint_of_pem(pem: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("run openssl x509");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fingerprint of the certificate the panel serves, via openssl s_client.
fn served_fingerprint(port: u16, dir: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    let (Some(begin), Some(end)) = (begin, end) else {
        panic!("s_client saw no certificate: {text}");
    };
    let served = dir.join("served.pem");
    std::fs::write(&served, &text[begin..end + 25]).expect("write served.pem");
    fingerprint_of_pem(&served)
}

fn openssl_cert(dir: &std::path::Path, name: &str) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(out.status.success(), "{out:?}");
    (
        std::fs::read_to_string(cert).expect("cert"),
        std::fs::read_to_string(key).expect("key"),
    )
}

#[test]
fn a_configured_certificate_is_served_and_a_bad_one_refused() {
    let p = Panel::start(QUIET_CAPTURE);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = p.netconf.root_path();
    let generated = fingerprint_of_pem(&root.join("etc/besip/web-cert.pem"));
    assert_eq!(served_fingerprint(p.port, dir.path()), generated);
    let key_mode = std::fs::metadata(root.join("etc/besip/web-key.pem"))
        .expect("generated key")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );

    let (cert, key) = openssl_cert(dir.path(), "panel-a");
    p.netconf(&format!(
        "m = connect()\nm.edit_config(target='candidate', config='''<config><system xmlns=\"urn:besip:system\"><web><certificate>{cert}</certificate><private-key>{key}</private-key></web></system></config>''')\nm.commit()\n"
    ));
    let configured = fingerprint_of_pem(&dir.path().join("panel-a.crt"));
    assert_ne!(configured, generated);
    assert_eq!(served_fingerprint(p.port, dir.path()), configured);
    // The pinned client: the configured certificate works, the old one not.
    let mut c = p.client();
    c.tls = pinned(&cert);
    c.login_ok("admin", ADMIN_PASSWORD);
    let request = b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(raw(&Via::Tls(p.tls.clone()), None, p.port, request).is_none());

    // A key that is not the certificate's: the commit is refused and the
    // panel keeps serving the configured pair.
    let (_cert_b, key_b) = openssl_cert(dir.path(), "panel-b");
    let out = p.netconf(&format!(
        "m = connect()\nm.edit_config(target='candidate', config='''<config><system xmlns=\"urn:besip:system\"><web><private-key>{key_b}</private-key></web></system></config>''')\ntry:\n    m.commit()\n    print('COMMITTED')\nexcept Exception as e:\n    print('REFUSED', e)\n    m.discard_changes()\n"
    ));
    assert!(out.contains("REFUSED"), "{out}");
    assert_eq!(served_fingerprint(p.port, dir.path()), configured);
    // The key is a secret like a password hash: the admin reads it back, a
    // monitor user sees the certificate but not the key; nor does the log.
    let config_as = |user: &str, pw: &str| {
        p.netconf(&format!(
            "m = connect('{user}', '{pw}')\nprint(m.get_config('running', filter=('subtree', '<system xmlns=\"urn:besip:system\"><web/></system>')).data_xml)\n"
        ))
    };
    let admin_view = config_as("admin", ADMIN_PASSWORD);
    assert!(admin_view.contains("BEGIN PRIVATE KEY"), "{admin_view}");
    let monitor_view = config_as(MONITOR_USER, MONITOR_PASSWORD);
    assert!(monitor_view.contains("BEGIN CERTIFICATE"), "{monitor_view}");
    assert!(!monitor_view.contains("PRIVATE KEY"), "{monitor_view}");
    assert!(!p.monitord.log().contains("PRIVATE KEY"));
}

/// One login POST from `source` with a token pair the client made itself.
fn wrong_login(port: u16, tls: &Arc<rustls::ClientConfig>, source: IpAddr) -> u16 {
    let body = form_encode(&[("csrf", "t0ken"), ("user", "admin"), ("password", "guess")]);
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: besip_login=t0ken\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(
        &Via::Tls(tls.clone()),
        Some(source),
        port,
        request.as_bytes(),
    )
    .map(|r| r.status)
    .unwrap_or(0)
}

#[test]
fn a_flood_of_wrong_passwords_checks_few_hashes_and_locks_no_one_else_out() {
    let p = Panel::start(QUIET_CAPTURE);
    let attacker = ip("127.0.0.2");
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let (port, tls) = (p.port, p.tls.clone());
            std::thread::spawn(move || wrong_login(port, &tls, attacker))
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    // Every guess got an answer: wrong (a hash was computed), delayed, or busy.
    assert_eq!(
        count(401) + count(429) + count(503),
        200,
        "unexpected answers: {statuses:?}"
    );
    // Failures are counted before the hash, and one address gets one check
    // at a time: after its 5 free failures each further check waits for a
    // delay (1 s, 2 s, 4 s, ...) to pass, so whatever the parallelism only a
    // handful of hashes are computed (6 more would take the flood over a
    // minute), not 200.
    let checked = count(401);
    eprintln!(
        "flood of 200: 401={checked} 429={} 503={}",
        count(429),
        count(503)
    );
    assert!(
        (1..=5 + 6).contains(&checked),
        "{checked} hashes computed for one address: {statuses:?}"
    );
    // The rest were refused without a hash: busy (another check from this
    // address was running) or delayed.
    assert_eq!(count(429) + count(503), 200 - checked);
    // ... while the admin from another address logs in at once.
    p.client_from(ip("127.0.0.3"))
        .login_ok("admin", ADMIN_PASSWORD);
    p.client().login_ok("admin", ADMIN_PASSWORD);
}

#[test]
fn an_attacker_cannot_lock_the_admin_out_from_elsewhere() {
    let p = Panel::start(QUIET_CAPTURE);
    let attacker = ip("127.0.0.2");
    let mut guesser = p.client_from(attacker);
    let mut refused = 0;
    for _ in 0..12 {
        match guesser.login("admin", "not-the-password").status {
            401 => {}
            429 => refused += 1,
            s => panic!("guess answered {s}"),
        }
    }
    assert!(refused >= 1, "the guesser is delayed after 5 failures");
    // The admin's own address was never failed from: no delay.
    let mut admin = p.client_from(ip("127.0.0.4"));
    admin.login_ok("admin", ADMIN_PASSWORD);
    assert_eq!(admin.get("/capture").status, 200);
    // One typo of the admin does not add up with the attacker's failures.
    assert_eq!(
        p.client_from(ip("127.0.0.5")).login("admin", "typo").status,
        401
    );
    p.client_from(ip("127.0.0.5"))
        .login_ok("admin", ADMIN_PASSWORD);
}

#[test]
fn the_generated_certificate_survives_a_restart() {
    let Panel {
        monitord,
        netconf,
        port,
        ..
    } = Panel::start(QUIET_CAPTURE);
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = netconf.root_path().join("etc/besip/web-cert.pem");
    let generated = fingerprint_of_pem(&cert);
    assert_eq!(served_fingerprint(port, dir.path()), generated);
    assert!(monitord.stop().success());
    let monitord = besip_tests::monitoring::Monitord::start_in(
        besip_tests::harness::TempRoot::existing(netconf.root_path()),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no panel after the restart: {}",
            monitord.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(fingerprint_of_pem(&cert), generated, "the files were kept");
    assert_eq!(served_fingerprint(port, dir.path()), generated);
}
