//! IPC handler (DESIGN.md §5): reload, state as RFC 7951 JSON of the
//! besip-pbx `config false` nodes, the `unregister` RPC.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use besip_core::ipc::{Handler, HandlerError};
use serde_json::{json, Value};

use crate::config::Config;
use crate::engine::Engine;
use crate::location::unix_now;

pub struct Control {
    pub engine: Arc<Engine>,
    pub config_path: PathBuf,
}

impl Control {
    pub fn state_json(&self) -> Value {
        let e = &self.engine;
        let now = unix_now();
        let domain = e
            .config()
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| e.config().realm.clone());
        let registrations: Vec<Value> = e
            .location()
            .all()
            .into_iter()
            .map(|b| {
                json!({
                    "aor": format!("{}@{domain}", b.aor),
                    "contact": b.contact,
                    "source": format!("{}:{}", if b.transport == crate::config::Transport::Tcp { "tcp" } else { "udp" }, b.source),
                    "expires": b.expires_at.saturating_sub(now),
                    "user-agent": b.user_agent,
                    "q": format!("{:.3}", b.q),
                })
            })
            .collect();
        let calls: Vec<Value> = e
            .calls()
            .iter()
            .map(|(id, c)| json!({"call-id": id, "caller": c.caller, "callee": c.callee, "start": c.start, "state": c.state}))
            .collect();
        let c = e.counters();
        let r = |i: usize| c.replies[i].load(Ordering::Relaxed).to_string();
        // RFC 7951: 64-bit integers are JSON strings.
        let mut state = json!({"besip-pbx:pbx": {
            "registrations": {"registration": registrations},
            "calls": {"call": calls},
            "trunk-registrations": crate::trunk_registration::state_json(e),
            "accounting-state": crate::accounting::state_json(e),
            "counters": {
                "requests": c.requests.load(Ordering::Relaxed).to_string(),
                "replies-1xx": r(0), "replies-2xx": r(1), "replies-3xx": r(2),
                "replies-4xx": r(3), "replies-5xx": r(4), "replies-6xx": r(5),
                "auth-failures": c.auth_failures.load(Ordering::Relaxed).to_string(),
                "malformed": c.malformed.load(Ordering::Relaxed).to_string(),
                "tcp-refused": e.transports().tcp_refused().to_string(),
                "rtp-dropped": crate::rtp_relay::dropped_total().to_string(),
                "transactions": e.tables().len(),
                "refused": e.fraud().counters_json(),
            }
        }});
        if let Some(sets) = crate::dispatcher::state_json(&e.config()) {
            state["besip-pbx:pbx"]["dispatcher-set"] = sets;
        }
        state
    }
}

impl Handler for Control {
    async fn reload(&self) -> Result<(), HandlerError> {
        let config =
            Config::load(&self.config_path).map_err(|e| HandlerError::refused(e.to_string()))?;
        self.engine
            .reconfigure_listens(&config)
            .await
            .map_err(HandlerError::refused)?;
        self.engine.apply(config);
        crate::trunk_registration::reconcile(&self.engine);
        let accounting = &self.engine.config().accounting;
        self.engine.accounting().on_config(accounting);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(self.state_json())
    }

    async fn rpc(&self, name: &str, input: Value) -> Result<Value, HandlerError> {
        match name {
            "besip-pbx:unregister" | "unregister" => {
                let Some(aor) = input.get("aor").and_then(Value::as_str) else {
                    return Err(HandlerError::invalid_params(
                        "unregister needs input 'aor' (user or user@domain)",
                    ));
                };
                let user = aor.split('@').next().unwrap_or(aor);
                let user = user.strip_prefix("sip:").unwrap_or(user);
                let contact = input.get("contact").and_then(Value::as_str);
                let removed = self.engine.location().remove(user, contact);
                tracing::info!(aor, removed, "unregister RPC");
                Ok(json!({"removed": removed}))
            }
            other => Err(HandlerError::unknown_rpc(other)),
        }
    }
}
