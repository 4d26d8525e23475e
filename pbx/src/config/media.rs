//! /pbx/conference and /pbx/voicemail as the media services use them; the
//! runtime side is `features::media_service`.

use std::collections::HashMap;
use std::time::Duration;

use besip_core::model::pbx::{self as model, Pbx};

/// A conference room (/pbx/conference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub number: String,
    pub pin: Option<String>,
    pub admin_pin: Option<String>,
    pub max_participants: usize,
}

/// /pbx/voicemail, and the extensions with a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    pub mailbox_code: String,
    pub any_mailbox_code: String,
    pub max_message: Duration,
    pub max_messages: usize,
    pub retention: Duration,
    pub max_sessions: usize,
    /// Extension number → its PIN (None: no listening by phone).
    pub mailboxes: HashMap<String, Option<String>>,
    /// Extension number → the address its messages are mailed to.
    pub addresses: HashMap<String, String>,
    /// The mail server, when one is set.
    pub email: Option<Email>,
    /// Mailboxes whose phones get message counts without subscribing.
    pub unsolicited: std::collections::HashSet<String>,
}

/// How mail leaves the box (/pbx/voicemail/email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailSecurity {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub server: String,
    pub port: u16,
    pub security: MailSecurity,
    pub ca: Option<String>,
    pub credentials: Option<(String, String)>,
    pub from: String,
}

pub fn rooms(pbx: &Pbx) -> Result<HashMap<String, Room>, String> {
    let mut rooms = HashMap::new();
    for c in &pbx.conference {
        if c.pin.is_some() && c.pin == c.admin_pin {
            return Err(format!(
                "conference {}: pin and admin-pin must differ",
                c.number
            ));
        }
        if pbx.extension.iter().any(|e| e.number == c.number) {
            return Err(format!(
                "conference {}: an extension has the same number",
                c.number
            ));
        }
        rooms.insert(
            c.number.clone(),
            Room {
                number: c.number.clone(),
                pin: c.pin.clone(),
                admin_pin: c.admin_pin.clone(),
                max_participants: usize::from(c.max_participants),
            },
        );
    }
    Ok(rooms)
}

pub fn voicemail(pbx: &Pbx) -> Voicemail {
    let v = &pbx.voicemail;
    Voicemail {
        mailbox_code: v.mailbox_code.clone(),
        any_mailbox_code: v.any_mailbox_code.clone(),
        max_message: Duration::from_secs(u64::from(v.max_message_length)),
        max_messages: usize::from(v.max_messages),
        retention: Duration::from_secs(u64::from(v.retention) * 86_400),
        max_sessions: usize::from(v.max_sessions),
        mailboxes: pbx
            .extension
            .iter()
            .filter(|e| e.voicemail.enabled)
            .map(|e| (e.number.clone(), e.voicemail.pin.clone()))
            .collect(),
        addresses: pbx
            .extension
            .iter()
            .filter(|e| e.voicemail.enabled)
            .filter_map(|e| Some((e.number.clone(), e.voicemail.email.clone()?)))
            .collect(),
        unsolicited: pbx
            .extension
            .iter()
            .filter(|e| e.voicemail.enabled && e.voicemail.unsolicited_mwi)
            .map(|e| e.number.clone())
            .collect(),
        email: v.email.server.as_ref().map(|server| Email {
            server: server.clone(),
            port: v.email.port,
            security: match v.email.security {
                model::VoicemailEmailSecurity::Starttls => MailSecurity::StartTls,
                model::VoicemailEmailSecurity::Tls => MailSecurity::Tls,
                model::VoicemailEmailSecurity::None => MailSecurity::None,
            },
            ca: v.email.ca_certificate.clone(),
            credentials: v
                .email
                .username
                .clone()
                .map(|u| (u, v.email.password.clone().unwrap_or_default())),
            from: v.email.from.clone(),
        }),
    }
}

/// /pbx/…/record-calls of an extension or route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RecordCalls {
    #[default]
    Never,
    OnDemand,
    Always,
}

impl From<model::RecordCalls> for RecordCalls {
    fn from(r: model::RecordCalls) -> Self {
        match r {
            model::RecordCalls::Never => RecordCalls::Never,
            model::RecordCalls::OnDemand => RecordCalls::OnDemand,
            model::RecordCalls::Always => RecordCalls::Always,
        }
    }
}

/// /pbx/recording, and the extensions whose calls are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub retention: Duration,
    pub max_recordings: usize,
    pub max_length: Duration,
    /// Extensions recorded always.
    pub extensions: std::collections::HashSet<String>,
    /// Extensions recorded while a party keyed `toggle_code`.
    pub on_demand: std::collections::HashSet<String>,
    pub toggle_code: String,
}

pub fn recording(pbx: &Pbx) -> Recording {
    let r = &pbx.recording;
    Recording {
        retention: Duration::from_secs(u64::from(r.retention) * 86_400),
        max_recordings: r.max_recordings as usize,
        max_length: Duration::from_secs(u64::from(r.max_length)),
        extensions: pbx
            .extension
            .iter()
            .filter(|e| e.record_calls == model::RecordCalls::Always)
            .map(|e| e.number.clone())
            .collect(),
        on_demand: pbx
            .extension
            .iter()
            .filter(|e| e.record_calls == model::RecordCalls::OnDemand)
            .map(|e| e.number.clone())
            .collect(),
        toggle_code: r.toggle_code.clone(),
    }
}

/// /pbx/prompt-recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRecording {
    pub code: String,
    pub extensions: std::collections::HashSet<String>,
}

pub fn prompt_recording(pbx: &Pbx) -> PromptRecording {
    PromptRecording {
        code: pbx.prompt_recording.code.clone(),
        extensions: pbx.prompt_recording.extension.iter().cloned().collect(),
    }
}

/// /pbx/music-on-hold when enabled: the prompt played.
pub fn music_on_hold(pbx: &Pbx) -> Option<String> {
    pbx.music_on_hold
        .enabled
        .then(|| pbx.music_on_hold.prompt.clone())
}
