//! Call quality of every box of a cluster in one panel: besip-monitord of
//! site-a, joined to a real PostgreSQL through /pbx/cluster (set over
//! NETCONF), measures a sipp call on loopback and writes its report to the
//! shared database; a report of site-b is there too; the panel's /sites
//! page shows both with a site column and their MOS, only to a logged-in
//! user.

use std::time::{Duration, Instant};

use besip_tests::monitoring::{free_udp_pair, have_sipp, sipp_echo_call};
use besip_tests::netconf::ADMIN_PASSWORD;
use besip_tests::postgres::Postgres;
use besip_tests::web::Panel;

#[test]
fn the_panel_shows_every_sites_calls() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    let (sip_port, mp) = (free_udp_pair(), free_udp_pair());
    let p = Panel::start(&format!(
        "<interface>lo</interface><capture-filter>udp port {sip_port} or udp portrange {mp}-{}</capture-filter><sip-port>{sip_port}</sip-port><mos-interval>2</mos-interval>",
        mp + 11
    ));
    let out = p.netconf(&format!(
        "m = connect(); m.edit_config(target='candidate', config='<config><pbx xmlns=\"urn:besip:pbx\"><cluster><database>{}</database><box-name>site-a</box-name></cluster></pbx></config>'); m.commit()",
        pg.url()
    ));
    assert!(!out.contains("rpc-error"), "{out}");

    sipp_echo_call(sip_port, mp);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let rows = pg.try_psql("SELECT box || ' ' || stream_count FROM besip_call_quality");
        if rows.as_deref() == Ok("site-a 2") {
            break;
        }
        assert!(Instant::now() < deadline, "site-a's report: {rows:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    pg.psql("INSERT INTO besip_call_quality VALUES ('site-b', 'b-call-1', 'sip:200@b.test', 'sip:201@b.test', '2026-12-06T00:00:00Z', 2, 3.05, 2.9, 60.1)");

    let mut stranger = p.client();
    let r = stranger.get("/sites");
    assert!(
        (300..400).contains(&r.status) && !r.body.contains("site-a"),
        "a stranger is sent to the login: {} {}",
        r.status,
        r.body
    );
    let mut c = p.client();
    c.login_ok("admin", ADMIN_PASSWORD);
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = c.get("/sites");
        if page.body.contains("site-b") {
            break page;
        }
        assert!(Instant::now() < deadline, "{}", page.body);
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        page.body.contains("<b id=\"this-site\">site-a</b>"),
        "{}",
        page.body
    );
    let rows: Vec<&str> = page.body.split("<tr class=\"call\">").skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", page.body);
    let a = rows
        .iter()
        .find(|r| r.contains("<td class=\"site\">site-a</td>"))
        .expect("site-a's call");
    assert!(a.contains("G.109"), "with its MOS: {a}");
    let b = rows
        .iter()
        .find(|r| r.contains("<td class=\"site\">site-b</td>"))
        .expect("site-b's call");
    assert!(b.contains(">3.05<") && b.contains("sip:200@b.test"), "{b}");
}
