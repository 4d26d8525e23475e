//! RESTCONF requests run through the NETCONF operations of this server
//! (`ops`, `nacm_ops`, `modrpc`): one datastore, one set of locks, one
//! commit history and one access control for both protocols.

use crate::base_notifications::{self, SessionParams};
use crate::nacm_ops::{check_admin_data_kept, check_edit_rules, exec_denied, may_edit};
use crate::reply::BASE_NS;
use crate::rpc::Answer;
use crate::server::{lock, Counters, Group, Server};
use crate::session::SessionCtx;
use crate::{ops, users};
use besip_core::datastore::{CommitOptions, TestOption};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::error::{ConfigError, ErrorTag, ErrorType};
use besip_core::xml::Element;
use besip_restconf::backend::{Refusal, Settings};
use besip_restconf::{Backend, Principal, Replay, Reply, Version};
use futures::stream::BoxStream;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::broadcast;

pub struct RestconfBackend(pub Arc<Server>);

/// A hash of a password nobody has (made once, on the first login).
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| besip_core::password::hash(&besip_core::password::random_password()).ok())
        .as_deref()
}

impl RestconfBackend {
    fn ctx(&self, who: &Principal) -> SessionCtx {
        SessionCtx::request(
            self.0.clone(),
            who.user.clone(),
            who.group,
            who.source.to_string(),
        )
    }

    /// The `/nacm` denied counters, as `rpc::handle` keeps them for NETCONF.
    fn count_denied(&self, errors: &[ConfigError]) {
        if let Some(e) = errors.iter().find(|e| e.tag == ErrorTag::AccessDenied) {
            let counter = if e.error_type == ErrorType::Application {
                &self.0.nacm_denied.data_writes
            } else {
                &self.0.nacm_denied.operations
            };
            Counters::bump(counter);
        }
    }
}

fn in_use(message: &str) -> Vec<ConfigError> {
    vec![ConfigError::protocol(ErrorTag::InUse, message)]
}

impl Backend for RestconfBackend {
    async fn check_password(
        &self,
        user: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<Group, Refusal> {
        let server = &self.0;
        let attempt = server
            .login_throttle
            .begin(source, user)
            .map_err(Refusal::Throttled)?;
        let found = {
            let store = server.store.lock().await;
            users::find_user(&store, user)
        };
        // An unknown user (or one without a password) costs the same hash
        // as a known one: the answer's timing does not tell which names
        // exist (the web administration's login form goes through here).
        let known = found.as_ref().and_then(|f| f.password_hash.clone());
        let hash = known
            .clone()
            .unwrap_or_else(|| dummy_hash().unwrap_or_default().to_owned());
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || besip_core::password::verify(&hash, &password))
                .await
                .unwrap_or(false);
        let Some(found) = found.filter(|_| known.is_some() && matches) else {
            tracing::info!(user, peer = %source, "RESTCONF login refused: unknown user or wrong password");
            return Err(Refusal::Wrong);
        };
        server.login_throttle.succeeded(attempt);
        crate::protect::protect_login_source(server, Some(std::net::SocketAddr::new(source, 0)));
        tracing::info!(user, peer = %source, "RESTCONF login");
        Ok(found.group)
    }

    async fn user_group(&self, user: &str) -> Option<Group> {
        let store = self.0.store.lock().await;
        users::group_of(&store, user)
    }

    async fn operation(&self, who: &Principal, op: Element) -> Result<Reply, Vec<ConfigError>> {
        let mut ctx = self.ctx(who);
        Counters::bump(&self.0.totals.in_rpcs);
        let rpc = Element::new(BASE_NS, "rpc");
        let result = ops::dispatch(&mut ctx, &rpc, &op).await;
        match result {
            Ok(Answer::Ok) | Ok(Answer::Close) => Ok(Reply::Ok),
            Ok(Answer::Data(d)) => Ok(Reply::Data(d)),
            Ok(Answer::Body(b)) => Ok(Reply::Body(b)),
            Err(errors) => {
                Counters::bump(&self.0.totals.out_rpc_errors);
                self.count_denied(&errors);
                Err(errors)
            }
        }
    }

    async fn edit_running(
        &self,
        who: &Principal,
        config: Vec<Element>,
    ) -> Result<(), Vec<ConfigError>> {
        let result = self.edit_and_commit(who, config).await;
        if let Err(errors) = &result {
            self.count_denied(errors);
        }
        result
    }

    fn version(&self) -> Version {
        *self.0.running_version.borrow()
    }

    fn watch_running(&self) -> tokio::sync::watch::Receiver<Version> {
        self.0.running_version.subscribe()
    }

    async fn settings(&self) -> Settings {
        let store = self.0.store.lock().await;
        users::restconf_settings(&store)
    }

    fn max_body(&self) -> usize {
        self.0.settings.max_message_size
    }

    async fn confirm_deadline(&self) -> Option<std::time::Instant> {
        self.0.store.lock().await.confirm_deadline()
    }

    fn notifications(&self, who: &Principal, replay: Option<Replay>) -> BoxStream<'static, String> {
        let server = self.0.clone();
        // Listen before replaying, so nothing falls between the two.
        let receiver = server.notifications.subscribe();
        let backlog: VecDeque<_> = replay
            .map(|r| server.replay.between(r.start, r.stop).into())
            .unwrap_or_default();
        let feed = Feed {
            replayed_up_to: backlog.back().map_or(0, |e| e.seq),
            backlog,
            stop: replay.and_then(|r| r.stop),
            phase: match replay {
                Some(_) => Phase::Replaying,
                None => Phase::Live,
            },
            receiver,
            server,
            user: who.user.clone(),
            group: who.group,
        };
        Box::pin(futures::stream::unfold(feed, |mut feed| async move {
            let doc = feed.next().await?;
            Some((doc, feed))
        }))
    }
}

/// One RESTCONF event stream: the replayed backlog, then live events up
/// to the stop time, as NETCONF's subscriptions (session.rs) have them.
struct Feed {
    server: Arc<Server>,
    receiver: broadcast::Receiver<Arc<crate::subscription::Event>>,
    user: String,
    group: Group,
    backlog: VecDeque<Arc<crate::subscription::Event>>,
    /// The newest event the replay sends (live copies of it are skipped).
    replayed_up_to: u64,
    stop: Option<chrono::DateTime<chrono::Utc>>,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Replaying,
    Live,
    /// The stop time passed: `<notificationComplete>` is all that is left.
    Ending,
    Done,
}

impl Feed {
    /// May the stream's user receive `doc` (NACM)? Counts either way.
    fn may_receive(&self, doc: &str) -> bool {
        let view = self.server.nacm_view(&self.user, self.group);
        if !crate::nacm_data::may_receive(&view, doc) {
            Counters::bump(&self.server.nacm_denied.notifications);
            return false;
        }
        Counters::bump(&self.server.totals.out_notifications);
        true
    }

    async fn next(&mut self) -> Option<String> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Ending => {
                    self.phase = Phase::Done;
                    return Some(crate::subscription::notification_complete());
                }
                Phase::Replaying => {
                    if let Some(event) = self.backlog.pop_front() {
                        if self.may_receive(&event.doc) {
                            return Some(event.doc.clone());
                        }
                        continue;
                    }
                    let over = self.stop.is_some_and(|stop| stop <= chrono::Utc::now());
                    self.phase = if over { Phase::Ending } else { Phase::Live };
                    return Some(crate::subscription::replay_complete());
                }
                Phase::Live => {
                    let until_stop = self
                        .stop
                        .map(|stop| (stop - chrono::Utc::now()).to_std().unwrap_or_default());
                    let stop_reached = async {
                        match until_stop {
                            Some(wait) => tokio::time::sleep(wait).await,
                            None => std::future::pending().await,
                        }
                    };
                    let received = tokio::select! {
                        r = self.receiver.recv() => r,
                        _ = stop_reached => {
                            self.phase = Phase::Ending;
                            continue;
                        }
                    };
                    match received {
                        Ok(event) if event.seq <= self.replayed_up_to => {}
                        Ok(event) if self.stop.is_some_and(|stop| event.time > stop) => {
                            self.phase = Phase::Ending;
                        }
                        Ok(event) => {
                            if self.may_receive(&event.doc) {
                                return Some(event.doc.clone());
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(
                                missed = n,
                                "a slow RESTCONF event stream missed notifications"
                            );
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        }
    }
}

impl RestconfBackend {
    /// RFC 8040 §1.4 on a :candidate server: the edit goes to the candidate
    /// and is committed at once, all under the datastore lock, so nothing
    /// of anyone else can ride along.
    async fn edit_and_commit(
        &self,
        who: &Principal,
        config: Vec<Element>,
    ) -> Result<(), Vec<ConfigError>> {
        let server = &self.0;
        let ctx = self.ctx(who);
        let view = server.nacm_view(&ctx.user, ctx.group);
        for op in ["edit-config", "commit"] {
            if !view.may_exec("ietf-netconf", op) {
                return Err(exec_denied(op));
            }
        }
        if !view.active() {
            may_edit(&ctx, &config)?;
        }
        {
            let locks = lock(&server.locks);
            if let Some((holder, _)) = locks.candidate.as_ref().or(locks.running.as_ref()) {
                return Err(vec![ConfigError::protocol(
                    ErrorTag::InUse,
                    format!("the configuration is locked by NETCONF session {holder}"),
                )
                .with_info("session-id", holder.to_string())]);
            }
        }
        let outcome = {
            let mut store = server.store.lock().await;
            if store.candidate_modified() {
                return Err(in_use(
                    "the candidate holds uncommitted changes (of a NETCONF session or the RESTCONF candidate datastore): commit or discard them first",
                ));
            }
            if store.confirm_pending() {
                return Err(in_use(
                    "a confirmed commit is waiting for its confirmation: confirm or cancel it first",
                ));
            }
            let (op, err) = (DefaultOperation::Merge, ErrorOption::StopOnError);
            if view.active() {
                check_edit_rules(&view, &store, &config, op, err)?;
            } else {
                check_admin_data_kept(&ctx, &store, &config, op, err)?;
            }
            if let Err(e) = store.edit_candidate(&config, op, err, TestOption::TestThenSet) {
                let _ = store.discard_changes();
                return Err(e.0);
            }
            let options = CommitOptions {
                user: ctx.user.clone(),
                comment: "RESTCONF".into(),
                ..Default::default()
            };
            let started = std::time::Instant::now();
            let outcome = store.commit(options, &server.reloader).await;
            server.commits.record(outcome.is_ok(), started.elapsed());
            match outcome {
                Ok(o) => {
                    server.running_changed(&store);
                    o
                }
                Err(e) => {
                    let _ = store.discard_changes();
                    return Err(e.0);
                }
            }
        };
        let by = SessionParams::from(&ctx);
        if outcome.id.is_some() {
            server.publish(&base_notifications::config_change(
                Some(by),
                &outcome.changes,
            ));
        }
        Ok(())
    }
}

/// Serve RESTCONF and the web administration for `server`: at `fixed`
/// addresses, or as besip-system `restconf` says (followed after each commit).
pub async fn serve(server: Arc<Server>, fixed: Vec<std::net::SocketAddr>) -> Result<(), String> {
    let etc = server.layout.etc_dir();
    let _ = server.restconf_fixed.set(fixed.clone());
    let backend = Arc::new(RestconfBackend(server));
    // The web administration (besip-web) on the same HTTPS port, through
    // the same backend: one NACM, candidate, lock set and history.
    let web = besip_web::router(backend.clone());
    besip_restconf::listen::spawn_with(backend, etc, fixed, web).await
}
