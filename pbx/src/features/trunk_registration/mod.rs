//! Outbound registration to the trunks with `register true` (RFC 3261 §10.2):
//! one task per trunk sends REGISTER, answers a 401/407 with the trunk's
//! credentials, refreshes before the granted expiry, retries with backoff on
//! failure and unregisters (Expires: 0) when the trunk is removed or changed
//! and at shutdown. Responses reach the task by our branch prefix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Transport, Trunk};
pub mod status;

use self::status::{Running, Status};
use super::state::Engine;
use crate::auth::uac::{credentials, pick_challenge};
use crate::sip::{format_host, param, Message};
use crate::transaction::{T1, T2, TX_TIMEOUT};

/// Every REGISTER we send carries a branch starting with this.
const BRANCH_PREFIX: &str = "z9hG4bKbsptrk";
/// Lifetime we ask for; the provider may grant less.
const REQUESTED_EXPIRES: u32 = 3600;
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Hands a response to its registration task; false when it is not ours.
pub fn on_response(engine: &Engine, msg: &Message) -> bool {
    let ours = msg
        .top_via()
        .and_then(|v| v.branch)
        .is_some_and(|b| b.starts_with(BRANCH_PREFIX));
    if !ours {
        return false;
    }
    if let Some(tx) = engine.trunk_regs().inbox.lock().get(msg.call_id()) {
        let _ = tx.send(msg.clone());
    }
    true
}

/// Brings the running registrations in line with the configuration: new
/// trunks start, removed or changed ones are unregistered (changed ones start again).
pub fn reconcile(engine: &Arc<Engine>) {
    let cfg = engine.config();
    let wanted: HashMap<&String, &Trunk> = cfg.trunks.iter().filter(|(_, t)| t.register).collect();
    let mut running = engine.trunk_regs().running.lock();
    let gone: Vec<String> = running
        .iter()
        .filter(|(name, r)| wanted.get(name).is_none_or(|t| **t != r.trunk))
        .map(|(name, _)| name.clone())
        .collect();
    // A changed trunk registers again only after its old registration is
    // removed, so the removal cannot undo the new binding at the provider.
    let mut stopping: HashMap<String, JoinHandle<()>> = HashMap::new();
    for name in gone {
        if let Some(r) = running.remove(&name) {
            tracing::info!(trunk = %name, "trunk registration stopping");
            let _ = r.stop.send(true);
            stopping.insert(name, r.task);
        }
    }
    for (name, trunk) in wanted {
        if running.contains_key(name) {
            continue;
        }
        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::unbounded_channel();
        let call_id = format!("{}{}@besip-trunk", engine.new_tag(), engine.new_tag());
        engine.trunk_regs().inbox.lock().insert(call_id.clone(), tx);
        let status = Arc::new(Mutex::new(Status {
            state: "registering",
            registrar: format!("{}:{}:{}", tp_name(trunk.transport), trunk.host, trunk.port),
            ..Status::default()
        }));
        let reg = Registration {
            engine: engine.clone(),
            trunk: (*trunk).clone(),
            call_id: call_id.clone(),
            from_tag: engine.new_tag(),
            cseq: 0,
            nc: 0,
            rx,
            status: status.clone(),
        };
        let previous = stopping.remove(name);
        let task = tokio::spawn(async move {
            if let Some(p) = previous {
                let _ = tokio::time::timeout(Duration::from_secs(40), p).await;
            }
            reg.run(stop_rx).await
        });
        running.insert(
            name.clone(),
            Running {
                trunk: (*trunk).clone(),
                call_id,
                stop,
                status,
                task,
            },
        );
    }
}

/// Unregisters every trunk (bounded by the transaction timeout).
pub async fn shutdown(engine: &Engine) {
    let all: Vec<Running> = engine
        .trunk_regs()
        .running
        .lock()
        .drain()
        .map(|(_, r)| r)
        .collect();
    for r in &all {
        let _ = r.stop.send(true);
    }
    // One deadline for all: the removals run in parallel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    for r in all {
        let _ = tokio::time::timeout_at(deadline, r.task).await;
        engine.trunk_regs().inbox.lock().remove(&r.call_id);
    }
}

/// RFC 7951 JSON of /pbx/trunk-registrations.
pub fn state_json(engine: &Engine) -> Value {
    let now = crate::call::location::unix_now();
    let running = engine.trunk_regs().running.lock();
    let mut list: Vec<Value> = running
        .iter()
        .map(|(name, r)| {
            let s = r.status.lock().clone();
            let mut v = json!({
                "name": name,
                "state": s.state,
                "registrar": s.registrar,
                "registrations": s.registrations,
                "failures": s.failures,
            });
            if let Some(at) = s.expires_at {
                v["expires"] = json!(at.saturating_sub(now));
            }
            if let Some(l) = s.last_response {
                v["last-response"] = json!(l);
            }
            if let Some(e) = tls_error(engine, &r.trunk) {
                v["last-tls-error"] = json!(e);
            }
            v
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({ "trunk": list })
}

/// Why the last TLS connection to a trunk failed.
fn tls_error(engine: &Engine, trunk: &Trunk) -> Option<String> {
    engine.transports().tls_error(&trunk.name)
}

fn tp_name(t: Transport) -> &'static str {
    t.as_param()
}

struct Registration {
    engine: Arc<Engine>,
    trunk: Trunk,
    call_id: String,
    from_tag: String,
    cseq: u32,
    nc: u32,
    rx: mpsc::UnboundedReceiver<Message>,
    status: Arc<Mutex<Status>>,
}

enum Outcome {
    /// Registered for this many seconds.
    Granted(u32),
    Failed(String),
}

impl Registration {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut registered = false;
        loop {
            let outcome = tokio::select! {
                o = self.transaction(REQUESTED_EXPIRES) => o,
                _ = stop.changed() => break,
            };
            let wait = match outcome {
                Outcome::Granted(secs) => {
                    registered = true;
                    backoff = BACKOFF_MIN;
                    let mut s = self.status.lock();
                    s.state = "registered";
                    s.registrations = s.registrations.saturating_add(1);
                    s.expires_at = Some(crate::call::location::unix_now() + u64::from(secs));
                    tracing::info!(trunk = %self.trunk.name, expires = secs, "registered to trunk");
                    refresh_after(secs)
                }
                Outcome::Failed(why) => {
                    let mut s = self.status.lock();
                    s.state = "failed";
                    s.failures = s.failures.saturating_add(1);
                    tracing::warn!(trunk = %self.trunk.name, reason = %why, retry_in = ?backoff, "trunk registration failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
        }
        if registered {
            self.status.lock().state = "unregistering";
            match self.transaction(0).await {
                Outcome::Granted(_) => {
                    tracing::info!(trunk = %self.trunk.name, "unregistered from trunk")
                }
                Outcome::Failed(why) => {
                    tracing::warn!(trunk = %self.trunk.name, reason = %why, "unregister failed")
                }
            }
        }
        self.engine.trunk_regs().inbox.lock().remove(&self.call_id);
    }

    /// One registration (or removal with 0) including its challenge round.
    async fn transaction(&mut self, mut expires: u32) -> Outcome {
        let Some(user) = self.trunk.username.clone().filter(|u| !u.is_empty()) else {
            return Outcome::Failed("trunk has register true but no username".into());
        };
        let (dest, uri) = match &self.trunk.lookup {
            // A domain name: the first DNS target, by the transport DNS chose.
            Some(lookup) => {
                let targets = crate::features::dns::targets_of(&self.engine, &self.trunk.name);
                let Some(first) = targets.first() else {
                    return Outcome::Failed("trunk host does not resolve (see dns-state)".into());
                };
                self.trunk.transport = first.transport;
                let port = lookup.port.map(|p| format!(":{p}")).unwrap_or_default();
                (first.addr, format!("sip:{}{port}", lookup.name))
            }
            None => {
                let Ok(ip) = self.trunk.host.parse::<std::net::IpAddr>() else {
                    return Outcome::Failed("trunk host is not an IP address".into());
                };
                let dest = std::net::SocketAddr::new(ip, self.trunk.port);
                (
                    dest,
                    format!("sip:{}:{}", format_host(&ip), self.trunk.port),
                )
            }
        };
        let mut auth: Option<(&'static str, String)> = None;
        let mut challenged = 0;
        loop {
            self.cseq += 1;
            let req = self.request(&user, &uri, dest, expires, auth.as_ref());
            let Some(resp) = self.exchange(req, dest).await else {
                return Outcome::Failed("no answer (timeout)".into());
            };
            let code = resp.status().unwrap_or(500);
            let reason = match &resp.start {
                crate::sip::StartLine::Response { reason, .. } => reason.clone(),
                _ => String::new(),
            };
            self.status.lock().last_response = Some(format!("{code} {reason}"));
            match code {
                200..=299 => return Outcome::Granted(granted(&resp, expires)),
                401 | 407 if challenged < 2 => {
                    let Some((ch, header)) = pick_challenge(&resp) else {
                        return Outcome::Failed(format!("{code} with no usable digest challenge"));
                    };
                    // A second challenge that is not stale: the credentials are wrong.
                    if auth.is_some() && !ch.stale {
                        return Outcome::Failed(format!("{code} {reason}: credentials rejected"));
                    }
                    let password = self.trunk.password.clone().unwrap_or_default();
                    self.nc += 1;
                    let v = credentials(&ch, &user, &password, "REGISTER", &uri, self.nc);
                    auth = Some((header, v));
                    challenged += 1;
                }
                423 if expires > 0 => {
                    let min = resp
                        .header("Min-Expires")
                        .and_then(|v| v.trim().parse::<u32>().ok())
                        .filter(|m| *m > expires);
                    match min {
                        Some(m) => expires = m,
                        None => return Outcome::Failed(format!("{code} {reason}")),
                    }
                }
                _ => return Outcome::Failed(format!("{code} {reason}")),
            }
        }
    }

    fn request(
        &self,
        user: &str,
        uri: &str,
        dest: std::net::SocketAddr,
        expires: u32,
        auth: Option<&(&'static str, String)>,
    ) -> Message {
        let e = &self.engine;
        let t = self.trunk.transport;
        let sock = e.socket_for(t, dest.is_ipv6());
        let branch = format!("{BRANCH_PREFIX}{}", e.new_tag());
        let host = format_host(&dest.ip());
        let tp = t.uri_param();
        let mut m = Message {
            start: crate::sip::StartLine::Request {
                method: "REGISTER".into(),
                uri: uri.to_owned(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.add_header(
            "Via",
            format!("{};rport", e.via_for(t, dest.is_ipv6(), &branch)),
        );
        m.add_header("Max-Forwards", "70".into());
        m.add_header("From", format!("<sip:{user}@{host}>;tag={}", self.from_tag));
        m.add_header("To", format!("<sip:{user}@{host}>"));
        m.add_header("Call-ID", self.call_id.clone());
        m.add_header("CSeq", format!("{} REGISTER", self.cseq));
        // Behind a NAT the provider must be told the external address.
        let contact_ip =
            crate::features::nat::address_for(&e.config(), dest).unwrap_or(sock.advertised.ip());
        m.add_header(
            "Contact",
            format!(
                "<sip:{user}@{}:{}{tp}>",
                format_host(&contact_ip),
                sock.advertised.port()
            ),
        );
        m.add_header("Expires", expires.to_string());
        if let Some((name, value)) = auth {
            m.add_header(name, value.clone());
        }
        m.add_header("User-Agent", "besip-pbxd".into());
        m
    }

    /// Sends `req` (retransmitting over UDP, RFC 3261 §17.1.2) and waits for
    /// its final response; None after Timer F.
    async fn exchange(&mut self, req: Message, dest: std::net::SocketAddr) -> Option<Message> {
        let bytes = req.to_bytes();
        let transport = self.trunk.transport;
        let deadline = tokio::time::Instant::now() + TX_TIMEOUT;
        let mut interval = T1;
        let mut next = tokio::time::Instant::now() + interval;
        let mut proceeding = false;
        self.engine.send(transport, dest, bytes.clone());
        loop {
            let until = if transport == Transport::Udp && !proceeding {
                next.min(deadline)
            } else {
                deadline
            };
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(resp)) => {
                    if resp.cseq().map(|c| c.0) != Some(self.cseq) {
                        continue; // a late answer to an earlier attempt
                    }
                    match resp.status() {
                        Some(c) if c >= 200 => return Some(resp),
                        _ => proceeding = true,
                    }
                }
                Ok(None) => return None,
                Err(_) if tokio::time::Instant::now() >= deadline => return None,
                Err(_) => {
                    self.engine.send(transport, dest, bytes.clone());
                    interval = (interval * 2).min(T2);
                    next = tokio::time::Instant::now() + interval;
                }
            }
        }
    }
}

/// The lifetime the registrar granted: our Contact's expires parameter, else
/// the Expires header, else what we asked for (RFC 3261 §10.2.4).
fn granted(resp: &Message, asked: u32) -> u32 {
    let from_contact = resp
        .header_values("Contact")
        .iter()
        .find_map(|c| param(c, "expires").and_then(|v| v.trim().parse::<u32>().ok()));
    from_contact
        .or_else(|| {
            resp.header("Expires")
                .and_then(|v| v.trim().parse::<u32>().ok())
        })
        .unwrap_or(asked)
}

/// When to refresh a registration granted for `secs`: 30 s before it ends
/// for long ones, at half time for short ones.
fn refresh_after(secs: u32) -> Duration {
    let s = if secs >= 120 { secs - 30 } else { secs / 2 };
    Duration::from_secs(u64::from(s.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_before_expiry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3570));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(1), Duration::from_secs(1));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }

    #[test]
    fn granted_prefers_contact_expires() {
        let text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContact: <sip:a@127.0.0.1>;expires=120\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(text.as_bytes()).expect("parse");
        assert_eq!(granted(&m, 3600), 120);
        let text = text.replace(";expires=120", "");
        let m = Message::parse(text.as_bytes()).expect("parse");
        assert_eq!(granted(&m, 3600), 60);
    }
}
