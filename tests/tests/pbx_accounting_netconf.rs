//! The whole way: trunk and accounting configuration committed over NETCONF
//! (ncclient) is rendered to UCI and read by besip-pbxd, which registers to
//! the provider (sipp) and keeps the balance; both show up in <get> through
//! core's libyang merge of the daemon state.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use besip_tests::harness::bin_path;
use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};
use besip_tests::pbx::{free_port, have_sipp, scenario, uas_reply, Sipp};

/// The provider: challenges the REGISTER, then grants it only to user acme.
fn provider() -> String {
    scenario(
        "provider",
        &format!(
            r#"  <recv request="REGISTER"/>
{}  <recv request="REGISTER">
    <action><ereg regexp="username=.acme." search_in="hdr" header="Authorization:" check_it="true" assign_to="u"/></action>
  </recv>
  <Reference variables="u"/>
{}"#,
            uas_reply(
                "401 Unauthorized",
                "prov[call_number]",
                "WWW-Authenticate: Digest realm=\"prov.test\", nonce=\"nc[pid]\", qop=\"auth\", algorithm=MD5\n",
                "",
                false
            ),
            uas_reply("200 OK", "prov[call_number]", "[last_Contact:];expires=3600\n", "", false)
        ),
    )
}

#[test]
fn trunk_and_accounting_committed_over_netconf_work_in_the_daemon() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let server = NetconfServer::start();
    let sip_port = free_port();
    let prov_port = free_port();
    let config = format!(
        "<config><pbx xmlns=\"urn:besip:pbx\">\
<listen><name>t</name><address>127.0.0.1</address><port>{sip_port}</port></listen>\
<extension><number>100</number><password>pw100</password></extension>\
<trunk><name>acme</name><host>127.0.0.1</host><port>{prov_port}</port><username>acme</username><password>s3cret</password><register>true</register></trunk>\
<accounting><enabled>true</enabled><max-price-per-minute>2.5</max-price-per-minute>\
<rate><prefix>0</prefix><price-per-minute>1.5</price-per-minute></rate>\
<account><extension>100</extension><balance>12.5</balance></account></accounting>\
</pbx></config>"
    );
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='{config}'); m.commit()"),
    );
    assert!(ok, "commit failed: {out}");
    let sipp = Sipp::new();
    let provider = sipp.spawn("prov", &provider(), prov_port, sip_port, &[]);
    let mut pbx = Command::new(bin_path("besip-pbxd"))
        .arg("--root")
        .arg(server.root_path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start besip-pbxd");
    let socket = server.root_path().join("run/pbx.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "besip-pbxd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let prov = sipp.wait(provider);
    let get = "m = connect()\n\
print(m.get(filter=('subtree', '<pbx xmlns=\"urn:besip:pbx\"><trunk-registrations/><accounting-state/></pbx>')).data_xml)\n";
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let (ok, out) = python(server.port, ADMIN_PASSWORD, get);
        assert!(ok, "{out}");
        if out.contains("<state>registered</state>") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = pbx.kill();
    let _ = pbx.wait();
    assert!(
        prov.success,
        "provider did not get our credentials:\n{}",
        prov.log
    );
    assert!(out.contains("<name>acme</name>"), "{out}");
    assert!(out.contains("<state>registered</state>"), "{out}");
    assert!(
        out.contains("<last-response>200 OK</last-response>"),
        "{out}"
    );
    assert!(out.contains("<extension>100</extension>"), "{out}");
    assert!(out.contains("<balance>12.5</balance>"), "{out}");
    assert!(out.contains("<committed>12.5</committed>"), "{out}");
}
