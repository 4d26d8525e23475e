//! One NETCONF session over an SSH channel: hello exchange, framing, the
//! request loop, notifications (interleaved), idle timeout and kill-session.

use crate::base_notifications::{self, Rollback, RunningBefore, SessionParams, Termination};
use crate::framing::{encode, FrameError, FrameReader, Framing};
use crate::reply;
use crate::rpc;
use crate::server::{Counters, Group, Server, SessionEntry};
use crate::subscription::{self, Event, Subscription};
use besip_core::error::{ConfigError, ErrorTag, ErrorType};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

const BASE_1_0: &str = "urn:ietf:params:netconf:base:1.0";
const BASE_1_1: &str = "urn:ietf:params:netconf:base:1.1";
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

/// What a request handler may look at and change about its session.
pub struct SessionCtx {
    pub server: Arc<Server>,
    pub id: u32,
    pub user: String,
    pub group: Group,
    pub source_host: String,
    pub counters: Arc<Counters>,
    pub subscribed: bool,
    /// Set by create-subscription; the loop starts it after the reply.
    pub new_subscription: Option<Subscription>,
    /// `end_session` ran (it runs once).
    ended: bool,
}

impl SessionCtx {
    /// The context of one request of another protocol (RESTCONF): session
    /// id 0 (RFC 6470: not a NETCONF session), no locks, no subscription.
    pub fn request(server: Arc<Server>, user: String, group: Group, source_host: String) -> Self {
        SessionCtx {
            server,
            id: 0,
            user,
            group,
            source_host,
            counters: Arc::new(Counters::default()),
            subscribed: false,
            new_subscription: None,
            ended: true,
        }
    }
}

pub async fn run<S>(server: Arc<Server>, stream: S, user: String, group: Group, source_host: String)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, mut write_half) = tokio::io::split(stream);
    let counters = Arc::new(Counters::default());
    let kill = Arc::new(Notify::new());
    let killed_by = Arc::new(AtomicU32::new(0));
    let id = server.register(SessionEntry {
        user: user.clone(),
        group,
        source_host: source_host.clone(),
        login_time: besip_core::ipc::now_rfc3339(),
        counters: counters.clone(),
        kill: kill.clone(),
        killed_by: killed_by.clone(),
    });
    tracing::info!(session = id, user = %user, from = %source_host, "NETCONF session started");
    server.publish(&base_notifications::session_start(SessionParams {
        user: &user,
        session_id: id,
        source_host: &source_host,
    }));
    let mut ctx = SessionCtx {
        server: server.clone(),
        id,
        user,
        group,
        source_host,
        counters,
        subscribed: false,
        new_subscription: None,
        ended: false,
    };

    let (msg_tx, msg_rx) = mpsc::channel(4);
    let (mode_tx, mode_rx) = oneshot::channel();
    let limit = server.settings.max_message_size;
    let reader = tokio::spawn(read_messages(read_half, limit, msg_tx, mode_rx));
    let (termination, reason) = serve(&mut ctx, &mut write_half, msg_rx, mode_tx, kill).await;
    tracing::info!(session = id, reason, "NETCONF session ended");

    let killer = Some(killed_by.load(Ordering::Relaxed)).filter(|id| *id != 0);
    end_session(&mut ctx, termination, killer).await;
    let _ = write_half.shutdown().await;
    // Dropping both halves closes the SSH channel.
    reader.abort();
}

/// Release what the session holds: its locks and a non-persistent confirmed
/// commit (RFC 6241 §8.4.1; published as a cancel), and publish the session's
/// end. Runs once; before the close-session reply, so the client sees the
/// locks free (and the notifications published) once it has its `<ok/>`.
async fn end_session(ctx: &mut SessionCtx, reason: Termination, killed_by: Option<u32>) {
    if std::mem::replace(&mut ctx.ended, true) {
        return;
    }
    let (server, id) = (&ctx.server, ctx.id);
    {
        let mut store = server.store.lock().await;
        if store.confirm_session() == Some(id) {
            let before = RunningBefore::take(&store);
            let result = store.cancel_commit(None, &server.reloader).await;
            server.running_changed(&store);
            match result {
                Ok(_) => {
                    let changes = before.changes_to(&store);
                    drop(store);
                    base_notifications::publish_rollback(
                        server,
                        Rollback::Cancel(SessionParams::from(&*ctx)),
                        &changes,
                    );
                }
                Err(e) => {
                    tracing::error!(session = id, error = %e, "reverting the confirmed commit failed")
                }
            }
        }
    }
    server.unregister(id);
    server.publish(&base_notifications::session_end(
        SessionParams::from(&*ctx),
        reason,
        killed_by,
    ));
}

/// Reads the hello in end-of-message framing, then switches to what was negotiated.
async fn read_messages<R: AsyncRead + Unpin>(
    read_half: R,
    limit: usize,
    tx: mpsc::Sender<Result<String, FrameError>>,
    mode: oneshot::Receiver<Framing>,
) {
    let mut reader = FrameReader::new(read_half, limit);
    let first = reader.next_message().await;
    let failed = first.is_err();
    if tx.send(first).await.is_err() || failed {
        return;
    }
    match mode.await {
        Ok(framing) => reader.framing = framing,
        Err(_) => return,
    }
    loop {
        let message = reader.next_message().await;
        let stop = message.is_err();
        if tx.send(message).await.is_err() || stop {
            return;
        }
    }
}

async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, text: &str, framing: Framing) -> bool {
    let bytes = encode(text, framing);
    w.write_all(&bytes).await.is_ok() && w.flush().await.is_ok()
}

/// The request loop; returns why the session ended (RFC 6470 termination-reason, and for the log).
async fn serve<W: AsyncWrite + Unpin>(
    ctx: &mut SessionCtx,
    w: &mut W,
    mut rx: mpsc::Receiver<Result<String, FrameError>>,
    mode_tx: oneshot::Sender<Framing>,
    kill: Arc<Notify>,
) -> (Termination, &'static str) {
    if !write_message(w, &crate::state::hello(ctx.id), Framing::EndOfMessage).await {
        return (Termination::Dropped, "write failed");
    }
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, rx.recv()).await {
        Ok(Some(Ok(text))) => text,
        Ok(_) => return (Termination::Dropped, "closed before hello"),
        Err(_) => return (Termination::Timeout, "no hello in time"),
    };
    let framing = match client_framing(&hello, ctx.server.settings.max_message_elements) {
        Some(f) => f,
        None => {
            ctx.server
                .in_bad_hellos
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return (Termination::BadHello, "bad hello");
        }
    };
    let _ = mode_tx.send(framing);

    let idle = ctx.server.settings.idle_timeout;
    let mut live: Option<Live> = None;
    loop {
        let stop_wait = until_stop_time(&live);
        let idle_sleep = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = rx.recv() => {
                let text = match message {
                    Some(Ok(text)) => text,
                    Some(Err(FrameError::TooBig(limit))) => {
                        let e = ConfigError {
                            error_type: ErrorType::Rpc,
                            ..ConfigError::new(ErrorTag::TooBig, format!(
                                "the message is larger than the limit of {limit} bytes (besip-system netconf/max-message-size); the session is closed"))
                        };
                        write_message(w, &reply::errors("", &[e]), framing).await;
                        ctx.server.dropped_sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return (Termination::Other, "message too big");
                    }
                    Some(Err(FrameError::BadChunk(why))) => {
                        let e = ConfigError {
                            error_type: ErrorType::Rpc,
                            ..ConfigError::new(ErrorTag::MalformedMessage, format!("bad chunked framing: {why}; the session is closed"))
                        };
                        write_message(w, &reply::errors("", &[e]), framing).await;
                        return (Termination::Other, "bad framing");
                    }
                    Some(Err(_)) | None => return (Termination::Dropped, "client closed"),
                };
                let outcome = rpc::handle(ctx, &text).await;
                // Listen before replaying, so nothing falls between the two.
                let started = ctx
                    .new_subscription
                    .take()
                    .map(|s| (ctx.server.notifications.subscribe(), s));
                if outcome.close {
                    end_session(ctx, Termination::Closed, None).await;
                    write_message(w, &outcome.reply, framing).await;
                    return (Termination::Closed, "close-session");
                }
                if !write_message(w, &outcome.reply, framing).await {
                    return (Termination::Dropped, "write failed");
                }
                if let Some((receiver, subscription)) = started {
                    match start_subscription(ctx, w, framing, receiver, subscription).await {
                        Ok(started) => live = started,
                        Err(()) => return (Termination::Dropped, "write failed"),
                    }
                }
            }
            event = next_notification(&mut live) => {
                let Some(subscription) = live.as_ref() else { continue };
                if event.seq <= subscription.replayed_up_to {
                    continue; // already sent by the replay
                }
                if subscription.request.stop.is_some_and(|stop| event.time > stop) {
                    live = None;
                    if !write_message(w, &subscription::notification_complete(), framing).await {
                        return (Termination::Dropped, "write failed");
                    }
                    continue;
                }
                if !deliver(ctx, w, framing, &subscription.request, &event).await {
                    return (Termination::Dropped, "write failed");
                }
            }
            _ = stop_time_reached(stop_wait) => {
                live = None;
                if !write_message(w, &subscription::notification_complete(), framing).await {
                    return (Termination::Dropped, "write failed");
                }
            }
            _ = kill.notified() => return (Termination::Killed, "killed"),
            _ = idle_sleep => return (Termination::Timeout, "idle timeout"),
        }
    }
}

/// A subscription receiving live notifications.
struct Live {
    receiver: broadcast::Receiver<Arc<Event>>,
    request: Subscription,
    /// The newest event the replay sent (live copies of it are skipped).
    replayed_up_to: u64,
}

/// After the `<ok/>`: replay what was asked for, then `<replayComplete>`;
/// a stopTime already past ends the subscription at once. `Err`: the write failed.
async fn start_subscription<W: AsyncWrite + Unpin>(
    ctx: &SessionCtx,
    w: &mut W,
    framing: Framing,
    receiver: broadcast::Receiver<Arc<Event>>,
    request: Subscription,
) -> Result<Option<Live>, ()> {
    let mut replayed_up_to = 0;
    if let Some(start) = request.start {
        for event in ctx.server.replay.between(start, request.stop) {
            replayed_up_to = event.seq;
            if !deliver(ctx, w, framing, &request, &event).await {
                return Err(());
            }
        }
        if !write_message(w, &subscription::replay_complete(), framing).await {
            return Err(());
        }
        if request.stop.is_some_and(|stop| stop <= chrono::Utc::now()) {
            if !write_message(w, &subscription::notification_complete(), framing).await {
                return Err(());
            }
            return Ok(None);
        }
    }
    Ok(Some(Live {
        receiver,
        request,
        replayed_up_to,
    }))
}

/// Send one notification if the subscription's filter and NACM let it
/// through. `false`: the write failed.
async fn deliver<W: AsyncWrite + Unpin>(
    ctx: &SessionCtx,
    w: &mut W,
    framing: Framing,
    request: &Subscription,
    event: &Event,
) -> bool {
    if !request.selects(event) {
        return true;
    }
    if !crate::nacm_data::may_receive(&ctx.server.nacm_view(&ctx.user, ctx.group), &event.doc) {
        Counters::bump(&ctx.server.nacm_denied.notifications);
        return true;
    }
    Counters::bump(&ctx.counters.out_notifications);
    Counters::bump(&ctx.server.totals.out_notifications);
    write_message(w, &event.doc, framing).await
}

/// How long until a live subscription's stopTime (`None`: no end).
fn until_stop_time(live: &Option<Live>) -> Option<Duration> {
    let stop = live.as_ref()?.request.stop?;
    Some((stop - chrono::Utc::now()).to_std().unwrap_or_default())
}

async fn stop_time_reached(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

async fn next_notification(live: &mut Option<Live>) -> Arc<Event> {
    let Some(Live { receiver, .. }) = live else {
        return std::future::pending().await;
    };
    loop {
        match receiver.recv().await {
            Ok(event) => return event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "a slow subscriber missed notifications");
            }
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// The framing both sides support: chunked if the client speaks base:1.1.
fn client_framing(hello: &str, max_elements: usize) -> Option<Framing> {
    let roots = besip_core::xml::parse_limited(hello, max_elements).ok()?;
    let hello = roots
        .iter()
        .find(|r| r.name == "hello" && r.namespace == reply::BASE_NS)?;
    if hello.child("session-id").is_some() {
        return None; // a client must not send a session-id
    }
    let caps: Vec<&str> = hello
        .child("capabilities")?
        .children
        .iter()
        .map(|c| c.trimmed_text())
        .collect();
    if caps.contains(&BASE_1_1) {
        Some(Framing::Chunked)
    } else if caps.contains(&BASE_1_0) {
        Some(Framing::EndOfMessage)
    } else {
        None
    }
}
