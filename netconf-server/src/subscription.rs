//! RFC 5277 subscriptions: what `<create-subscription>` asked for (a subtree
//! filter, a replay window), and the replay log of recent notifications.
//!
//! Choices: one stream (`NETCONF`); the replay log keeps the last
//! `REPLAY_KEEP` notifications in memory (a restart empties it, and
//! `startTime` before the oldest kept one replays what is kept); a filter is
//! a subtree filter (RFC 6241 §6) deciding which notifications are sent —
//! a notification is sent whole when the filter selects anything in it.
//! XPath filters on subscriptions are refused rather than ignored.

use besip_core::error::{ConfigError, ErrorTag};
use besip_core::xml::Element;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub const NETCONF_NOTIFICATION_NS: &str = "urn:ietf:params:xml:ns:netconf:notification:1.0";
const NETMOD_NOTIFICATION_NS: &str = "urn:ietf:params:xml:ns:netmod:notification";

/// How many notifications the replay log keeps.
pub const REPLAY_KEEP: usize = 1000;

/// One published notification.
#[derive(Debug)]
pub struct Event {
    /// Publication order: tells a replayed event from the same one arriving live.
    pub seq: u64,
    pub time: DateTime<Utc>,
    /// The whole `<notification>` document.
    pub doc: String,
}

/// The last `REPLAY_KEEP` notifications, oldest first. One lock for the
/// numbering and the queue: the log stays in publication order.
#[derive(Default)]
pub struct ReplayLog {
    events: Mutex<VecDeque<Arc<Event>>>,
}

impl ReplayLog {
    /// Wrap `event_xml` in a `<notification>` stamped now, and keep it.
    pub fn record(&self, event_xml: &str) -> Arc<Event> {
        let mut events = crate::server::lock(&self.events);
        let time = Utc::now();
        let event = Arc::new(Event {
            seq: events.back().map_or(1, |last| last.seq + 1),
            time,
            doc: notification(time, event_xml),
        });
        if events.len() == REPLAY_KEEP {
            events.pop_front();
        }
        events.push_back(event.clone());
        event
    }

    /// Kept events from `start` (inclusive) up to `stop` (inclusive), oldest first.
    pub fn between(&self, start: DateTime<Utc>, stop: Option<DateTime<Utc>>) -> Vec<Arc<Event>> {
        crate::server::lock(&self.events)
            .iter()
            .filter(|e| e.time >= start && stop.is_none_or(|stop| e.time <= stop))
            .cloned()
            .collect()
    }
}

fn notification(time: DateTime<Utc>, event_xml: &str) -> String {
    format!(
        "<notification xmlns=\"{NETCONF_NOTIFICATION_NS}\"><eventTime>{}</eventTime>{event_xml}</notification>",
        time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// RFC 5277 §2.1.1 `<replayComplete>`: the replay part of a subscription is over.
pub fn replay_complete() -> String {
    notification(
        Utc::now(),
        &format!("<replayComplete xmlns=\"{NETMOD_NOTIFICATION_NS}\"/>"),
    )
}

/// `<notificationComplete>`: the subscription reached its stopTime and ends.
pub fn notification_complete() -> String {
    notification(
        Utc::now(),
        &format!("<notificationComplete xmlns=\"{NETMOD_NOTIFICATION_NS}\"/>"),
    )
}

/// What one `<create-subscription>` asked for.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    /// Subtree filter elements; `None` sends everything.
    pub filter: Option<Vec<Element>>,
    pub start: Option<DateTime<Utc>>,
    pub stop: Option<DateTime<Utc>>,
}

impl Subscription {
    /// Read the request's parameters (the stream is checked by the caller).
    pub fn from_request(op: &Element, now: DateTime<Utc>) -> Result<Subscription, ConfigError> {
        let start = time_parameter(op, "startTime")?;
        let stop = time_parameter(op, "stopTime")?;
        match (start, stop) {
            (Some(start), _) if start > now => {
                return Err(bad_element("startTime", "startTime is in the future"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::protocol(
                    ErrorTag::MissingElement,
                    "stopTime needs a startTime (it ends a replay)",
                )
                .with_info("bad-element", "startTime"))
            }
            (Some(start), Some(stop)) if stop < start => {
                return Err(bad_element("stopTime", "stopTime is before startTime"))
            }
            _ => {}
        }
        let filter = match op.child("filter") {
            None => None,
            Some(filter) => match filter.attribute("", "type").unwrap_or("subtree") {
                "subtree" => Some(filter.children.clone()),
                other => {
                    return Err(ConfigError::protocol(
                        ErrorTag::OperationNotSupported,
                        format!("a subscription filter of type '{other}' is not supported: use a subtree filter"),
                    ))
                }
            },
        };
        Ok(Subscription {
            filter,
            start,
            stop,
        })
    }

    /// Does the filter select anything of this notification?
    pub fn selects(&self, event: &Event) -> bool {
        let Some(filter) = &self.filter else {
            return true;
        };
        if filter.is_empty() {
            return false; // an empty filter selects nothing (RFC 6241 §6.4.2)
        }
        let Ok(roots) = besip_core::xml::parse(&event.doc) else {
            return false;
        };
        let content: Vec<&Element> = roots
            .iter()
            .flat_map(|n| n.children.iter())
            .filter(|c| !(c.name == "eventTime" && c.namespace == NETCONF_NOTIFICATION_NS))
            .collect();
        filter
            .iter()
            .any(|f| content.iter().any(|node| subtree_selects(f, node)))
    }
}

fn time_parameter(op: &Element, name: &str) -> Result<Option<DateTime<Utc>>, ConfigError> {
    let Some(element) = op.child(name) else {
        return Ok(None);
    };
    let text = element.trimmed_text();
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            bad_element(
                name,
                &format!("{name} '{text}' is not an RFC 3339 date-time"),
            )
        })
}

fn bad_element(name: &str, message: &str) -> ConfigError {
    ConfigError::protocol(ErrorTag::BadElement, message).with_info("bad-element", name)
}

/// RFC 6241 §6.2 on one node: same name (and namespace, when the filter
/// names one); every content-match child (a leaf with text) equal; then the
/// node is selected if the filter has no other children, or if content
/// matches exist (they are selected themselves), or if any other child
/// selects something below.
fn subtree_selects(filter: &Element, node: &Element) -> bool {
    if filter.name != node.name
        || (!filter.namespace.is_empty() && filter.namespace != node.namespace)
    {
        return false;
    }
    let (content_matches, selections): (Vec<&Element>, Vec<&Element>) = filter
        .children
        .iter()
        .partition(|c| c.children.is_empty() && !c.trimmed_text().is_empty());
    let all_content_matches = content_matches.iter().all(|m| {
        node.children.iter().any(|c| {
            c.name == m.name
                && (m.namespace.is_empty() || m.namespace == c.namespace)
                && c.trimmed_text() == m.trimmed_text()
        })
    });
    if !all_content_matches {
        return false;
    }
    if !content_matches.is_empty() || selections.is_empty() {
        return true;
    }
    selections
        .iter()
        .any(|s| node.children.iter().any(|c| subtree_selects(s, c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGE: &str = "<netconf-config-change xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-notifications\"><changed-by><username>admin</username></changed-by><edit><target>/s:system</target><operation>merge</operation></edit></netconf-config-change>";
    const BAN: &str = "<ban-added xmlns=\"urn:besip:security\"><address>127.0.0.9</address><reason>sip-flood</reason></ban-added>";

    fn subscription(filter: &str) -> Subscription {
        let op = besip_core::xml::parse(&format!(
            "<create-subscription xmlns=\"{NETCONF_NOTIFICATION_NS}\"><filter type=\"subtree\">{filter}</filter></create-subscription>"
        ))
        .unwrap()
        .remove(0);
        Subscription::from_request(&op, Utc::now()).unwrap()
    }

    fn event(xml: &str) -> Event {
        Event {
            seq: 1,
            time: Utc::now(),
            doc: notification(Utc::now(), xml),
        }
    }

    #[test]
    fn a_subtree_filter_picks_notifications_by_name_namespace_and_content() {
        let (change, ban) = (event(CHANGE), event(BAN));
        let by_name = subscription("<ban-added xmlns=\"urn:besip:security\"/>");
        assert!(by_name.selects(&ban) && !by_name.selects(&change));
        let wrong_namespace = subscription("<ban-added xmlns=\"urn:other\"/>");
        assert!(!wrong_namespace.selects(&ban));
        let by_content = subscription(
            "<ban-added xmlns=\"urn:besip:security\"><reason>sip-flood</reason></ban-added>",
        );
        assert!(by_content.selects(&ban));
        let other_content = subscription(
            "<ban-added xmlns=\"urn:besip:security\"><reason>brute-force</reason></ban-added>",
        );
        assert!(!other_content.selects(&ban));
        let nested = subscription("<netconf-config-change xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-notifications\"><changed-by><username>admin</username></changed-by></netconf-config-change>");
        assert!(nested.selects(&change) && !nested.selects(&ban));
        let selection_absent =
            subscription("<ban-added xmlns=\"urn:besip:security\"><duration/></ban-added>");
        assert!(!selection_absent.selects(&ban));
        assert!(
            !subscription("").selects(&ban),
            "an empty filter selects nothing"
        );
    }

    #[test]
    fn replay_window_is_checked() {
        let now = Utc::now();
        let op = |body: &str| {
            besip_core::xml::parse(&format!(
                "<create-subscription xmlns=\"{NETCONF_NOTIFICATION_NS}\">{body}</create-subscription>"
            ))
            .unwrap()
            .remove(0)
        };
        let future = (now + chrono::Duration::hours(1)).to_rfc3339();
        let past = (now - chrono::Duration::hours(1)).to_rfc3339();
        let error = |body: &str| Subscription::from_request(&op(body), now).unwrap_err().tag;
        assert_eq!(
            error(&format!("<startTime>{future}</startTime>")),
            ErrorTag::BadElement
        );
        assert_eq!(
            error(&format!("<stopTime>{past}</stopTime>")),
            ErrorTag::MissingElement
        );
        assert_eq!(
            error("<startTime>yesterday</startTime>"),
            ErrorTag::BadElement
        );
        assert_eq!(
            error(&format!(
                "<startTime>{}</startTime><stopTime>{past}</stopTime>",
                now.to_rfc3339()
            )),
            ErrorTag::BadElement
        );
        assert_eq!(
            error("<filter type=\"xpath\" select=\"/x\"/>"),
            ErrorTag::OperationNotSupported
        );
        let ok = Subscription::from_request(&op(&format!("<startTime>{past}</startTime>")), now)
            .unwrap();
        assert!(ok.start.is_some() && ok.stop.is_none() && ok.filter.is_none());
    }

    #[test]
    fn the_replay_log_keeps_the_newest_in_order() {
        let log = ReplayLog::default();
        let start = Utc::now();
        for i in 0..REPLAY_KEEP + 5 {
            log.record(&format!("<n{i}/>"));
        }
        let kept = log.between(start, None);
        assert_eq!(kept.len(), REPLAY_KEEP);
        assert!(kept[0].doc.contains("<n5/>"));
        assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(log
            .between(Utc::now() + chrono::Duration::seconds(1), None)
            .is_empty());
    }
}
