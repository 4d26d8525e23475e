//! The web administration (crate besip-web, served by besip-netconfd on
//! the RESTCONF HTTPS port): attacks with curl against a real server, each
//! checked to change nothing (running and candidate compared over
//! RESTCONF); and a person in headless Chromium on a box started with
//! `besip up --web-port`, JavaScript switched off: log in, add an extension
//! through the form, see the field error, preview the diff, commit, sipp
//! registers it; roll back from the history page and the registration
//! fails.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::{bin_path, TempRoot};
use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use besip_tests::pbx::{free_port, have_sipp, register_scenario, Sipp};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const OP_USER: &str = "oscar";
const OP_PASSWORD: &str = "Op3rator-pw";
const MON_USER: &str = "molly";
const MON_PASSWORD: &str = "M0nitor-pw";

struct Http {
    status: u16,
    headers: String,
    body: String,
}

impl Http {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The first hidden CSRF token of the page.
    fn csrf(&self) -> String {
        let i = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body))
            + 19;
        let end = self.body[i..].find('"').expect("end of token");
        self.body[i..i + end].to_owned()
    }
}

fn curl(args: &[&str]) -> Http {
    let mut all = vec!["-H", "Expect:"];
    all.extend_from_slice(args);
    curl_as_is(&all)
}

/// curl without our defaults (a big body keeps curl's `Expect:
/// 100-continue`, so the 413 comes before the body is sent).
fn curl_as_is(args: &[&str]) -> Http {
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl (apt install curl)");
    let mut text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    while text.starts_with("HTTP/1.1 100") {
        text = text
            .split_once("\n\n")
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
    }
    let (headers, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Http {
        status,
        headers: headers.to_owned(),
        body: body.to_owned(),
    }
}

/// A browser-like client: one cookie jar, forms url-encoded.
struct Browser {
    base: String,
    jar: PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let dir = tempfile::tempdir().expect("jar dir");
        Browser {
            base: base.to_owned(),
            jar: dir.path().join("jar"),
            _dir: dir,
        }
    }

    fn jar_args(&self) -> Vec<String> {
        let j = self.jar.display().to_string();
        vec!["-b".into(), j.clone(), "-c".into(), j]
    }

    fn get(&self, path: &str) -> Http {
        let mut args = self.jar_args();
        args.push(format!("{}{path}", self.base));
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Http {
        let mut args = self.jar_args();
        for (k, v) in fields {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{}{path}", self.base));
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn login(&self, user: &str, password: &str) -> Http {
        let form = self.get("/admin/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let token = form.csrf();
        self.post(
            "/admin/login",
            &[("csrf", &token), ("user", user), ("password", password)],
        )
    }

    /// The CSRF token of this session (from any page).
    fn csrf(&self) -> String {
        self.get("/admin/").csrf()
    }
}

struct Box {
    server: NetconfServer,
    base: String,
}

impl Box {
    fn start() -> Box {
        let (server, port) = NetconfServer::start_with_restconf();
        let b = Box {
            server,
            base: format!("https://127.0.0.1:{port}"),
        };
        let op = besip_core::password::hash(OP_PASSWORD).expect("hash");
        let mon = besip_core::password::hash(MON_PASSWORD).expect("hash");
        let (ok, out) = python(
            b.server.port,
            ADMIN_PASSWORD,
            &format!(
                "m = connect()\nm.edit_config(target='candidate', config='''<config>\
<system xmlns=\"urn:besip:system\"><user><name>{OP_USER}</name><password-hash>{op}</password-hash><group>operator</group></user>\
<user><name>{MON_USER}</name><password-hash>{mon}</password-hash><group>monitor</group></user></system>\
<pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><password>pw-100</password></extension></pbx>\
<nacm xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-acm\"><rule-list><name>ops</name><group>operator</group>\
<rule><name>no-trunks</name><module-name>besip-pbx</module-name><path>/besip-pbx:pbx/trunk</path>\
<access-operations>create update delete</access-operations><action>deny</action></rule></rule-list></nacm></config>''')\nm.commit()\n"
            ),
        );
        assert!(ok, "users through NETCONF: {out}");
        b
    }

    /// Running and candidate as RESTCONF shows them to the admin.
    fn snapshot(&self) -> (String, String) {
        let get = |path: &str| {
            let r = curl(&[
                "-u",
                &format!("admin:{ADMIN_PASSWORD}"),
                &format!("{}{path}", self.base),
            ]);
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            r.body
        };
        (
            get("/restconf/data/besip-pbx:pbx"),
            get("/restconf/ds/ietf-datastores:candidate/besip-pbx:pbx"),
        )
    }
}

#[test]
fn attacks_on_the_web_administration_are_refused_and_change_nothing() {
    let b = Box::start();
    let before = b.snapshot();

    // No session: a browser is sent to the login page, a POST gets 401.
    let anon = Browser::new(&b.base);
    let r = anon.get("/admin/config/pbx/extension");
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/admin/login?next=")),
        "{}",
        r.headers
    );
    let r = anon.post(
        "/admin/config/pbx/extension",
        &[("action", "add"), ("f.number", "666"), ("f.password", "x")],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // The login form's own token is required.
    let r = anon.post(
        "/admin/login",
        &[("user", "admin"), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(r.status, 403);
    // RESTCONF's root is named on the same port.
    let meta = curl(&[&format!("{}/.well-known/host-meta", b.base)]);
    assert!(meta.body.contains("href=\"/restconf\""), "{}", meta.body);

    let admin = Browser::new(&b.base);
    let r = admin.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.header("set-cookie").expect("session cookie");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("Secure")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = admin.csrf();

    // Missing or wrong CSRF token: 403, nothing changed.
    let add = [("action", "add"), ("f.number", "666"), ("f.password", "x")];
    let r = admin.post("/admin/config/pbx/extension", &add);
    assert_eq!(r.status, 403, "{}", r.body);
    let mut forged = vec![("csrf", "0123456789abcdef")];
    forged.extend_from_slice(&add);
    let r = admin.post("/admin/config/pbx/extension", &forged);
    assert_eq!(r.status, 403, "{}", r.body);
    // Another session's token is no good either.
    let other = Browser::new(&b.base);
    assert_eq!(other.login("admin", ADMIN_PASSWORD).status, 303);
    let other_token = other.csrf();
    assert_ne!(other_token, token);
    let mut stolen = vec![("csrf", other_token.as_str())];
    stolen.extend_from_slice(&add);
    assert_eq!(
        admin.post("/admin/config/pbx/extension", &stolen).status,
        403
    );
    assert_eq!(b.snapshot(), before, "a refused POST changed something");

    // A gigantic form body: 413 before it is read.
    let big = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        big.path(),
        format!(
            "csrf={token}&action=add&f.number=667&f.password=x&f.display-name={}",
            "A".repeat(4 * 1024 * 1024)
        ),
    )
    .expect("write body");
    let mut args = admin.jar_args();
    args.extend([
        "--data-binary".to_owned(),
        format!("@{}", big.path().display()),
        format!("{}/admin/config/pbx/extension", b.base),
    ]);
    let r = curl_as_is(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(b.snapshot(), before);

    // Malformed values: the error at its field, escaped; nothing staged.
    let r = admin.post(
        "/admin/config/pbx/extension",
        &[
            ("csrf", &token),
            ("action", "add"),
            ("f.number", "1<script>alert(1)</script>"),
            ("f.password", "x"),
        ],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"error-number\""), "{}", r.body);
    assert!(
        !r.body.contains("<script>alert"),
        "unescaped value: {}",
        r.body
    );
    assert!(r.body.contains("&lt;script&gt;alert(1)"), "{}", r.body);
    let r = admin.post(
        "/admin/config/pbx/extension/100",
        &[("csrf", &token), ("action", "save"), ("f.enabled", "maybe")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"error-enabled\""), "{}", r.body);
    assert_eq!(b.snapshot(), before, "a refused value was staged");

    // A value with markup is stored as typed and shown escaped everywhere.
    let r = admin.post(
        "/admin/config/pbx/extension/100",
        &[
            ("csrf", &token),
            ("action", "save"),
            ("f.display-name", "<script>alert(2)</script>"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    for page in [
        "/admin/config/pbx/extension/100",
        "/admin/config/pbx/extension",
        "/admin/changes",
    ] {
        let r = admin.get(page);
        assert_eq!(r.status, 200, "{page}");
        assert!(!r.body.contains("<script>alert(2)"), "{page}: {}", r.body);
        assert!(
            r.body.contains("&lt;script&gt;alert(2)"),
            "{page}: {}",
            r.body
        );
    }
    // Delete is staged like any edit.
    let r = admin.post(
        "/admin/config/pbx/extension/100",
        &[("csrf", &token), ("action", "delete")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(admin
        .get("/admin/changes")
        .body
        .contains("- set pbx extension 100 password"));
    // A leafref field offers what its target holds: a route's trunk.
    admin.post(
        "/admin/config/pbx/trunk",
        &[
            ("csrf", &token),
            ("action", "add"),
            ("f.name", "provider-a"),
            ("f.host", "192.0.2.10"),
        ],
    );
    let routes = admin.get("/admin/config/pbx/route");
    assert!(
        routes.body.contains("<option value=\"provider-a\">"),
        "{}",
        routes.body
    );
    let r = admin.post("/admin/commit", &[("csrf", &token), ("action", "discard")]);
    assert_eq!(r.status, 303);
    assert_eq!(b.snapshot(), before);

    // A monitor reads but cannot save: a clear refusal, nothing changed.
    let monitor = Browser::new(&b.base);
    assert_eq!(monitor.login(MON_USER, MON_PASSWORD).status, 303);
    let page = monitor.get("/admin/config/pbx/extension/100");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Read only"), "{}", page.body);
    let mtoken = page.csrf();
    let r = monitor.post(
        "/admin/config/pbx/extension/100",
        &[
            ("csrf", &mtoken),
            ("action", "save"),
            ("f.display-name", "mine"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("monitor group"), "{}", r.body);
    let r = monitor.post("/admin/commit", &[("csrf", &mtoken), ("action", "commit")]);
    assert_eq!(r.status, 403);
    assert_eq!(b.snapshot(), before);

    // An operator edits the PBX but may not open the users page.
    let operator = Browser::new(&b.base);
    assert_eq!(operator.login(OP_USER, OP_PASSWORD).status, 303);
    assert_eq!(operator.get("/admin/config/system/user").status, 403);
    assert_eq!(
        operator
            .get(&format!("/admin/config/system/user/{OP_USER}"))
            .status,
        403
    );
    assert!(!operator
        .get("/admin/")
        .body
        .contains("/admin/config/system/user"));
    assert_eq!(admin.get("/admin/config/system/user").status, 200);
    let otoken = operator.csrf();
    let r = operator.post(
        "/admin/config/pbx/extension",
        &[
            ("csrf", &otoken),
            ("action", "add"),
            ("f.number", "101"),
            ("f.password", "pw-101"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // A NACM rule-list denies operators the trunks: the form says so.
    let r = operator.post(
        "/admin/config/pbx/trunk",
        &[
            ("csrf", &otoken),
            ("action", "add"),
            ("f.name", "provider"),
            ("f.host", "192.0.2.10"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("Refused by access control"), "{}", r.body);
    // The users themselves stay out of reach through a forged form too.
    let r = operator.post(
        "/admin/config/system/user",
        &[
            ("csrf", &otoken),
            ("action", "add"),
            ("f.name", "eve"),
            ("f.group", "admin"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = operator.post(
        "/admin/commit",
        &[
            ("csrf", &otoken),
            ("action", "commit"),
            ("comment", "ext 101"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let (running, _) = b.snapshot();
    assert!(running.contains("\"101\""), "{running}");

    // History and rollback: the commit before 101 comes back.
    let history = admin.get("/admin/history");
    assert!(
        history.body.contains("ext 101") && history.body.contains("id=\"rollback-1\""),
        "{}",
        history.body
    );
    let r = admin.post("/admin/rollback", &[("csrf", &token), ("back", "1")]);
    assert_eq!(r.status, 303, "{}", r.body);
    let diff = admin.get("/admin/changes");
    assert!(
        diff.body.contains("- set pbx extension 101"),
        "{}",
        diff.body
    );
    assert_eq!(
        admin
            .post("/admin/commit", &[("csrf", &token), ("action", "commit")])
            .status,
        303
    );
    assert!(!b.snapshot().0.contains("\"101\""));

    // Confirmed commit: the countdown, then a revert on request.
    let r = admin.post(
        "/admin/config/pbx/extension",
        &[
            ("csrf", &token),
            ("action", "add"),
            ("f.number", "102"),
            ("f.password", "pw-102"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = admin.post(
        "/admin/commit",
        &[("csrf", &token), ("action", "confirmed"), ("minutes", "2")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = admin.get("/admin/changes");
    assert!(page.body.contains("id=\"countdown\""), "{}", page.body);
    assert!(b.snapshot().0.contains("\"102\""));
    let r = admin.post("/admin/commit", &[("csrf", &token), ("action", "cancel")]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !b.snapshot().0.contains("\"102\""),
        "the trial commit stayed"
    );
    // ... and a trial confirmed in time stays.
    admin.post(
        "/admin/config/pbx/extension",
        &[
            ("csrf", &token),
            ("action", "add"),
            ("f.number", "104"),
            ("f.password", "pw-104"),
        ],
    );
    let r = admin.post(
        "/admin/commit",
        &[("csrf", &token), ("action", "confirmed"), ("minutes", "1")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = admin.post("/admin/commit", &[("csrf", &token), ("action", "confirm")]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!admin
        .get("/admin/changes")
        .body
        .contains("id=\"countdown\""));
    assert!(b.snapshot().0.contains("\"104\""));
    // A trial of 0 or 1000 minutes is refused, nothing committed.
    let r = admin.post(
        "/admin/commit",
        &[
            ("csrf", &token),
            ("action", "confirmed"),
            ("minutes", "1000"),
        ],
    );
    assert_eq!(r.status, 422, "{}", r.body);

    // Export, a change, import: the change is undone after the preview.
    let export = admin.get("/admin/export");
    assert_eq!(export.status, 200);
    assert!(
        export.body.contains("<config") && export.body.contains("<number>100</number>"),
        "{}",
        export.body
    );
    let saved = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(saved.path(), &export.body).expect("write export");
    admin.post(
        "/admin/config/pbx/extension",
        &[
            ("csrf", &token),
            ("action", "add"),
            ("f.number", "103"),
            ("f.password", "pw-103"),
        ],
    );
    admin.post("/admin/commit", &[("csrf", &token), ("action", "commit")]);
    assert!(b.snapshot().0.contains("\"103\""));
    let mut args = admin.jar_args();
    args.extend([
        "-F".to_owned(),
        format!("csrf={token}"),
        "-F".to_owned(),
        format!("file=@{};type=application/xml", saved.path().display()),
        format!("{}/admin/import", b.base),
    ]);
    let r = curl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.status, 303, "{}", r.body);
    let diff = admin.get("/admin/changes");
    assert!(
        diff.body.contains("- set pbx extension 103"),
        "{}",
        diff.body
    );
    admin.post("/admin/commit", &[("csrf", &token), ("action", "commit")]);
    assert!(!b.snapshot().0.contains("\"103\""));
    // An operator cannot import a whole box.
    let mut args = operator.jar_args();
    args.extend([
        "-F".to_owned(),
        format!("csrf={otoken}"),
        "-F".to_owned(),
        format!("file=@{}", saved.path().display()),
        format!("{}/admin/import", b.base),
    ]);
    assert_eq!(
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).status,
        403
    );

    assert_eq!(admin.get("/admin/bans").status, 200);

    // A confirmed commit made over NETCONF shows its countdown here too.
    let (ok, out) = python(
        b.server.port,
        ADMIN_PASSWORD,
        "m = connect()\nm.edit_config(target='candidate', config='''<config><pbx xmlns=\"urn:besip:pbx\"><extension><number>105</number><password>pw-105</password></extension></pbx></config>''')\nm.commit(confirmed=True, timeout='300', persist='from-netconf')\n",
    );
    assert!(ok, "{out}");
    let page = admin.get("/admin/changes");
    assert!(
        page.body.contains("made outside this page") && page.body.contains("id=\"countdown\""),
        "{}",
        page.body
    );
    let (ok, out) = python(
        b.server.port,
        ADMIN_PASSWORD,
        "m = connect()\nm.cancel_commit(persist_id='from-netconf')\n",
    );
    assert!(ok, "{out}");
    assert!(!admin.get("/admin/changes").body.contains("countdown"));

    // The admin adds a user on the users page: the password is hashed by
    // the box, and the new account logs in.
    let r = admin.post(
        "/admin/config/system/user",
        &[
            ("csrf", &token),
            ("action", "add"),
            ("f.name", "newbie"),
            ("f.password-hash", "N3wbie-pw"),
            ("f.group", "operator"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = admin.post("/admin/commit", &[("csrf", &token), ("action", "commit")]);
    assert_eq!(r.status, 303, "{}", r.body);
    let newbie = Browser::new(&b.base);
    assert_eq!(newbie.login("newbie", "N3wbie-pw").status, 303);
    assert_eq!(newbie.get("/admin/config/system/user").status, 403);

    // Wrong passwords are throttled (per source and user, as SSH): after
    // three, even the right one waits.
    let guesser = Browser::new(&b.base);
    for _ in 0..3 {
        assert_eq!(guesser.login(OP_USER, "guess").status, 401);
    }
    let r = guesser.login(OP_USER, OP_PASSWORD);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some(), "{}", r.headers);
    // The admin from the same address is not locked out.
    assert_eq!(
        Browser::new(&b.base).login("admin", ADMIN_PASSWORD).status,
        303
    );

    // Logout ends the session.
    let r = admin.post("/admin/logout", &[("csrf", &token)]);
    assert_eq!(r.status, 303);
    assert_eq!(admin.get("/admin/changes").status, 303);
}

// ---- headless Chromium on `besip up --web-port` ----

struct Up {
    child: Child,
    _root: TempRoot,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_chromedriver() -> (Driver, u16) {
    let port = free_tcp_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver (scripts/install-deps installs chromium-driver)");
    let d = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, port)
}

async fn browser(driver_port: u16, profile: &std::path::Path) -> Client {
    browser_js(driver_port, profile, false).await
}

/// `javascript`: page scripts on (the player test reads the audio element).
async fn browser_js(driver_port: u16, profile: &std::path::Path, javascript: bool) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                     "--disable-dev-shm-usage", "--window-size=1200,1400",
                     format!("--user-data-dir={}", profile.display())],
            // JavaScript off: every step of the test works with plain forms.
            "prefs": {"profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 }}
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("WebDriver session with headless Chromium")
}

fn mid_navigation(e: &fantoccini::error::CmdError) -> bool {
    let text = e.to_string();
    text.contains("navigation") || text.contains("stale element")
}

async fn text(c: &Client, css: &str) -> String {
    for attempt in 0..5 {
        let found = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => match element.text().await {
                Ok(text) => return text,
                Err(e) if attempt < 4 && mid_navigation(&e) => continue,
                Err(e) => panic!("text of {css}: {e}"),
            },
            Err(e) if attempt < 4 && mid_navigation(&e) => continue,
            Err(e) => panic!("no {css}: {e}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, value: &str) {
    let e = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    e.clear()
        .await
        .unwrap_or_else(|e| panic!("clear {css}: {e}"));
    e.send_keys(value)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.expect("url").path().to_string()
}

async fn wait_path(c: &Client, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = path_of(c).await;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "at {now}, expected {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn register(sip: u16, password: &str) -> besip_tests::pbx::SippResult {
    Sipp::new().run(
        "register-100",
        &register_scenario("100", 600, 200),
        free_port(),
        sip,
        &["-au", "100", "-ap", password, "-auth_uri", "besip.test"],
    )
}

#[test]
fn a_person_adds_an_extension_in_chromium_commits_and_rolls_back() {
    let root = TempRoot::new();
    let (web, sip, panel) = (free_tcp_port(), free_port(), free_tcp_port());
    let mut child = Command::new(bin_path("besip"))
        .args(["up", "--root"])
        .arg(root.path())
        .args(["--netconf-port", &free_tcp_port().to_string()])
        .args(["--sip-port", &sip.to_string()])
        .args(["--sip-tls-port", &free_tcp_port().to_string()])
        .args(["--stun-port", &free_port().to_string()])
        .args(["--web-port", &web.to_string()])
        .args(["--panel-port", &panel.to_string()])
        .args(["--web-http-port", "0"])
        .args(["--admin-password", ADMIN_PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip up");
    let stdout = child.stdout.take().expect("stdout");
    let _up = Up { child, _root: root };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banner.contains("Press Ctrl-C") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => banner.push_str(&(line + "\n")),
            Err(_) => panic!("besip up did not come up: {banner}"),
        }
    }
    let base = format!("https://127.0.0.1:{web}");
    assert!(
        banner.contains(&format!("web administration: {base}/admin/"))
            && banner.contains(&format!("RESTCONF:     {base}/restconf")),
        "{banner}"
    );
    let sipp = have_sipp();
    if !sipp {
        eprintln!("SKIP (sipp part): sipp not installed");
    }

    let (_driver, driver_port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = browser(driver_port, profile.path()).await;
        c.goto(&format!("{base}/admin/config/pbx/extension"))
            .await
            .expect("open the administration");
        assert_eq!(path_of(&c).await, "/admin/login");
        type_into(&c, "#user", "admin").await;
        type_into(&c, "#password", ADMIN_PASSWORD).await;
        click(&c, "#login-button").await;
        wait_path(&c, "/admin/config/pbx/extension").await;

        // The MOS panel of besip-monitord is linked from the overview.
        c.goto(&format!("{base}/admin/")).await.expect("overview");
        let link = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#panel"))
            .await
            .expect("panel link")
            .attr("href")
            .await
            .expect("href");
        assert_eq!(
            link.as_deref(),
            Some(format!("https://127.0.0.1:{panel}/").as_str())
        );

        // The domain phones register to, on the PBX's own form.
        c.goto(&format!("{base}/admin/config/pbx"))
            .await
            .expect("pbx page");
        type_into(&c, "#f-domain", "besip.test").await;
        click(&c, "#save").await;
        assert!(text(&c, ".notice").await.contains("Saved to the candidate"));

        // An invalid number: the error at its field, nothing staged.
        c.goto(&format!("{base}/admin/config/pbx/extension"))
            .await
            .expect("list");
        type_into(&c, "#f-number", "10 0").await;
        type_into(&c, "#f-password", "pw100-secret").await;
        click(&c, "#add").await;
        let error = text(&c, "#error-number").await;
        assert!(error.to_lowercase().contains("pattern"), "{error}");
        let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
        let _ = std::fs::create_dir_all(&artifacts);
        if let Ok(shot) = c.screenshot().await {
            let _ = std::fs::write(artifacts.join("web-admin-field-error.png"), shot);
        }
        // The typed number is kept in the form; the password is not echoed.
        type_into(&c, "#f-number", "100").await;
        type_into(&c, "#f-password", "pw100-secret").await;
        click(&c, "#add").await;
        wait_path(&c, "/admin/config/pbx/extension/100").await;

        // Preview, then commit.
        c.goto(&format!("{base}/admin/changes"))
            .await
            .expect("changes");
        let diff = text(&c, "#diff").await;
        assert!(
            diff.contains("+ set pbx extension 100 password")
                && diff.contains("+ set pbx domain besip.test")
                && !diff.contains("pw100-secret"),
            "{diff}"
        );
        if let Ok(shot) = c.screenshot().await {
            let _ = std::fs::write(artifacts.join("web-admin-changes.png"), shot);
        }
        type_into(&c, "#comment", "phone 100 from the browser").await;
        click(&c, "#commit").await;
        assert!(text(&c, ".notice").await.contains("Committed"));
        assert!(text(&c, "#no-changes").await.contains("No changes"));

        // sipp blocks this thread; the WebDriver session lives on the
        // runtime's workers meanwhile.
        if sipp {
            let ok = register(sip, "pw100-secret");
            assert!(ok.success, "REGISTER 100 after the web commit:\n{}", ok.log);
        }

        c.goto(&format!("{base}/admin/history"))
            .await
            .expect("history");
        let history = text(&c, "#history").await;
        assert!(history.contains("phone 100 from the browser"), "{history}");
        click(&c, "#rollback-1").await;
        wait_path(&c, "/admin/changes").await;
        let diff = text(&c, "#diff").await;
        assert!(diff.contains("- set pbx extension 100 password"), "{diff}");
        click(&c, "#commit").await;
        assert!(text(&c, ".notice").await.contains("Committed"));
        c.goto(&format!("{base}/admin/config/pbx/extension"))
            .await
            .expect("list");
        let table = text(&c, "#entries").await;
        assert!(!table.contains("100"), "{table}");
        if sipp {
            let refused = register(sip, "pw100-secret");
            assert!(
                !refused.success,
                "REGISTER 100 still accepted after the rollback:\n{}",
                refused.log
            );
        }
        let _ = c.close().await;
    });

    // Operational state from the daemons: the PBX's registrations (none
    // left after the rollback) and counters.
    let person = Browser::new(&base);
    assert_eq!(person.login("admin", ADMIN_PASSWORD).status, 303);
    let pbx = person.get("/admin/config/pbx");
    assert!(
        pbx.body.contains("/admin/state/pbx/counters"),
        "{}",
        pbx.body
    );
    let counters = person.get("/admin/state/pbx/counters");
    assert_eq!(counters.status, 200);
    assert!(counters.body.contains("<table>"), "{}", counters.body);

    // Bans and unban reach besip-secd (nothing banned: it says so).
    let bans = person.get("/admin/bans");
    assert!(bans.body.contains("id=\"no-bans\""), "{}", bans.body);
    let token = bans.csrf();
    let r = person.post(
        "/admin/unban",
        &[("csrf", &token), ("address", "192.0.2.77")],
    );
    assert!(
        r.body.contains("192.0.2.77") && !r.body.contains("not running"),
        "{}",
        r.body
    );
}

/// Starts `besip up` with the web administration on `web` and SIP on `sip`.
fn up_with_web(web: u16, sip: u16) -> Up {
    let root = TempRoot::new();
    let mut child = Command::new(bin_path("besip"))
        .args(["up", "--root"])
        .arg(root.path())
        .args(["--netconf-port", &free_tcp_port().to_string()])
        .args(["--sip-port", &sip.to_string()])
        .args(["--sip-tls-port", &free_tcp_port().to_string()])
        .args(["--stun-port", &free_port().to_string()])
        .args(["--web-port", &web.to_string()])
        .args(["--panel-port", &free_tcp_port().to_string()])
        .args(["--web-http-port", "0"])
        .args(["--admin-password", ADMIN_PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip up");
    let stdout = child.stdout.take().expect("stdout");
    let up = Up { child, _root: root };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banner.contains("Press Ctrl-C") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => banner.push_str(&(line + "\n")),
            Err(_) => panic!("besip up did not come up: {banner}"),
        }
    }
    up
}

#[test]
fn voicemail_and_recordings_play_in_chromium() {
    use besip_tests::pbx::callee_answers;
    use besip_tests::pbx::media_phone::{media_caller, MediaPhone};
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let (web, sip) = (free_tcp_port(), free_port());
    let _up = up_with_web(web, sip);
    let base = format!("https://127.0.0.1:{web}");
    let admin = format!("admin:{ADMIN_PASSWORD}");
    // 101 has a mailbox, 102's calls are recorded (B2BUA mode).
    let body = r#"{"besip-pbx:pbx":{"mode":"b2bua","domain":"besip.test","extension":[{"number":"100","password":"pw100-secret"},{"number":"101","password":"pw101-secret","voicemail":{"enabled":true}},{"number":"102","password":"pw102-secret","record-calls":"always"}]}}"#;
    let r = curl(&[
        "-u",
        &admin,
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/yang-data+json",
        "--data-binary",
        body,
        &format!("{base}/restconf/data/besip-pbx:pbx"),
    ]);
    assert_eq!(r.status, 204, "{}", r.body);
    let sipp = Sipp::new();
    let auth = [
        "-au",
        "100",
        "-ap",
        "pw100-secret",
        "-auth_uri",
        "besip.test",
    ];

    // A message for 101 (not registered: its mailbox answers).
    let phone = MediaPhone::start(700.0);
    let call = sipp.spawn(
        "leave",
        &media_caller("100", "101", &phone.sdp(), None),
        free_port(),
        sip,
        &auth,
    );
    let t = Instant::now();
    phone.wait_peer();
    while !phone.heard_tone_since(t, 1000.0) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no beep from the mailbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    phone.press("#");
    assert!(sipp.wait(call).success, "the message call failed");

    // A recorded call to 102: its phone talks into the relay.
    let uas_port = free_port();
    let reg = sipp.run(
        "register-102",
        &register_scenario("102", 600, 200),
        uas_port,
        sip,
        &[
            "-au",
            "102",
            "-ap",
            "pw102-secret",
            "-auth_uri",
            "besip.test",
        ],
    );
    assert!(reg.success, "{}", reg.log);
    let callee = MediaPhone::start(1300.0);
    let uas = sipp.spawn(
        "callee-102",
        &callee_answers(0).replace("[media_port]", &callee.port.to_string()),
        uas_port,
        sip,
        &[],
    );
    let caller = MediaPhone::start(0.0);
    let call = sipp.spawn(
        "record",
        &media_caller("100", "102", &caller.sdp(), Some(3000)),
        free_port(),
        sip,
        &auth,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = curl(&[
            "-u",
            &admin,
            "-H",
            "Accept: application/yang-data+json",
            &format!("{base}/restconf/data/besip-pbx:pbx/nat-state"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&st.body).unwrap_or_default();
        let port = v
            .pointer("/besip-pbx:nat-state/relay/0/callee-rtp-port")
            .and_then(|p| p.as_u64());
        if let Some(p) = port {
            callee.set_peer((std::net::Ipv4Addr::LOCALHOST, p as u16).into());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recorded call passed no relay: {}",
            st.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sipp.wait(call).success, "the recorded call failed");
    assert!(sipp.wait(uas).success, "102's phone failed");
    std::thread::sleep(Duration::from_millis(1000));

    let (_driver, driver_port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = browser_js(driver_port, profile.path(), true).await;
        c.goto(&format!("{base}/admin/media")).await.expect("open");
        type_into(&c, "#user", "admin").await;
        type_into(&c, "#password", ADMIN_PASSWORD).await;
        click(&c, "#login-button").await;
        wait_path(&c, "/admin/media").await;
        let vm = text(&c, "#voicemail").await;
        assert!(
            vm.contains("101") && vm.contains("sip:100@besip.test"),
            "{vm}"
        );
        let rec = text(&c, "#recordings").await;
        assert!(rec.contains("102"), "{rec}");
        // Each player loads its audio: metadata read, a duration of seconds.
        for table in ["#voicemail", "#recordings"] {
            let script = format!(
                "const a = document.querySelector('{table} audio'); const done = arguments[0];\
                 if (a.readyState >= 1) {{ done(a.duration); return; }}\
                 a.addEventListener('loadedmetadata', () => done(a.duration));\
                 a.addEventListener('error', () => done(-1)); a.load();"
            );
            let duration = c
                .execute_async(&script, vec![])
                .await
                .expect("audio element");
            let secs = duration.as_f64().unwrap_or(-1.0);
            assert!(
                secs > 0.5 && secs < 10.0,
                "{table}: the player's audio did not load ({duration})"
            );
        }
        if let Ok(shot) = c.screenshot().await {
            let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
            let _ = std::fs::create_dir_all(&artifacts);
            let _ = std::fs::write(artifacts.join("web-admin-media.png"), shot);
        }
        c.close().await.expect("close");
    });
    // The download is the WAV; a bad id and no session are refused.
    let b = Browser::new(&base);
    let page = b.get("/admin/login");
    let login = b.post(
        "/admin/login",
        &[
            ("csrf", &page.csrf()),
            ("user", "admin"),
            ("password", ADMIN_PASSWORD),
        ],
    );
    assert!(
        login.status == 303 || login.status == 302,
        "{}",
        login.status
    );
    let list = b.get("/admin/media");
    let src_at = list
        .body
        .find("/admin/audio/recording/")
        .expect("a recording link");
    let src = &list.body[src_at..src_at + list.body[src_at..].find('"').unwrap()];
    let wav = b.get(&format!("{src}?download=1"));
    assert_eq!(wav.status, 200);
    assert!(wav
        .header("content-disposition")
        .unwrap_or_default()
        .starts_with("attachment"));
    assert!(wav
        .header("content-type")
        .unwrap_or_default()
        .starts_with("audio/wav"));
    // besip-monitord captured the recorded call on lo: its MOS is shown beside it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = b.get("/admin/media");
        let open = "<td class=\"mos\">";
        let at = page.body.find(open).map(|i| i + open.len());
        let cell = at.map(|i| &page.body[i..i + page.body[i..].find('<').unwrap_or(0)]);
        if let Some(mos) = cell.and_then(|c| c.parse::<f64>().ok()) {
            assert!((1.0..=5.0).contains(&mos), "MOS {mos}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no MOS beside the recording: {cell:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(b.get("/admin/audio/recording/..%2Fetc.wav").status, 404);
    assert_eq!(b.get("/admin/audio/recording/nope-0000.wav").status, 404);
    let stranger = curl(&["-o", "/dev/null", &format!("{base}{src}")]);
    assert_ne!(stranger.status, 200, "audio served without a session");
}

/// A user-ordered list (a ring group's hunt order) is reordered from its
/// page: each row has "up" and "down" buttons that move the entry in the
/// candidate (as RESTCONF and NETCONF see it); the first entry stays first
/// when moved up, an unknown entry or a system-ordered list is 404, and a
/// monitor sees no buttons and is refused.
#[test]
fn entries_of_a_user_ordered_list_move_up_and_down() {
    let b = Box::start();
    let admin_auth = format!("admin:{ADMIN_PASSWORD}");
    let r = curl(&[
        "-u",
        &admin_auth,
        "-X",
        "POST",
        "-H",
        "Content-Type: application/yang-data+json",
        "--data-binary",
        r#"{"besip-pbx:ring-group":[{"number":"650","member":[{"number":"101"},{"number":"102"},{"number":"103"}]}]}"#,
        &format!("{}/restconf/data/besip-pbx:pbx", b.base),
    ]);
    assert_eq!(r.status, 201, "{}", r.body);
    let order = || -> Vec<String> {
        let r = curl(&[
            "-u",
            &admin_auth,
            &format!(
                "{}/restconf/ds/ietf-datastores:candidate/besip-pbx:pbx/ring-group=650",
                b.base
            ),
        ]);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        v["besip-pbx:ring-group"][0]["member"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|m| m["number"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(order(), ["101", "102", "103"]);
    let members = "/admin/config/pbx/ring-group/650/member";
    let admin = Browser::new(&b.base);
    assert_eq!(admin.login("admin", ADMIN_PASSWORD).status, 303);
    let page = admin.get(members);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<th>order</th>") && page.body.contains("value=\"move\""),
        "{}",
        page.body
    );
    let token = admin.csrf();
    let mv = |key: &str, to: &str| {
        admin.post(
            members,
            &[
                ("csrf", &token),
                ("action", "move"),
                ("k0", key),
                ("to", to),
            ],
        )
    };
    let r = mv("103", "up");
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(order(), ["101", "103", "102"]);
    assert_eq!(mv("101", "down").status, 303);
    assert_eq!(order(), ["103", "101", "102"]);
    assert_eq!(mv("103", "up").status, 303, "the first stays first");
    assert_eq!(order(), ["103", "101", "102"]);
    assert_eq!(mv("999", "up").status, 404);
    // Extensions are ordered by the system: no moving there.
    let ext = admin.get("/admin/config/pbx/extension");
    assert!(!ext.body.contains("value=\"move\""), "{}", ext.body);
    let r = admin.post(
        "/admin/config/pbx/extension",
        &[
            ("csrf", &token),
            ("action", "move"),
            ("k0", "100"),
            ("to", "up"),
        ],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    // A monitor reads the list without buttons and cannot move.
    let monitor = Browser::new(&b.base);
    assert_eq!(monitor.login(MON_USER, MON_PASSWORD).status, 303);
    let page = monitor.get(members);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("value=\"move\""), "{}", page.body);
    let mon_token = monitor.csrf();
    let r = monitor.post(
        members,
        &[
            ("csrf", &mon_token),
            ("action", "move"),
            ("k0", "102"),
            ("to", "up"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(order(), ["103", "101", "102"]);
}
