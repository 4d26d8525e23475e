//! The state of the outbound registrations: one running task per trunk and
//! the inbox that hands responses to it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Trunk;
use crate::sip::Message;

#[derive(Debug, Clone, Default)]
pub struct Status {
    pub state: &'static str,
    pub registrar: String,
    /// Unix time the granted registration ends.
    pub expires_at: Option<u64>,
    pub last_response: Option<String>,
    pub registrations: u32,
    pub failures: u32,
}

pub(super) struct Running {
    pub(super) trunk: Trunk,
    pub(super) call_id: String,
    pub(super) stop: watch::Sender<bool>,
    pub(super) status: Arc<Mutex<Status>>,
    pub(super) task: JoinHandle<()>,
}

/// The registrations in progress, by trunk name.
#[derive(Default)]
pub struct Registrations {
    pub(super) running: Mutex<HashMap<String, Running>>,
    /// Call-ID -> the task waiting for responses.
    pub(super) inbox: Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>,
}
