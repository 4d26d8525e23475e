//! Accounting of besip-pbxd with sipp calls on 127.0.0.1: call detail
//! records (state and accounting.db), calls refused for lack of credit or a
//! too expensive destination, and a B2BUA call ended when the credit runs out.

use std::time::{Duration, Instant};

use besip_tests::pbx::assert_state_valid;
use besip_tests::pbx::office::cdrs;
use besip_tests::pbx::*;
use serde_json::Value;

fn trunk_and_route(prov_port: u16) -> String {
    format!(
        "config trunk 'trunk_prov'\n\toption name 'prov'\n\toption host '127.0.0.1'\n\toption port '{prov_port}'\n\n\
config route 'route_out'\n\toption name 'out'\n\toption match '0'\n\toption trunk 'prov'\n\n"
    )
}

fn rate(prefix: &str, price: &str) -> String {
    format!("config accounting_rate 'accounting_rate_{prefix}'\n\toption prefix '{prefix}'\n\toption price_per_minute '{price}'\n\n")
}

fn account(ext: &str, balance: &str) -> String {
    format!("config accounting_account 'accounting_account_{ext}'\n\toption extension '{ext}'\n\toption balance '{balance}'\n\n")
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a decimal: {v}"))
}

fn balance(pbx: &Pbx, ext: &str) -> f64 {
    let state = pbx.state();
    let list = state["besip-pbx:pbx"]["accounting-state"]["balance"].clone();
    let b = list
        .as_array()
        .and_then(|l| l.iter().find(|b| b["extension"] == ext))
        .unwrap_or_else(|| panic!("no balance of {ext}: {state}"));
    num(&b["balance"])
}

/// Caller side of an answered call that talks `ms` before hanging up.
fn caller_talks(from: &str, to: &str, ms: u32) -> String {
    caller_answered(from, to).replacen(
        "<pause milliseconds=\"300\"/>",
        &format!("<pause milliseconds=\"{ms}\"/>"),
        1,
    )
}

#[test]
fn cdrs_record_answered_and_busy_calls() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let mut pbx = Pbx::start(&config(port, ""), port);
    let sipp = Sipp::new();
    let callee_port = free_port();
    register(&sipp, "101", callee_port, port);
    let uas = sipp.spawn("uas", &callee_answers(100), callee_port, port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_talks("100", "101", 1500),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(callee.success, "callee failed:\n{}", callee.log);
    let uas = sipp.spawn(
        "busy",
        &callee_rejects(486, "Busy Here"),
        callee_port,
        port,
        &[],
    );
    let caller = sipp.run(
        "uac2",
        &caller_rejected("100", "101", 486),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let callee = sipp.wait(uas);
    assert!(caller.success, "busy caller failed:\n{}", caller.log);
    assert!(callee.success, "busy callee failed:\n{}", callee.log);

    let list = cdrs(&pbx, 2);
    let (answered, busy) = (&list[0], &list[1]);
    assert_eq!(answered["disposition"], "answered", "{answered}");
    assert_eq!(answered["code"], 200);
    assert_eq!(answered["caller"], "sip:100@besip.test");
    assert_eq!(answered["callee"], "sip:101@besip.test");
    assert!(answered["answer"].is_string(), "{answered}");
    let d = num(&answered["duration"]);
    assert!((1.3..3.0).contains(&d), "talk time {d} s for a 1.5 s call");
    assert_eq!(num(&answered["price"]), 0.0, "no rates: free");
    assert_eq!(busy["disposition"], "busy", "{busy}");
    assert_eq!(busy["code"], 486);
    assert_eq!(num(&busy["duration"]), 0.0);
    assert!(busy.get("answer").is_none(), "{busy}");

    // The records are in the daemon's database too, and survive a restart.
    pbx.stop();
    let path = pbx.root.path().join("var/lib/besip/accounting.db");
    assert!(path.exists(), "no {}", path.display());
    let db = rusqlite::Connection::open(&path).expect("open accounting.db");
    let rows: Vec<(String, i64)> = db
        .prepare("SELECT disposition, duration_ms FROM cdr ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "answered");
    assert!(rows[0].1 >= 1300, "{rows:?}");
    pbx.spawn();
    assert_eq!(cdrs(&pbx, 2).len(), 2);
}

#[test]
fn calls_are_refused_without_credit_or_above_the_price_limit() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(
        port,
        "\toption accounting_enabled '1'\n\toption accounting_max_price_per_minute '2.0'\n",
    ) + &trunk_and_route(prov_port)
        + &rate("0", "1.0")
        + &rate("09", "5.5")
        + &account("100", "0")
        + &account("101", "10");
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    // 100 has no credit left: 402, nothing reaches the provider.
    let r = sipp.run(
        "broke",
        &caller_rejected("100", "0555", 402),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "expected 402:\n{}", r.log);
    assert!(r.log.contains("Credit Exhausted"), "{}", r.log);
    // 101 has credit, but 09… costs more than the limit: 403.
    let r = sipp.run(
        "dear",
        &caller_rejected("101", "0955", 403),
        free_port(),
        port,
        &["-au", "101", "-ap", "pw101"],
    );
    assert!(r.success, "expected 403:\n{}", r.log);
    assert!(r.log.contains("Price Above Limit"), "{}", r.log);
    let list = cdrs(&pbx, 2);
    assert_eq!(list[0]["code"], 402);
    assert_eq!(list[1]["code"], 403);
    assert!(list.iter().all(|c| c["disposition"] == "failed"));
    assert_eq!(balance(&pbx, "101"), 10.0);
}

#[test]
fn b2bua_call_is_cut_when_the_credit_runs_out_and_charged() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    // 6.0 per minute = 0.1 per second; 0.2 buys 2 s.
    let base = config(
        port,
        "\toption mode 'b2bua'\n\toption accounting_enabled '1'\n",
    )
    .replace("\toption mode 'proxy'\n", "")
        + &trunk_and_route(prov_port)
        + &rate("0", "6.0");
    let pbx = Pbx::start(&(base.clone() + &account("100", "0.2")), port);
    let sipp = Sipp::new();
    let uas = sipp.spawn("prov", &callee_answers(100), prov_port, port, &[]);
    // The caller never hangs up: it waits for the PBX's BYE.
    let scenario = caller_answered("100", "0555");
    let cut = scenario
        .find("  <pause milliseconds=\"300\"/>")
        .expect("scenario shape");
    let scenario = format!(
        "{}  <recv request=\"BYE\"/>\n  <send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n</scenario>\n",
        &scenario[..cut]
    );
    let started = Instant::now();
    let first = sipp.spawn(
        "uac",
        &scenario,
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    // While the call holds the credit, a second paid call of 100 is refused.
    std::thread::sleep(Duration::from_millis(700));
    let second = sipp.run(
        "second",
        &caller_rejected("100", "0666", 402),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(second.success, "expected 402:\n{}", second.log);
    assert!(
        second.log.contains("Held By Another Call"),
        "{}",
        second.log
    );
    let caller = sipp.wait(first);
    let prov = sipp.wait(uas);
    assert!(caller.success, "caller got no BYE:\n{}", caller.log);
    assert!(prov.success, "provider got no BYE:\n{}", prov.log);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let list = cdrs(&pbx, 2);
    assert_eq!(list[0]["code"], 402, "the refused second call: {list:?}");
    let cdr = list[1].clone();
    assert_eq!(cdr["disposition"], "answered", "{cdr}");
    assert_eq!(cdr["trunk"], "prov", "{cdr}");
    let d = num(&cdr["duration"]);
    assert!(
        (1.9..3.5).contains(&d),
        "cut after {d} s, credit bought 2 s"
    );
    let price = num(&cdr["price"]);
    assert!((price - d * 0.1).abs() < 0.0011, "price {price} for {d} s");
    assert_state_valid(&pbx, &pbx.state());
    let left = balance(&pbx, "100");
    assert!((left - (0.2 - price)).abs() < 1e-9, "balance {left}");
    assert!(
        left <= 0.0 && left > -0.15,
        "balance {left} (cut within the cutter tick)"
    );
    // No credit now: the next call is refused.
    let r = sipp.run(
        "again",
        &caller_rejected("100", "0555", 402),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    assert!(r.success, "expected 402:\n{}", r.log);
    // A commit with a new balance is the new credit.
    std::fs::write(
        pbx.root.path().join("etc/config/besip_pbx"),
        base + &account("100", "5"),
    )
    .expect("write config");
    pbx.ipc("reload", serde_json::json!({})).expect("reload");
    assert_eq!(balance(&pbx, "100"), 5.0);
}

/// Proxy mode: a paid call through the trunk is not cut (the proxy holds
/// no dialog of its own) but charged by its talk time when the BYE passes.
#[test]
fn proxy_paid_call_is_charged_at_the_end() {
    if !have_sipp() {
        eprintln!("SKIP: sipp not installed");
        return;
    }
    let port = free_port();
    let prov_port = free_port();
    let uci = config(port, "\toption accounting_enabled '1'\n")
        + &trunk_and_route(prov_port)
        + &rate("0", "6.0")
        + &account("100", "5");
    let pbx = Pbx::start(&uci, port);
    let sipp = Sipp::new();
    let uas = sipp.spawn("prov", &callee_answers(100), prov_port, port, &[]);
    let caller = sipp.run(
        "uac",
        &caller_talks("100", "0555", 1200),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let prov = sipp.wait(uas);
    assert!(caller.success, "caller failed:\n{}", caller.log);
    assert!(prov.success, "provider failed:\n{}", prov.log);
    let cdr = cdrs(&pbx, 1)[0].clone();
    assert_eq!(cdr["trunk"], "prov", "{cdr}");
    let d = num(&cdr["duration"]);
    assert!((1.0..3.5).contains(&d), "talk time {d}");
    let price = num(&cdr["price"]);
    assert!((price - d * 0.1).abs() < 0.0011, "price {price} for {d} s");
    let left = balance(&pbx, "100");
    assert!((left - (5.0 - price)).abs() < 1e-9, "balance {left}");
}
