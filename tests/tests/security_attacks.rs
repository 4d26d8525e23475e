//! Issue 13, "no lock-out", attacked for real inside a network namespace this
//! test creates: besip-pbxd answers SIP on 127.0.0.1:5060 (UDP and TCP),
//! besip-secd watches `lo`, sipp plays a password guesser and an office of 50
//! phones, raw sockets bound to chosen 127.0.0.x addresses (inside the
//! namespace every 127/8 address is local, so binding one forges it) send
//! packets claiming to be the trunk, a dispatcher destination, a whitelisted
//! network, the box itself and the source of the admin's live NETCONF session.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use besip_core::ipc::IpcClient;
use besip_tests::harness::{bin_path, TempRoot};
use besip_tests::security::{register, tools_present, Netns, SecDaemon};
use serde_json::{json, Value};

const GUESSER: &str = "127.0.0.2";
const OFFICE: &str = "127.0.0.3";
const WHITELISTED: &str = "127.0.0.5";
const TRUNK: &str = "127.0.0.20";
const DESTINATION: &str = "127.0.0.21";
const ADMIN: &str = "127.0.0.30";
const SCANNER: &str = "127.0.0.40";
/// Added to the namespace's `lo`: an address of the box itself.
const OWN: &str = "192.0.2.1";
/// A "management port" (stands in for NETCONF/SSH) a SIP-scope ban leaves open.
const MANAGEMENT_PORT: u16 = 8830;
const OFFICE_PHONES: u32 = 50;
const PHONE_UA: &str = "Yealink SIP-T46S 66.86.0.15";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn call(root: &TempRoot, method: &str, params: Value) -> Result<Value, String> {
    rt().block_on(async {
        let c = IpcClient::connect(&root.path().join("run/security.sock"))
            .await
            .map_err(|e| e.to_string())?;
        c.call(method, params).await.map_err(|e| e.to_string())
    })
}

fn secd_state(root: &TempRoot) -> Value {
    call(root, "state", json!({})).expect("secd state")["besip-security:security"].clone()
}

fn bans(root: &TempRoot) -> Vec<Value> {
    secd_state(root)["bans"]["ban"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ban_of(root: &TempRoot, addr: &str) -> Option<Value> {
    bans(root).into_iter().find(|b| b["address"] == addr)
}

fn wait_ban(root: &TempRoot, addr: &str, secs: u64) -> Option<Value> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Some(b) = ban_of(root, addr) {
            return Some(b);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The PBX's configuration: extension 100, the office's extensions, a trunk and a dispatcher destination.
fn pbx_config() -> String {
    let mut s = String::from(
        "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'besip.test'\n\toption auth_realm 'besip.test'\n\toption auth_algorithms 'md5'\n\toption rtp_port_min '10000'\n\toption rtp_port_max '10100'\n\n\
config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '5060'\n\n\
config listen 'listen_tcp'\n\toption name 'tcp'\n\toption transport 'tcp'\n\toption address '127.0.0.1'\n\toption port '5060'\n\n",
    );
    s.push_str(&format!("config trunk 'trunk_provider'\n\toption name 'provider'\n\toption host '{TRUNK}'\n\toption port '5080'\n\toption transport 'udp'\n\n"));
    s.push_str("config dispatcher_set 'dispatcher_set_gw'\n\toption name 'gw'\n\toption algorithm 'round-robin'\n\toption probing '0'\n\n");
    s.push_str(&format!("config dispatcher_set_destination 'dispatcher_set_gw__d'\n\toption dispatcher_set 'gw'\n\toption uri 'sip:{DESTINATION}:5090'\n\toption weight '1'\n\n"));
    for n in std::iter::once(100).chain(1000..1000 + OFFICE_PHONES) {
        s.push_str(&format!(
            "config extension 'extension_{n}'\n\toption number '{n}'\n\toption password 'pw{n}'\n\toption enabled '1'\n\n"
        ));
    }
    s
}

/// The security configuration as rendered from the box's defaults
/// (core/default-config.xml: register-flood, invite-flood, pike), with
/// scanners banned from every port (scope all) and `max_bans`.
fn security_config(backend: &str, set: &str, max_bans: u32) -> String {
    format!(
        "package besip_security\n\nconfig security 'main'\n\toption enabled '1'\n\toption firewall_backend '{backend}'\n\toption firewall_set_name '{set}'\n\tlist capture_interface 'lo'\n\tlist capture_sip_port '5060'\n\toption auth_failure_enabled '1'\n\toption auth_failure_count '10'\n\toption auth_failure_window '60'\n\toption auth_failure_ban_time '3600'\n\toption auth_failure_scope 'sip'\n\toption scanner_enabled '1'\n\toption scanner_ban_time '86400'\n\toption scanner_scope 'all'\n\toption office_exemption '3'\n\toption max_bans '{max_bans}'\n\tlist whitelist '{WHITELISTED}/32'\n\n\
config rule 'rule_register_2dflood'\n\toption name 'register-flood'\n\toption method 'REGISTER'\n\toption count '50'\n\toption window '5'\n\toption ban_time '600'\n\toption scope 'sip'\n\n\
config rule 'rule_invite_2dflood'\n\toption name 'invite-flood'\n\toption method 'INVITE'\n\toption count '30'\n\toption window '5'\n\toption ban_time '600'\n\toption scope 'sip'\n\n\
config rule 'rule_pike'\n\toption name 'pike'\n\toption method 'any'\n\toption count '16'\n\toption window '2'\n\toption ban_time '300'\n\toption scope 'sip'\n"
    )
}

/// besip-pbxd inside the namespace; killed on drop.
struct NsPbx(Child);

impl NsPbx {
    fn start(ns: &Netns, root: &TempRoot) -> NsPbx {
        let log = std::fs::File::create(root.path().join("pbxd.log")).expect("log");
        let child = ns
            .command(&bin_path("besip-pbxd"))
            .arg("--root")
            .arg(root.path())
            .args(["--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start besip-pbxd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !root.path().join("run/pbx.sock").exists() {
            assert!(Instant::now() < deadline, "besip-pbxd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        NsPbx(child)
    }
}

impl Drop for NsPbx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pbx_counter(root: &TempRoot, name: &str) -> u64 {
    rt().block_on(async {
        let c = IpcClient::connect(&root.path().join("run/pbx.sock"))
            .await
            .expect("pbx socket");
        let s = c.call("state", json!({})).await.expect("pbx state");
        s["besip-pbx:pbx"]["counters"][name]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// REGISTER, 401, REGISTER with credentials (sipp's -au/-ap) for the CSV's
/// field0 user, then `final_code`; a silent PBX (a ban) fails the call.
fn register_scenario(final_code: u16) -> String {
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:besip.test SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\nFrom: <sip:[field0]@besip.test>;tag=[pid]r[call_number]\nTo: <sip:[field0]@besip.test>\nCall-ID: [call_id]\nCSeq: {cseq} REGISTER\nContact: <sip:[field0]@[local_ip]:[local_port]>\nExpires: 3600\n{auth}Max-Forwards: 70\nUser-Agent: {PHONE_UA}\nContent-Length: 0\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"register\">\n<send retrans=\"500\"><![CDATA[\n{}\n]]></send>\n<recv response=\"401\" auth=\"true\" timeout=\"2000\"/>\n<send retrans=\"500\"><![CDATA[\n{}\n]]></send>\n<recv response=\"{final_code}\" timeout=\"2000\"/>\n</scenario>\n",
        request(1, ""),
        request(2, "[authentication]\n")
    )
}

/// Run sipp inside the namespace from `source`; returns (successful, failed) calls.
fn sipp(
    ns: &Netns,
    dir: &std::path::Path,
    name: &str,
    source: &str,
    csv: &str,
    scenario: &str,
    credentials: (&str, &str),
    rate: u32,
    calls: u32,
) -> (u64, u64) {
    let xml = dir.join(format!("{name}.xml"));
    let inf = dir.join(format!("{name}.csv"));
    std::fs::write(&xml, scenario).expect("scenario");
    std::fs::write(&inf, csv).expect("csv");
    let out = ns.run(&[
        "timeout",
        "120",
        "sipp",
        "127.0.0.1:5060",
        "-sf",
        xml.to_str().expect("utf8"),
        "-inf",
        inf.to_str().expect("utf8"),
        "-au",
        credentials.0,
        "-ap",
        credentials.1,
        "-i",
        source,
        "-p",
        "0",
        "-r",
        &rate.to_string(),
        "-m",
        &calls.to_string(),
        "-l",
        "200",
        "-nostdin",
        "-timeout",
        "90s",
        "-trace_msg",
        "-message_file",
        dir.join(format!("{name}.msg")).to_str().expect("utf8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |label: &str| -> u64 {
        text.lines()
            .rev()
            .find(|l| l.contains(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no '{label}' in sipp's output:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    (count("Successful call"), count("Failed call"))
}

/// Phones 1000..1049 behind `from` registering in turn at 50/s (digest
/// computed here, as each phone does), `total` registrations; (ok, failed).
fn office(ns: &Netns, from: &str, total: u32) -> (u64, u64) {
    let sock = ns.udp(&format!("{from}:0"));
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let mut buf = vec![0u8; 65536];
    // The response to `call`/`cseq`, waiting up to 2 s (stale answers skipped).
    let mut answer = |call: &str, cseq: u32| -> Option<String> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(n) = sock.recv(&mut buf) {
                let r = String::from_utf8_lossy(&buf[..n]).into_owned();
                if r.contains(&format!("Call-ID: {call}")) && r.contains(&format!("CSeq: {cseq} "))
                {
                    return Some(r);
                }
            }
        }
        None
    };
    let md5 = |s: String| format!("{:032x}", besip_tests::pbx::md5_digest(s.as_bytes()));
    let (mut ok, mut failed) = (0u64, 0u64);
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_millis(u64::from(i) * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let user = 1000 + i % OFFICE_PHONES;
        let call = format!("office{i}");
        let request = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:besip.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call}x{cseq};rport\r\nFrom: <sip:{user}@besip.test>;tag={call}\r\nTo: <sip:{user}@besip.test>\r\nCall-ID: {call}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: 3600\r\n{auth}Max-Forwards: 70\r\nUser-Agent: {PHONE_UA}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let _ = sock.send_to(request(1, "").as_bytes(), "127.0.0.1:5060");
        let nonce = answer(&call, 1).and_then(|r| {
            r.split("nonce=\"")
                .nth(1)
                .and_then(|x| x.split('"').next())
                .map(str::to_owned)
        });
        let Some(nonce) = nonce else {
            failed += 1;
            continue;
        };
        let ha1 = md5(format!("{user}:besip.test:pw{user}"));
        let ha2 = md5("REGISTER:sip:besip.test".into());
        let resp = md5(format!("{ha1}:{nonce}:00000001:c0:auth:{ha2}"));
        let auth = format!("Authorization: Digest username=\"{user}\", realm=\"besip.test\", nonce=\"{nonce}\", uri=\"sip:besip.test\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0\"\r\n");
        let _ = sock.send_to(request(2, &auth).as_bytes(), "127.0.0.1:5060");
        match answer(&call, 2) {
            Some(r) if r.starts_with("SIP/2.0 200 ") => ok += 1,
            _ => failed += 1,
        }
    }
    (ok, failed)
}

/// Can `from` open a TCP connection to 127.0.0.1:`port` (within 1 s)?
fn tcp_reaches(ns: &Netns, from: &str, port: u16) -> bool {
    let name = ns.name.clone();
    let from: SocketAddr = format!("{from}:0").parse().expect("addr");
    std::thread::spawn(move || {
        let ns = Netns { name };
        ns.enter_thread();
        std::mem::forget(ns);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.bind(&from.into()).expect("bind");
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        socket
            .connect_timeout(&to.into(), Duration::from_secs(1))
            .is_ok()
    })
    .join()
    .expect("tcp thread")
}

/// A scanner's REGISTER (banned on the first packet unless protected) from `from`.
fn forged_scanner(ns: &Netns, from: &str) {
    let s = ns.udp(&format!("{from}:0"));
    let m = register("100", &format!("{from}:5099"), 1, "friendly-scanner");
    let _ = s.send_to(m.as_bytes(), "127.0.0.1:5060");
}

/// 30 password guesses (REGISTER with credentials, answered 401) and a
/// 100-REGISTER flood from `from`.
fn forged_guesses_and_flood(ns: &Netns, from: &str) {
    let s = ns.udp(&format!("{from}:0"));
    for i in 0..130u64 {
        let mut m = register("100", &format!("{from}:5099"), i, PHONE_UA);
        if i < 30 {
            m = m.replacen(
                "Max-Forwards",
                "Authorization: Digest username=\"100\", realm=\"besip.test\", nonce=\"x\", uri=\"sip:127.0.0.1\", response=\"00000000000000000000000000000000\"\r\nMax-Forwards",
                1,
            );
        }
        let _ = s.send_to(m.as_bytes(), "127.0.0.1:5060");
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// besip-netconfd in the namespace (its own root; its `run/security.sock` is
/// a link to secd's socket) and an ncclient session to it from `ADMIN`, held
/// open until the returned child is killed.
fn admin_session(ns: &Netns, secd_root: &TempRoot) -> (TempRoot, Child, Child) {
    let root = TempRoot::new();
    std::fs::create_dir_all(root.path().join("run")).expect("run dir");
    std::os::unix::fs::symlink(
        secd_root.path().join("run/security.sock"),
        root.path().join("run/security.sock"),
    )
    .expect("link the security socket");
    let port = 18830u16;
    let log = std::fs::File::create(root.path().join("netconfd.log")).expect("log");
    let netconfd = ns
        .command(&bin_path("besip-netconfd"))
        .env("BESIP_ADMIN_PASSWORD", "Adm1n-attack-pw")
        .arg("--root")
        .arg(root.path())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "debug",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start besip-netconfd");
    let script = format!(
        "import socket, sys, time\nfrom ncclient import manager\ns = socket.socket()\ns.bind(('{ADMIN}', 0))\nfor _ in range(300):\n    try:\n        s.connect(('127.0.0.1', {port}))\n        break\n    except OSError:\n        time.sleep(0.1)\nm = manager.connect(host='127.0.0.1', port={port}, sock=s, username='admin', password='Adm1n-attack-pw', hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)\nprint('up', flush=True)\ntime.sleep(120)\n"
    );
    let client = ns
        .command(std::path::Path::new("/usr/bin/python3"))
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ncclient");
    (root, netconfd, client)
}

fn wait_protected_sessions(root: &TempRoot, secs: u64) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if secd_state(root)["statistics"]["protected-sessions"]
            .as_u64()
            .unwrap_or(0)
            >= 1
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn attacks(backend: &str) {
    let tool = if backend == "nftables" {
        "nft"
    } else {
        "ipset"
    };
    if !tools_present(&["ip", "sipp", tool, "iptables"]) {
        return;
    }
    let ns = Netns::new(if backend == "nftables" {
        "anft"
    } else {
        "aips"
    });
    assert!(ns
        .run(&["ip", "addr", "add", &format!("{OWN}/32"), "dev", "lo"])
        .status
        .success());
    let root = TempRoot::new();
    let set = format!("batk{}", std::process::id() % 100_000);
    std::fs::write(root.path().join("etc/config/besip_pbx"), pbx_config()).expect("pbx config");
    std::fs::write(
        root.path().join("etc/config/besip_security"),
        security_config(backend, &set, 10_000),
    )
    .expect("security config");
    let _pbx = NsPbx::start(&ns, &root);
    let secd = SecDaemon::start(&ns, &root);
    let management = {
        let name = ns.name.clone();
        std::thread::spawn(move || {
            let ns = Netns { name };
            ns.enter_thread();
            std::mem::forget(ns);
            let l = TcpListener::bind(("127.0.0.1", MANAGEMENT_PORT)).expect("bind management");
            l.set_nonblocking(true).expect("nonblocking");
            let t0 = Instant::now();
            // Accept (and drop) connections for the length of the test.
            while t0.elapsed() < Duration::from_secs(240) {
                let _ = l.accept();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");

    // 1. A password guesser with an ordinary phone's User-Agent: 25 guesses at
    // 2/s for extension 100 (slow enough for the rate rules: 4 requests/s);
    // the brute-force rule bans it before the PBX has seen 20.
    let failures_before = pbx_counter(&root, "auth-failures");
    let (answered, _) = sipp(
        &ns,
        dir.path(),
        "guesser",
        GUESSER,
        "SEQUENTIAL\n100\n",
        &register_scenario(200),
        ("100", "wrong-password"),
        2,
        25,
    );
    assert_eq!(answered, 0, "a wrong password was accepted");
    let ban = wait_ban(&root, GUESSER, 5)
        .unwrap_or_else(|| panic!("guesser not banned; log:\n{}", secd.log()));
    assert_eq!(ban["rule"], "auth-failure");
    assert_eq!(ban["scope"], "sip");
    let guesses = pbx_counter(&root, "auth-failures") - failures_before;
    eprintln!("guesser: banned after {guesses} wrong passwords reached the PBX");
    assert!(
        (10..20).contains(&guesses),
        "the PBX saw {guesses} wrong passwords from the guesser (want 10..19)"
    );

    // 2. The ban drops SIP but not the management port (scope sip).
    assert!(
        tcp_reaches(&ns, GUESSER, MANAGEMENT_PORT),
        "a SIP ban cut the banned address off the management port"
    );
    assert!(
        !tcp_reaches(&ns, GUESSER, 5060),
        "the banned guesser still reaches SIP over TCP"
    );

    // 3. An office of 50 phones behind one address re-registering at 50/s for
    // 10 s: at least 99 % of the registrations succeed and it is never banned.
    let (ok, failed) = office(&ns, OFFICE, 500);
    eprintln!("office: {ok} registrations succeeded, {failed} failed");
    assert!(
        ok * 100 >= 99 * 500,
        "office: only {ok} of 500 registrations succeeded ({failed} failed); secd log:\n{}",
        secd.log()
    );
    assert!(ban_of(&root, OFFICE).is_none(), "the office was banned");

    // 4. Forged packets claiming the trunk, the dispatcher destination, a
    // whitelisted address, the box itself and the admin's NETCONF session:
    // none gets banned, while a real scanner is (from every port: scope all).
    let (_nc_root, mut netconfd, mut ncclient) = admin_session(&ns, &root);
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = ncclient.stdout.take().expect("ncclient stdout");
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(
        line.trim(),
        "up",
        "the admin's NETCONF session did not open"
    );
    assert!(
        wait_protected_sessions(&root, 10),
        "netconfd did not announce the admin's session source"
    );
    for forged in [TRUNK, DESTINATION, WHITELISTED, OWN, ADMIN] {
        forged_scanner(&ns, forged);
        forged_guesses_and_flood(&ns, forged);
    }
    forged_scanner(&ns, SCANNER);
    let b = wait_ban(&root, SCANNER, 5).expect("the real scanner was not banned");
    assert_eq!(b["scope"], "all");
    std::thread::sleep(Duration::from_millis(500));
    for forged in [TRUNK, DESTINATION, WHITELISTED, OWN, ADMIN] {
        assert!(
            ban_of(&root, forged).is_none(),
            "a forged packet got {forged} banned: {:?}",
            bans(&root)
        );
    }
    assert!(
        !tcp_reaches(&ns, SCANNER, MANAGEMENT_PORT),
        "a ban of scope all left the management port open"
    );
    let _ = ncclient.kill();
    let _ = ncclient.wait();
    let _ = netconfd.kill();
    let _ = netconfd.wait();
    drop(management);
    secd.stop();
}

#[test]
fn ipset_no_lock_out_under_attack() {
    attacks("iptables-ipset");
}

#[test]
fn nftables_no_lock_out_under_attack() {
    attacks("nftables");
}

/// A full ban table (max-bans 10) bans the next offender's /24 instead of
/// stopping, in the kernel too.
fn full_table(backend: &str) {
    let tool = if backend == "nftables" {
        "nft"
    } else {
        "ipset"
    };
    if !tools_present(&["ip", tool, "iptables"]) {
        return;
    }
    let ns = Netns::new(if backend == "nftables" {
        "fnft"
    } else {
        "fips"
    });
    let root = TempRoot::new();
    let set = format!("bful{}", std::process::id() % 100_000);
    std::fs::write(
        root.path().join("etc/config/besip_security"),
        security_config(backend, &set, 10),
    )
    .expect("security config");
    let secd = SecDaemon::start(&ns, &root);
    for i in 1..=12 {
        forged_scanner(&ns, &format!("127.0.1.{i}"));
        std::thread::sleep(Duration::from_millis(30));
    }
    let b = wait_ban(&root, "127.0.1.0", 5)
        .unwrap_or_else(|| panic!("no prefix ban: {:?}\n{}", bans(&root), secd.log()));
    assert_eq!(b["prefix-length"], 24);
    // The prefix absorbed the single bans inside it.
    let listed: Vec<String> = bans(&root)
        .iter()
        .map(|b| b["address"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(listed, vec!["127.0.1.0"], "{listed:?}");
    // A source of the prefix never seen before is dropped by the kernel.
    // (The state lists a ban just before the kernel has it.)
    let t0 = Instant::now();
    let (in_kernel, nft) = loop {
        let nft = ns.run_text(&["nft", "list", "set", "inet", &set, "v4all"]);
        let has = if backend == "nftables" {
            nft.contains("127.0.1.0/24")
        } else {
            ns.run(&["ipset", "test", &format!("{set}_all"), "127.0.1.200"])
                .status
                .success()
        };
        if has || t0.elapsed() > Duration::from_secs(3) {
            break (has, nft);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        in_kernel,
        "prefix ban not in the kernel: {nft}\n{}",
        secd.log()
    );
    secd.stop();
}

#[test]
fn ipset_full_ban_table_bans_prefixes() {
    full_table("iptables-ipset");
}

#[test]
fn nftables_full_ban_table_bans_prefixes() {
    full_table("nftables");
}
