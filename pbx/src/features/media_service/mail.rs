//! Voicemail to e-mail: each new message of a mailbox with an address is
//! mailed with its WAV attached, by the box itself over SMTP (lettre, on
//! tokio with rustls): STARTTLS by default, the server's certificate
//! checked against the configured CA or the system store, AUTH when a
//! user is set. A message is tried three times; one that cannot be
//! delivered is counted, kept in the state with the error, and raises the
//! notification voicemail-email-failed (a missing mail path is the most
//! reported voicemail failure: it must show).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use besip_core::ipc::Notifier;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::voicemail::Note;
use crate::config::media::{Email, MailSecurity};
use crate::features::state::Engine;

/// Waits before the second and third tries.
const RETRIES: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(10)];
/// One SMTP conversation at most this long.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Default)]
pub struct Mailer {
    sent: AtomicU64,
    failed: AtomicU64,
    last_failure: Mutex<Option<(String, String)>>,
    notifier: OnceLock<Notifier>,
}

impl Mailer {
    pub fn set_notifier(&self, n: Notifier) {
        let _ = self.notifier.set(n);
    }

    /// /pbx/voicemail-state/email-delivery.
    pub fn state_json(&self) -> Value {
        let mut v = json!({
            "sent": self.sent.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
        });
        if let Some((when, error)) = self.last_failure.lock().clone() {
            v["last-error"] = json!(error);
            v["last-failure"] = json!(when);
        }
        v
    }
}

/// Mails message `id` of `mailbox` if the mailbox has an address and a
/// mail server is set; runs in the background.
pub fn message_left(engine: &Arc<Engine>, mailbox: &str, id: &str, note: &Note, wav: Vec<u8>) {
    let cfg = engine.config();
    let (Some(email), Some(to)) = (
        cfg.voicemail.email.clone(),
        cfg.voicemail.addresses.get(mailbox),
    ) else {
        return;
    };
    let mail = match compose(&email, to, mailbox, id, note, wav) {
        Ok(m) => m,
        Err(e) => return failed(engine, mailbox, id, e),
    };
    let engine = engine.clone();
    let (mailbox, id) = (mailbox.to_owned(), id.to_owned());
    tokio::spawn(async move {
        let mut last = String::new();
        for attempt in 0..=RETRIES.len() {
            if attempt > 0 {
                tokio::time::sleep(RETRIES[attempt - 1]).await;
            }
            match send(&email, &mail).await {
                Ok(()) => {
                    engine.media().mailer.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(mailbox, id, attempt, "voicemail mailed");
                    return;
                }
                Err(e) => {
                    tracing::info!(mailbox, id, attempt, error = %e, "voicemail mail not delivered yet");
                    last = e;
                }
            }
        }
        failed(&engine, &mailbox, &id, last);
    });
}

fn failed(engine: &Engine, mailbox: &str, id: &str, error: String) {
    let m = &engine.media().mailer;
    m.failed.fetch_add(1, Ordering::Relaxed);
    let when = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    *m.last_failure.lock() = Some((when, error.clone()));
    tracing::warn!(mailbox, id, %error, "voicemail could not be mailed");
    if let Some(n) = m.notifier.get() {
        n.notify(
            "besip-pbx:voicemail-email-failed",
            json!({ "mailbox": mailbox, "message": id, "error": error }),
        );
    }
}

fn compose(
    email: &Email,
    to: &str,
    mailbox: &str,
    id: &str,
    note: &Note,
    wav: Vec<u8>,
) -> Result<Message, String> {
    let from: Mailbox = email
        .from
        .parse()
        .map_err(|e| format!("from address: {e}"))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("address of {mailbox}: {e}"))?;
    let seconds = note.duration.div_ceil(1000);
    let text = format!(
        "A new voicemail message for {mailbox}.\n\nFrom: {}\nReceived: {}\nLength: {seconds} s\n\nThe recording is attached ({id}.wav).\n",
        note.caller, note.received
    );
    let wav_type = ContentType::parse("audio/wav").map_err(|e| format!("content type: {e}"))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("New voicemail from {} ({seconds} s)", note.caller))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(text))
                .singlepart(Attachment::new(format!("{id}.wav")).body(wav, wav_type)),
        )
        .map_err(|e| format!("cannot build the mail: {e}"))
}

async fn send(email: &Email, mail: &Message) -> Result<(), String> {
    let tls = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(email.server.clone());
        if let Some(pem) = &email.ca {
            let cert = Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("ca-certificate: {e}"))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| format!("TLS: {e}"))
    };
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(email.server.as_str())
            .port(email.port)
            .timeout(Some(TIMEOUT));
    builder = match email.security {
        MailSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
        MailSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
        MailSecurity::None => builder.tls(Tls::None),
    };
    if let Some((user, password)) = &email.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    builder
        .build()
        .send(mail.clone())
        .await
        .map(|_| ())
        .map_err(|e| {
            // The error's source chain says what the server or TLS refused.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(": ");
                    text.push_str(&more);
                }
                source = s.source();
            }
            text
        })
}
