//! RFC 8040 §6 event streams as Server-Sent Events: the NETCONF stream
//! (every notification of the box, filtered by NACM) at
//! `/restconf/streams/NETCONF/xml` and `/restconf/streams/NETCONF/json`.

use crate::backend::{Backend, Principal};
use crate::convert::elements_to_json;
use crate::handlers::{count_stream, Shared};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::convert::Infallible;
use std::sync::Arc;

/// A `<notification>` as RFC 8040 §6.4 JSON.
pub fn notification_json(doc: &str) -> String {
    let Ok(roots) = besip_core::xml::parse(doc) else {
        return String::new();
    };
    let Some(n) = roots.iter().find(|r| r.name == "notification") else {
        return String::new();
    };
    let mut members = serde_json::Map::new();
    for c in &n.children {
        if c.name == "eventTime" {
            members.insert("eventTime".into(), c.trimmed_text().into());
        } else {
            members.extend(elements_to_json(std::slice::from_ref(c), None));
        }
    }
    serde_json::json!({ "ietf-restconf:notification": members }).to_string()
}

pub async fn serve<B: Backend>(shared: &Arc<Shared<B>>, who: &Principal, name: &str) -> Response {
    let json = match name {
        "NETCONF" | "NETCONF/xml" => false,
        "NETCONF/json" => true,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "no such stream; there is NETCONF (/xml, /json)\n",
            )
                .into_response()
        }
    };
    let Some(guard) = count_stream(shared) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open\n",
        )
            .into_response();
    };
    tracing::info!(user = %who.user, source = %who.source, json, "RESTCONF event stream opened");
    let events = shared.backend.notifications(who).map(move |doc| {
        let _counted = &guard;
        let text = if json { notification_json(&doc) } else { doc };
        Ok::<_, Infallible>(Event::default().data(text))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
