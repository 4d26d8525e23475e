//! GET /: the last 24 h at a glance: counts, average and worst MOS, calls
//! below the alarm threshold, MOS over time and the G.109 bands.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::{band_badge, frame, opt, status, with_db};
use crate::daemon::now;
use crate::web::charts;
use crate::web::data::{self, Band};
use crate::web::{AppState, Session};

pub async fn page(s: Session, State(state): State<Arc<AppState>>) -> Response {
    let to = now();
    let from = to - 86_400.0;
    let threshold = state.monitor.mos_threshold();
    let sum = match with_db(&state, move |c| data::summary(c, from, threshold)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut per_band = [0usize; 5];
    for (_, m) in &sum.points {
        if let Some(i) = Band::ALL.iter().position(|b| *b == Band::of(*m)) {
            per_band[i] += 1;
        }
    }
    let bands: String = Band::ALL
        .iter()
        .zip(per_band)
        .map(|(b, n)| {
            format!(
                "<tr><td><span class=\"band\" style=\"background:{}\">{}</span></td><td class=\"num\">MOS ≥ {:.2}</td><td class=\"num\" id=\"band-{}\">{n}</td></tr>",
                b.css(),
                b.name(),
                b.floor(),
                b.name()
            )
        })
        .collect();
    let chart = charts::mos_over_time(&sum.points, from, to, threshold);
    let body = format!(
        "<div class=\"cards\">\
<div class=\"card\">Calls (24 h)<b id=\"calls-24h\">{calls}</b></div>\
<div class=\"card\">Average MOS<b id=\"avg-mos\">{avg}</b></div>\
<div class=\"card\">Worst MOS<b id=\"worst-mos\">{worst}</b></div>\
<div class=\"card\">Below {threshold:.2}<b id=\"below-threshold\">{below}</b></div></div>\
<h2>MOS over time</h2><div class=\"chart\" id=\"mos-chart\">{chart}</div>\
<h2>Quality bands (ITU-T G.109)</h2><table id=\"bands\"><tr><th>band</th><th>from</th><th>calls</th></tr>{bands}</table>\
<p><a href=\"/calls?mos_below={threshold:.2}\">Calls below the threshold</a></p>",
        calls = sum.calls,
        avg = opt(sum.avg_mos, 2),
        worst = band_badge(sum.worst_mos),
        below = sum.below_threshold,
    );
    let st = status::read(&state).await;
    frame("Dashboard", &s, &status::strip(&st), &body)
}
