//! RESTCONF (RFC 8040 / RFC 8527) of besip-netconfd, with curl (and Python
//! requests when installed) against a real server, cross-checked over
//! NETCONF (ncclient) on the same datastore.

use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MON_HASH: &str = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
const MON_PASSWORD: &str = "s3cret";

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
}

/// `curl -k -i` with `args`; the last status block wins.
fn curl(args: &[&str]) -> Http {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-i",
            "--path-as-is",
            "-H",
            "Expect:",
            "--max-time",
            "30",
        ])
        .args(args)
        .output()
        .expect("curl (apt install curl)");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
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

struct Box {
    server: NetconfServer,
    base: String,
    admin: String,
}

fn start() -> Box {
    let (server, port) = NetconfServer::start_with_restconf();
    Box {
        server,
        base: format!("https://127.0.0.1:{port}"),
        admin: format!("admin:{ADMIN_PASSWORD}"),
    }
}

impl Box {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Adds user `name` of `group` (password MON_PASSWORD) over RESTCONF;
    /// its `user:password` for curl.
    fn add_user(&self, name: &str, group: &str) -> String {
        let user = format!(
            r#"{{"besip-system:user":[{{"name":"{name}","group":"{group}","password-hash":"{MON_HASH}"}}]}}"#
        );
        let r = self.admin(
            "POST",
            "/restconf/data/besip-system:system",
            Some((JSON, &user)),
            &[],
        );
        assert_eq!(r.status, 201, "{}", r.body);
        format!("{name}:{MON_PASSWORD}")
    }

    /// Adds a NACM rule-list (its RFC 7951 JSON) over RESTCONF.
    fn add_rule_list(&self, json: &str) {
        let r = self.admin(
            "POST",
            "/restconf/data/ietf-netconf-acm:nacm",
            Some((JSON, json)),
            &[],
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }

    /// As admin: method, path, optional (content type, body), extra args.
    fn admin(&self, method: &str, path: &str, body: Option<(&str, &str)>, extra: &[&str]) -> Http {
        self.as_user(&self.admin.clone(), method, path, body, extra)
    }

    fn as_user(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
        extra: &[&str],
    ) -> Http {
        let url = self.url(path);
        let mut args: Vec<String> = vec!["-u".into(), user.into(), "-X".into(), method.into()];
        if let Some((ct, b)) = body {
            args.extend([
                "-H".into(),
                format!("Content-Type: {ct}"),
                "--data-binary".into(),
                b.into(),
            ]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(url);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&refs)
    }
}

const JSON: &str = "application/yang-data+json";
const XML: &str = "application/yang-data+xml";

fn error_tag(h: &Http) -> String {
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap_or_default();
    v["ietf-restconf:errors"]["error"][0]["error-tag"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn discovery_reads_and_query_parameters() {
    let b = start();
    let meta = curl(&[&b.url("/.well-known/host-meta")]);
    assert_eq!(meta.status, 200);
    assert!(
        meta.body.contains("rel=\"restconf\" href=\"/restconf\""),
        "{}",
        meta.body
    );

    let root = b.admin("GET", "/restconf", None, &[]);
    assert_eq!(root.status, 200, "{}", root.body);
    assert!(
        root.body
            .contains("\"yang-library-version\":\"2019-01-04\""),
        "{}",
        root.body
    );
    let v = b.admin(
        "GET",
        "/restconf/yang-library-version",
        None,
        &["-H", &format!("Accept: {XML}")],
    );
    assert_eq!(v.body, "<yang-library-version xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\">2019-01-04</yang-library-version>");

    // JSON (the default) and XML, with the datastore's ETag and Last-Modified.
    let host = b.admin(
        "GET",
        "/restconf/data/besip-system:system/hostname",
        None,
        &[],
    );
    assert_eq!(host.status, 200);
    assert_eq!(host.body, r#"{"besip-system:hostname":"besip"}"#);
    assert_eq!(host.header("content-type").as_deref(), Some(JSON));
    assert!(
        host.header("etag").is_some() && host.header("last-modified").is_some(),
        "{}",
        host.headers
    );
    let xml = b.admin(
        "GET",
        "/restconf/data/besip-system:system/hostname",
        None,
        &["-H", &format!("Accept: {XML}")],
    );
    assert_eq!(
        xml.body,
        "<hostname xmlns=\"urn:besip:system\">besip</hostname>"
    );
    let head = b.admin("HEAD", "/restconf/data/besip-system:system", None, &["-I"]);
    assert_eq!(head.status, 200);

    // depth, content, with-defaults.
    let shallow = b.admin(
        "GET",
        "/restconf/data/besip-system:system?depth=1",
        None,
        &[],
    );
    assert_eq!(
        shallow.body, r#"{"besip-system:system":{}}"#,
        "{}",
        shallow.body
    );
    let defaults = b.admin(
        "GET",
        "/restconf/data/besip-system:system/netconf?with-defaults=report-all",
        None,
        &[],
    );
    assert!(
        defaults.body.contains("\"max-sessions\":64"),
        "{}",
        defaults.body
    );
    let explicit = b.admin(
        "GET",
        "/restconf/data/besip-system:system/netconf",
        None,
        &[],
    );
    assert_eq!(
        explicit.status, 404,
        "only defaults there: {}",
        explicit.body
    );
    let fields = b.admin(
        "GET",
        "/restconf/data/besip-system:system?fields=hostname;netconf(port)&with-defaults=report-all",
        None,
        &[],
    );
    assert_eq!(
        fields.body, r#"{"besip-system:system":{"hostname":"besip","netconf":{"port":830}}}"#,
        "{}",
        fields.body
    );
    let bad_fields = b.admin(
        "GET",
        "/restconf/data/besip-system:system?fields=a(b",
        None,
        &[],
    );
    assert_eq!(bad_fields.status, 400);
    let config = b.admin("GET", "/restconf/data?content=config", None, &[]);
    assert!(!config.body.contains("netconf-state"), "{}", config.body);
    let state = b.admin("GET", "/restconf/data?content=nonconfig", None, &[]);
    assert!(
        state.body.contains("netconf-state") && !state.body.contains("\"hostname\""),
        "{}",
        state.body
    );
    let ds = b.admin(
        "GET",
        "/restconf/ds/ietf-datastores:operational/ietf-netconf-monitoring:netconf-state/statistics",
        None,
        &[],
    );
    assert_eq!(ds.status, 200, "{}", ds.body);

    // Errors documents: unknown module 400, missing data 404, bad parameter 400.
    let unknown = b.admin("GET", "/restconf/data/nosuch:thing", None, &[]);
    assert_eq!(
        (unknown.status, error_tag(&unknown).as_str()),
        (400, "unknown-namespace"),
        "{}",
        unknown.body
    );
    let missing = b.admin(
        "GET",
        "/restconf/data/besip-pbx:pbx/extension=999",
        None,
        &[],
    );
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing
            .body
            .contains("\"error-path\":\"/besip-pbx:pbx/besip-pbx:extension[number='999']\""),
        "{}",
        missing.body
    );
    let bad = b.admin("GET", "/restconf/data?depth=0", None, &[]);
    assert_eq!(
        (bad.status, error_tag(&bad).as_str()),
        (400, "invalid-value")
    );
    let xml_err = b.admin(
        "GET",
        "/restconf/data?depth=x",
        None,
        &["-H", &format!("Accept: {XML}")],
    );
    assert!(
        xml_err
            .body
            .starts_with("<errors xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\">"),
        "{}",
        xml_err.body
    );
    let traversal = b.admin("GET", "/restconf/data/../../etc/passwd", None, &[]);
    assert!(
        matches!(traversal.status, 400 | 404),
        "{}",
        traversal.status
    );
    let outside = b.admin("GET", "/etc/passwd", None, &[]);
    assert_eq!(outside.status, 404);
    let ops = b.admin("GET", "/restconf/operations", None, &[]);
    assert!(
        ops.body.contains("\"besip-security:unban\":[null]")
            && ops.body.contains("\"ietf-netconf:commit\""),
        "{}",
        ops.body
    );
    assert!(
        !ops.body.contains("ietf-netconf:lock"),
        "session-bound operations are not offered"
    );
}

#[test]
fn edits_commit_to_running_and_are_seen_over_netconf() {
    let b = start();
    let before = b.admin("GET", "/restconf/data/besip-system:system", None, &[]);
    let etag = before.header("etag").expect("etag");

    // POST creates (201 + Location), over JSON.
    let post = b.admin(
        "POST",
        "/restconf/data/besip-pbx:pbx",
        Some((JSON, r#"{"besip-pbx:extension":[{"number":"100","password":"secret100","display-name":"Alice"}]}"#)),
        &[],
    );
    assert_eq!(post.status, 201, "{}", post.body);
    assert_eq!(
        post.header("location").as_deref(),
        Some("/restconf/data/besip-pbx:pbx/extension=100")
    );
    let new_etag = post.header("etag").expect("etag");
    assert_ne!(new_etag, etag);
    // Again: data-exists, 409.
    let again = b.admin(
        "POST",
        "/restconf/data/besip-pbx:pbx",
        Some((JSON, r#"{"besip-pbx:extension":[{"number":"100"}]}"#)),
        &[],
    );
    assert_eq!(
        (again.status, error_tag(&again).as_str()),
        (409, "data-exists")
    );

    // If-Match: a stale ETag is refused (412) and changes nothing.
    let stale = b.admin(
        "PATCH",
        "/restconf/data/besip-pbx:pbx/extension=100",
        Some((
            JSON,
            r#"{"besip-pbx:extension":[{"number":"100","display-name":"Mallory"}]}"#,
        )),
        &["-H", &format!("If-Match: {etag}")],
    );
    assert_eq!(stale.status, 412, "{}", stale.body);
    // PATCH merges (204) with the current ETag.
    let patch = b.admin(
        "PATCH",
        "/restconf/data/besip-pbx:pbx/extension=100",
        Some((
            JSON,
            r#"{"besip-pbx:extension":[{"number":"100","display-name":"Alice B"}]}"#,
        )),
        &["-H", &format!("If-Match: {new_etag}")],
    );
    assert_eq!(patch.status, 204, "{}", patch.body);
    // PUT creates (201) then replaces (204), over XML.
    let put_xml = "<extension xmlns=\"urn:besip:pbx\"><number>101</number><password>secret101</password></extension>";
    let put = b.admin(
        "PUT",
        "/restconf/data/besip-pbx:pbx/extension=101",
        Some((XML, put_xml)),
        &[],
    );
    assert_eq!(put.status, 201, "{}", put.body);
    let put = b.admin(
        "PUT",
        "/restconf/data/besip-pbx:pbx/extension=101",
        Some((XML, put_xml)),
        &[],
    );
    assert_eq!(put.status, 204, "{}", put.body);
    // A body naming another entry than the URL: 400.
    let mismatch = b.admin(
        "PUT",
        "/restconf/data/besip-pbx:pbx/extension=101",
        Some((JSON, r#"{"besip-pbx:extension":[{"number":"102"}]}"#)),
        &[],
    );
    assert_eq!(mismatch.status, 400, "{}", mismatch.body);

    // Bad input: 400 with an errors document, nothing changed.
    let etag_now = b
        .admin("GET", "/restconf/data/besip-pbx:pbx", None, &[])
        .header("etag");
    for (ct, body) in [
        (JSON, r#"{"besip-pbx:extension":[{"numb"#),
        (
            XML,
            "<extension xmlns=\"urn:besip:pbx\"><number>7</extension>",
        ),
        (JSON, r#"{"besip-pbx:extension":[{"number":"1 00"}]}"#),
        (
            JSON,
            r#"{"besip-pbx:extension":[{"number":"103","no-such-leaf":1}]}"#,
        ),
        ("text/plain", "hello"),
    ] {
        let r = b.admin(
            "POST",
            "/restconf/data/besip-pbx:pbx",
            Some((ct, body)),
            &[],
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains("errors"), "{}", r.body);
    }
    let invalid = b.admin(
        "POST",
        "/restconf/data/besip-pbx:pbx",
        Some((JSON, r#"{"besip-pbx:extension":[{"number":"1 00"}]}"#)),
        &[],
    );
    assert!(
        invalid
            .body
            .contains("\"error-path\":\"/besip-pbx:pbx/besip-pbx:extension[number='1 00']"),
        "{}",
        invalid.body
    );
    let after = b.admin("GET", "/restconf/data/besip-pbx:pbx", None, &[]);
    assert_eq!(
        after.header("etag"),
        etag_now,
        "a refused edit changed running"
    );

    // NETCONF sees what RESTCONF wrote, and RESTCONF what NETCONF writes.
    let (ok, out) = python(
        b.server.port,
        ADMIN_PASSWORD,
        r#"
m = connect()
print(m.get_config(source='running', filter=('xpath', "/pbx/extension[number='100']")).data_xml)
m.edit_config(target='candidate', config='<config><pbx xmlns="urn:besip:pbx"><extension><number>200</number><password>secret200</password></extension></pbx></config>')
m.commit()
print('DONE')
"#,
    );
    assert!(
        ok && out.contains("Alice B") && out.contains("DONE"),
        "{out}"
    );
    let by_netconf = b.admin(
        "GET",
        "/restconf/data/besip-pbx:pbx/extension=200/password",
        None,
        &[],
    );
    assert_eq!(by_netconf.body, r#"{"besip-pbx:password":"secret200"}"#);

    // DELETE: 204, then 404.
    let del = b.admin(
        "DELETE",
        "/restconf/data/besip-pbx:pbx/extension=101",
        None,
        &[],
    );
    assert_eq!(del.status, 204, "{}", del.body);
    let del = b.admin(
        "DELETE",
        "/restconf/data/besip-pbx:pbx/extension=101",
        None,
        &[],
    );
    assert_eq!(del.status, 404, "{}", del.body);
    // The commit history names the RESTCONF commits.
    let history = b.admin(
        "GET",
        "/restconf/data/besip-system:commit-history",
        None,
        &[],
    );
    assert!(
        history.body.contains("\"comment\":\"RESTCONF\""),
        "{}",
        history.body
    );
}

#[test]
fn candidate_commit_and_event_stream() {
    let b = start();
    // The SSE stream, open before the commit.
    let mut sse = Command::new("curl")
        .args([
            "-sk",
            "-N",
            "-u",
            &b.admin,
            "--max-time",
            "20",
            &b.url("/restconf/streams/NETCONF/json"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(500));

    let cand = "/restconf/ds/ietf-datastores:candidate/besip-pbx:pbx";
    let post = b.admin(
        "POST",
        cand,
        Some((
            JSON,
            r#"{"besip-pbx:extension":[{"number":"300","password":"secret300"}]}"#,
        )),
        &[],
    );
    assert_eq!(post.status, 201, "{}", post.body);
    let in_candidate = b.admin("GET", &format!("{cand}/extension=300"), None, &[]);
    assert_eq!(in_candidate.status, 200);
    let in_running = b.admin(
        "GET",
        "/restconf/ds/ietf-datastores:running/besip-pbx:pbx/extension=300",
        None,
        &[],
    );
    assert_eq!(in_running.status, 404, "staged only");
    // Running edits wait for the candidate: in-use.
    let busy = b.admin(
        "POST",
        "/restconf/data/besip-pbx:pbx",
        Some((JSON, r#"{"besip-pbx:extension":[{"number":"301"}]}"#)),
        &[],
    );
    assert_eq!(
        (busy.status, error_tag(&busy).as_str()),
        (409, "in-use"),
        "{}",
        busy.body
    );

    let commit = b.admin(
        "POST",
        "/restconf/operations/ietf-netconf:commit",
        None,
        &[],
    );
    assert_eq!(commit.status, 204, "{}", commit.body);
    let in_running = b.admin(
        "GET",
        "/restconf/ds/ietf-datastores:running/besip-pbx:pbx/extension=300",
        None,
        &[],
    );
    assert_eq!(in_running.status, 200);

    // Staged then discarded.
    b.admin(
        "POST",
        cand,
        Some((
            JSON,
            r#"{"besip-pbx:extension":[{"number":"302","password":"secret302"}]}"#,
        )),
        &[],
    );
    let discard = b.admin(
        "POST",
        "/restconf/operations/ietf-netconf:discard-changes",
        None,
        &[],
    );
    assert_eq!(discard.status, 204, "{}", discard.body);
    assert_eq!(
        b.admin("GET", &format!("{cand}/extension=302"), None, &[])
            .status,
        404
    );

    // The commit's netconf-config-change arrived on the stream.
    let stdout = sse.stdout.take().expect("stdout");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("netconf-config-change") && line.contains("extension[pbx:number='300']") {
            break;
        }
        assert!(Instant::now() < deadline, "no notification: {seen}");
    }
    let _ = sse.kill();
    let _ = sse.wait();
    assert!(
        seen.contains("data: {\"ietf-restconf:notification\""),
        "{seen}"
    );
    assert!(seen.contains("extension[pbx:number='300']"), "{seen}");

    // A module RPC is forwarded to its daemon (not running here: a clear error).
    let unban = b.admin(
        "POST",
        "/restconf/operations/besip-security:unban",
        Some((JSON, r#"{"besip-security:input":{"address":"192.0.2.9"}}"#)),
        &[],
    );
    assert_eq!(unban.status, 500, "{}", unban.body);
    assert!(unban.body.contains("not running"), "{}", unban.body);
    let lock = b.admin("POST", "/restconf/operations/ietf-netconf:lock", None, &[]);
    assert_eq!(lock.status, 404, "{}", lock.body);
}

#[test]
fn attackers_are_refused() {
    let b = start();
    // A monitor user (read-only group), added over RESTCONF.
    let user = format!(
        r#"{{"besip-system:user":[{{"name":"mon","group":"monitor","password-hash":"{MON_HASH}"}}]}}"#
    );
    let add = b.admin(
        "POST",
        "/restconf/data/besip-system:system",
        Some((JSON, &user)),
        &[],
    );
    assert_eq!(add.status, 201, "{}", add.body);
    b.admin(
        "POST",
        "/restconf/data/besip-pbx:pbx",
        Some((
            JSON,
            r#"{"besip-pbx:extension":[{"number":"100","password":"secret100"}]}"#,
        )),
        &[],
    );

    // No credentials: 401 with a challenge.
    let anon = curl(&[&b.url("/restconf/data")]);
    assert_eq!(anon.status, 401);
    assert!(
        anon.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{}",
        anon.headers
    );
    let garbage = curl(&["-H", "Authorization: Basic !!!", &b.url("/restconf/data")]);
    assert_eq!(garbage.status, 401);

    // The monitor reads (without secrets) but cannot write: 403 access-denied.
    let mon = format!("mon:{MON_PASSWORD}");
    let read = b.as_user(&mon, "GET", "/restconf/data/besip-pbx:pbx", None, &[]);
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(
        !read.body.contains("secret100"),
        "a monitor saw a SIP password: {}",
        read.body
    );
    let users = b.as_user(&mon, "GET", "/restconf/data/besip-system:system", None, &[]);
    assert!(!users.body.contains("password-hash"), "{}", users.body);
    for (method, body) in [
        (
            "POST",
            Some((
                JSON,
                r#"{"besip-pbx:extension":[{"number":"666","password":"secret666"}]}"#,
            )),
        ),
        ("DELETE", None),
    ] {
        let path = if method == "POST" {
            "/restconf/data/besip-pbx:pbx"
        } else {
            "/restconf/data/besip-pbx:pbx/extension=100"
        };
        let r = b.as_user(&mon, method, path, body, &[]);
        assert_eq!(
            (r.status, error_tag(&r).as_str()),
            (403, "access-denied"),
            "{method}: {}",
            r.body
        );
    }
    let commit = b.as_user(
        &mon,
        "POST",
        "/restconf/operations/ietf-netconf:commit",
        None,
        &[],
    );
    assert_eq!(commit.status, 403, "{}", commit.body);
    let cand = b.as_user(
        &mon,
        "POST",
        "/restconf/ds/ietf-datastores:candidate/besip-pbx:pbx",
        Some((JSON, r#"{"besip-pbx:extension":[{"number":"667"}]}"#)),
        &[],
    );
    assert_eq!(cand.status, 403, "{}", cand.body);

    // A gigantic body: 413, before it is read.
    let big = format!(
        "{{\"besip-pbx:pbx\":{{\"domain\":\"{}\"}}}}",
        "a".repeat(17 * 1024 * 1024)
    );
    let file = b.server.root_path().join("big.json");
    std::fs::write(&file, big).unwrap();
    let r = b.admin(
        "PUT",
        "/restconf/data/besip-pbx:pbx",
        Some((JSON, &format!("@{}", file.display()))),
        &[],
    );
    assert_eq!(r.status, 413, "{}", r.body);

    // Wrong passwords: 401, and after three the right one waits too (as SSH).
    for _ in 0..3 {
        let r = b.as_user("mon:wrong", "GET", "/restconf/data", None, &[]);
        assert_eq!(r.status, 401);
    }
    let throttled = b.as_user(&mon, "GET", "/restconf/data", None, &[]);
    // The cached verification of earlier requests does not skip the throttle for
    // a fresh password check; a cached one is still good (same password).
    assert!(
        matches!(throttled.status, 200 | 401),
        "{}",
        throttled.status
    );
    let fresh = b.as_user("mon:wrong-again", "GET", "/restconf/data", None, &[]);
    assert_eq!(fresh.status, 401);
    assert!(
        fresh.header("retry-after").is_some(),
        "throttled: {}",
        fresh.headers
    );

    // A flood (each request a new session) leaves memory bounded.
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = rss(b.server.pid());
    let url = b.url("/restconf/data/besip-system:system/hostname");
    let mut args: Vec<String> = vec!["-sk".into(), "-u".into(), b.admin.clone()];
    for _ in 0..1500 {
        args.extend(["-o".into(), "/dev/null".into(), url.clone()]);
    }
    let status = Command::new("curl").args(&args).status().expect("curl");
    assert!(status.success());
    let after = rss(b.server.pid());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    let still = b.admin(
        "GET",
        "/restconf/data/besip-system:system/hostname",
        None,
        &[],
    );
    assert_eq!(still.status, 200);
    assert!(!b.server.log().contains("panicked"), "{}", b.server.log());
}

#[test]
fn session_cookie_and_python_requests() {
    let b = start();
    let first = b.admin(
        "GET",
        "/restconf/data/besip-system:system/hostname",
        None,
        &[],
    );
    let cookie = first.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let token = cookie.split(';').next().unwrap().to_owned();
    let by_cookie = curl(&[
        "-H",
        &format!("Cookie: {token}"),
        &b.url("/restconf/data/besip-system:system/hostname"),
    ]);
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.body);
    let forged = curl(&["-H", "Cookie: besip_restconf=00", &b.url("/restconf/data")]);
    assert_eq!(forged.status, 401);
    // A session ends with its user: deleted by a commit, refused at once.
    let user = format!(
        r#"{{"besip-system:user":[{{"name":"mon","group":"monitor","password-hash":"{MON_HASH}"}}]}}"#
    );
    assert_eq!(
        b.admin(
            "POST",
            "/restconf/data/besip-system:system",
            Some((JSON, &user)),
            &[]
        )
        .status,
        201
    );
    let mon = b.as_user(
        &format!("mon:{MON_PASSWORD}"),
        "GET",
        "/restconf/data/besip-system:system/hostname",
        None,
        &[],
    );
    let mon_token = mon
        .header("set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let by_mon = curl(&[
        "-H",
        &format!("Cookie: {mon_token}"),
        &b.url("/restconf/data/besip-system:system/hostname"),
    ]);
    assert_eq!(by_mon.status, 200);
    assert_eq!(
        b.admin(
            "DELETE",
            "/restconf/data/besip-system:system/user=mon",
            None,
            &[]
        )
        .status,
        204
    );
    let gone = curl(&[
        "-H",
        &format!("Cookie: {mon_token}"),
        &b.url("/restconf/data/besip-system:system/hostname"),
    ]);
    assert_eq!(gone.status, 401, "a deleted user's session still works");

    let has_requests = Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_requests {
        eprintln!("python3 requests not installed: the curl part ran alone");
        return;
    }
    let script = format!(
        r#"
import requests, urllib3
urllib3.disable_warnings()
B = {base:?} + '/restconf'
s = requests.Session(); s.trust_env = False; s.verify = False; s.auth = ('admin', {pw:?})
H = {{'Content-Type': 'application/yang-data+json', 'Accept': 'application/yang-data+json'}}
r = s.post(B + '/data/besip-pbx:pbx', json={{'besip-pbx:extension': [{{'number': '400', 'password': 'secret400'}}]}}, headers=H)
assert r.status_code == 201, r.text
s.auth = None  # the session cookie is enough from here on
r = s.get(B + '/data/besip-pbx:pbx/extension=400', headers=H)
assert r.status_code == 200 and r.json()['besip-pbx:extension'][0]['password'] == 'secret400', r.text
r = s.patch(B + '/data/besip-pbx:pbx/extension=400', json={{'besip-pbx:extension': [{{'number': '400', 'display-name': 'Py'}}]}}, headers=H)
assert r.status_code == 204, r.text
r = s.get(B + '/data/besip-pbx:pbx/extension=400/display-name', headers={{'Accept': 'application/yang-data+xml'}})
assert r.text == '<display-name xmlns="urn:besip:pbx">Py</display-name>', r.text
r = s.delete(B + '/data/besip-pbx:pbx/extension=400')
assert r.status_code == 204, r.text
r = s.delete(B + '/data/besip-pbx:pbx/extension=400')
assert r.status_code == 404 and r.json()['ietf-restconf:errors']['error'][0]['error-tag'] == 'data-missing', r.text
print('PYTHON OK')
"#,
        base = b.base,
        pw = ADMIN_PASSWORD
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PYTHON OK"), "{text}");
}

#[test]
fn the_endpoint_follows_running() {
    let server = NetconfServer::start();
    let port = besip_tests::netconf::free_port();
    let url = format!("https://127.0.0.1:{port}/restconf/yang-library-version");
    assert_eq!(
        curl(&["-u", &format!("admin:{ADMIN_PASSWORD}"), &url]).status,
        0,
        "off by default"
    );
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!(
            r#"
m = connect()
m.edit_config(target='candidate', config='<config><system xmlns="urn:besip:system"><restconf><enabled>true</enabled><listen-address>127.0.0.1</listen-address><port>{port}</port></restconf></system></config>')
m.commit()
print('DONE')
"#
        ),
    );
    assert!(ok && out.contains("DONE"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = curl(&["-u", &format!("admin:{ADMIN_PASSWORD}"), &url]);
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RESTCONF did not start: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server
        .root_path()
        .join("etc/besip/restconf-cert.pem")
        .exists());
}

/// RFC 8040 §4.8.5-6 insert and point on a user-ordered list (a ring
/// group's members, its hunt order): first, after a point, a PUT moving an
/// entry; the order read back over RESTCONF and NETCONF; insert=before
/// without point, a point at nothing and insert on a list ordered by the
/// system are refused and change nothing.
#[test]
fn insert_and_point_order_a_ring_groups_members() {
    let b = start();
    let group = "/restconf/data/besip-pbx:pbx/ring-group=600";
    let post = b.admin(
        "POST",
        "/restconf/data/besip-pbx:pbx",
        Some((JSON, r#"{"besip-pbx:ring-group":[{"number":"600","member":[{"number":"101"},{"number":"102"}]}]}"#)),
        &[],
    );
    assert_eq!(post.status, 201, "{}", post.body);
    let order = || -> Vec<String> {
        let g = b.admin("GET", group, None, &[]);
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap_or_default();
        v["besip-pbx:ring-group"][0]["member"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|m| m["number"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(order(), ["101", "102"]);
    let member = |n: &str| format!(r#"{{"besip-pbx:member":[{{"number":"{n}"}}]}}"#);
    let r = b.admin(
        "POST",
        &format!("{group}?insert=first"),
        Some((JSON, &member("103"))),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = b.admin(
        "POST",
        &format!("{group}?insert=after&point=/besip-pbx:pbx/ring-group=600/member=101"),
        Some((JSON, &member("104"))),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(order(), ["103", "101", "104", "102"]);
    // PUT of an existing entry with insert moves it.
    let r = b.admin(
        "PUT",
        &format!("{group}/member=102?insert=first"),
        Some((JSON, &member("102"))),
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(order(), ["102", "103", "101", "104"]);
    // NETCONF sees the same order in running.
    let (ok, out) = python(
        b.server.port,
        ADMIN_PASSWORD,
        "m = connect(); x = m.get_config('running', filter=('xpath', '/pbx/ring-group')).data_xml; import re; print('ORDER', re.findall(r'<member>\\s*<number>([^<]+)</number>', x))",
    );
    assert!(
        ok && out.contains("ORDER ['102', '103', '101', '104']"),
        "{out}"
    );
    // Refusals, nothing changed.
    for (target, body, tag) in [
        (
            format!("{group}?insert=before"),
            member("105"),
            "invalid-value",
        ),
        (
            format!("{group}?insert=before&point=/besip-pbx:pbx/ring-group=600/member=999"),
            member("105"),
            "bad-attribute",
        ),
        (
            "/restconf/data/besip-system:system?insert=first".to_owned(),
            r#"{"besip-system:user":[{"name":"zed","group":"monitor"}]}"#.to_owned(),
            "bad-attribute",
        ),
    ] {
        let r = b.admin("POST", &target, Some((JSON, &body)), &[]);
        assert_eq!(
            (r.status, error_tag(&r).as_str()),
            (400, tag),
            "{target}: {}",
            r.body
        );
    }
    assert_eq!(order(), ["102", "103", "101", "104"]);
}

/// RFC 8040 §3.5.1 resource entity-tags: each extension has its own ETag,
/// which an edit of another extension leaves as it is (an If-Match with it
/// still succeeds), while an edit of the extension itself makes the old
/// one stale (412, nothing changed). The datastore's ETag still works.
#[test]
fn each_resource_has_its_own_etag() {
    let b = start();
    for n in ["100", "101"] {
        let post = b.admin(
            "POST",
            "/restconf/data/besip-pbx:pbx",
            Some((
                JSON,
                &format!(
                    r#"{{"besip-pbx:extension":[{{"number":"{n}","password":"secret{n}"}}]}}"#
                ),
            )),
            &[],
        );
        assert_eq!(post.status, 201, "{}", post.body);
    }
    let tag = |n: &str| {
        b.admin(
            "GET",
            &format!("/restconf/data/besip-pbx:pbx/extension={n}"),
            None,
            &[],
        )
        .header("etag")
        .expect("etag")
    };
    let patch = |n: &str, name: &str, if_match: &str| {
        b.admin(
            "PATCH",
            &format!("/restconf/data/besip-pbx:pbx/extension={n}"),
            Some((
                JSON,
                &format!(
                    r#"{{"besip-pbx:extension":[{{"number":"{n}","display-name":"{name}"}}]}}"#
                ),
            )),
            &["-H", &format!("If-Match: {if_match}")],
        )
    };
    let (t100, t101) = (tag("100"), tag("101"));
    assert_ne!(t100, t101);
    let root_tag = b
        .admin("GET", "/restconf/data", None, &[])
        .header("etag")
        .expect("etag");
    assert_ne!(t100, root_tag);
    // Editing 101 leaves 100's tag as it was.
    let r = patch("101", "Bob", &t101);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(tag("100"), t100);
    assert_ne!(tag("101"), t101);
    let r = patch("100", "Alice", &t100);
    assert_eq!(r.status, 204, "100's own tag is not stale: {}", r.body);
    // 101's old tag is stale now: 412 and nothing changes.
    let r = patch("101", "Mallory", &t101);
    assert_eq!(r.status, 412, "{}", r.body);
    let got = b.admin(
        "GET",
        "/restconf/data/besip-pbx:pbx/extension=101",
        None,
        &[],
    );
    assert!(
        got.body.contains("Bob") && !got.body.contains("Mallory"),
        "{}",
        got.body
    );
    // The datastore's tag, fresh, is taken too.
    let fresh = b
        .admin("GET", "/restconf/data", None, &[])
        .header("etag")
        .expect("etag");
    let r = patch("101", "Carol", &fresh);
    assert_eq!(r.status, 204, "{}", r.body);
}

/// The body of an event stream read to its end (curl stops at `max` s).
fn stream_body(b: &Box, user: &str, query: &str, max: &str) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sk", "-N", "-u", user, "--max-time", max])
        .arg(b.url(&format!("/restconf/streams/NETCONF/xml?{query}")))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout).replace("&apos;", "'");
    (body, started.elapsed())
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// RFC 8040 §4.8.7-8 and §9: `/restconf-state` names the NETCONF stream
/// with replay at this server's address; start-time replays the kept
/// notifications (then replayComplete and live ones), stop-time ends the
/// stream after notificationComplete; bad times are refused with a clear
/// error, and the parameters belong to event streams only.
#[test]
fn event_stream_replays_from_start_time() {
    let b = start();
    let state = b.admin(
        "GET",
        "/restconf/data/ietf-restconf-monitoring:restconf-state",
        None,
        &[],
    );
    assert_eq!(state.status, 200, "{}", state.body);
    let v: serde_json::Value = serde_json::from_str(&state.body).expect("json");
    let rs = &v["ietf-restconf-monitoring:restconf-state"];
    let stream = &rs["streams"]["stream"][0];
    assert_eq!(stream["name"], "NETCONF", "{v}");
    assert_eq!(stream["replay-support"], true, "{v}");
    assert!(stream["replay-log-creation-time"].is_string(), "{v}");
    let locations: Vec<&str> = stream["access"]
        .as_array()
        .expect("access")
        .iter()
        .filter_map(|a| a["location"].as_str())
        .collect();
    assert!(
        locations.contains(&b.url("/restconf/streams/NETCONF/json").as_str()),
        "{locations:?}"
    );
    assert!(
        rs["capabilities"]["capability"]
            .as_array()
            .expect("capabilities")
            .iter()
            .any(|c| c == "urn:ietf:params:restconf:capability:replay:1.0"),
        "{v}"
    );

    let add = |number: &str| {
        let r = b.admin(
            "POST",
            "/restconf/data/besip-pbx:pbx",
            Some((
                JSON,
                &format!(r#"{{"besip-pbx:extension":[{{"number":"{number}","password":"secret{number}"}}]}}"#),
            )),
            &[],
        );
        assert_eq!(r.status, 201, "{}", r.body);
    };
    let before = chrono::Utc::now();
    add("310");
    std::thread::sleep(Duration::from_millis(50));
    let between = chrono::Utc::now();
    add("311");
    std::thread::sleep(Duration::from_millis(50));
    let after = chrono::Utc::now();
    let changed = |body: &str, n: &str| body.contains(&format!("extension[pbx:number='{n}']"));

    // A closed window: both commits, replayComplete, notificationComplete, end.
    let (body, took) = stream_body(
        &b,
        &b.admin,
        &format!(
            "start-time={}&stop-time={}",
            rfc3339(before),
            rfc3339(after)
        ),
        "20",
    );
    assert!(changed(&body, "310") && changed(&body, "311"), "{body}");
    let replayed = body.find("replayComplete").expect("replayComplete");
    let complete = body
        .find("notificationComplete")
        .expect("notificationComplete");
    assert!(
        body.find("'311'").unwrap_or(usize::MAX) < replayed && replayed < complete,
        "{body}"
    );
    assert!(
        took < Duration::from_secs(15),
        "the stream did not end at its stop-time"
    );

    // A monitor whose NACM rules deny config-change notifications replays
    // the same window without them (the markers still come).
    let nacm = r#"{"ietf-netconf-acm:rule-list":[{"name":"mon-quiet","group":["monitor"],"rule":[{"name":"no-cc","module-name":"ietf-netconf-notifications","notification-name":"netconf-config-change","access-operations":"read","action":"deny"}]}]}"#;
    b.add_rule_list(nacm);
    let mon = b.add_user("mon", "monitor");
    let (quiet, _) = stream_body(
        &b,
        &mon,
        &format!(
            "start-time={}&stop-time={}",
            rfc3339(before),
            rfc3339(after)
        ),
        "20",
    );
    assert!(quiet.contains("notificationComplete"), "{quiet}");
    assert!(
        !quiet.contains("netconf-config-change"),
        "NACM let it through: {quiet}"
    );

    // From between the two: only the second, then live events follow.
    let mut live = Command::new("curl")
        .args(["-sk", "-N", "-u", &b.admin, "--max-time", "20"])
        .arg(b.url(&format!(
            "/restconf/streams/NETCONF/xml?start-time={}",
            rfc3339(between)
        )))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(500));
    add("312");
    let stdout = live.stdout.take().expect("stdout");
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let line = line.replace("&apos;", "'");
        seen.push_str(&line);
        seen.push('\n');
        if changed(&line, "312") {
            break;
        }
    }
    let _ = live.kill();
    let _ = live.wait();
    assert!(changed(&seen, "311") && changed(&seen, "312"), "{seen}");
    assert!(
        !changed(&seen, "310"),
        "replayed from before start-time: {seen}"
    );
    assert!(
        seen.find("replayComplete").expect("replayComplete") < seen.find("'312'").expect("312"),
        "{seen}"
    );

    // A stop-time a second ahead ends a live stream by itself.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (body, took) = stream_body(
        &b,
        &b.admin,
        &format!("start-time={}&stop-time={}", rfc3339(after), rfc3339(soon)),
        "20",
    );
    assert!(body.contains("notificationComplete"), "{body}");
    assert!(
        took < Duration::from_secs(15),
        "the stream outlived its stop-time"
    );

    // Bad parameters: a clear error, no stream.
    let future = rfc3339(chrono::Utc::now() + chrono::Duration::hours(1));
    for (query, what) in [
        (
            format!("stop-time={}", rfc3339(after)),
            "needs a start-time",
        ),
        (format!("start-time={future}"), "in the future"),
        (
            format!(
                "start-time={}&stop-time={}",
                rfc3339(after),
                rfc3339(before)
            ),
            "before start-time",
        ),
        ("start-time=yesterday".to_owned(), "not a date-and-time"),
        ("depth=1".to_owned(), "not allowed"),
    ] {
        let r = b.admin(
            "GET",
            &format!("/restconf/streams/NETCONF/json?{query}"),
            None,
            &[],
        );
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(r.body.contains(what), "{query}: {}", r.body);
    }
    let filter = b.admin("GET", "/restconf/streams/NETCONF/json?filter=/x", None, &[]);
    assert!(
        filter.status >= 400 && filter.body.contains("filter"),
        "{}",
        filter.body
    );
    let on_data = b.admin(
        "GET",
        &format!(
            "/restconf/data/besip-pbx:pbx?start-time={}",
            rfc3339(before)
        ),
        None,
        &[],
    );
    assert_eq!(on_data.status, 400, "{}", on_data.body);
}

const PATCH_JSON: &str = "application/yang-patch+json";
const PATCH_XML: &str = "application/yang-patch+xml";

/// RFC 8072 YANG Patch with curl: one PATCH of /besip-pbx:pbx creates two
/// extensions, merges into one, creates a ring group, inserts and moves
/// its members and deletes an extension — applied in order as one commit
/// (one history entry), answered with yang-patch-status ok, seen over
/// NETCONF. A patch whose third edit fails names that edit in its
/// edit-status and changes nothing; XML patches work the same; a monitor
/// is refused; malformed patches get a clear error.
#[test]
fn yang_patch_applies_ordered_edits_all_or_nothing() {
    let b = start();
    let pbx = "/restconf/data/besip-pbx:pbx";
    let history_len = || -> usize {
        let h = b.admin(
            "GET",
            "/restconf/data/besip-system:commit-history",
            None,
            &[],
        );
        h.body.matches("\"comment\"").count()
    };
    let before = history_len();
    let patch = r#"{"ietf-yang-patch:yang-patch":{"patch-id":"office-1","edit":[
        {"edit-id":"e1","operation":"create","target":"/extension=340",
         "value":{"besip-pbx:extension":[{"number":"340","password":"secret340"}]}},
        {"edit-id":"e2","operation":"create","target":"/extension=341",
         "value":{"besip-pbx:extension":[{"number":"341","password":"secret341"}]}},
        {"edit-id":"e3","operation":"merge","target":"/extension=340",
         "value":{"besip-pbx:extension":[{"number":"340","display-name":"Reception"}]}},
        {"edit-id":"e4","operation":"create","target":"/ring-group=640",
         "value":{"besip-pbx:ring-group":[{"number":"640","member":[{"number":"340"},{"number":"341"}]}]}},
        {"edit-id":"e5","operation":"insert","target":"/ring-group=640/member=342","where":"first",
         "value":{"besip-pbx:member":[{"number":"342"}]}},
        {"edit-id":"e6","operation":"move","target":"/ring-group=640/member=341","where":"before",
         "point":"/ring-group=640/member=342"},
        {"edit-id":"e7","operation":"create","target":"/extension=349",
         "value":{"besip-pbx:extension":[{"number":"349","password":"secret349"}]}},
        {"edit-id":"e8","operation":"delete","target":"/extension=349"}
    ]}}"#;
    let r = b.admin("PATCH", pbx, Some((PATCH_JSON, patch)), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json status");
    assert_eq!(
        v["ietf-yang-patch:yang-patch-status"]["patch-id"], "office-1",
        "{v}"
    );
    assert!(
        v["ietf-yang-patch:yang-patch-status"]["ok"].is_array(),
        "{v}"
    );
    assert!(r.header("ETag").is_some(), "{}", r.headers);
    assert_eq!(
        history_len(),
        before + 1,
        "one patch, one commit: {}",
        b.admin(
            "GET",
            "/restconf/data/besip-system:commit-history",
            None,
            &[]
        )
        .body
    );
    let ext = b.admin("GET", &format!("{pbx}/extension=340"), None, &[]);
    assert!(ext.body.contains("Reception"), "{}", ext.body);
    assert_eq!(
        b.admin("GET", &format!("{pbx}/extension=349"), None, &[])
            .status,
        404
    );
    let (ok, out) = python(
        b.server.port,
        ADMIN_PASSWORD,
        "m = connect(); x = m.get_config('running', filter=('xpath', '/pbx/ring-group')).data_xml; import re; print('ORDER', re.findall(r'<member>\\s*<number>([^<]+)</number>', x))",
    );
    assert!(ok && out.contains("ORDER ['341', '342', '340']"), "{out}");

    // The third edit fails (341 exists): the patch changes nothing.
    let failing = r#"{"ietf-yang-patch:yang-patch":{"patch-id":"office-2","edit":[
        {"edit-id":"a","operation":"create","target":"/extension=350",
         "value":{"besip-pbx:extension":[{"number":"350","password":"secret350"}]}},
        {"edit-id":"b","operation":"delete","target":"/extension=340"},
        {"edit-id":"c","operation":"create","target":"/extension=341",
         "value":{"besip-pbx:extension":[{"number":"341","password":"again"}]}}
    ]}}"#;
    let r = b.admin("PATCH", pbx, Some((PATCH_JSON, failing)), &[]);
    assert_eq!(r.status, 409, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json status");
    let edit = &v["ietf-yang-patch:yang-patch-status"]["edit-status"]["edit"][0];
    assert_eq!(edit["edit-id"], "c", "{v}");
    assert_eq!(
        edit["errors"]["error"][0]["error-tag"], "data-exists",
        "{v}"
    );
    assert_eq!(
        b.admin("GET", &format!("{pbx}/extension=350"), None, &[])
            .status,
        404
    );
    assert_eq!(
        b.admin("GET", &format!("{pbx}/extension=340"), None, &[])
            .status,
        200
    );
    assert_eq!(history_len(), before + 1);

    // XML, on the candidate: staged, answered in XML.
    let xml = r#"<yang-patch xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-patch"><patch-id>x1</patch-id>
<edit><edit-id>1</edit-id><operation>replace</operation><target>/extension=341</target>
<value><extension xmlns="urn:besip:pbx"><number>341</number><password>changed341</password><display-name>Back office</display-name></extension></value></edit>
<edit><edit-id>2</edit-id><operation>remove</operation><target>/extension=999</target></edit>
</yang-patch>"#;
    let cand = "/restconf/ds/ietf-datastores:candidate/besip-pbx:pbx";
    let r = b.admin("PATCH", cand, Some((PATCH_XML, xml)), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<yang-patch-status") && r.body.contains("<ok/>"),
        "{}",
        r.body
    );
    let staged = b.admin("GET", &format!("{cand}/extension=341"), None, &[]);
    assert!(staged.body.contains("Back office"), "{}", staged.body);
    let live = b.admin("GET", &format!("{pbx}/extension=341"), None, &[]);
    assert!(!live.body.contains("Back office"), "{}", live.body);
    let clash = r#"<yang-patch xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-patch"><patch-id>x2</patch-id>
<edit><edit-id>only</edit-id><operation>create</operation><target>/extension=340</target>
<value><extension xmlns="urn:besip:pbx"><number>340</number><password>again340</password></extension></value></edit>
</yang-patch>"#;
    let r = b.admin("PATCH", cand, Some((PATCH_XML, clash)), &[]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body
            .contains("<edit><edit-id>only</edit-id><errors><error>")
            && r.body.contains("<error-tag>data-exists</error-tag>"),
        "{}",
        r.body
    );
    let discard = b.admin(
        "POST",
        "/restconf/operations/ietf-netconf:discard-changes",
        None,
        &[],
    );
    assert_eq!(discard.status, 204, "{}", discard.body);

    // A monitor may not patch.
    let mon = b.add_user("mon", "monitor");
    let denied = b.as_user(&mon, "PATCH", pbx, Some((PATCH_JSON, failing)), &[]);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("access-denied"), "{}", denied.body);

    // An operator whose NACM rules deny trunks: a patch with an allowed
    // edit and a denied one is refused whole (403), the allowed edit too.
    let oper = b.add_user("oper", "operator");
    b.add_rule_list(r#"{"ietf-netconf-acm:rule-list":[{"name":"ops","group":["operator"],"rule":[{"name":"no-trunks","module-name":"besip-pbx","path":"/besip-pbx:pbx/trunk","access-operations":"create update delete","action":"deny"}]}]}"#);
    let mixed = r#"{"ietf-yang-patch:yang-patch":{"patch-id":"sneak","edit":[
        {"edit-id":"ext","operation":"create","target":"/extension=360",
         "value":{"besip-pbx:extension":[{"number":"360","password":"secret360"}]}},
        {"edit-id":"trunk","operation":"create","target":"/trunk=evil",
         "value":{"besip-pbx:trunk":[{"name":"evil","host":"192.0.2.66"}]}}
    ]}}"#;
    let r = b.as_user(&oper, "PATCH", pbx, Some((PATCH_JSON, mixed)), &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("access-denied"), "{}", r.body);
    assert_eq!(
        b.admin("GET", &format!("{pbx}/extension=360"), None, &[])
            .status,
        404
    );
    assert_eq!(
        b.admin("GET", &format!("{pbx}/trunk=evil"), None, &[])
            .status,
        404
    );
    let allowed = mixed.replace(
        r#",
        {"edit-id":"trunk","operation":"create","target":"/trunk=evil",
         "value":{"besip-pbx:trunk":[{"name":"evil","host":"192.0.2.66"}]}}"#,
        "",
    );
    let r = b.as_user(&oper, "PATCH", pbx, Some((PATCH_JSON, &allowed)), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        b.admin("GET", &format!("{pbx}/extension=360"), None, &[])
            .status,
        200
    );

    // Malformed patches: 400 with the reason, nothing changed.
    let many: Vec<String> = (0..1001)
        .map(|i| format!(r#"{{"edit-id":"{i}","operation":"remove","target":"/extension=9{i}"}}"#))
        .collect();
    let too_many = format!(
        r#"{{"ietf-yang-patch:yang-patch":{{"patch-id":"big","edit":[{}]}}}}"#,
        many.join(",")
    );
    for (body, status, says) in [
        ("{".to_owned(), 400, "not JSON"),
        (r#"{"ietf-yang-patch:yang-patch":{"edit":[]}}"#.to_owned(), 400, "patch-id"),
        (
            r#"{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"edit-id":"1","operation":"explode","target":"/extension=340"}]}}"#.to_owned(),
            400,
            "explode",
        ),
        (
            r#"{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"edit-id":"1","operation":"remove","target":"/extension=1"},{"edit-id":"1","operation":"remove","target":"/extension=2"}]}}"#.to_owned(),
            400,
            "used twice",
        ),
        (
            r#"{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"edit-id":"1","operation":"delete","target":"/no-such-node"}]}}"#.to_owned(),
            400,
            "no-such-node",
        ),
        (too_many, 413, "at most 1000"),
    ] {
        let r = b.admin("PATCH", pbx, Some((PATCH_JSON, &body)), &[]);
        assert_eq!(r.status, status, "{}", r.body);
        assert!(r.body.contains(says), "{says}: {}", r.body);
        assert!(r.body.contains("yang-patch-status"), "{}", r.body);
    }
    // The monitor's and operator's users, the NACM rules and the
    // operator's allowed patch; no other commit since.
    assert_eq!(history_len(), before + 5);
    // The server says it takes YANG Patch.
    let opts = b.admin("OPTIONS", pbx, None, &[]);
    assert!(
        opts.header("Accept-Patch")
            .is_some_and(|a| a.contains(PATCH_JSON)),
        "{}",
        opts.headers
    );
}
