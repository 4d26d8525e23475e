//! The web panel's guards (over HTTPS): every route refuses a request
//! without login; forged forms (no / wrong / another session's CSRF token)
//! are refused and change nothing; the monitor group only reads; a growing
//! delay after failed logins; bad input gets a clear 4xx and the daemon lives
//! on; capture control is the same through NETCONF and the panel.

use std::time::Duration;

use besip_tests::netconf::ADMIN_PASSWORD;
use besip_tests::web::{Client, Panel, MONITOR_PASSWORD, MONITOR_USER};

const QUIET_CAPTURE: &str = "<interface>lo</interface><capture-filter>udp port 9</capture-filter>";

/// Puts one call report in the daemon's database (the data under test is
/// the guard, not the measurement).
fn seed_call(p: &Panel, id: &str) {
    let c = rusqlite::Connection::open(p.monitord.db()).expect("open report db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    c.execute(
        "INSERT INTO calls (call_id, from_uri, to_uri, start_time, ended, stream_count, r_factor, mos, min_mos)
         VALUES (?1, 'sip:100@test', 'sip:200@test', strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?2, 0, 80.0, 4.1, 4.0)",
        rusqlite::params![id, now],
    )
    .expect("seed call");
}

fn calls_in_db(p: &Panel) -> i64 {
    let c = rusqlite::Connection::open(p.monitord.db()).expect("open report db");
    c.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .expect("count")
}

fn capture_running(c: &mut Client) -> bool {
    let r = c.get("/api/status");
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("status JSON");
    v["capture-running"].as_bool().expect("capture-running")
}

#[test]
fn guards_of_every_route() {
    let p = Panel::start(QUIET_CAPTURE);
    seed_call(&p, "seed-1@test");

    // 1. No session: pages go to /login, the API and CSV answer 401, and
    //    no POST does anything.
    let mut anon = p.client();
    for path in [
        "/",
        "/calls",
        "/calls?number=100",
        "/calls/seed-1%40test",
        "/capture",
        "/erase",
    ] {
        let r = anon.get(path);
        assert_eq!(r.status, 303, "GET {path}: {r:?}");
        assert_eq!(r.header("location"), Some("/login"), "GET {path}");
        assert!(!r.body.contains("seed-1"), "GET {path} leaked data");
    }
    for path in ["/api/status", "/api/calls", "/calls.csv"] {
        let r = anon.get(path);
        assert_eq!(r.status, 401, "GET {path}: {r:?}");
        assert!(!r.body.contains("seed-1"));
    }
    for path in ["/capture/stop", "/erase", "/logout", "/capture/start"] {
        let r = anon.post(path, &[("confirm", "yes"), ("csrf", "x")]);
        assert_eq!(r.status, 303, "POST {path}: {r:?}");
        assert_eq!(r.header("location"), Some("/login"));
    }
    assert_eq!(calls_in_db(&p), 1, "an anonymous erase changed the data");

    // 2. Logged in: the cookie is HttpOnly, Secure and SameSite=Strict.
    let mut admin = p.client();
    let page = admin.get("/login");
    let token = page.csrf().expect("login token");
    let r = admin.post(
        "/login",
        &[
            ("csrf", &token),
            ("user", "admin"),
            ("password", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.header("set-cookie").expect("session cookie");
    assert!(
        cookie.starts_with("besip_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("; Secure")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let csrf_a = admin.get("/").csrf().expect("token");
    assert!(capture_running(&mut admin));
    // A login form without its token is refused.
    let mut other = p.client();
    let r = other.post("/login", &[("user", "admin"), ("password", ADMIN_PASSWORD)]);
    assert_eq!(r.status, 403, "login without token: {r:?}");
    let csrf_b = other.login_ok("admin", ADMIN_PASSWORD);
    assert_ne!(csrf_a, csrf_b, "CSRF tokens are per session");

    // 3. Forged forms: no token, a wrong one, another session's one.
    let forged: [&[(&str, &str)]; 3] = [
        &[("confirm", "yes")],
        &[("confirm", "yes"), ("csrf", "0123456789abcdef")],
        &[("confirm", "yes"), ("csrf", csrf_b.as_str())],
    ];
    for fields in forged {
        for path in ["/capture/stop", "/erase", "/logout"] {
            let r = admin.post(path, fields);
            assert_eq!(r.status, 403, "forged POST {path} {fields:?}: {r:?}");
        }
    }
    assert_eq!(calls_in_db(&p), 1, "a forged erase changed the data");
    assert!(
        capture_running(&mut admin),
        "a forged stop stopped the capture"
    );
    assert_eq!(
        admin.get("/").status,
        200,
        "a forged logout ended the session"
    );

    // 4. The monitor group reads but controls nothing, even with a valid token.
    let mut mon = p.client();
    let csrf_m = mon.login_ok(MONITOR_USER, MONITOR_PASSWORD);
    assert_eq!(mon.get("/calls").status, 200);
    let detail = mon.get("/calls/seed-1%40test");
    assert_eq!(detail.status, 200, "{detail:?}");
    assert!(detail.body.contains("sip:100@test"));
    assert!(!mon.get("/capture").body.contains("stop-capture"));
    for path in ["/capture/stop", "/erase"] {
        let r = mon.post(path, &[("csrf", &csrf_m), ("confirm", "yes")]);
        assert_eq!(r.status, 403, "monitor POST {path}: {r:?}");
        assert!(r.body.contains("monitor"), "{}", r.body);
    }
    assert_eq!(mon.get("/erase").status, 403);
    assert_eq!(calls_in_db(&p), 1);
    assert!(capture_running(&mut mon));

    // 5. Bad input: a clear 4xx naming the problem.
    for (path, word) in [
        ("/calls?page=abc", "page"),
        ("/calls?page=0", "page"),
        ("/calls?mos_below=9", "mos_below"),
        ("/calls?from=yesterday", "from"),
        ("/calls?drop=table", "unknown parameter"),
        ("/calls.csv?mos_below=NaN", "mos_below"),
        ("/api/calls?page=-3", "page"),
    ] {
        let r = admin.get(path);
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(r.body.contains(word), "{path}: {}", r.body);
    }
    assert_eq!(admin.get("/calls/no-such-call").status, 404);
    assert_eq!(
        admin.get("/calls/%FF%FE").status,
        400,
        "invalid UTF-8 in the path"
    );
    assert_eq!(admin.get("/nowhere").status, 404);
    assert_eq!(admin.send("DELETE", "/calls", None).status, 405);
    // A huge body is refused before anything reads it.
    let huge = vec![b'a'; 4 << 20];
    let r = admin.send(
        "POST",
        "/erase",
        Some(("application/x-www-form-urlencoded", &huge)),
    );
    assert_eq!(r.status, 413, "{:?}", r.status);
    let r = admin.send("POST", "/capture/stop", Some(("text/plain", b"csrf=x")));
    assert_eq!(r.status, 415, "{r:?}");
    // Not HTTP at all.
    let r = p.raw(b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(r.as_ref().is_none_or(|r| r.status == 400), "{r:?}");
    let long = format!(
        "GET /calls?number={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "9".repeat(200_000)
    );
    let r = p.raw(long.as_bytes());
    assert!(
        r.as_ref().is_none_or(|r| (400..500).contains(&r.status)),
        "{r:?}"
    );
    // Still serving, still capturing, nothing lost.
    assert_eq!(admin.get("/").status, 200);
    assert!(capture_running(&mut admin));
    assert_eq!(calls_in_db(&p), 1);

    // 6. The real forms work: stop from the panel is seen by NETCONF,
    //    start-capture through NETCONF is seen by the panel.
    let r = admin.post("/capture/stop", &[("csrf", &csrf_a)]);
    assert_eq!(r.status, 303, "{r:?}");
    assert!(!capture_running(&mut admin));
    let state = p.netconf(
        "m = connect()\nprint(m.get(filter=('subtree', '<monitoring xmlns=\"urn:besip:monitoring\"><capture-running/></monitoring>')).data_xml)\n",
    );
    assert!(
        state.contains("<capture-running>false</capture-running>"),
        "{state}"
    );
    let out = p.netconf(
        "from ncclient.xml_ import to_ele\nm = connect()\nprint(m.dispatch(to_ele('<start-capture xmlns=\"urn:besip:monitoring\"/>')).xml)\n",
    );
    assert!(out.contains(">true</capture-running>"), "{out}");
    assert!(capture_running(&mut admin));
    assert!(admin.get("/capture").body.contains("id=\"stop-capture\""));
    let out = p.netconf(
        "from ncclient.xml_ import to_ele\nm = connect()\nprint(m.dispatch(to_ele('<stop-capture xmlns=\"urn:besip:monitoring\"/>')).xml)\n",
    );
    assert!(out.contains(">false</capture-running>"), "{out}");
    assert!(!capture_running(&mut admin));
    let r = admin.post("/capture/start", &[("csrf", &csrf_a)]);
    assert_eq!(r.status, 303, "{r:?}");
    assert!(capture_running(&mut admin));

    // Erase needs the confirmation field; then it erases.
    let r = admin.post("/erase", &[("csrf", &csrf_a)]);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(calls_in_db(&p), 1);
    let r = admin.post("/erase", &[("csrf", &csrf_a), ("confirm", "yes")]);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(calls_in_db(&p), 0);

    // Logout ends the session: the old cookie no longer opens anything.
    let old_cookies = admin.cookies.clone();
    let r = admin.post("/logout", &[("csrf", &csrf_a)]);
    assert_eq!(r.status, 303);
    let mut replay = p.client();
    replay.cookies = old_cookies;
    assert_eq!(replay.get("/").status, 303);
    assert_eq!(replay.get("/api/status").status, 401);

    // A user removed through NETCONF loses its session at the reload.
    p.netconf(&format!(
        "m = connect()\nm.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><user xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\" nc:operation=\"delete\"><name>{MONITOR_USER}</name></user></system></config>')\nm.commit()\n"
    ));
    assert_eq!(mon.get("/").status, 303, "session of a deleted user");
    assert_eq!(p.client().login(MONITOR_USER, MONITOR_PASSWORD).status, 401);

    // A new port through NETCONF: the panel moves at the reload, no
    // restart, and sessions survive the move.
    let new_port = besip_tests::web::free_tcp_port();
    p.netconf(&format!(
        "m = connect()\nm.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><web><port>{new_port}</port></web></system></config>')\nm.commit()\n"
    ));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", p.port)).is_err(),
        "old port still open"
    );
    other.port = new_port;
    assert_eq!(other.get("/").status, 200, "session after the move");
    assert_eq!(p.client_on(new_port).get("/").status, 303);

    // enabled=false closes the panel; true opens it again.
    for (on, open) in [("false", false), ("true", true)] {
        p.netconf(&format!(
            "m = connect()\nm.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><web><enabled>{on}</enabled></web></system></config>')\nm.commit()\n"
        ));
        assert_eq!(
            std::net::TcpStream::connect(("127.0.0.1", new_port)).is_ok(),
            open,
            "web enabled={on}"
        );
        assert_eq!(
            std::net::TcpStream::connect(("127.0.0.1", p.http_port)).is_ok(),
            open,
            "HTTP redirect with web enabled={on}"
        );
    }
}

#[test]
fn failed_logins_are_delayed_per_user_and_per_source() {
    let p = Panel::start(QUIET_CAPTURE);
    let mut c = p.client();
    for i in 0..5 {
        let r = c.login("admin", "wrong");
        assert_eq!(r.status, 401, "failure {i}: {r:?}");
        assert!(r.body.contains("Wrong user name or password"));
    }
    // Locked: even the right password is refused, with the delay named.
    let r = c.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("try again in"), "{}", r.body);
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&wait), "first delay {wait} s");
    // Per user: another user from the same address still logs in.
    p.client().login_ok(MONITOR_USER, MONITOR_PASSWORD);
    std::thread::sleep(Duration::from_millis(wait * 1000 + 200));
    c.login_ok("admin", ADMIN_PASSWORD);

    // Per source: many different names from one address lock the address.
    for i in 0..10 {
        let r = c.login(&format!("nobody{i}"), "guess");
        assert_eq!(r.status, 401, "guess {i}: {r:?}");
    }
    let r = p.client().login(MONITOR_USER, MONITOR_PASSWORD);
    assert_eq!(r.status, 429, "source not locked: {r:?}");
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    std::thread::sleep(Duration::from_millis(wait * 1000 + 200));
    p.client().login_ok(MONITOR_USER, MONITOR_PASSWORD);
}
