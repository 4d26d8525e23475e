//! besip-secd end to end, inside a network namespace this test creates: sipp
//! floods from 127.0.0.2, a legitimate phone registers from 127.0.0.3, and the
//! kernel (ipset+iptables or nftables) must drop the flood but not the phone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use besip_core::ipc::IpcClient;
use besip_tests::harness::{bin_path, TempRoot};
use besip_tests::security::{
    legit_client, register, tools_present, write_config, Netns, Responder, SecDaemon,
};
use serde_json::{json, Value};

const FLOOD_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register flood">
  <send>
    <![CDATA[
REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:flood@127.0.0.1>;tag=[call_number]
To: <sip:flood@127.0.0.1>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:flood@[local_ip]:[local_port]>
User-Agent: FloodTool
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn call(
    rt: &tokio::runtime::Runtime,
    root: &TempRoot,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    rt.block_on(async {
        let c = IpcClient::connect(&root.path().join("run/security.sock"))
            .await
            .map_err(|e| e.to_string())?;
        c.call(method, params).await.map_err(|e| e.to_string())
    })
}

fn bans(rt: &tokio::runtime::Runtime, root: &TempRoot) -> Vec<Value> {
    let s = call(rt, root, "state", json!({})).expect("state");
    s["besip-security:security"]["bans"]["ban"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ban_of(rt: &tokio::runtime::Runtime, root: &TempRoot, addr: &str) -> Option<Value> {
    bans(rt, root).into_iter().find(|b| b["address"] == addr)
}

fn wait_ban(rt: &tokio::runtime::Runtime, root: &TempRoot, addr: &str, secs: u64) -> Option<Value> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Some(b) = ban_of(rt, root, addr) {
            return Some(b);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether the kernel holds a ban for `addr` (waits up to 1 s: state lists a ban just before the kernel has it).
fn in_kernel(ns: &Netns, backend: &str, set: &str, addr: &str) -> bool {
    let t0 = Instant::now();
    loop {
        if kernel_has(ns, backend, set, addr) {
            return true;
        }
        if t0.elapsed() > Duration::from_secs(1) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kernel_has(ns: &Netns, backend: &str, set: &str, addr: &str) -> bool {
    if backend == "nftables" {
        ns.run_text(&["nft", "list", "set", "inet", set, "v4"])
            .contains(addr)
    } else {
        ns.run(&["ipset", "test", set, addr]).status.success()
    }
}

fn drop_counter(ns: &Netns, backend: &str, set: &str) -> u64 {
    let text = if backend == "nftables" {
        ns.run_text(&["nft", "list", "chain", "inet", set, "input"])
    } else {
        ns.run_text(&["iptables", "-w", "-L", "INPUT", "-v", "-n", "-x"])
    };
    for line in text.lines() {
        if backend == "nftables" && line.contains("@v4") {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = w.iter().position(|x| *x == "packets") {
                return w.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        } else if backend != "nftables" && line.contains(&format!("match-set {set} src")) {
            return line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    panic!("no drop rule for {set} found in:\n{text}");
}

fn send_from(ns: &Netns, addr: &str, msgs: &[String]) {
    let s = ns.udp(&format!("{addr}:0"));
    for m in msgs {
        let _ = s.send_to(m.as_bytes(), "127.0.0.1:5060");
        // paced so the registrar's socket buffer never overflows
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn scenario(backend: &str) {
    if !tools_present(&[
        "ip",
        "sipp",
        if backend == "nftables" {
            "nft"
        } else {
            "ipset"
        },
        "iptables",
    ]) {
        return;
    }
    let rt = rt();
    let ns = Netns::new(if backend == "nftables" {
        "nft"
    } else {
        "ipset"
    });
    let root = TempRoot::new();
    let set = format!("bsec{}", std::process::id());
    write_config(&root, backend, &set, "");
    let responder = Responder::start(&ns);
    let daemon = SecDaemon::start(&ns, &root);
    let notes = rt.block_on(async {
        let c = IpcClient::connect(&root.path().join("run/security.sock"))
            .await
            .expect("connect");
        let rx = c.notifications();
        (c, rx)
    });
    let (_client, mut rx) = notes;

    // 1. A legitimate phone keeps registering from 127.0.0.3 while sipp floods from 127.0.0.2.
    let stop = Arc::new(AtomicBool::new(false));
    let phone = legit_client(&ns, "127.0.0.3", Duration::from_millis(150), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let xml = root.path().join("flood.xml");
    std::fs::write(&xml, FLOOD_XML).expect("scenario");
    let before = drop_counter(&ns, backend, &set);
    let sipp = ns.run(&[
        "timeout",
        "30",
        "sipp",
        "-sf",
        xml.to_str().expect("utf8"),
        "-i",
        "127.0.0.2",
        "-p",
        "5071",
        "-r",
        "400",
        "-m",
        "1600",
        "-nostdin",
        "-trace_err",
        "-error_file",
        "/dev/null",
        "127.0.0.1:5060",
    ]);
    assert!(sipp.status.code().is_some(), "sipp did not run");
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let (sent, ok) = phone.join().expect("phone");
    let ban = wait_ban(&rt, &root, "127.0.0.2", 5)
        .unwrap_or_else(|| panic!("flood not banned; log:\n{}", daemon.log()));
    assert_eq!(ban["rule"], "register");
    assert!(in_kernel(&ns, backend, &set, "127.0.0.2"));
    let dropped = drop_counter(&ns, backend, &set) - before;
    let reached = responder.count("127.0.0.2");
    assert!(
        dropped > 1000,
        "kernel dropped only {dropped} flood packets"
    );
    assert!(
        reached < 300,
        "registrar still saw {reached} of 1600 flood packets"
    );
    assert!(
        sent >= 20 && ok * 100 >= sent * 99,
        "legit phone: {ok}/{sent} answered during the flood"
    );
    assert!(
        ban_of(&rt, &root, "127.0.0.3").is_none(),
        "legit phone banned"
    );
    let packets: u64 = ban["packets"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(packets > 1, "packets seen from the banned source: {ban}");

    // The state is valid data of the YANG module.
    let state = call(&rt, &root, "state", json!({})).expect("state");
    let yang_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../yang");
    let state_file = root.path().join("state.json");
    std::fs::write(&state_file, state.to_string()).expect("write state");
    match std::process::Command::new("yanglint")
        .arg("-p")
        .arg(&yang_dir)
        .args(["-t", "get"])
        .arg(yang_dir.join("besip-security.yang"))
        .arg(&state_file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "state rejected by yanglint: {}\n{state}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            eprintln!("note: yanglint not installed, state not validated (scripts/install-deps)")
        }
    }

    // 2. A scanner user agent is banned on its first request.
    send_from(
        &ns,
        "127.0.0.4",
        &[register("100", "127.0.0.4:5099", 1, "friendly-scanner")],
    );
    let b = wait_ban(&rt, &root, "127.0.0.4", 3).expect("scanner not banned");
    assert_eq!(b["rule"], "scanner");
    assert!(in_kernel(&ns, backend, &set, "127.0.0.4"));

    // 2b. IPv6: a scanner from 2001:db8::5 is banned in the IPv6 set; a
    // whitelisted IPv6 source (fd00::/8) is not.
    for a in ["2001:db8::5/128", "fd00::7/128"] {
        assert!(ns
            .run(&["ip", "addr", "add", a, "dev", "lo", "nodad"])
            .status
            .success());
    }
    for a in ["2001:db8::5", "fd00::7"] {
        let s = ns.udp(&format!("[{a}]:0"));
        let m = register("100", &format!("[{a}]:5099"), 1, "sipvicious");
        s.send_to(m.as_bytes(), "[::1]:5060").expect("send v6");
    }
    let b = wait_ban(&rt, &root, "2001:db8::5", 3).expect("IPv6 scanner not banned");
    assert_eq!(b["rule"], "scanner");
    let t0 = Instant::now();
    let v6_in_kernel = loop {
        let has = if backend == "nftables" {
            ns.run_text(&["nft", "list", "set", "inet", &set, "v6"])
                .contains("2001:db8::5")
        } else {
            ns.run(&["ipset", "test", &format!("{set}6"), "2001:db8::5"])
                .status
                .success()
        };
        if has || t0.elapsed() > Duration::from_secs(1) {
            break has;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(v6_in_kernel, "IPv6 ban not in the kernel");
    assert!(
        ban_of(&rt, &root, "fd00::7").is_none(),
        "whitelisted IPv6 source banned"
    );

    // 3. A whitelisted source flooding is never banned.
    let flood: Vec<String> = (0..300)
        .map(|i| register("w", "127.0.0.5:5099", i, "friendly-scanner"))
        .collect();
    send_from(&ns, "127.0.0.5", &flood);
    // 4. Brute force: wrong passwords (requests with credentials) answered
    // 401 by the registrar. A plain challenge is not a failure (every phone
    // gets one per registration), so every guess carries credentials.
    let brute: Vec<String> = (0..12)
        .map(|i| {
            register("brute", "127.0.0.6:5099", i, "Guess/1").replacen(
                "Max-Forwards",
                "Authorization: Digest username=\"brute\", response=\"0\"\r\nMax-Forwards",
                1,
            )
        })
        .collect();
    send_from(&ns, "127.0.0.6", &brute);
    let b = wait_ban(&rt, &root, "127.0.0.6", 3).expect("brute force not banned");
    assert_eq!(b["rule"], "auth-failure");
    assert!(
        ban_of(&rt, &root, "127.0.0.5").is_none(),
        "whitelisted source banned"
    );
    assert!(!kernel_has(&ns, backend, &set, "127.0.0.5"));

    // 4b. An office: three phones registered successfully from 127.0.0.10, then
    // 80 REGISTERs within a second from that address are not a flood to ban.
    let phones: Vec<String> = ["u1", "u2", "u3"]
        .iter()
        .enumerate()
        .map(|(i, u)| register(u, "127.0.0.10:5099", i as u64, "OfficePhone"))
        .collect();
    send_from(&ns, "127.0.0.10", &phones);
    std::thread::sleep(Duration::from_millis(200));
    let busy: Vec<String> = (0..80)
        .map(|i| register("u1", "127.0.0.10:5099", 10 + i, "OfficePhone"))
        .collect();
    send_from(&ns, "127.0.0.10", &busy);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ban_of(&rt, &root, "127.0.0.10").is_none(),
        "office behind one address banned by the rate rule"
    );

    // 5. A short ban (OPTIONS 5 in 5 s → 2 s) lifts by itself.
    let opts: Vec<String> = (0..5)
        .map(|i| format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.7:5099;branch=z9hG4bKo{i}\r\nCall-ID: o{i}\r\nCSeq: {i} OPTIONS\r\n\r\n"))
        .collect();
    send_from(&ns, "127.0.0.7", &opts);
    let b = wait_ban(&rt, &root, "127.0.0.7", 3).expect("short rule did not ban");
    assert_eq!(b["rule"], "short");
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        ban_of(&rt, &root, "127.0.0.7").is_none(),
        "2 s ban still listed after 3 s"
    );
    assert!(
        !kernel_has(&ns, backend, &set, "127.0.0.7"),
        "kernel still holds the expired ban"
    );

    // 6. unban lifts at once, in the kernel too; bad input is refused.
    call(
        &rt,
        &root,
        "rpc",
        json!({"name": "besip-security:unban", "input": {"address": "127.0.0.2"}}),
    )
    .expect("unban");
    assert!(ban_of(&rt, &root, "127.0.0.2").is_none());
    assert!(!kernel_has(&ns, backend, &set, "127.0.0.2"));
    assert!(call(
        &rt,
        &root,
        "rpc",
        json!({"name": "besip-security:unban", "input": {"address": "not-an-ip"}})
    )
    .is_err());
    assert!(call(
        &rt,
        &root,
        "rpc",
        json!({"name": "besip-security:unban", "input": {"address": "127.0.0.9"}})
    )
    .is_err());
    let seen = responder.count("127.0.0.2");
    send_from(
        &ns,
        "127.0.0.2",
        &[register("x", "127.0.0.2:5099", 1, "Phone")],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        responder.count("127.0.0.2") > seen,
        "unbanned source still dropped"
    );

    // A live reload applies a new whitelist; detection keeps running.
    write_config(&root, backend, &set, "\tlist whitelist '127.0.0.8/32'\n");
    call(&rt, &root, "reload", json!({})).expect("reload");
    let burst = |a: &str| -> Vec<String> {
        (0..60)
            .map(|i| register("r", &format!("{a}:5099"), i, "Phone"))
            .collect()
    };
    send_from(&ns, "127.0.0.8", &burst("127.0.0.8"));
    send_from(&ns, "127.0.0.9", &burst("127.0.0.9"));
    assert!(
        wait_ban(&rt, &root, "127.0.0.9", 3).is_some(),
        "detector idle after reload"
    );
    assert!(
        ban_of(&rt, &root, "127.0.0.8").is_none(),
        "reloaded whitelist not applied"
    );

    // Notifications carried the evidence.
    let mut added = Vec::new();
    let mut lifted = Vec::new();
    while let Ok(n) = rx.try_recv() {
        match n.name.as_str() {
            "besip-security:ban-added" => added.push(n.data),
            "besip-security:ban-lifted" => lifted.push(n.data),
            _ => {}
        }
    }
    let flood_note = added
        .iter()
        .find(|d| d["address"] == "127.0.0.2")
        .expect("ban-added for the flood");
    assert_eq!(
        (
            flood_note["rule"].clone(),
            flood_note["count"].clone(),
            flood_note["window"].clone()
        ),
        (json!("register"), json!(50), json!(5))
    );
    assert_eq!(flood_note["sample-user-agent"], "FloodTool");
    assert!(
        lifted
            .iter()
            .any(|d| d["address"] == "127.0.0.7" && d["reason"] == "expired"),
        "{lifted:?}"
    );
    assert!(
        lifted
            .iter()
            .any(|d| d["address"] == "127.0.0.2" && d["reason"] == "unban"),
        "{lifted:?}"
    );

    // 7. A restart keeps the bans (restored from SQLite; the kernel kept them meanwhile).
    daemon.stop();
    assert!(
        in_kernel(&ns, backend, &set, "127.0.0.4"),
        "kernel lost the ban while the daemon was down"
    );
    let daemon = SecDaemon::start(&ns, &root);
    let b = ban_of(&rt, &root, "127.0.0.4").expect("scanner ban lost over restart");
    assert_eq!(b["rule"], "scanner");
    assert!(ban_of(&rt, &root, "127.0.0.6").is_some());
    assert!(
        ban_of(&rt, &root, "127.0.0.2").is_none(),
        "unbanned address came back"
    );
    assert!(in_kernel(&ns, backend, &set, "127.0.0.4"));
    // A bad reload is refused and changes nothing.
    std::fs::write(
        root.path().join("etc/config/besip_security"),
        "package besip_security\n\nconfig security 'main'\n\toption firewall_backend 'pf'\n",
    )
    .expect("write");
    assert!(call(&rt, &root, "reload", json!({})).is_err());
    assert!(ban_of(&rt, &root, "127.0.0.4").is_some());

    // 8. A new set name moves the bans into the new set and removes the old one.
    let moved = format!("{set}m");
    write_config(&root, backend, &moved, "");
    call(&rt, &root, "reload", json!({})).expect("reload with a new set name");
    assert!(
        in_kernel(&ns, backend, &moved, "127.0.0.4"),
        "ban not moved"
    );
    assert!(
        !firewall_objects_exist(&ns, backend, &set),
        "old set left behind"
    );
    daemon.stop();

    // 9. `besip-secd teardown` removes the rules and sets (package removal).
    let out = ns
        .command(&bin_path("besip-secd"))
        .arg("--root")
        .arg(root.path())
        .arg("teardown")
        .output()
        .expect("run teardown");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !firewall_objects_exist(&ns, backend, &moved),
        "teardown left the set"
    );
    if backend != "nftables" {
        let rules = ns.run_text(&["iptables", "-S", "INPUT"]);
        assert!(!rules.contains(&moved), "teardown left the rule: {rules}");
    }
}

/// Does the backend's set (ipset) or table (nftables) named `set` exist?
fn firewall_objects_exist(ns: &Netns, backend: &str, set: &str) -> bool {
    if backend == "nftables" {
        ns.run(&["nft", "list", "table", "inet", set])
            .status
            .success()
    } else {
        ns.run(&["ipset", "list", "-n", set]).status.success()
    }
}

#[test]
fn ipset_backend_bans_floods_scanners_and_brute_force() {
    scenario("iptables-ipset");
}

#[test]
fn nftables_backend_bans_floods_scanners_and_brute_force() {
    scenario("nftables");
}

#[test]
fn bad_configuration_stops_the_start_with_file_and_reason() {
    let root = TempRoot::new();
    let file = root.path().join("etc/config/besip_security");
    std::fs::write(
        &file,
        "package besip_security\n\nconfig security 'main'\n\toption firewall_backend 'log-only'\n\tlist whitelist '300.1.2.3/8'\n",
    )
    .expect("write config");
    let out = std::process::Command::new(besip_tests::harness::bin_path("besip-secd"))
        .arg("--root")
        .arg(root.path())
        .arg("--foreground")
        .output()
        .expect("run besip-secd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad whitelist");
    assert!(
        err.contains("besip_security") && err.contains("300.1.2.3"),
        "{err}"
    );
    assert!(!root.path().join("run/security.sock").exists());
}
