//! What the office-feature tests share: configurations per mode, extension
//! options, and waiting for CDRs, call ends and extension state.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{assert_state_valid, config, Pbx};

/// Both modes of the PBX.
pub const MODES: [&str; 2] = ["proxy", "b2bua"];

/// The test configuration in `mode` with `extra_main` in the main section.
pub fn base(port: u16, mode: &str, extra_main: &str) -> String {
    config(port, &format!("\toption mode '{mode}'\n{extra_main}")).replacen(
        "\toption mode 'proxy'\n",
        "",
        1,
    )
}

/// `base` with the RTP ports `rtp..rtp+199` (the relay's and the media
/// services') and `extra_main`: tests running at once keep apart.
pub fn media_base(port: u16, mode: &str, rtp: u16, extra_main: &str) -> String {
    base(
        port,
        mode,
        &format!(
            "\toption rtp_port_min '{rtp}'\n\toption rtp_port_max '{}'\n{extra_main}",
            rtp + 199
        ),
    )
}

/// The test configuration in B2BUA mode with `extra` in the main section.
pub fn b2bua_config(port: u16, extra: &str) -> String {
    base(port, "b2bua", extra)
}

/// Asserts that each (caller, callee) of `want` has a CDR in `list`.
pub fn assert_cdr_pairs(list: &[Value], want: &[(&str, &str)]) {
    let pairs: Vec<(&str, &str)> = list
        .iter()
        .map(|c| {
            (
                c["caller"].as_str().unwrap_or(""),
                c["callee"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for w in want {
        assert!(pairs.contains(w), "{w:?} not in {pairs:?}");
    }
}

/// `uci` with `options` added to extension `n`.
pub fn with_ext(uci: &str, n: &str, options: &str) -> String {
    let head = format!("\toption number '{n}'\n\toption password 'pw{n}'\n\toption enabled '1'\n");
    assert!(uci.contains(&head), "no extension {n}");
    uci.replacen(&head, &format!("{head}{options}"), 1)
}

/// The CDRs in the state, oldest first, once there are `n` of them.
pub fn cdrs(pbx: &Pbx, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = pbx.state();
        let list = state["besip-pbx:pbx"]["accounting-state"]["cdr"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.len() >= n {
            return list;
        }
        assert!(Instant::now() < deadline, "fewer than {n} CDRs: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (5 s at most) until the call list is empty.
pub fn no_calls_left(pbx: &Pbx) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = pbx.state();
        let n = state["besip-pbx:pbx"]["calls"]["call"]
            .as_array()
            .map_or(0, Vec::len);
        if n == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "calls left: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// /pbx/extension-state of extension `n` (the state validated first).
pub fn ext_state(pbx: &Pbx, n: &str) -> Value {
    let state = pbx.state();
    assert_state_valid(pbx, &state);
    state["besip-pbx:pbx"]["extension-state"]["extension"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["number"] == n).cloned())
        .unwrap_or_else(|| panic!("no state of {n}: {state}"))
}

/// The SIP messages of a sipp message trace that were received (not sent).
pub fn received(trace: &str) -> Vec<String> {
    trace
        .split("-----------------------------------------------")
        .filter(|block| block.contains("message received"))
        .map(|b| b.to_owned())
        .collect()
}
