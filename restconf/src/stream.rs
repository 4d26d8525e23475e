//! RFC 8040 §6 event streams as Server-Sent Events: the NETCONF stream
//! (every notification of the box, filtered by NACM) at
//! `/restconf/streams/NETCONF/xml` and `/restconf/streams/NETCONF/json`,
//! with replay of the kept notifications from `start-time` (to
//! `stop-time`, where the stream ends), as NETCONF's create-subscription.

use crate::backend::{Backend, Principal, Replay};
use crate::convert::elements_to_json;
use crate::errors::{Errors, Format};
use crate::query::Query;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use besip_core::error::{ConfigError, ErrorTag};
use futures::StreamExt;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Event streams open at once.
const MAX_STREAMS: usize = 64;

/// The event streams open now, shared by every request.
#[derive(Default)]
pub struct OpenStreams(Arc<AtomicUsize>);

impl OpenStreams {
    /// One more stream, if under the limit; the guard counts it down.
    fn enter(&self) -> Option<StreamGuard> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_STREAMS {
            self.0.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(StreamGuard(self.0.clone()))
    }
}

struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

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

/// start-time and stop-time as RFC 5277 has them for NETCONF: a start not
/// in the future, a stop only with a start and not before it.
fn replay_of(query: Option<&str>) -> Result<Option<Replay>, ConfigError> {
    let q = Query::parse(query)?;
    q.only(&["start-time", "stop-time"], "an event stream")?;
    let invalid = |name: &str, message: &str| {
        ConfigError::protocol(ErrorTag::InvalidValue, message.to_owned())
            .with_info("bad-attribute", name)
    };
    match (q.start_time, q.stop_time) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid(
            "stop-time",
            "stop-time needs a start-time (it ends a replay)",
        )),
        (Some(start), _) if start > chrono::Utc::now() => {
            Err(invalid("start-time", "start-time is in the future"))
        }
        (Some(start), Some(stop)) if stop < start => {
            Err(invalid("stop-time", "stop-time is before start-time"))
        }
        (Some(start), stop) => Ok(Some(Replay { start, stop })),
    }
}

pub async fn serve<B: Backend>(
    backend: &Arc<B>,
    streams: &OpenStreams,
    who: &Principal,
    name: &str,
    query: Option<&str>,
    format: Format,
) -> Response {
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
    let replay = match replay_of(query) {
        Ok(r) => r,
        Err(e) => return Errors::one(format, e).into_response(),
    };
    let Some(guard) = streams.enter() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open\n",
        )
            .into_response();
    };
    tracing::info!(user = %who.user, source = %who.source, json, ?replay, "RESTCONF event stream opened");
    let events = backend.notifications(who, replay).map(move |doc| {
        let _counted = &guard;
        let text = if json { notification_json(&doc) } else { doc };
        Ok::<_, Infallible>(Event::default().data(text))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
