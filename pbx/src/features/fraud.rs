//! Toll-fraud protection at run time: refusals (403/481 with a reason
//! phrase, counted, logged and sent as notification call-refused), the
//! dialogs the box record-routed (in-dialog requests must belong to one),
//! simultaneous outbound calls and the hourly spend of each extension.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use besip_core::ipc::Notifier;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::Config;
use crate::features::outbound::Origin;
use crate::sip::{addr_uri, param, Message};

/// A dialog with no request for this long is forgotten (its BYE never came).
const DIALOG_IDLE: Duration = Duration::from_secs(12 * 3600);
/// How far back the spend limit looks.
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Relay,
    UnknownDialog,
    CallClass,
    ExtensionCallLimit,
    GlobalCallLimit,
    SpendLimit,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::Relay,
        Refusal::UnknownDialog,
        Refusal::CallClass,
        Refusal::ExtensionCallLimit,
        Refusal::GlobalCallLimit,
        Refusal::SpendLimit,
    ];

    /// The YANG enum and counter name.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Relay => "relay",
            Refusal::UnknownDialog => "unknown-dialog",
            Refusal::CallClass => "call-class",
            Refusal::ExtensionCallLimit => "extension-call-limit",
            Refusal::GlobalCallLimit => "global-call-limit",
            Refusal::SpendLimit => "spend-limit",
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Refusal::UnknownDialog => 481,
            _ => 403,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Relay => "Forbidden: Relaying Denied",
            Refusal::UnknownDialog => "Call/Transaction Does Not Exist",
            Refusal::CallClass => "Forbidden: Call Class Not Allowed",
            Refusal::ExtensionCallLimit => "Forbidden: Too Many Outbound Calls Of The Caller",
            Refusal::GlobalCallLimit => "Forbidden: Too Many Outbound Calls",
            Refusal::SpendLimit => "Forbidden: Hourly Spend Limit Reached",
        }
    }
}

struct Dialog {
    /// From tag of the request that created the dialog.
    caller_tag: String,
    last_used: Instant,
}

#[derive(Default)]
struct Active {
    total: u32,
    per_extension: HashMap<String, u32>,
}

/// A held place among the simultaneous outbound calls; given back by `release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub extension: Option<String>,
}

#[derive(Default)]
pub struct Guard {
    refused: [AtomicU64; 6],
    dialogs: Mutex<HashMap<String, Dialog>>,
    active: Mutex<Active>,
    /// Prices of ended calls of each extension within the last hour.
    spent: Mutex<HashMap<String, VecDeque<(Instant, i64)>>>,
    notifier: OnceLock<Notifier>,
}

impl Guard {
    pub fn set_notifier(&self, n: Notifier) {
        let _ = self.notifier.set(n);
    }

    /// Counts, logs and notifies a refusal; hands back (code, reason phrase).
    pub fn refuse(
        &self,
        refusal: Refusal,
        msg: &Message,
        source: SocketAddr,
        origin: &Origin,
    ) -> (u16, &'static str) {
        let i = Refusal::ALL.iter().position(|r| *r == refusal).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
        let caller = addr_uri(msg.header("From").unwrap_or("")).to_owned();
        tracing::warn!(reason = refusal.name(), method = msg.method(), %source, %caller, callee = msg.uri(), origin = ?origin.name(), "request refused (toll-fraud protection)");
        if let Some(n) = self.notifier.get() {
            let mut data = json!({
                "reason": refusal.name(), "method": msg.method(),
                "source": source.to_string(), "caller": caller, "callee": msg.uri(),
            });
            if let Some(name) = origin.name() {
                data["extension"] = json!(name);
            }
            n.notify("besip-pbx:call-refused", data);
        }
        (refusal.code(), refusal.reason())
    }

    /// RFC 7951 JSON of /pbx/counters/refused.
    pub fn counters_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (r, n) in Refusal::ALL.iter().zip(&self.refused) {
            out.insert(
                r.name().to_owned(),
                json!(n.load(Ordering::Relaxed).to_string()),
            );
        }
        Value::Object(out)
    }

    /// Remembers a dialog-creating request we record-routed (bounded by `max`).
    pub fn dialog_created(&self, msg: &Message, max: usize) {
        let Some(tag) = param(msg.header("From").unwrap_or(""), "tag") else {
            return;
        };
        let mut dialogs = self.dialogs.lock();
        if dialogs.len() >= max && !dialogs.contains_key(msg.call_id()) {
            tracing::warn!(
                max,
                "dialog table full; later requests of this call will get 481"
            );
            return;
        }
        dialogs.insert(
            msg.call_id().to_owned(),
            Dialog {
                caller_tag: tag.to_owned(),
                last_used: Instant::now(),
            },
        );
    }

    /// True when an in-dialog request belongs to a dialog we record-routed:
    /// same Call-ID, and the creator's tag in its From (caller) or To (callee).
    pub fn dialog_known(&self, msg: &Message) -> bool {
        let from = param(msg.header("From").unwrap_or(""), "tag");
        let to = param(msg.header("To").unwrap_or(""), "tag");
        let mut dialogs = self.dialogs.lock();
        match dialogs.get_mut(msg.call_id()) {
            Some(d) if from == Some(d.caller_tag.as_str()) || to == Some(d.caller_tag.as_str()) => {
                d.last_used = Instant::now();
                true
            }
            _ => false,
        }
    }

    pub fn dialog_ended(&self, call_id: &str) {
        self.dialogs.lock().remove(call_id);
    }

    /// Forgets idle dialogs and spend older than an hour.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.dialogs
            .lock()
            .retain(|_, d| now.duration_since(d.last_used) < DIALOG_IDLE);
        let mut spent = self.spent.lock();
        for list in spent.values_mut() {
            while list
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) >= HOUR)
            {
                list.pop_front();
            }
        }
        spent.retain(|_, l| !l.is_empty());
    }

    /// Takes a place among the simultaneous outbound calls, or the refusal.
    pub fn take_slot(&self, cfg: &Config, origin: &Origin) -> Result<Slot, Refusal> {
        let extension = origin.extension().map(str::to_owned);
        let own_max = extension
            .as_deref()
            .and_then(|e| cfg.extensions.get(e))
            .map(|e| e.outbound.max_calls)
            .unwrap_or(0);
        let mut active = self.active.lock();
        if let (Some(ext), true) = (&extension, own_max > 0) {
            if active.per_extension.get(ext).copied().unwrap_or(0) >= u32::from(own_max) {
                return Err(Refusal::ExtensionCallLimit);
            }
        }
        let global = cfg.outbound.max_calls;
        if global > 0 && active.total >= global {
            return Err(Refusal::GlobalCallLimit);
        }
        active.total += 1;
        if let Some(ext) = &extension {
            *active.per_extension.entry(ext.clone()).or_insert(0) += 1;
        }
        Ok(Slot { extension })
    }

    pub fn release(&self, slot: &Slot) {
        let mut active = self.active.lock();
        active.total = active.total.saturating_sub(1);
        if let Some(ext) = &slot.extension {
            if let Some(n) = active.per_extension.get_mut(ext) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    active.per_extension.remove(ext);
                }
            }
        }
    }

    /// Outbound calls in progress (for the state).
    pub fn active_calls(&self) -> u32 {
        self.active.lock().total
    }

    /// What `ext` spent on calls that ended within the last hour.
    pub fn spent_last_hour(&self, ext: &str) -> i64 {
        let now = Instant::now();
        self.spent
            .lock()
            .get(ext)
            .map(|l| {
                l.iter()
                    .filter(|(t, _)| now.duration_since(*t) < HOUR)
                    .map(|(_, p)| p)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// An ended call of `ext` cost `price`.
    pub fn record_spend(&self, ext: &str, price: i64) {
        if price > 0 {
            self.spent
                .lock()
                .entry(ext.to_owned())
                .or_default()
                .push_back((Instant::now(), price));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use besip_core::uci::Package;

    fn config() -> Config {
        let text = "config pbx 'main'\n\toption outbound_max_calls '2'\n\n\
config extension 'e100'\n\toption number '100'\n\toption password 'p'\n\toption outbound_max_calls '1'\n\n\
config extension 'e101'\n\toption number '101'\n\toption password 'p'\n";
        let pkg = Package::parse("besip_pbx", text).expect("uci");
        Config::from_package(&pkg, "besip_pbx").expect("config")
    }

    #[test]
    fn slots_follow_the_extension_and_global_limits() {
        let cfg = config();
        let guard = Guard::default();
        let e100 = Origin::Extension("100".into());
        let e101 = Origin::Extension("101".into());
        let first = guard.take_slot(&cfg, &e100).expect("first call of 100");
        assert_eq!(
            guard.take_slot(&cfg, &e100),
            Err(Refusal::ExtensionCallLimit)
        );
        let other = guard.take_slot(&cfg, &e101).expect("101 has no own limit");
        assert_eq!(guard.take_slot(&cfg, &e101), Err(Refusal::GlobalCallLimit));
        guard.release(&first);
        guard.release(&other);
        assert_eq!(guard.active_calls(), 0);
        assert!(guard.take_slot(&cfg, &e100).is_ok());
    }

    #[test]
    fn in_dialog_requests_need_the_creators_tag() {
        let guard = Guard::default();
        let invite = Message::parse(
            b"INVITE sip:101@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\r\nFrom: <sip:100@x>;tag=caller\r\nTo: <sip:101@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("invite");
        guard.dialog_created(&invite, 10);
        let request = |from: &str, to: &str, call: &str| {
            Message::parse(format!("BYE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb\r\nFrom: <sip:a@x>;tag={from}\r\nTo: <sip:b@x>;tag={to}\r\nCall-ID: {call}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").as_bytes()).expect("bye")
        };
        assert!(guard.dialog_known(&request("caller", "callee", "c1")));
        assert!(guard.dialog_known(&request("callee", "caller", "c1")));
        assert!(!guard.dialog_known(&request("made", "up", "c1")));
        assert!(!guard.dialog_known(&request("caller", "callee", "c2")));
        guard.dialog_ended("c1");
        assert!(!guard.dialog_known(&request("caller", "callee", "c1")));
        guard.record_spend("100", 5);
        assert_eq!(guard.spent_last_hour("100"), 5);
    }
}
