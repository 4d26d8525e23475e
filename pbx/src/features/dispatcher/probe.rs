//! OPTIONS probing of dispatcher destinations (like Kamailio's ds_ping_interval):
//! each set with probing on gets one OPTIONS per destination every
//! probe-interval; no answer (or a 5xx) marks the destination down, any
//! other final answer up. A destination by name is probed at each of its
//! DNS targets and is up while one answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{initial, Destination, Health, SetConfig, RUNTIME};
use crate::features::state::Engine;
use crate::sip::{format_host, Message};

/// Probes every destination of every set with probing on, each probe-interval;
/// follows reloads (the configuration is read at each tick).
pub async fn prober(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let cfg = engine.config();
        if cfg.dispatcher_sets.is_empty() {
            continue;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut rt = RUNTIME.lock();
            // Forget sets and destinations a reload removed.
            rt.dests.retain(|(s, u), _| {
                cfg.dispatcher_sets
                    .get(s)
                    .is_some_and(|set| set.destinations.iter().any(|d| &d.uri == u))
            });
            for set in cfg.dispatcher_sets.values() {
                if !set.probing {
                    // Up, unless a failed call marked it down for a while.
                    for d in &set.destinations {
                        if let Some(s) = rt.dests.get_mut(&(set.name.clone(), d.uri.clone())) {
                            if s.down_until.is_none_or(|t| t <= now) {
                                s.health = Health::Up;
                                s.down_until = None;
                            }
                        }
                    }
                    continue;
                }
                let every = Duration::from_secs(set.probe_interval);
                if rt
                    .last_probe
                    .get(&set.name)
                    .is_some_and(|t| now < *t + every)
                {
                    continue;
                }
                rt.last_probe.insert(set.name.clone(), now);
                due.extend(set.destinations.iter().map(|d| (set.clone(), d.clone())));
            }
        }
        for (set, d) in due {
            let addrs = super::names::probe_addresses(&engine, &set, &d);
            if addrs.is_empty() {
                // A name not (yet) resolved: it gets no calls anyway, and
                // its DNS state says why; no probe result to keep.
                continue;
            }
            tokio::spawn(async move {
                let wait = Duration::from_secs(set.probe_interval.clamp(1, 5));
                let result = probe_any(&addrs, wait).await;
                record(&set, &d, result);
            });
        }
    }
}

pub(super) fn record(set: &SetConfig, d: &Destination, result: Result<(u16, String), String>) {
    let (health, text) = match result {
        Ok((code, line)) if code >= 500 => (Health::Down, line),
        Ok((_, line)) => (Health::Up, line),
        Err(why) => (Health::Down, why),
    };
    let mut rt = RUNTIME.lock();
    let s = rt
        .dests
        .entry((set.name.clone(), d.uri.clone()))
        .or_insert_with(|| initial(set));
    if s.health != health {
        tracing::info!(set = %set.name, uri = %d.uri, result = %text, up = health == Health::Up, "dispatcher destination changed state");
    }
    s.health = health;
    s.down_until = None;
    s.last_probe = Some(text);
}

/// What one probe found: the final status and its line, or why none came.
type ProbeResult = Result<(u16, String), String>;

/// Probes every address at once (a destination by name: its DNS targets):
/// the first answer below 500, else the first address's result.
async fn probe_any(addrs: &[SocketAddr], wait: Duration) -> ProbeResult {
    let mut probes = tokio::task::JoinSet::new();
    for (i, addr) in addrs.iter().copied().enumerate() {
        probes.spawn(async move { (i, probe(addr, wait).await) });
    }
    let mut first: Option<(usize, ProbeResult)> = None;
    while let Some(done) = probes.join_next().await {
        let Ok((i, result)) = done else { continue };
        if matches!(result, Ok((code, _)) if code < 500) {
            return result;
        }
        if first.as_ref().is_none_or(|(j, _)| i < *j) {
            first = Some((i, result));
        }
    }
    first.map_or_else(|| Err("error: nothing to probe".into()), |(_, r)| r)
}

/// One OPTIONS over UDP from an ephemeral socket: the final status, or why not.
async fn probe(dest: SocketAddr, wait: Duration) -> Result<(u16, String), String> {
    let bind: SocketAddr = match dest.ip() {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("error: {e}"))?;
    sock.connect(dest)
        .await
        .map_err(|e| format!("error: {e}"))?;
    let me = sock.local_addr().map_err(|e| format!("error: {e}"))?;
    let id: u64 = rand::random();
    let (host, dhost) = (format_host(&me.ip()), format_host(&dest.ip()));
    let req = format!(
        "OPTIONS sip:{dhost}:{dp} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{mp};branch=z9hG4bKdsp{id:x};rport\r\nMax-Forwards: 70\r\nFrom: <sip:dispatcher@{host}>;tag={id:x}\r\nTo: <sip:{dhost}:{dp}>\r\nCall-ID: dsp{id:x}@{host}\r\nCSeq: 1 OPTIONS\r\nUser-Agent: besip-pbxd\r\nContent-Length: 0\r\n\r\n",
        dp = dest.port(),
        mp = me.port()
    );
    let end = Instant::now() + wait;
    let mut resend = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        if Instant::now() >= resend {
            let _ = sock.send(req.as_bytes()).await;
            resend = Instant::now() + Duration::from_millis(500);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timeout".into());
        }
        let slice = left.min(resend.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(slice, sock.recv(&mut buf)).await {
            Err(_) => {}
            // ICMP port unreachable on a connected socket.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err("unreachable".into())
            }
            Ok(Err(e)) => return Err(format!("error: {e}")),
            Ok(Ok(n)) => {
                let Ok(msg) = Message::parse(&buf[..n]) else {
                    continue;
                };
                if msg.call_id() != format!("dsp{id:x}@{host}") {
                    continue;
                }
                match msg.status() {
                    Some(code) if code >= 200 => {
                        let line = String::from_utf8_lossy(&buf[..n]);
                        let line = line.lines().next().unwrap_or("");
                        let text = line.strip_prefix("SIP/2.0 ").unwrap_or(line);
                        return Ok((code, text.to_owned()));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP socket on loopback that answers every request with `status`
    /// (None: never answers).
    async fn peer(status: Option<&'static str>) -> SocketAddr {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = sock.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let (Some(status), Ok(req)) = (status, Message::parse(&buf[..n])) else {
                    continue;
                };
                let mut resp = String::from("SIP/2.0 ") + status + "\r\n";
                for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    resp += &format!("{name}: {}\r\n", req.header(name).unwrap_or(""));
                }
                resp += "Content-Length: 0\r\n\r\n";
                let _ = sock.send_to(resp.as_bytes(), from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_name_is_up_while_one_of_its_targets_answers() {
        let (silent, busy, ok) = (
            peer(None).await,
            peer(Some("503 Busy")).await,
            peer(Some("200 OK")).await,
        );
        let wait = Duration::from_millis(600);
        assert_eq!(
            probe_any(&[silent, busy, ok], wait).await,
            Ok((200, "200 OK".into()))
        );
        // None up: the first target's result.
        assert_eq!(
            probe_any(&[busy, silent], wait).await,
            Ok((503, "503 Busy".into()))
        );
        assert_eq!(
            probe_any(&[silent, busy], wait).await,
            Err("timeout".into())
        );
    }
}
