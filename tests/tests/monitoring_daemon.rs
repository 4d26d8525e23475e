//! besip-monitord live on loopback: sipp places a call with RTP (uac_pcap
//! playing sip-tester's g711a.pcap, uas echoing it back); the call and its MOS
//! land in SQLite, in IPC state, and raise low-mos; erase-reports, reload and
//! a bad configuration behave.

use std::process::Command;
use std::time::{Duration, Instant};

use besip_core::ipc::IpcClient;
use besip_tests::monitoring::{free_udp_pair, Monitord};
use serde_json::json;

fn uci(sip_port: u16, mp: u16, extra: &str) -> String {
    format!(
        "package besip_monitoring\n\nconfig monitoring 'main'\n\tlist interface 'lo'\n\toption capture_filter 'udp port {sip_port} or udp portrange {mp}-{}'\n\tlist sip_port '{sip_port}'\n\toption rotation_interval '60'\n\toption mos_threshold '4.50'\n\toption mos_interval '2'\n{extra}",
        mp + 11
    )
}

#[test]
fn sipp_call_on_loopback_is_measured_stored_and_reported() {
    let sipp_dir = tempfile::tempdir().expect("tempdir");
    if !std::path::Path::new("/usr/share/sip-tester/g711a.pcap").exists() {
        eprintln!("SKIP: sip-tester (sipp) not installed (scripts/install-deps)");
        return;
    }
    // uac_pcap opens pcap/g711a.pcap and pcap/dtmf_2833_1.pcap relative to its cwd.
    std::os::unix::fs::symlink("/usr/share/sip-tester", sipp_dir.path().join("pcap"))
        .expect("symlink");
    let sip_port = free_udp_pair();
    // sipp binds its media port and the next ones (RTCP, video): keep them apart.
    let mp = free_udp_pair();
    let uas_mp = mp;
    let uac_mp = mp + 8;
    let m = Monitord::start(&uci(sip_port, mp, ""));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt
        .block_on(IpcClient::connect(&m.socket()))
        .expect("connect IPC");
    let mut notes = client.notifications();

    let mut uas = Command::new("sipp")
        .current_dir(sipp_dir.path())
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &sip_port.to_string(),
            "-rtp_echo",
            "-mp",
            &uas_mp.to_string(),
            "-m",
            "1",
            "-nostdin",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start sipp uas");
    std::thread::sleep(Duration::from_millis(300));
    let uac = Command::new("timeout")
        .current_dir(sipp_dir.path())
        .args([
            "60",
            "sipp",
            "-sn",
            "uac_pcap",
            &format!("127.0.0.1:{sip_port}"),
            "-i",
            "127.0.0.1",
            "-p",
            &(sip_port + 1).to_string(),
        ])
        .args(["-mp", &uac_mp.to_string(), "-m", "1", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .status()
        .expect("run sipp uac");
    let _ = uas.kill();
    let _ = uas.wait();
    assert!(uac.success(), "sipp uac_pcap call failed");

    // The call ends; its streams go idle and are stored within a few seconds.
    let db = m.db();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (call_id, streams, mos) = loop {
        let conn = rusqlite::Connection::open(&db).expect("open report db");
        let row = conn.query_row("SELECT call_id, stream_count, mos FROM calls", [], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<f64>>(2)?,
            ))
        });
        if let Ok(row) = row {
            if row.1 >= 2 {
                break row;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no call with two streams stored in {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(streams, 2);
    let mos = mos.expect("call MOS");
    assert!(
        mos > 4.0 && mos <= 4.5,
        "clean loopback G.711 call: MOS {mos}"
    );
    let conn = rusqlite::Connection::open(&db).expect("open report db");
    let mut st = conn
        .prepare("SELECT packets, lost, codec, call_id, mos FROM streams WHERE call_id = ?1")
        .expect("query");
    let rows: Vec<(i64, i64, String, String, f64)> = st
        .query_map([&call_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("streams")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 2, "both directions stored: {rows:?}");
    for (packets, lost, codec, _, smos) in &rows {
        // g711a.pcap holds 236 RTP packets; the echo returns each of them.
        assert_eq!(*packets, 236, "{rows:?}");
        assert_eq!(*lost, 0, "{rows:?}");
        assert_eq!(codec, "PCMA");
        assert!(*smos >= mos);
    }
    let intervals: i64 = conn
        .query_row("SELECT count(*) FROM intervals", [], |r| r.get(0))
        .expect("intervals");
    assert!(intervals >= 2, "10 s intervals stored: {intervals}");

    // MOS 4.41 is below the configured 4.50 threshold: low-mos was pushed.
    let note = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), notes.recv()).await })
        .expect("low-mos notification in time")
        .expect("notification");
    assert_eq!(note.name, "besip-monitoring:low-mos");
    assert_eq!(note.data["call-id"], call_id.as_str());
    assert_eq!(note.data["threshold"], "4.50");
    // Raised once per call: the 2 s intervals during the call and the call's
    // end do not repeat it.
    let again =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), notes.recv()).await });
    assert!(again.is_err(), "low-mos raised twice: {again:?}");

    // State for NETCONF: the recent call with its MOS (RFC 7951 decimal64 strings).
    let state = rt.block_on(client.call("state", json!({}))).expect("state");
    let calls = &state["besip-monitoring:monitoring"]["calls"]["call"];
    let call = calls
        .as_array()
        .and_then(|a| a.iter().find(|c| c["call-id"] == call_id.as_str()))
        .unwrap_or_else(|| panic!("call in state: {state}"));
    assert_eq!(call["mos"], format!("{mos:.2}"));
    assert_eq!(call["stream-count"], 2);
    // The state is valid RFC 7951 data of besip-monitoring (what core will parse).
    let yang_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../yang");
    let state_file = m.root.path().join("state.json");
    std::fs::write(&state_file, state.to_string()).expect("write state");
    let lint = Command::new("yanglint")
        .arg("-p")
        .arg(&yang_dir)
        .args(["-t", "get"])
        .arg(yang_dir.join("besip-monitoring.yang"))
        .arg(&state_file)
        .output();
    match lint {
        Ok(out) => assert!(
            out.status.success(),
            "state rejected by yanglint: {}\n{state}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            eprintln!("note: yanglint not installed, state not validated (scripts/install-deps)")
        }
    }

    // The same call through NETCONF: besip-netconfd on this root asks the
    // daemon for its state over IPC and merges it into <get>.
    let netconf = besip_tests::netconf::NetconfServer::start_in(
        besip_tests::harness::TempRoot::existing(m.root.path()),
    );
    let (ok, out) = besip_tests::netconf::python(
        netconf.port,
        besip_tests::netconf::ADMIN_PASSWORD,
        "m = connect()\nprint(m.get(filter=('subtree', '<monitoring xmlns=\"urn:besip:monitoring\"><calls/></monitoring>')).data_xml)\n",
    );
    drop(netconf);
    assert!(ok, "ncclient <get>: {out}");
    assert!(
        out.contains(&format!("<call-id>{call_id}</call-id>")),
        "call in <get>: {out}"
    );
    assert!(
        out.contains(&format!("<mos>{mos:.2}</mos>")),
        "call MOS in <get>: {out}"
    );

    // A reload that names an unknown E-model is refused; the daemon keeps running.
    std::fs::write(
        m.root.path().join("etc/config/besip_monitoring"),
        uci(sip_port, mp, "\toption emodel 'bogus'\n"),
    )
    .expect("write");
    let err = rt
        .block_on(client.call("reload", json!({})))
        .expect_err("bad reload refused");
    assert!(err.to_string().contains("emodel"), "{err}");
    std::fs::write(
        m.root.path().join("etc/config/besip_monitoring"),
        uci(sip_port, mp, "\toption emodel 'besip-simplified'\n"),
    )
    .expect("write");
    rt.block_on(client.call("reload", json!({})))
        .expect("good reload");
    // A capture filter libpcap cannot compile is refused too; the old capture stays.
    std::fs::write(
        m.root.path().join("etc/config/besip_monitoring"),
        uci(sip_port, mp, "").replace(
            "option capture_filter 'udp port",
            "option capture_filter 'udp and ( port",
        ),
    )
    .expect("write");
    let err = rt
        .block_on(client.call("reload", json!({})))
        .expect_err("bad filter refused");
    assert!(err.to_string().contains("filter"), "{err}");
    assert_eq!(
        rt.block_on(client.call("ping", json!({})))
            .expect("still alive"),
        "pong"
    );

    // erase-reports: a bad date is rejected, then everything goes.
    let bad = rt.block_on(client.call(
        "rpc",
        json!({"name": "besip-monitoring:erase-reports", "input": {"before": "yesterday"}}),
    ));
    assert!(bad.is_err());
    let out = rt
        .block_on(client.call(
            "rpc",
            json!({"name": "besip-monitoring:erase-reports", "input": {}}),
        ))
        .expect("erase");
    assert_eq!(out["erased"], 3, "two streams and one call: {out}");
    let left: i64 = conn
        .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 0);
    drop(client);
    drop(rt);
    assert!(m.stop().success(), "clean exit on SIGTERM");
}

#[test]
fn bad_configuration_stops_start_up_with_the_file_named() {
    let root = besip_tests::harness::TempRoot::new();
    let file = root.path().join("etc/config/besip_monitoring");
    std::fs::write(
        &file,
        "package besip_monitoring\n\nconfig monitoring 'main'\n\toption mos_interval 'soon'\n",
    )
    .expect("write");
    let out = Command::new(besip_tests::harness::bin_path("besip-monitord"))
        .arg("--root")
        .arg(root.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("besip_monitoring") && err.contains("mos_interval"),
        "{err}"
    );
    // An interface that does not exist is a start-up error too.
    std::fs::write(
        &file,
        "package besip_monitoring\n\nconfig monitoring 'main'\n\tlist interface 'nosuchif0'\n",
    )
    .expect("write");
    let out = Command::new(besip_tests::harness::bin_path("besip-monitord"))
        .arg("--root")
        .arg(root.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchif0"));
}
