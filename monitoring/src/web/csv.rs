//! GET /calls.csv: the filtered calls list (every page) as CSV.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::data::{self, CallRow, Filter, EXPORT_MAX};
use super::pages::with_db;
use super::{bad_request, AppState, Session};

pub const HEADER: &str = "call-id,caller,callee,start-time,duration-s,codec,mos,mos-a-b,mos-b-a,loss-percent,jitter-ms\n";

fn field(s: &str) -> String {
    // Quote when needed; a leading =+-@ is neutralised against spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_default()
}

pub fn rows(calls: &[CallRow]) -> String {
    let mut out = String::from(HEADER);
    for c in calls {
        let dir = |k: usize| num(c.directions.get(k).map(|d| d.mos), 2);
        out.push_str(
            &[
                field(&c.call_id),
                field(&c.from),
                field(&c.to),
                field(&c.start_time),
                num(c.duration_s, 1),
                field(&c.codecs()),
                num(c.mos, 2),
                dir(0),
                dir(1),
                num(c.max_loss(), 2),
                num(c.max_jitter(), 2),
            ]
            .join(","),
        );
        out.push('\n');
    }
    out
}

pub async fn export(
    _s: Session,
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut f = match Filter::parse(&q) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    f.page = 1;
    match with_db(&state, move |c| data::list(c, &f, EXPORT_MAX)).await {
        Ok((calls, _)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"calls.csv\"",
                ),
            ],
            rows(&calls),
        )
            .into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(rows(&[]), HEADER);
    }
}
