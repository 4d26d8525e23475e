//! GET /calls (filtered, paged list), GET /calls/:id (both directions and
//! the interval timeline), GET /api/calls (the list as JSON).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{band_badge, frame, opt, status, with_db};
use crate::web::data::{self, CallRow, Filter, PAGE_SIZE};
use crate::web::{bad_request, charts, esc, url_encode, AppState, Session};

fn dir_mos(c: &CallRow, k: usize) -> String {
    band_badge(c.directions.get(k).map(|d| d.mos))
}

fn row(c: &CallRow) -> String {
    format!(
        "<tr class=\"call\"><td><a href=\"/calls/{href}\">{from}</a></td><td>{to}</td><td>{start}</td><td class=\"num\">{dur}</td>\
<td>{codec}</td><td>{a}</td><td>{b}</td><td class=\"num\">{loss}</td><td class=\"num\">{jit}</td></tr>",
        href = url_encode(&c.call_id),
        from = esc(if c.from.is_empty() { &c.call_id } else { &c.from }),
        to = esc(&c.to),
        start = esc(&c.start_time.replace('T', " ")),
        dur = opt(c.duration_s, 1),
        codec = esc(&c.codecs()),
        a = dir_mos(c, 0),
        b = dir_mos(c, 1),
        loss = opt(c.max_loss(), 2),
        jit = opt(c.max_jitter(), 2),
    )
}

fn filter_form(f: &Filter) -> String {
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let local = |o: &Option<String>| esc(o.as_deref().map_or("", |t| t.get(..16).unwrap_or(t)));
    format!(
        "<form class=\"filter\" method=\"get\" action=\"/calls\">\
<label>From (UTC) <input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
<label>To (UTC) <input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
<label>Extension/number <input name=\"number\" id=\"number\" value=\"{}\" size=\"12\"></label>\
<label>MOS below <input name=\"mos_below\" id=\"mos_below\" value=\"{}\" size=\"4\"></label>\
<button type=\"submit\" id=\"apply\">Filter</button> <a href=\"/calls\">clear</a></form>",
        local(&f.from),
        local(&f.to),
        v(&f.number),
        f.mos_below.map(|m| m.to_string()).unwrap_or_default()
    )
}

/// GET /calls
pub async fn list(
    s: Session,
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let f = match Filter::parse(&q) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    let f2 = f.clone();
    let (rows, total) = match with_db(&state, move |c| data::list(c, &f2, PAGE_SIZE)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let pages = ((total.max(0) as u64).div_ceil(u64::from(PAGE_SIZE))).max(1);
    let mut nav = format!("<p id=\"paging\">{total} calls, page {} of {pages}", f.page);
    if f.page > 1 {
        nav.push_str(&format!(
            " · <a href=\"/calls?{}\">newer</a>",
            esc(&f.query(f.page - 1))
        ));
    }
    if u64::from(f.page) < pages {
        nav.push_str(&format!(
            " · <a id=\"older\" href=\"/calls?{}\">older</a>",
            esc(&f.query(f.page + 1))
        ));
    }
    nav.push_str(&format!(
        " · <a id=\"csv\" href=\"/calls.csv?{}\">export CSV</a></p>",
        esc(&f.query(1))
    ));
    let table = if rows.is_empty() {
        "<p id=\"no-calls\">No calls.</p>".to_string()
    } else {
        format!(
            "<table id=\"calls\"><tr><th>caller</th><th>callee</th><th>start (UTC)</th><th>duration s</th><th>codec</th>\
<th title=\"direction that sent first\">MOS A→B</th><th>MOS B→A</th><th>loss %</th><th>jitter ms</th></tr>{}</table>",
            rows.iter().map(row).collect::<String>()
        )
    };
    let body = format!("{}{nav}{table}", filter_form(&f));
    let st = status::read(&state).await;
    frame("Calls", &s, &status::strip(&st), &body)
}

/// GET /api/calls
pub async fn api(
    _s: Session,
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let f = match Filter::parse(&q) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    match with_db(&state, move |c| data::list(c, &f, PAGE_SIZE)).await {
        Ok((rows, total)) => {
            Json(serde_json::json!({"total": total, "calls": rows})).into_response()
        }
        Err(r) => r,
    }
}

fn side_by_side(c: &CallRow) -> String {
    let d = &c.directions;
    let cell = |f: &dyn Fn(&data::Direction) -> String| -> String {
        d.iter()
            .map(|x| format!("<td class=\"num\">{}</td>", f(x)))
            .collect()
    };
    type Show<'a> = &'a dyn Fn(&data::Direction) -> String;
    let rows: [(&str, Show); 13] = [
        ("from → to", &|x| {
            esc(&format!("{} → {}", x.source, x.destination))
        }),
        ("codec", &|x| esc(&x.codec)),
        ("packets", &|x| x.packets.to_string()),
        ("expected", &|x| x.expected.to_string()),
        ("lost", &|x| x.lost.to_string()),
        ("loss %", &|x| format!("{:.2}", x.loss_percent)),
        ("burst ratio", &|x| format!("{:.3}", x.burst_ratio)),
        ("jitter ms (mean)", &|x| format!("{:.2}", x.jitter_ms)),
        ("jitter ms (max)", &|x| format!("{:.2}", x.max_jitter_ms)),
        ("one-way delay ms", &|x| format!("{:.1}", x.delay_ms)),
        ("R", &|x| format!("{:.2}", x.r_factor)),
        ("MOS", &|x| band_badge(Some(x.mos))),
        ("lowest interval MOS", &|x| format!("{:.2}", x.min_mos)),
    ];
    let head: String = (0..d.len())
        .map(|k| {
            format!(
                "<th>{}</th>",
                if k == 0 {
                    "A → B"
                } else if k == 1 {
                    "B → A"
                } else {
                    "more"
                }
            )
        })
        .collect();
    let body: String = rows
        .iter()
        .map(|(name, f)| format!("<tr><th>{name}</th>{}</tr>", cell(*f)))
        .collect();
    format!("<table id=\"directions\"><tr><th></th>{head}</tr>{body}</table>")
}

/// GET /calls/:id
pub async fn detail(
    s: Session,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    if id.len() > 1024 {
        return bad_request("call id too long");
    }
    let found = with_db(&state, move |c| {
        let Some(call) = data::call(c, &id)? else {
            return Ok(None);
        };
        let mut series = Vec::new();
        for (k, d) in call.directions.iter().enumerate() {
            let label = if k == 0 { "A → B" } else { "B → A" };
            series.push((format!("{label} {}", d.source), data::intervals(c, d)?));
        }
        Ok(Some((call, series)))
    })
    .await;
    let (call, series) = match found {
        Ok(Some(v)) => v,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                "404 Not Found: no such call (erased?)\n",
            )
                .into_response()
        }
        Err(r) => return r,
    };
    let t0 = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|i| i.start))
        .fold(f64::INFINITY, f64::min);
    let chart = if t0.is_finite() {
        charts::call_timeline(&series, t0)
    } else {
        "<p class=\"note\">No intervals stored for this call.</p>".into()
    };
    let body = format!(
        "<table id=\"call\"><tr><th>call-id</th><td id=\"call-id\">{id}</td></tr><tr><th>caller</th><td>{from}</td></tr>\
<tr><th>callee</th><td>{to}</td></tr><tr><th>start (UTC)</th><td>{start}</td></tr><tr><th>duration s</th><td>{dur}</td></tr>\
<tr><th>call MOS (worse direction)</th><td>{mos}</td></tr><tr><th>R</th><td>{r}</td></tr></table>\
<h2>Directions</h2>{dirs}<h2>Per interval</h2><div class=\"chart\" id=\"timeline\">{chart}</div>",
        id = esc(&call.call_id),
        from = esc(&call.from),
        to = esc(&call.to),
        start = esc(&call.start_time),
        dur = opt(call.duration_s, 1),
        mos = band_badge(call.mos),
        r = opt(call.r_factor, 2),
        dirs = side_by_side(&call),
    );
    let st = status::read(&state).await;
    frame("Call", &s, &status::strip(&st), &body)
}
