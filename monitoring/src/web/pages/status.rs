//! The status strip: registrations and active calls from besip-pbxd, active
//! bans from besip-secd, read over IPC `state`; "not running" when absent.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use besip_core::ipc::IpcClient;
use besip_core::paths::Layout;
use serde_json::{json, Value};

use crate::web::{AppState, Session};

#[derive(Debug, Clone, Default)]
pub struct Status {
    /// (registrations, active calls); None when besip-pbxd does not answer.
    pub pbx: Option<(usize, usize)>,
    pub bans: Option<usize>,
    pub capture_running: bool,
}

async fn state_of(layout: &Layout, daemon: &str) -> Option<Value> {
    let ask = async {
        let c = IpcClient::connect(&layout.socket(daemon)).await.ok()?;
        c.call("state", json!({})).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

fn count(v: &Value, path: &[&str]) -> usize {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

pub async fn read(state: &Arc<AppState>) -> Status {
    let layout = state.monitor.layout();
    let (pbx, sec) = tokio::join!(state_of(layout, "pbx"), state_of(layout, "security"));
    Status {
        pbx: pbx.map(|v| {
            let top = &v["besip-pbx:pbx"];
            (
                count(top, &["registrations", "registration"]),
                count(top, &["calls", "call"]),
            )
        }),
        bans: sec.map(|v| count(&v["besip-security:security"], &["bans", "ban"])),
        capture_running: state.monitor.capture_running(),
    }
}

pub fn strip(s: &Status) -> String {
    let down = "<span class=\"down\">not running</span>";
    let (regs, calls) = match s.pbx {
        Some((r, c)) => (
            format!("<b id=\"registrations\">{r}</b>"),
            format!("<b id=\"active-calls\">{c}</b>"),
        ),
        None => (down.to_string(), down.to_string()),
    };
    let bans = s
        .bans
        .map_or(down.to_string(), |b| format!("<b id=\"bans\">{b}</b>"));
    let capture = if s.capture_running {
        "running"
    } else {
        "<span class=\"down\">stopped</span>"
    };
    format!(
        "<div class=\"strip\" id=\"status\"><span>Registrations: {regs}</span><span>Active calls: {calls}</span>\
<span>Active bans: {bans}</span><span>Capture: <span id=\"capture-state\">{capture}</span></span></div>"
    )
}

/// GET /api/status
pub async fn api(_s: Session, State(state): State<Arc<AppState>>) -> Json<Value> {
    let s = read(&state).await;
    Json(json!({
        "pbx": s.pbx.map(|(r, c)| json!({"registrations": r, "active-calls": c})),
        "security": s.bans.map(|b| json!({"active-bans": b})),
        "capture-running": s.capture_running,
    }))
}
