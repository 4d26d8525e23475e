//! The daemon side of the two-phase reload over the daemons' real IPC
//! sockets: `prepare` reads a staged UCI file and changes nothing the daemon
//! serves, `apply` switches to it, `abort` drops it, a configuration the
//! daemon cannot take is refused in `prepare` with nothing kept.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use besip_tests::harness::TempRoot;
use besip_tests::monitoring::Monitord;
use besip_tests::pbx::{config, free_port, options_answered, raw_register, Pbx};
use besip_tests::security::{options_burst, tools_present, write_config, Netns, SecDaemon};
use besip_tests::web::free_tcp_port;
use serde_json::{json, Value};

/// Calls `method` on the daemon socket `socket`.
fn ipc(socket: &Path, method: &str, params: Value) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = besip_core::ipc::IpcClient::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        client.call(method, params).await.map_err(|e| e.to_string())
    })
}

/// Writes `text` as the staged file of `package` under `root` and returns
/// the `prepare` params naming it.
fn stage(root: &Path, package: &str, text: &str) -> Value {
    let dir = root.join("etc/config/.staged");
    std::fs::create_dir_all(&dir).expect("staged dir");
    let path = dir.join(package);
    std::fs::write(&path, text).expect("write staged file");
    json!({"packages": {package: path}})
}

/// The final answer to a REGISTER of extension 100 with `password`.
fn register_100(pbx_port: u16, password: &str, call: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let contact = format!(
        "Contact: <sip:100@127.0.0.1:{}>\r\n",
        sock.local_addr().expect("addr").port()
    );
    raw_register(&sock, pbx_port, "100", password, &contact, call)
}

#[test]
fn pbx_prepare_changes_nothing_until_apply() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let socket = pbx.socket();
    let live = config(port, "");
    // Extension 100 gets a new password, and the PBX a second port.
    let new_port = free_port();
    let staged_text = live.replace("'pw100'", "'changed100'")
        + &format!("config listen 'listen_udp2'\n\toption name 'udp2'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '{new_port}'\n\n");
    let params = stage(pbx.root.path(), "besip_pbx", &staged_text);

    assert_eq!(ipc(&socket, "prepare", params).expect("prepare"), json!({}));
    // Pending only: the old password still registers, the new port is not served.
    let answer = register_100(port, "pw100", "prep1");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(
        !options_answered(new_port),
        "a prepared listen is served before apply"
    );
    assert_eq!(
        std::fs::read_to_string(pbx.root.path().join("etc/config/besip_pbx")).expect("live"),
        live,
        "prepare must not touch the live file"
    );

    assert_eq!(ipc(&socket, "apply", json!({})).expect("apply"), json!({}));
    let answer = register_100(port, "changed100", "appl1");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(options_answered(new_port), "the new listen after apply");
    assert!(options_answered(port), "the kept listen after apply");
    let again = ipc(&socket, "apply", json!({})).expect_err("nothing pending");
    assert!(again.contains("no configuration is prepared"), "{again}");

    // abort drops what prepare kept: apply has nothing to switch to.
    let params = stage(pbx.root.path(), "besip_pbx", &live);
    ipc(&socket, "prepare", params).expect("prepare");
    assert_eq!(ipc(&socket, "abort", json!({})).expect("abort"), json!({}));
    let after_abort = ipc(&socket, "apply", json!({})).expect_err("aborted");
    assert!(
        after_abort.contains("no configuration is prepared"),
        "{after_abort}"
    );
    let answer = register_100(port, "changed100", "abrt1");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(options_answered(new_port));
}

#[test]
fn pbx_prepare_refuses_a_busy_port_and_bad_files_keeping_nothing() {
    let port = free_port();
    let pbx = Pbx::start(&config(port, ""), port);
    let socket = pbx.socket();

    // A TCP port the test holds: the PBX cannot bind it.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").port();
    let text = config(port, "").replace("'pw100'", "'changed100'")
        + &format!("config listen 'listen_busy'\n\toption name 'busy'\n\toption transport 'tcp'\n\toption address '127.0.0.1'\n\toption port '{busy}'\n\n");
    let refused = ipc(
        &socket,
        "prepare",
        stage(pbx.root.path(), "besip_pbx", &text),
    )
    .expect_err("a busy port is refused");
    assert!(
        refused.contains(&busy.to_string()) && refused.contains("-32000"),
        "{refused}"
    );
    let none = ipc(&socket, "apply", json!({})).expect_err("nothing pending");
    assert!(none.contains("no configuration is prepared"), "{none}");
    // The old listener keeps serving, with the old configuration.
    assert!(options_answered(port));
    let answer = register_100(port, "pw100", "busy1");
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");

    // A file that does not parse: refused, and an older pending one is dropped too.
    let good = stage(pbx.root.path(), "besip_pbx", &config(port, ""));
    ipc(&socket, "prepare", good).expect("prepare");
    let bad = config(port, "").replace("option mode 'proxy'", "option mode 'teleport'");
    let refused = ipc(
        &socket,
        "prepare",
        stage(pbx.root.path(), "besip_pbx", &bad),
    )
    .expect_err("bad mode");
    assert!(refused.contains("-32000"), "{refused}");
    let none = ipc(&socket, "apply", json!({})).expect_err("nothing pending");
    assert!(none.contains("no configuration is prepared"), "{none}");
    assert!(options_answered(port));
    drop(taken);
}

fn monitoring_uci() -> String {
    "package besip_monitoring\n\nconfig monitoring 'main'\n\tlist interface 'lo'\n\toption capture_filter 'udp port 5999'\n"
        .to_string()
}

fn system_uci(enabled: bool, port: u16, redirect: u16) -> String {
    format!(
        "package besip_system\n\nconfig system 'main'\n\toption hostname 'besip'\n\toption web_enabled '{}'\n\toption web_listen_address '127.0.0.1'\n\toption web_port '{port}'\n\toption web_http_redirect_port '{redirect}'\n",
        u8::from(enabled)
    )
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (a
/// refused connect answers at once on loopback).
fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn monitord_prepare_keeps_the_web_panel_until_apply() {
    let root = besip_tests::harness::TempRoot::new();
    let (web, redirect) = (free_tcp_port(), free_tcp_port());
    std::fs::write(
        root.path().join("etc/config/besip_monitoring"),
        monitoring_uci(),
    )
    .expect("write");
    std::fs::write(
        root.path().join("etc/config/besip_system"),
        system_uci(false, web, redirect),
    )
    .expect("write");
    let m = Monitord::start_in(root);
    let socket = m.socket();

    // A bad staged package is refused and nothing is pending.
    let bad = system_uci(true, web, redirect).replace(&format!("'{web}'"), "'0'");
    let refused = ipc(
        &socket,
        "prepare",
        stage(m.root.path(), "besip_system", &bad),
    )
    .expect_err("port 0 is refused");
    assert!(refused.contains("web_port"), "{refused}");
    let none = ipc(&socket, "apply", json!({})).expect_err("nothing pending");
    assert!(none.contains("no configuration is prepared"), "{none}");

    let params = stage(
        m.root.path(),
        "besip_system",
        &system_uci(true, web, redirect),
    );
    ipc(&socket, "prepare", params.clone()).expect("prepare");
    assert!(!listening(web), "the panel is served before apply");
    ipc(&socket, "abort", json!({})).expect("abort");
    ipc(&socket, "apply", json!({})).expect_err("aborted");
    assert!(!listening(web));

    ipc(&socket, "prepare", params).expect("prepare");
    assert!(!listening(web), "the panel is served before apply");
    ipc(&socket, "apply", json!({})).expect("apply");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listening(web) {
        assert!(
            Instant::now() < deadline,
            "web panel not listening after apply; log:\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ban of `addr` in secd's state, waiting up to 10 s for it.
fn wait_ban(socket: &Path, addr: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = ipc(socket, "state", json!({})).expect("state");
        let bans = state["besip-security:security"]["bans"]["ban"].clone();
        if let Some(ban) = bans
            .as_array()
            .and_then(|a| a.iter().find(|b| b["address"] == addr))
        {
            return ban.clone();
        }
        assert!(Instant::now() < deadline, "{addr} not banned: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn secd_prepare_changes_no_rule_until_apply() {
    if !tools_present(&["ip"]) {
        return;
    }
    // Its own loopback: the capture sees only this test's packets. The
    // log-only backend keeps bans in the daemon's state, not in the kernel.
    let ns = Netns::new("twophase");
    let root = TempRoot::new();
    write_config(&root, "log-only", "twophase", "");
    let live_path = root.path().join("etc/config/besip_security");
    // The OPTIONS rule ('short', 5 in 5 s) bans long enough to be seen.
    let live = std::fs::read_to_string(&live_path)
        .expect("config")
        .replace("option ban_time '2'", "option ban_time '600'");
    std::fs::write(&live_path, &live).expect("write config");
    let daemon = SecDaemon::start(&ns, &root);
    let socket = root.path().join("run/security.sock");

    let bad = live.replace("'log-only'", "'carrier-pigeon'");
    let refused = ipc(
        &socket,
        "prepare",
        stage(root.path(), "besip_security", &bad),
    )
    .expect_err("an unknown backend is refused");
    assert!(refused.contains("carrier-pigeon"), "{refused}");
    let none = ipc(&socket, "apply", json!({})).expect_err("nothing pending");
    assert!(none.contains("no configuration is prepared"), "{none}");

    // The rule is renamed in the staged file: bans name the rule in force.
    let renamed = live.replace("option name 'short'", "option name 'renamed'");
    let params = stage(root.path(), "besip_security", &renamed);
    assert_eq!(ipc(&socket, "prepare", params).expect("prepare"), json!({}));
    options_burst(&ns, "127.0.0.2", 8);
    let ban = wait_ban(&socket, "127.0.0.2");
    assert_eq!(
        ban["rule"], "short",
        "prepared rules in force before apply: {ban}"
    );

    assert_eq!(ipc(&socket, "apply", json!({})).expect("apply"), json!({}));
    options_burst(&ns, "127.0.0.3", 8);
    let ban = wait_ban(&socket, "127.0.0.3");
    assert_eq!(ban["rule"], "renamed", "the applied rules: {ban}");
    assert_eq!(
        std::fs::read_to_string(&live_path).expect("live"),
        live,
        "prepare and apply never write the live file"
    );
    daemon.stop();
}
