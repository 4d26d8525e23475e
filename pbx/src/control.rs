//! IPC handler (DESIGN.md §5): two-phase reload (prepare binds the new
//! listen sockets without serving them, apply switches), state as RFC 7951
//! JSON of the besip-pbx `config false` nodes, the `unregister` RPC.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use besip_core::daemon::Pending;
use besip_core::ipc::{Handler, HandlerError, StagedPackages};
use besip_core::paths::Layout;
use serde_json::{json, Value};

use crate::call::location::unix_now;
use crate::call::EngineSink;
use crate::config::{Config, Listen, Transport};
use crate::features::Engine;
use crate::stun;
use crate::transport::{Bound, Transports};

pub struct Control {
    pub engine: Arc<Engine>,
    layout: Layout,
    pending: Pending<Prepared>,
    stun: stun::Service,
}

/// A checked configuration and the sockets of its new listens (SIP and
/// STUN), bound but not served until `apply`.
struct Prepared {
    config: Config,
    bound: Vec<Bound>,
    stun: stun::Plan,
    /// /pbx/tls and the TLS trunks.
    tls: crate::transport::tls::TlsPlan,
}

/// Whether a served socket (transport, bound address) serves `listen` (a
/// listen on port 0 is served by whatever port it got).
fn serves(served: &[(Transport, SocketAddr)], listen: &Listen) -> bool {
    served.iter().any(|&(transport, local)| {
        transport == listen.transport
            && (local == listen.addr || (listen.addr.port() == 0 && local.ip() == listen.addr.ip()))
    })
}

impl Control {
    pub fn new(engine: Arc<Engine>, layout: Layout) -> Control {
        Control {
            engine,
            layout,
            pending: Pending::default(),
            stun: stun::Service::default(),
        }
    }

    /// Serves /pbx/stun of the running configuration (at start).
    pub fn start_stun(&self) -> Result<(), stun::StunError> {
        let config = self.engine.config();
        let want = config.stun.as_ref();
        let plan = self.stun.plan(want)?;
        self.stun.switch(plan, want)
    }

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
                    "source": format!("{}:{}", b.transport.as_param(), b.source),
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
        let (rooms, voicemail) = crate::features::media_service::state_json(e);
        // RFC 7951: 64-bit integers are JSON strings.
        let mut state = json!({"besip-pbx:pbx": {
            "registrations": {"registration": registrations},
            "calls": {"call": calls},
            "trunk-registrations": crate::features::trunk_registration::state_json(e),
            "accounting-state": crate::features::accounting::state_json(e),
            "extension-state": e.forwarding().state_json(&e.config()),
            "inbound-state": e.inbound().state_json(&e.config()),
            "presence-state": crate::features::presence::state_json(e),
            "parking-state": crate::features::b2bua::parking::state_json(e),
            "conference-state": rooms,
            "voicemail-state": voicemail,
            "recording-state": e.media().recordings.state_json(),
            "counters": {
                "requests": c.requests.load(Ordering::Relaxed).to_string(),
                "replies-1xx": r(0), "replies-2xx": r(1), "replies-3xx": r(2),
                "replies-4xx": r(3), "replies-5xx": r(4), "replies-6xx": r(5),
                "auth-failures": c.auth_failures.load(Ordering::Relaxed).to_string(),
                "malformed": c.malformed.load(Ordering::Relaxed).to_string(),
                "tcp-refused": e.transports().tcp_refused().to_string(),
                "rtp-dropped": crate::features::rtp_relay::dropped_total().to_string(),
                "stun-answered": self.stun.counters().answered.load(Ordering::Relaxed).to_string(),
                "stun-dropped": self.stun.counters().dropped.load(Ordering::Relaxed).to_string(),
                "hep-sent": e.hep().counters().sent.load(Ordering::Relaxed).to_string(),
                "hep-dropped": e.hep().counters().dropped.load(Ordering::Relaxed).to_string(),
                "transactions": e.tables().len(),
                "refused": e.fraud().counters_json(),
            }
        }});
        if let Some(sets) = crate::features::dispatcher::state_json(&e.config()) {
            state["besip-pbx:pbx"]["dispatcher-set"] = sets;
        }
        state["besip-pbx:pbx"]["nat-state"] = match e.config().mode {
            crate::config::Mode::Proxy => crate::features::nat_proxy::state_json(e),
            crate::config::Mode::B2bua => crate::features::nat::state_json(e),
        };
        if let Some(cluster) = crate::features::cluster::state_json(e) {
            state["besip-pbx:pbx"]["cluster-state"] = cluster;
        }
        if let Some(dns) = crate::features::dns::state_json(e) {
            state["besip-pbx:pbx"]["dns-state"] = dns;
        }
        state
    }
}

impl Handler for Control {
    async fn prepare(&self, staged: &StagedPackages) -> Result<(), HandlerError> {
        // The sockets an older pending configuration bound are released first.
        self.pending.clear();
        let path = staged.path(&self.layout, "besip_pbx");
        let config = Config::load(&path).map_err(|e| HandlerError::refused(e.to_string()))?;
        let served = self.engine.transports().listening();
        let added: Vec<Listen> = config
            .listens
            .iter()
            .filter(|l| !serves(&served, l))
            .cloned()
            .collect();
        let bound = Transports::bind(&added)
            .await
            .map_err(|e| HandlerError::refused(e.to_string()))?;
        let stun = self
            .stun
            .plan(config.stun.as_ref())
            .map_err(|e| HandlerError::refused(e.to_string()))?;
        let tls = crate::transport::tls::plan(&config, &self.layout.etc_dir())
            .map_err(HandlerError::refused)?;
        self.pending.put(Prepared {
            config,
            bound,
            stun,
            tls,
        });
        tracing::info!(path = %path.display(), "configuration prepared");
        Ok(())
    }

    async fn apply(&self) -> Result<(), HandlerError> {
        let Prepared {
            config,
            bound,
            stun,
            tls,
        } = self.pending.take()?;
        // Before the new sockets serve: a new TLS listen needs its certificate.
        self.engine.transports().apply_tls(tls);
        self.stun
            .switch(stun, config.stun.as_ref())
            .map_err(|e| HandlerError::refused(e.to_string()))?;
        for b in &bound {
            let (transport, addr) = b.local();
            tracing::info!(?transport, %addr, "listening");
        }
        let sink = Arc::new(EngineSink(self.engine.clone()));
        self.engine.transports().serve(bound, sink);
        // Binds nothing now (prepare did); closes the listens that are gone.
        self.engine
            .reconfigure_listens(&config)
            .await
            .map_err(HandlerError::refused)?;
        crate::transport::kernel_forward::configure(config.rtp_kernel_forwarding);
        self.engine.apply(config);
        crate::features::dns::reconcile(&self.engine);
        crate::features::hep::reconcile(&self.engine);
        crate::features::cluster::reconcile(&self.engine);
        crate::features::trunk_registration::reconcile(&self.engine);
        let accounting = &self.engine.config().accounting;
        self.engine.accounting().on_config(accounting);
        tracing::info!("configuration applied");
        Ok(())
    }

    async fn abort(&self) -> Result<(), HandlerError> {
        self.pending.clear();
        Ok(())
    }

    async fn state(&self) -> Result<Value, HandlerError> {
        Ok(self.state_json())
    }

    async fn metrics(&self) -> Result<Value, HandlerError> {
        Ok(Value::String(crate::metrics::render(
            &self.engine,
            self.stun.counters(),
        )))
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
            "besip-pbx:upload-prompt" | "upload-prompt" => {
                let (Some(name), Some(audio)) = (
                    input.get("name").and_then(Value::as_str),
                    input.get("audio").and_then(Value::as_str),
                ) else {
                    return Err(HandlerError::invalid_params(
                        "upload-prompt needs inputs 'name' and 'audio' (base64 WAV)",
                    ));
                };
                use base64::Engine as _;
                let compact: String = audio.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact.as_bytes())
                    .map_err(|e| {
                        HandlerError::invalid_params(format!("audio is not base64: {e}"))
                    })?;
                let duration = self
                    .engine
                    .media()
                    .prompts
                    .store(name, &bytes)
                    .map_err(HandlerError::invalid_params)?;
                tracing::info!(name, duration, "prompt uploaded");
                Ok(json!({ "duration": duration }))
            }
            "besip-pbx:fetch-audio" | "fetch-audio" => {
                let (Some(kind), Some(id)) = (
                    input.get("kind").and_then(Value::as_str),
                    input.get("id").and_then(Value::as_str),
                ) else {
                    return Err(HandlerError::invalid_params(
                        "fetch-audio needs inputs 'kind' and 'id'",
                    ));
                };
                let mailbox = input.get("mailbox").and_then(Value::as_str);
                let bytes =
                    crate::features::media_service::fetch_audio(&self.engine, kind, mailbox, id)
                        .map_err(HandlerError::invalid_params)?;
                use base64::Engine as _;
                Ok(json!({ "audio": base64::engine::general_purpose::STANDARD.encode(bytes) }))
            }
            "besip-pbx:kick-participant" | "kick-participant" => {
                let Some(room) = input.get("room").and_then(Value::as_str) else {
                    return Err(HandlerError::invalid_params(
                        "kick-participant needs input 'room'",
                    ));
                };
                let id = match input.get("participant") {
                    None => None,
                    Some(v) => Some(
                        v.as_u64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| {
                                HandlerError::invalid_params("participant must be a number")
                            })?,
                    ),
                };
                let kicked = self.engine.media().rooms.kick(&self.engine, room, id);
                tracing::info!(room, ?id, kicked, "kick-participant RPC");
                Ok(json!({ "kicked": kicked }))
            }
            "besip-pbx:reset-forwarding" | "reset-forwarding" => {
                let Some(ext) = input.get("extension").and_then(Value::as_str) else {
                    return Err(HandlerError::invalid_params(
                        "reset-forwarding needs input 'extension'",
                    ));
                };
                let cleared = self
                    .engine
                    .forwarding()
                    .reset(ext)
                    .map_err(HandlerError::refused)?;
                tracing::info!(extension = ext, cleared, "reset-forwarding RPC");
                Ok(json!({ "cleared": cleared }))
            }
            other => Err(HandlerError::unknown_rpc(other)),
        }
    }
}
