//! Bans shared by two boxes on one PostgreSQL (a real server the test
//! starts, reached over its Unix socket): besip-secd of box A and of box B
//! each run in a network namespace of their own; a burst from 127.0.0.2
//! gets it banned at A, and within a second or two B bans it too (in its
//! state as `cluster:a:<rule>` and in its kernel set) although B never saw
//! a packet of it. B's whitelist still wins: an address B whitelists is not
//! banned there even when A bans it.

use std::time::{Duration, Instant};

use besip_core::ipc::IpcClient;
use besip_tests::harness::TempRoot;
use besip_tests::postgres::Postgres;
use besip_tests::security::{options_burst, tools_present, Netns, SecDaemon};
use serde_json::{json, Value};

fn config(root: &TempRoot, set: &str, whitelist: &str) {
    let text = format!(
        "package besip_security\n\nconfig security 'main'\n\toption enabled '1'\n\toption firewall_backend 'iptables-ipset'\n\toption firewall_set_name '{set}'\n\tlist capture_interface 'lo'\n\tlist capture_sip_port '5060'\n\tlist whitelist '{whitelist}'\n\nconfig rule 'rule_opt'\n\toption name 'opt'\n\toption method 'OPTIONS'\n\toption count '5'\n\toption window '5'\n\toption ban_time '120'\n"
    );
    std::fs::write(root.path().join("etc/config/besip_security"), text).expect("write");
}

fn cluster(root: &TempRoot, url: &str, name: &str) {
    let text = format!(
        "package besip_pbx\n\nconfig pbx 'main'\n\toption cluster_database '{url}'\n\toption cluster_box_name '{name}'\n"
    );
    std::fs::write(root.path().join("etc/config/besip_pbx"), text).expect("write");
}

fn state(root: &TempRoot) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = IpcClient::connect(&root.path().join("run/security.sock"))
            .await
            .expect("connect");
        c.call("state", json!({})).await.expect("state")
    })
}

fn bans(root: &TempRoot) -> Vec<(String, String)> {
    state(root)["besip-security:security"]["bans"]["ban"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|b| {
            (
                b["address"].as_str().unwrap_or("").to_owned(),
                b["rule"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn wait(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_ban_raised_at_one_box_is_applied_by_the_other() {
    if !tools_present(&["ip", "iptables", "ipset"]) {
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    let (ns_a, ns_b) = (Netns::new("cla"), Netns::new("clb"));
    let (root_a, root_b) = (TempRoot::new(), TempRoot::new());
    let set = format!("besipcl{}", std::process::id() % 100_000);
    config(&root_a, &set, "127.0.0.5/32");
    config(&root_b, &set, "127.0.0.3/32");
    cluster(&root_a, &pg.unix_url(), "a");
    cluster(&root_b, &pg.unix_url(), "b");
    let _a = SecDaemon::start(&ns_a, &root_a);
    let _b = SecDaemon::start(&ns_b, &root_b);
    let connected = |root: &TempRoot| {
        state(root)["besip-security:security"]["statistics"]["cluster-connected"] == true
    };
    wait("both guards reach the database", || {
        connected(&root_a) && connected(&root_b)
    });

    // 127.0.0.2 bursts at box A only.
    options_burst(&ns_a, "127.0.0.2", 12);
    wait("box a bans 127.0.0.2", || {
        bans(&root_a).contains(&("127.0.0.2".into(), "opt".into()))
    });
    wait("box b bans 127.0.0.2 from the cluster", || {
        bans(&root_b).contains(&("127.0.0.2".into(), "cluster:a:opt".into()))
    });
    let in_set = |ns: &Netns, ip: &str| ns.run(&["ipset", "test", &set, ip]).status.success();
    assert!(in_set(&ns_b, "127.0.0.2"), "in box b's kernel set");
    // Not written back: the database holds one ban, box a's.
    assert_eq!(
        pg.psql("SELECT box || ' ' || address || ' ' || rule FROM besip_ban"),
        "a 127.0.0.2 opt"
    );

    // 127.0.0.3 is whitelisted at box b: a's ban of it stays at a.
    options_burst(&ns_a, "127.0.0.3", 12);
    wait("box a bans 127.0.0.3", || {
        bans(&root_a).iter().any(|(a, _)| a == "127.0.0.3")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !bans(&root_b).iter().any(|(a, _)| a == "127.0.0.3"),
        "box b's whitelist wins: {:?}",
        bans(&root_b)
    );
    assert!(!in_set(&ns_b, "127.0.0.3"));
}
