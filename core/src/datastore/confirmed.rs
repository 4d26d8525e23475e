//! Confirmed commits (RFC 6241 §8.4): the backup of the configuration before
//! the first confirmed commit (kept in a file, so a restart reverts an
//! unconfirmed commit), the deadline, confirming, extending, cancelling and
//! reverting on timeout. Each step reports a `ConfirmEvent` in the
//! `CommitOutcome`, which the server turns into RFC 6470
//! `netconf-confirmed-commit` notifications.

use super::{CommitOptions, CommitOutcome, Confirmed, Datastore, Source, WithDefaults};
use crate::error::{ConfigError, ConfigErrors, ErrorTag};
use crate::persist::write_atomically;
use crate::reload::Reloader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a commit or cancel did to the confirmed commit (RFC 6470
/// `confirm-event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmEvent {
    /// A confirmed commit began; it reverts after `timeout` unless confirmed.
    Started { timeout: Duration },
    /// A confirmed commit while one was pending: new deadline `timeout` from now.
    Extended { timeout: Duration },
    /// A confirming commit: the pending commit stays.
    Completed,
    /// `<cancel-commit>` or the end of the owning session: running went back.
    Cancelled,
    /// The deadline passed: running went back.
    TimedOut,
}

struct PendingConfirm {
    backup_xml: String,
    deadline: Instant,
    persist: Option<String>,
    session_id: Option<u32>,
}

/// The pending confirmed commit, if any.
#[derive(Default)]
pub(super) struct ConfirmState {
    pending: Option<PendingConfirm>,
}

/// The configuration to go back to, on disk while a confirmed commit is pending.
pub(super) fn backup_path(layout: &crate::paths::Layout) -> PathBuf {
    layout.etc_dir().join("running.xml.unconfirmed-backup")
}

impl ConfirmState {
    /// Refuse a commit that may not confirm the pending persistent one.
    fn check_may_commit(&self, options: &CommitOptions) -> Result<(), ConfigError> {
        match &self.pending {
            Some(pending)
                if pending.persist.is_some()
                    && options.confirmed.is_none()
                    && pending.persist != options.persist_id =>
            {
                Err(ConfigError::protocol(
                    ErrorTag::InvalidValue,
                    "a persistent confirmed commit is pending: confirm it with the matching persist-id",
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Datastore {
    /// Commit the candidate: validate, persist running.xml, render UCI,
    /// hand the changed packages to their daemons (two-phase), record
    /// history. All or nothing: a refusal leaves running as it was.
    /// With `options.confirmed` the commit reverts unless confirmed in time.
    pub async fn commit<R: Reloader>(
        &mut self,
        options: CommitOptions,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        self.confirm.check_may_commit(&options)?;
        let was_pending = self.confirm.pending.is_some();
        let previous_xml = if !was_pending && options.confirmed.is_some() {
            Some(self.print(Source::Running, WithDefaults::Explicit))
        } else {
            None
        };
        let mut outcome = self.apply_candidate(&options, reloader).await?;
        outcome.confirmed_pending = was_pending;
        outcome.confirm_event = match options.confirmed {
            Some(confirmed) => {
                Some(self.begin_confirmed(confirmed, options.session_id, previous_xml)?)
            }
            None if self.confirm.pending.take().is_some() => {
                let _ = std::fs::remove_file(backup_path(&self.layout));
                Some(ConfirmEvent::Completed)
            }
            None => None,
        };
        Ok(outcome)
    }

    /// A new confirmed commit, or one extending a pending one (which keeps
    /// the first backup).
    fn begin_confirmed(
        &mut self,
        confirmed: Confirmed,
        session_id: Option<u32>,
        previous_xml: Option<String>,
    ) -> Result<ConfirmEvent, ConfigError> {
        let extended = self.confirm.pending.take();
        let event = match extended {
            Some(_) => ConfirmEvent::Extended {
                timeout: confirmed.timeout,
            },
            None => ConfirmEvent::Started {
                timeout: confirmed.timeout,
            },
        };
        let backup_xml = match (previous_xml, extended) {
            (Some(backup), _) => backup,
            (None, Some(pending)) => pending.backup_xml,
            (None, None) => self.print(Source::Running, WithDefaults::Explicit),
        };
        let path = backup_path(&self.layout);
        write_atomically(&path, backup_xml.as_bytes()).map_err(|e| {
            ConfigError::new(
                ErrorTag::OperationFailed,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        self.confirm.pending = Some(PendingConfirm {
            backup_xml,
            deadline: Instant::now() + confirmed.timeout,
            persist: confirmed.persist,
            session_id,
        });
        Ok(event)
    }

    /// Is a confirmed commit waiting for its confirmation?
    pub fn confirm_pending(&self) -> bool {
        self.confirm.pending.is_some()
    }

    pub fn confirm_deadline(&self) -> Option<Instant> {
        self.confirm.pending.as_ref().map(|p| p.deadline)
    }

    /// The session a non-persistent pending confirmed commit belongs to.
    pub fn confirm_session(&self) -> Option<u32> {
        self.confirm
            .pending
            .as_ref()
            .filter(|p| p.persist.is_none())
            .and_then(|p| p.session_id)
    }

    /// `<cancel-commit>` (or the end of the owning session): go back to the
    /// configuration before the confirmed commit. Uncommitted candidate
    /// changes are dropped. The outcome's event is `Cancelled`.
    pub async fn cancel_commit<R: Reloader>(
        &mut self,
        persist_id: Option<&str>,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        self.revert_confirmed(persist_id, ConfirmEvent::Cancelled, reloader)
            .await
    }

    /// Revert the pending confirmed commit if its time is up (the outcome's
    /// event is `TimedOut`).
    pub async fn revert_if_expired<R: Reloader>(
        &mut self,
        now: Instant,
        reloader: &R,
    ) -> Option<Result<CommitOutcome, ConfigErrors>> {
        let pending = self.confirm.pending.as_ref()?;
        if now < pending.deadline {
            return None;
        }
        let persist = pending.persist.clone();
        Some(
            self.revert_confirmed(persist.as_deref(), ConfirmEvent::TimedOut, reloader)
                .await,
        )
    }

    async fn revert_confirmed<R: Reloader>(
        &mut self,
        persist_id: Option<&str>,
        event: ConfirmEvent,
        reloader: &R,
    ) -> Result<CommitOutcome, ConfigErrors> {
        let Some(pending) = &self.confirm.pending else {
            return Err(ConfigError::protocol(
                ErrorTag::OperationFailed,
                "no confirmed commit is pending",
            )
            .into());
        };
        if pending.persist.is_some() && pending.persist.as_deref() != persist_id {
            return Err(ConfigError::protocol(
                ErrorTag::InvalidValue,
                "persist-id does not match the pending confirmed commit",
            )
            .into());
        }
        let backup = pending.backup_xml.clone();
        self.candidate =
            super::parse_config_tree(self.schema, &backup).map_err(ConfigErrors::from)?;
        self.edits.replaced_wholesale(super::candidate::ALL_MODULES);
        let options = CommitOptions {
            user: "system".into(),
            comment: "confirmed commit reverted".into(),
            ..Default::default()
        };
        let mut outcome = self.apply_candidate(&options, reloader).await?;
        self.confirm.pending = None;
        let _ = std::fs::remove_file(backup_path(&self.layout));
        outcome.confirm_event = Some(event);
        Ok(outcome)
    }
}
