//! Two boxes on one PostgreSQL (a real server in a temporary directory,
//! started and removed by the test): a phone registered at box A is called
//! from a phone at box B (B finds A's binding in the shared location and
//! sends the call to A, which delivers it); box A killed with SIGKILL, the
//! phone registers at B and is reached there; the database stopped and
//! started again, a registration made meanwhile is written when it returns
//! and the outage shows in /pbx/cluster-state.

use std::time::{Duration, Instant};

use besip_tests::pbx::*;
use besip_tests::postgres::Postgres;

fn cluster_uci(port: u16, url: &str, name: &str) -> String {
    config(
        port,
        &format!("\toption cluster_database '{url}'\n\toption cluster_box_name '{name}'\n"),
    )
}

fn cluster_state(pbx: &Pbx) -> serde_json::Value {
    pbx.state()["besip-pbx:pbx"]["cluster-state"].clone()
}

fn wait_for(
    pbx: &Pbx,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = cluster_state(pbx);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn connected(s: &serde_json::Value) -> bool {
    s["database-connected"] == true
}

#[test]
fn a_phone_at_one_box_is_called_from_the_other_and_survives_its_box() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Pbx::start(&cluster_uci(port_a, &pg.url(), "a"), port_a);
    let b = Pbx::start(&cluster_uci(port_b, &pg.url(), "b"), port_b);
    wait_for(&a, "box a connects", connected);
    wait_for(&b, "box b connects", connected);
    assert_eq!(
        pg.psql("SELECT component || ' ' || version FROM besip_schema"),
        "location 2",
        "the migrations, run once"
    );
    assert_state_valid(&b, &b.state());

    // 100 registers at box A; box B learns of it.
    let sipp = Sipp::new();
    let phone = free_port();
    register(&sipp, "100", phone, port_a);
    wait_for(&b, "box b sees 100's binding", |s| {
        s["remote-bindings"] == 1
    });
    assert_eq!(
        pg.psql("SELECT box || ' ' || aor FROM besip_location"),
        "a 100"
    );

    // 101 at box B calls 100: B -> A -> the phone, and back.
    let uas = sipp.spawn("uas-100", &callee_answers(200), phone, port_a, &[]);
    let caller = sipp.run(
        "call-101-100",
        &caller_answered("101", "100"),
        free_port(),
        port_b,
        &["-au", "101", "-ap", "pw101"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller at box b:\n{}", caller.log);
    assert!(callee.success, "phone at box a:\n{}", callee.log);
    // Both boxes account the call: B the caller's leg, A the delivery.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = pg.psql("SELECT box || ' ' || caller || ' ' || callee || ' ' || disposition FROM besip_cdr ORDER BY box");
        if rows.lines().count() == 2 {
            assert!(rows.starts_with("a ") && rows.contains("\nb "), "{rows}");
            assert!(
                rows.lines().all(|l| l.contains("sip:101@")
                    && l.contains("sip:100@")
                    && l.ends_with(" answered")),
                "{rows}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "CDRs of both boxes: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let invite = sipp.messages("uas-100");
    assert!(
        invite.matches("Record-Route:").count() >= 2 || invite.contains(&format!(":{port_b}")),
        "the INVITE came through both boxes: {invite}"
    );

    // Box A dies; the phone registers at box B and is reached there.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.pid().expect("pid") as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = a.stop();
    register(&sipp, "100", phone, port_b);
    let uas = sipp.spawn("uas-100-b", &callee_answers(100), phone, port_b, &[]);
    let caller = sipp.run(
        "call-102-100",
        &caller_answered("102", "100"),
        free_port(),
        port_b,
        &["-au", "102", "-ap", "pw102"],
    );
    let callee = sipp.wait(uas);
    assert!(
        caller.success && callee.success,
        "{}\n{}",
        caller.log,
        callee.log
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pg
        .psql("SELECT box FROM besip_location WHERE aor = '100' ORDER BY box")
        .contains('b')
    {
        assert!(
            Instant::now() < deadline,
            "box b's binding of 100 not written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_database_going_away_loses_no_registration() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    let port = free_port();
    let pbx = Pbx::start(&cluster_uci(port, &pg.url(), "solo"), port);
    wait_for(&pbx, "connects", connected);
    let sipp = Sipp::new();
    let phone = free_port();
    register(&sipp, "100", phone, port);

    pg.stop();
    let s = wait_for(&pbx, "the outage shows", |s| {
        s["database-connected"] == false && s.get("outage-since").is_some()
    });
    assert!(
        s["last-error"].as_str().is_some_and(|e| !e.is_empty()),
        "{s}"
    );
    assert_state_valid(&pbx, &pbx.state());
    // The box goes on serving its phones, and its calls are accounted.
    register(&sipp, "103", free_port(), port);
    assert_eq!(pbx.registrations().len(), 2);
    let uas = sipp.spawn("uas-100", &callee_answers(100), phone, port, &[]);
    let call = sipp.run(
        "call-101-100",
        &caller_answered("101", "100"),
        free_port(),
        port,
        &["-au", "101", "-ap", "pw101"],
    );
    let callee = sipp.wait(uas);
    assert!(
        call.success && callee.success,
        "{}\n{}",
        call.log,
        callee.log
    );

    pg.start_again();
    let s = wait_for(&pbx, "reconnects", connected);
    assert_eq!(s["outages"], "1", "{s}");
    assert!(s.get("outage-since").is_none(), "{s}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = pg.psql("SELECT aor FROM besip_location WHERE box = 'solo' ORDER BY aor");
        if rows == "100\n103" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bindings after the outage: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The CDR of the call made during the outage is copied too.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = pg.psql("SELECT caller || ' ' || callee || ' ' || disposition FROM besip_cdr WHERE box = 'solo'");
        if rows == "sip:101@besip.test sip:100@besip.test answered" {
            break;
        }
        assert!(Instant::now() < deadline, "CDRs after the outage: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn besip_up_joins_a_shared_database() {
    let Some(pg) = Postgres::start() else { return };
    let sip = free_port();
    let args: Vec<String> = [
        "--netconf-port",
        &besip_tests::web::free_tcp_port().to_string(),
        "--sip-port",
        &sip.to_string(),
        "--sip-tls-port",
        &besip_tests::web::free_tcp_port().to_string(),
        "--stun-port",
        &free_port().to_string(),
        "--web-port",
        &besip_tests::web::free_tcp_port().to_string(),
        "--web-http-port",
        "0",
        "--admin-password",
        "cluster-up-pw",
        "--database",
        &pg.url(),
        "--box-name",
        "site-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let up = besip_tests::up::Up::start(&args);
    assert!(
        up.banner
            .contains("shared location: postgresql://…@127.0.0.1:")
            && up.banner.contains("(this box: site-1)"),
        "{}",
        up.banner
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let row = pg.try_psql("SELECT name || ' ' || sip_address FROM besip_box");
        if row.as_deref() == Ok(format!("site-1 127.0.0.1:{sip}").as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the box is not in the database: {row:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The database over TLS (sslmode=require): verified against
/// /pbx/cluster/database-ca; a box given another CA is refused for the
/// certificate, and one without TLS is refused by the server.
#[test]
fn the_database_over_tls_is_verified() {
    let (ca, cert, key) = besip_tests::certs::test_ca_for("database CA", &["127.0.0.1"]);
    let (other_ca, _, _) = besip_tests::certs::test_ca_for("another CA", &["127.0.0.1"]);
    let Some(pg) = Postgres::start_tls(&cert, &key) else {
        return;
    };
    let tls_url = format!("{}?sslmode=require", pg.url());
    let uci = |port: u16, url: &str, name: &str, ca: &str| {
        let ca = match ca {
            "" => String::new(),
            pem => format!("\toption cluster_database_ca '{pem}'\n"),
        };
        config(
            port,
            &format!("\toption cluster_database '{url}'\n\toption cluster_box_name '{name}'\n{ca}"),
        )
    };
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let good = Pbx::start(&uci(p1, &tls_url, "good", &ca), p1);
    let wrong = Pbx::start(&uci(p2, &tls_url, "wrong", &other_ca), p2);
    let plain = Pbx::start(&uci(p3, &pg.url(), "plain", ""), p3);
    wait_for(&good, "the box with the database's CA connects", connected);
    let s = wait_for(&wrong, "the wrong CA is refused", |s| {
        s["last-error"].as_str().is_some_and(|e| !e.is_empty())
    });
    assert_eq!(s["database-connected"], false, "{s}");
    assert!(
        s["last-error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate")),
        "{s}"
    );
    let s = wait_for(&plain, "the unencrypted box is refused", |s| {
        s["last-error"].as_str().is_some_and(|e| !e.is_empty())
    });
    assert!(
        s["last-error"]
            .as_str()
            .is_some_and(|e| e.contains("no encryption") || e.contains("pg_hba")),
        "{s}"
    );
    assert_eq!(pg.psql("SELECT name FROM besip_box ORDER BY name"), "good");
}
