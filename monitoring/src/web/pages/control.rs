//! Capture control and erasing: the buttons call the same Monitor methods
//! as the NETCONF RPCs start-capture, stop-capture and erase-reports.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::{frame, server_error, status, with_db};
use crate::web::{bad_request, data, esc, AppState, Session};

fn post_button(csrf: &str, action: &str, id: &str, label: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\" style=\"display:inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\" id=\"{id}\" class=\"{class}\">{label}</button></form> ",
        esc(csrf)
    )
}

/// GET /capture
pub async fn page(s: Session, State(state): State<Arc<AppState>>) -> Response {
    let st = status::read(&state).await;
    let running = st.capture_running;
    let mut body = format!(
        "<p>Capture is <b id=\"capture\">{}</b>.</p>",
        if running { "running" } else { "stopped" }
    );
    if s.group().may_write() {
        body.push_str(&if running {
            post_button(
                &s.data.csrf,
                "/capture/stop",
                "stop-capture",
                "Stop capture",
                "",
            )
        } else {
            post_button(
                &s.data.csrf,
                "/capture/start",
                "start-capture",
                "Start capture",
                "",
            )
        });
        body.push_str(
            "<h2>Reports</h2><p><a id=\"erase\" href=\"/erase\">Erase all reports…</a></p>",
        );
    } else {
        body.push_str("<p class=\"note\">Your group (monitor) may only read.</p>");
    }
    frame("Capture", &s, &status::strip(&st), &body)
}

async fn control(
    s: Session,
    state: Arc<AppState>,
    f: HashMap<String, String>,
    start: bool,
) -> Response {
    if let Err(r) = s.check_csrf(f.get("csrf")).and_then(|()| s.check_control()) {
        return r;
    }
    let m = state.monitor.clone();
    let done = tokio::task::spawn_blocking(move || {
        if start {
            m.start_capture().map(|_| ())
        } else {
            m.stop_capture();
            Ok(())
        }
    })
    .await;
    match done {
        Ok(Ok(())) => {
            tracing::info!(user = %s.data.user, start, "capture control from the web panel");
            Redirect::to("/capture").into_response()
        }
        Ok(Err(e)) => server_error(&format!("cannot start the capture: {e}")),
        Err(e) => server_error(&e.to_string()),
    }
}

/// POST /capture/start
pub async fn start(
    s: Session,
    State(state): State<Arc<AppState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    control(s, state, f, true).await
}

/// POST /capture/stop
pub async fn stop(
    s: Session,
    State(state): State<Arc<AppState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    control(s, state, f, false).await
}

/// GET /erase: the confirmation step.
pub async fn confirm(s: Session, State(state): State<Arc<AppState>>) -> Response {
    if let Err(r) = s.check_control() {
        return r;
    }
    let n = match with_db(&state, data::count_calls).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let body = format!(
        "<p>This deletes every stored report: <b id=\"erase-count\">{n}</b> calls with their streams and intervals. It cannot be undone.</p>\
<form method=\"post\" action=\"/erase\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
<button type=\"submit\" id=\"confirm-erase\" class=\"danger\">Yes, erase all reports</button> <a href=\"/capture\">Cancel</a></form>",
        esc(&s.data.csrf)
    );
    let st = status::read(&state).await;
    frame("Erase reports?", &s, &status::strip(&st), &body)
}

/// POST /erase (needs confirm=yes from the confirmation page).
pub async fn erase(
    s: Session,
    State(state): State<Arc<AppState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = s.check_csrf(f.get("csrf")).and_then(|()| s.check_control()) {
        return r;
    }
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return bad_request("erasing needs the confirmation (confirm=yes); use the Erase page");
    }
    let m = state.monitor.clone();
    match tokio::task::spawn_blocking(move || m.erase_reports(f64::INFINITY)).await {
        Ok(Ok(n)) => {
            tracing::info!(user = %s.data.user, erased = n, "reports erased from the web panel");
            Redirect::to("/calls").into_response()
        }
        Ok(Err(e)) => server_error(&e),
        Err(e) => server_error(&e.to_string()),
    }
}
