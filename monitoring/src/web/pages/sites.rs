//! GET /sites: the newest calls of every box of the cluster with their
//! MOS and a site column (from the shared database; see crate::sites).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::{band_badge, frame, status};
use crate::web::{esc, AppState, Session};

pub async fn page(s: Session, State(state): State<Arc<AppState>>) -> Response {
    let body = match state.monitor.sites.view() {
        None => "<p id=\"no-cluster\">This box is not in a cluster (/pbx/cluster).</p>".to_owned(),
        Some((me, connected, calls)) => {
            let rows: String = calls
                .iter()
                .map(|c| {
                    format!(
                        "<tr class=\"call\"><td class=\"site\">{site}</td><td>{from}</td><td>{to}</td><td>{start}</td><td>{mos}</td></tr>",
                        site = esc(&c.site),
                        from = esc(&c.from),
                        to = esc(&c.to),
                        start = esc(&c.start_time.replace('T', " ")),
                        mos = band_badge(c.mos),
                    )
                })
                .collect();
            let db = if connected {
                "connected"
            } else {
                "<span class=\"down\">unreachable</span> (showing what was read last)"
            };
            format!(
                "<p>This box: <b id=\"this-site\">{}</b>; shared database {db}.</p>\
<table id=\"site-calls\"><tr><th>site</th><th>from</th><th>to</th><th>start (UTC)</th><th>MOS</th></tr>{rows}</table>",
                esc(&me)
            )
        }
    };
    let st = status::read(&state).await;
    frame("Sites", &s, &status::strip(&st), &body)
}
