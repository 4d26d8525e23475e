//! The web panel end to end in headless Chromium (chromedriver + fantoccini)
//! over HTTPS with the panel's self-signed certificate accepted (as a person
//! accepts it once): a real sipp call with RTP echo is captured live by
//! besip-monitord on lo; a person logs in, sees the dashboard with its SVG
//! chart (screenshot saved to tests/artifacts/web-dashboard.png), opens the
//! call, exports the CSV, erases with confirmation and logs out. A second
//! test, without sipp: the plain HTTP address leads the browser to the
//! HTTPS login, and the session cookie it gets is Secure.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::monitoring::{free_udp_pair, have_sipp, sipp_echo_call};
use besip_tests::netconf::ADMIN_PASSWORD;
use besip_tests::web::{free_tcp_port, Panel};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let mut caps = serde_json::Map::new();
    // The panel's certificate is self-signed (pinned by the other tests).
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                     "--disable-dev-shm-usage", "--window-size=1100,1250",
                     format!("--user-data-dir={}", profile.display())]
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
    // A look-up that starts while a submitted form is still loading is
    // "aborted by navigation": ask again (bounded) once the new page is there.
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

/// The cells of the row named `name` in the directions table.
async fn row_cells(c: &Client, name: &str) -> Vec<String> {
    for row in c
        .find_all(Locator::Css("#directions tr"))
        .await
        .expect("rows")
    {
        let th = row.find(Locator::Css("th")).await.expect("row name");
        if th.text().await.expect("text") == name {
            let mut out = Vec::new();
            for td in row.find_all(Locator::Css("td")).await.expect("cells") {
                out.push(td.text().await.expect("cell"));
            }
            return out;
        }
    }
    panic!("no row {name} in the directions table")
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.expect("url").path().to_string()
}

/// A click on a link or submit button returns before the next page may
/// have loaded: wait until the browser is at a path starting with `want`.
async fn wait_path(c: &Client, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = path_of(c).await;
        if now.starts_with(want) && (want.ends_with('/') || now == want) {
            return;
        }
        assert!(Instant::now() < deadline, "at {now}, expected {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_person_reads_a_live_call_in_the_browser() {
    if !have_sipp() {
        eprintln!("SKIP: sip-tester (sipp) not installed (scripts/install-deps)");
        return;
    }
    let sip_port = free_udp_pair();
    let mp = free_udp_pair();
    let panel = Panel::start(&format!(
        "<interface>lo</interface><capture-filter>udp port {sip_port} or udp portrange {mp}-{}</capture-filter>\
<sip-port>{sip_port}</sip-port><mos-interval>2</mos-interval><rotation-interval>60</rotation-interval>",
        mp + 11
    ));
    sipp_echo_call(sip_port, mp);
    // Streams end 5 s after their last packet; the call is then stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (call_id, start): (String, String) = loop {
        let db = rusqlite::Connection::open(panel.monitord.db()).expect("report db");
        let row = db.query_row(
            "SELECT call_id, start_time FROM calls WHERE stream_count >= 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        );
        if let Ok(row) = row {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "call not stored: {}",
            panel.monitord.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };

    let (_driver, driver_port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let base = format!("https://127.0.0.1:{}", panel.port);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = browser(driver_port, profile.path()).await;
        // Not logged in: the dashboard sends us to the login page.
        c.goto(&format!("{base}/")).await.expect("open panel");
        assert_eq!(path_of(&c).await, "/login");
        c.find(Locator::Css("#user")).await.expect("user field").send_keys("admin").await.expect("type");
        c.find(Locator::Css("#password")).await.expect("password field").send_keys("wrong").await.expect("type");
        click(&c, "#login").await;
        assert!(text(&c, "#login-error").await.contains("Wrong user name or password"));
        c.find(Locator::Css("#password")).await.expect("password field").send_keys(ADMIN_PASSWORD).await.expect("type");
        click(&c, "#login").await;
        wait_path(&c, "/").await;

        // Dashboard: the call, its MOS, the chart and the bands.
        assert_eq!(text(&c, "#calls-24h").await, "1");
        let avg: f64 = text(&c, "#avg-mos").await.parse().expect("average MOS");
        assert!(avg > 4.0 && avg <= 4.5, "clean G.711 on loopback: {avg}");
        assert_eq!(text(&c, "#below-threshold").await, "0");
        assert_eq!(text(&c, "#band-best").await, "1", "MOS {avg} is G.109 best");
        let svg = c.find(Locator::Css("#mos-chart svg")).await.expect("SVG chart");
        let svg_html = svg.html(false).await.expect("svg");
        assert!(svg_html.contains("<circle"), "the call's point is drawn");
        let strip = text(&c, "#status").await;
        assert!(strip.contains("not running"), "no PBX/secd in this box: {strip}");
        let png = c.screenshot().await.expect("screenshot");
        let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
        std::fs::create_dir_all(&artifacts).expect("artifacts dir");
        std::fs::write(artifacts.join("web-dashboard.png"), &png).expect("save screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);

        // Calls list -> the call's page: both directions side by side.
        click(&c, "header a[href='/calls']").await;
        let list = text(&c, "#calls").await;
        assert!(list.contains("PCMA"), "{list}");
        click(&c, "#calls tr.call a").await;
        wait_path(&c, "/calls/").await;
        assert_eq!(text(&c, "#call-id").await, call_id);
        let dirs = text(&c, "#directions").await;
        assert!(dirs.contains("A → B") && dirs.contains("B → A"), "{dirs}");
        // g711a.pcap is 236 packets, echoed back: both directions, none lost.
        assert_eq!(row_cells(&c, "packets").await, ["236", "236"], "{dirs}");
        assert_eq!(row_cells(&c, "lost").await, ["0", "0"], "{dirs}");
        assert_eq!(row_cells(&c, "codec").await, ["PCMA", "PCMA"], "{dirs}");
        assert!(dirs.contains("burst ratio") && dirs.contains("one-way delay ms"));
        let timeline = c.find(Locator::Css("#timeline svg")).await.expect("timeline SVG");
        let t = timeline.html(false).await.expect("svg");
        assert!(t.contains("jitter ms") && t.contains("loss %"), "three panels");
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(artifacts.join("web-call.png"), &png).expect("save screenshot");
        let png = timeline.screenshot().await.expect("timeline screenshot");
        std::fs::write(artifacts.join("web-call-timeline.png"), &png).expect("save screenshot");

        // CSV export of the (filtered) list, fetched by the browser with its session.
        c.goto(&format!("{base}/calls?number=sipp")).await.expect("filtered list");
        let href = c
            .find(Locator::Css("#csv"))
            .await
            .expect("CSV link")
            .attr("href")
            .await
            .expect("href")
            .expect("href value");
        assert!(href.contains("number=sipp"), "{href}");
        let csv = c
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done, e => done(String(e)));",
                vec![json!(href)],
            )
            .await
            .expect("fetch CSV");
        let csv = csv.as_str().expect("CSV text").to_string();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2, "header + one call: {csv}");
        assert!(lines[0].starts_with("call-id,caller,callee,start-time,duration-s,codec,mos"));
        let cells: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(cells[0], call_id);
        assert_eq!(cells[5], "PCMA");
        let dur: f64 = cells[4].parse().expect("duration");
        assert!((3.0..10.0).contains(&dur), "g711a.pcap lasts ~4.7 s: {dur}");
        // The filter form: MOS below 4.0 hides this 4.4 call, below 4.5 shows it.
        c.goto(&format!("{base}/calls")).await.expect("calls");
        c.find(Locator::Css("#mos_below")).await.expect("MOS field").send_keys("4.0").await.expect("type");
        click(&c, "#apply").await;
        assert!(text(&c, "#no-calls").await.contains("No calls"));
        c.find(Locator::Css("#mos_below")).await.expect("MOS field").clear().await.expect("clear");
        c.find(Locator::Css("#mos_below")).await.expect("MOS field").send_keys("4.5").await.expect("type");
        click(&c, "#apply").await;
        assert!(text(&c, "#calls").await.contains("PCMA"));
        // Time range: [start, start] holds exactly this call; before 2001 nothing.
        c.goto(&format!("{base}/calls?from={start}&to={start}")).await.expect("range");
        assert!(text(&c, "#calls").await.contains("PCMA"));
        c.goto(&format!("{base}/calls?to=2001-01-01T00:00")).await.expect("range");
        assert!(text(&c, "#no-calls").await.contains("No calls"));
        c.goto(&format!("{base}/calls?number=nobody-such")).await.expect("filtered list");
        assert!(text(&c, "#no-calls").await.contains("No calls"));

        // Erase with confirmation.
        click(&c, "header a[href='/capture']").await;
        click(&c, "#erase").await;
        wait_path(&c, "/erase").await;
        assert_eq!(text(&c, "#erase-count").await, "1");
        click(&c, "#confirm-erase").await;
        wait_path(&c, "/calls").await;
        assert!(text(&c, "#no-calls").await.contains("No calls"));
        c.goto(&format!("{base}/")).await.expect("dashboard");
        assert_eq!(text(&c, "#calls-24h").await, "0");

        // Logout: the panel asks for a login again.
        click(&c, "#logout").await;
        wait_path(&c, "/login").await;
        c.goto(&format!("{base}/calls")).await.expect("calls");
        assert_eq!(path_of(&c).await, "/login");
        c.close().await.expect("close browser");
    });
}

#[test]
fn chromium_logs_in_over_https_from_the_plain_http_address() {
    let panel =
        Panel::start("<interface>lo</interface><capture-filter>udp port 9</capture-filter>");
    let (_driver, driver_port) = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = browser(driver_port, profile.path()).await;
        // Typed as http://...: redirected to the HTTPS login page.
        c.goto(&format!("http://127.0.0.1:{}/calls", panel.http_port))
            .await
            .expect("open the plain HTTP address");
        let url = c.current_url().await.expect("url");
        assert_eq!(url.scheme(), "https", "{url}");
        assert_eq!(url.port(), Some(panel.port), "{url}");
        assert_eq!(url.path(), "/login", "{url}");
        c.find(Locator::Css("#user"))
            .await
            .expect("user field")
            .send_keys("admin")
            .await
            .expect("type");
        c.find(Locator::Css("#password"))
            .await
            .expect("password field")
            .send_keys(ADMIN_PASSWORD)
            .await
            .expect("type");
        click(&c, "#login").await;
        wait_path(&c, "/").await;
        assert_eq!(c.current_url().await.expect("url").scheme(), "https");
        assert_eq!(text(&c, "#calls-24h").await, "0");
        let cookie = c
            .get_named_cookie("besip_session")
            .await
            .expect("the session cookie");
        assert_eq!(cookie.secure(), Some(true), "{cookie:?}");
        assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
        // Logged in over HTTPS: the panel's pages open.
        c.goto(&format!("https://127.0.0.1:{}/capture", panel.port))
            .await
            .expect("capture page");
        assert_eq!(path_of(&c).await, "/capture");
        click(&c, "#logout").await;
        wait_path(&c, "/login").await;
        c.close().await.expect("close browser");
    });
}
