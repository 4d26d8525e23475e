//! Calls the box answers itself: conference rooms and voicemail, in both
//! modes (the box is the far end, not a relay). A new INVITE routed to a
//! service (`Decision::Local`) is answered here with our SDP; the dialog's
//! later requests (ACK, BYE, re-INVITE, INFO keys) are taken here too, and
//! the service ends the call with BYE when it is done. The audio is the
//! `endpoint`'s; what is played and heard is the service's own module.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use besip_media::codec::Codec;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::call::client::send_request_tx;
use crate::config::{Config, Extension, Transport};
use crate::features::b2bua::{contact_for, Leg};
use crate::features::decision::Decision;
use crate::features::forwarding::Effective;
use crate::features::outbound::Origin;
use crate::features::state::Engine;
use crate::sip::{param, response_to, Message};

pub mod conference;
pub mod endpoint;
pub mod ivr;
pub mod mail;
pub mod moh;
pub mod mwi;
pub mod playback;
pub mod prompts;
pub mod recording;
pub mod sdp;
pub mod tones;
pub mod voicemail;

use self::endpoint::Endpoint;

/// The forwarding target that stands for the extension's own mailbox (no
/// configured value can be it: angle brackets are not in sip-target).
pub const TO_MAILBOX: &str = "<voicemail>";

/// A new call dialled to a room number or the mailbox code: answered
/// here for our extensions and trusted peers; strangers get 403.
pub fn dialled(cfg: &Config, user: &str, origin: &Origin) -> Option<Decision> {
    let service = if cfg.rooms.contains_key(user) {
        Service::Conference(user.to_owned())
    } else if let Some(menu) = cfg
        .ivrs
        .values()
        .find(|m| m.number.as_deref() == Some(user))
    {
        Service::Ivr(menu.name.clone())
    } else if user == cfg.voicemail.mailbox_code || user == cfg.voicemail.any_mailbox_code {
        match origin.extension() {
            Some(e) if user == cfg.voicemail.mailbox_code => Service::Listen(e.to_owned()),
            Some(_) => Service::ListenAny,
            None => {
                return Some(Decision::Reply(
                    403,
                    "Forbidden: Mailboxes Are For Our Extensions",
                    vec![],
                ))
            }
        }
    } else if let Some(number) = prompt_number(cfg, user) {
        match origin.extension() {
            Some(e) if cfg.prompt_recording.extensions.contains(e) => {
                Service::RecordPrompt(format!("recording-{number}"))
            }
            _ => {
                return Some(Decision::Reply(
                    403,
                    "Forbidden: Not Allowed To Record Prompts",
                    vec![],
                ))
            }
        }
    } else {
        return None;
    };
    Some(match origin {
        Origin::Stranger => {
            Decision::Reply(403, "Forbidden: Media Services Are For Our Users", vec![])
        }
        _ => Decision::Local(service),
    })
}

/// The prompt number of a dialled prompt-recording code (`*771` → `1`).
fn prompt_number<'a>(cfg: &Config, user: &'a str) -> Option<&'a str> {
    let number = user.strip_prefix(cfg.prompt_recording.code.as_str())?;
    (1..=3)
        .contains(&number.len())
        .then_some(number)
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// The forwarding of `ext` with its mailbox where nothing else is set:
/// busy (and do-not-disturb), no answer, unavailable.
pub fn with_mailbox(cfg: &Config, ext: &Extension, mut settings: Effective) -> Effective {
    if cfg.voicemail.mailboxes.contains_key(&ext.number) {
        for slot in [
            &mut settings.busy,
            &mut settings.no_answer,
            &mut settings.unavailable,
        ] {
            if slot.is_none() {
                *slot = Some(TO_MAILBOX.to_owned());
            }
        }
    }
    settings
}

/// What a call answered here is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Join the room with this number.
    Conference(String),
    /// Leave a message in this extension's mailbox.
    Leave(String),
    /// Listen to this extension's mailbox (its owner, by the mailbox code).
    Listen(String),
    /// Listen to the mailbox the caller keys (the any-mailbox code).
    ListenAny,
    /// Record the prompt of this name by phone.
    RecordPrompt(String),
    /// The IVR menu of this name.
    Ivr(String),
    /// Wait on the parking lot (answered by `b2bua::parking`).
    Park,
}

/// A call answered here.
pub struct Dialog {
    pub call_id: String,
    /// URI of the caller (From).
    pub caller: String,
    leg: Mutex<Leg>,
    pub endpoint: Endpoint,
    /// Our last SDP and its version (re-INVITEs answer anew).
    answer: Mutex<(String, u64)>,
    /// Our address in the SDP.
    media_ip: IpAddr,
    acked: AtomicBool,
    ended: AtomicBool,
    /// Woken when the call ends (BYE either way).
    pub hangup: tokio::sync::Notify,
}

impl Dialog {
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// The calls answered here and the services' own state.
#[derive(Default)]
pub struct MediaServices {
    dialogs: Mutex<HashMap<String, Arc<Dialog>>>,
    pub rooms: conference::Rooms,
    pub voicemail: voicemail::Voicemail,
    pub mwi: mwi::Subscriptions,
    pub prompts: prompts::Prompts,
    pub mailer: mail::Mailer,
    pub recordings: recording::Recordings,
    pub holds: moh::Holds,
}

/// 200 OK of an INVITE over UDP is ours to repeat until the ACK
/// (RFC 3261 §13.3.1.4): T1 doubling to T2, for 64 × T1.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

impl MediaServices {
    fn dialog(&self, call_id: &str) -> Option<Arc<Dialog>> {
        self.dialogs.lock().get(call_id).cloned()
    }

    /// Calls answered here now.
    pub fn calls(&self) -> usize {
        self.dialogs.lock().len()
    }
}

/// Takes an in-dialog request of a call answered here; true when taken.
pub fn take(engine: &Arc<Engine>, key: &str, msg: &Message) -> bool {
    if param(msg.header("To").unwrap_or(""), "tag").is_none() {
        return false;
    }
    let Some(dialog) = engine.media().dialog(msg.call_id()) else {
        return false;
    };
    let reply = |code: u16, reason: &str| {
        engine.reply(key, response_to(msg, code, reason, None));
    };
    match msg.method() {
        "ACK" => acked(engine, &dialog, msg),
        "BYE" => {
            reply(200, "OK");
            end(engine, &dialog, false);
        }
        "INVITE" => {
            // A re-INVITE: a new offer gets a new answer; none (a session
            // refresh) gets our last one again.
            let body = match std::str::from_utf8(&msg.body)
                .ok()
                .filter(|b| !b.trim().is_empty())
                .map(|b| sdp::parse(b, &engine.config().media_codecs))
            {
                Some(Err(e)) => {
                    reply(488, e.reason());
                    return true;
                }
                Some(Ok(o)) => {
                    dialog.endpoint.update(&o);
                    let mut a = dialog.answer.lock();
                    a.1 += 1;
                    a.0 = sdp::answer(&o, dialog.media_ip, dialog.endpoint.local_port, 1, a.1);
                    a.0.clone()
                }
                None => dialog.answer.lock().0.clone(),
            };
            let mut r = response_to(msg, 200, "OK", None);
            let (transport, dest) = {
                let leg = dialog.leg.lock();
                (leg.transport, leg.dest)
            };
            r.add_header("Contact", contact_for(engine, transport, dest));
            r.add_header("Content-Type", "application/sdp".into());
            r.body = body.into_bytes();
            engine.reply(key, r);
        }
        "INFO" => match dtmf_relay(msg) {
            Some(k) => {
                dialog.endpoint.push_key(k);
                reply(200, "OK");
            }
            None => reply(415, "Unsupported Media Type"),
        },
        // The caller reports a transfer's progress (RFC 3515).
        "OPTIONS" | "NOTIFY" => reply(200, "OK"),
        "CANCEL" => reply(200, "OK"),
        _ => reply(501, "Not Implemented"),
    }
    true
}

/// An ACK (end to end, outside any transaction) of a call answered here;
/// true when it was ours.
pub fn ack(engine: &Engine, msg: &Message) -> bool {
    match engine.media().dialog(msg.call_id()) {
        Some(dialog) => {
            acked(engine, &dialog, msg);
            true
        }
        None => false,
    }
}

/// The ACK of our 2xx: stops its repetition; an answer to our late offer
/// in it sets where the media goes.
fn acked(engine: &Engine, dialog: &Dialog, msg: &Message) {
    if let Some(Ok(answer)) = std::str::from_utf8(&msg.body)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .map(|b| sdp::parse(b, &engine.config().media_codecs))
    {
        dialog.endpoint.update(&answer);
    }
    dialog.acked.store(true, Ordering::Release);
}

/// A key of an INFO with application/dtmf-relay (`Signal=5`) or
/// application/dtmf (`5`).
fn dtmf_relay(msg: &Message) -> Option<char> {
    let ct = msg.header("Content-Type")?.to_ascii_lowercase();
    let body = std::str::from_utf8(&msg.body).ok()?;
    let signal = if ct.starts_with("application/dtmf-relay") {
        body.lines()
            .find_map(|l| l.trim().strip_prefix("Signal="))?
            .trim()
    } else if ct.starts_with("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = signal.chars();
    let key = chars.next()?;
    (chars.next().is_none() && besip_media::dtmf::event(key).is_some()).then_some(key)
}

/// Answers the new INVITE of server transaction `key` for `service`.
pub fn answer(
    engine: &Arc<Engine>,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    transport: Transport,
    service: Service,
) {
    let refuse = |code: u16, reason: &str| {
        engine.answer_with(key, msg, (code, reason), vec![]);
    };
    if service == Service::Park {
        // Not our endpoint's audio: the call waits on a relay for whoever takes it.
        return crate::features::b2bua::parking::arrive(engine, key, msg, source, transport);
    }
    let cfg = engine.config();
    let body = std::str::from_utf8(&msg.body)
        .ok()
        .filter(|b| !b.trim().is_empty());
    // No offer: ours goes in the 200 and the answer comes in the ACK; until
    // then nothing is sent (port 0) and only the caller's address is heard.
    let late = body.is_none();
    let offer = match body.map(|b| sdp::parse(b, &cfg.media_codecs)) {
        Some(Ok(o)) => o,
        Some(Err(e)) => return refuse(488, e.reason()),
        None => sdp::Offer {
            media: SocketAddr::new(source.ip(), 0),
            codec: cfg.media_codecs.first().copied().unwrap_or(Codec::Pcmu),
            payload_type: cfg
                .media_codecs
                .first()
                .map_or(0, |c| c.static_payload_type()),
            events: Some(101),
            direction: "sendrecv",
        },
    };
    if engine.media().calls() >= cfg.media_max_calls {
        tracing::warn!(call_id = %msg.call_id(), "media services busy: media-max-calls reached");
        return refuse(503, "Service Unavailable: Media Services Busy");
    }
    // The service's own admission (room full or locked, mailbox full...).
    if let Err((code, reason)) = match &service {
        Service::Conference(room) => engine.media().rooms.admits(&cfg, room),
        Service::Leave(mailbox) => engine.media().voicemail.admits_message(&cfg, mailbox),
        Service::Listen(mailbox) => engine.media().voicemail.admits_listener(&cfg, mailbox),
        Service::ListenAny | Service::RecordPrompt(_) | Service::Park => Ok(()),
        Service::Ivr(menu) => match cfg.ivrs.contains_key(menu) {
            true => Ok(()),
            false => Err((404, "Not Found: No Such Menu")),
        },
    } {
        return refuse(code, reason);
    }
    if matches!(
        service,
        Service::Leave(_) | Service::Listen(_) | Service::ListenAny
    ) {
        let sessions = engine.media().voicemail.sessions();
        if sessions >= cfg.voicemail.max_sessions {
            return refuse(486, "Busy Here: Voicemail Sessions Full");
        }
    }
    let v6 = source.is_ipv6();
    let bind: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let endpoint = match Endpoint::open(
        bind,
        cfg.rtp_port_min,
        cfg.rtp_port_max,
        &offer,
        source.ip(),
    ) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "no RTP port for a media service call");
            return refuse(503, "Service Unavailable: No Media Port");
        }
    };
    let ip = crate::features::nat::address_for(&cfg, source)
        .unwrap_or_else(|| engine.socket_for(transport, v6).advertised.ip());
    let answer_sdp = match late {
        true => sdp::offer(ip, endpoint.local_port, 1, &cfg.media_codecs),
        false => sdp::answer(&offer, ip, endpoint.local_port, 1, 1),
    };
    let leg = Leg::answering(msg, engine.new_tag(), source, transport);
    let mut ok = response_to(msg, 200, "OK", Some(&leg.local_tag));
    ok.add_header("Contact", contact_for(engine, transport, source));
    ok.add_header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO".into());
    ok.add_header("Content-Type", "application/sdp".into());
    ok.body = answer_sdp.clone().into_bytes();
    let dialog = Arc::new(Dialog {
        call_id: msg.call_id().to_owned(),
        caller: leg.remote_uri.clone(),
        leg: Mutex::new(leg),
        endpoint,
        answer: Mutex::new((answer_sdp, 1)),
        media_ip: ip,
        acked: AtomicBool::new(false),
        ended: AtomicBool::new(false),
        hangup: tokio::sync::Notify::new(),
    });
    engine
        .media()
        .dialogs
        .lock()
        .insert(dialog.call_id.clone(), dialog.clone());
    let bytes = ok.to_bytes();
    engine.reply(key, ok);
    tracing::info!(call_id = %dialog.call_id, caller = %dialog.caller, ?service, "call answered by a media service");
    if transport == Transport::Udp {
        tokio::spawn(repeat_ok(engine.clone(), dialog.clone(), source, bytes));
    }
    let engine = engine.clone();
    tokio::spawn(async move {
        match service {
            Service::Conference(room) => conference::run(&engine, &dialog, &room).await,
            Service::Leave(mailbox) => voicemail::leave(&engine, &dialog, &mailbox).await,
            Service::Listen(mailbox) => voicemail::listen(&engine, &dialog, &mailbox).await,
            Service::ListenAny => voicemail::listen_any(&engine, &dialog).await,
            Service::RecordPrompt(name) => prompts::record(&engine, &dialog, &name).await,
            Service::Ivr(menu) => ivr::run(&engine, &dialog, &menu).await,
            Service::Park => {} // answered by parking::arrive, never here
        }
        // The service is done: the call ends (BYE unless the caller hung up).
        end(&engine, &dialog, true);
    });
}

async fn repeat_ok(engine: Arc<Engine>, dialog: Arc<Dialog>, dest: SocketAddr, bytes: Vec<u8>) {
    let mut wait = T1;
    let mut waited = Duration::ZERO;
    loop {
        tokio::time::sleep(wait).await;
        if dialog.acked.load(Ordering::Acquire) || dialog.is_ended() {
            return;
        }
        waited += wait;
        if waited >= T1 * 64 {
            tracing::info!(call_id = %dialog.call_id, "no ACK for our 200: call ended");
            end(&engine, &dialog, true);
            return;
        }
        engine.send(Transport::Udp, dest, bytes.clone());
        wait = (wait * 2).min(T2);
    }
}

/// Ends a call answered here: BYE to the caller unless it hung up itself.
pub fn end(engine: &Arc<Engine>, dialog: &Arc<Dialog>, send_bye: bool) {
    if dialog.ended.swap(true, Ordering::AcqRel) {
        return;
    }
    engine.media().dialogs.lock().remove(&dialog.call_id);
    dialog.hangup.notify_waiters();
    if send_bye {
        let (bye, dest, transport) = in_dialog(engine, dialog, "BYE");
        send_request_tx(engine, bye, dest, transport);
    }
    tracing::info!(call_id = %dialog.call_id, "media service call ended");
}

/// Ends the call of `call_id` if it is one of ours (kick, shutdown).
pub fn hang_up(engine: &Arc<Engine>, call_id: &str) -> bool {
    match engine.media().dialog(call_id) {
        Some(d) => {
            end(engine, &d, true);
            true
        }
        None => false,
    }
}

/// RFC 7951 JSON of /pbx/conference-state and /pbx/voicemail-state.
pub fn state_json(engine: &Engine) -> (Value, Value) {
    let rooms = engine.media().rooms.state_json();
    let mut vm = engine.media().voicemail.state_json();
    vm["sessions"] = json!(engine.media().voicemail.sessions());
    vm["email-delivery"] = engine.media().mailer.state_json();
    (rooms, vm)
}

/// A new identifier of a stored message or recording: milliseconds since
/// the epoch (so names sort by time) and a random suffix.
pub fn new_id() -> String {
    format!(
        "{}-{:04x}",
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
        rand::random::<u16>()
    )
}

/// A new request of ours in the call's dialog, with its destination.
fn in_dialog(engine: &Engine, dialog: &Dialog, method: &str) -> (Message, SocketAddr, Transport) {
    let mut leg = dialog.leg.lock();
    leg.cseq += 1;
    let mut req = crate::features::b2bua::new_request(method, &leg, leg.cseq);
    let branch = engine.new_branch(0);
    req.push_header_front(
        "Via",
        engine.via_for(leg.transport, leg.dest.is_ipv6(), &branch),
    );
    (req, leg.dest, leg.transport)
}

/// Asks the caller to call `target` instead (blind transfer, RFC 3515).
pub fn refer(engine: &Arc<Engine>, dialog: &Dialog, target: &str) {
    let (mut req, dest, transport) = in_dialog(engine, dialog, "REFER");
    let (local_uri, contact) = {
        let leg = dialog.leg.lock();
        (
            leg.local_uri.clone(),
            contact_for(engine, leg.transport, leg.dest),
        )
    };
    req.add_header("Contact", contact);
    req.add_header("Refer-To", format!("<{target}>"));
    req.add_header("Referred-By", format!("<{local_uri}>"));
    tracing::info!(call_id = %dialog.call_id, %target, "caller transferred by REFER");
    send_request_tx(engine, req, dest, transport);
}

/// Largest file `fetch-audio` hands out (the IPC message limit is 16 MB).
const MAX_FETCH: u64 = 10 * 1024 * 1024;

/// The WAV of voicemail message `id` of `mailbox`, or of recording `id`.
pub fn fetch_audio(
    engine: &Engine,
    kind: &str,
    mailbox: Option<&str>,
    id: &str,
) -> Result<Vec<u8>, String> {
    if !voicemail::valid_id(id) {
        return Err("id: letters, digits and - only".into());
    }
    let path = match (kind, mailbox) {
        ("voicemail", Some(m)) => engine.media().voicemail.file(m, id),
        ("voicemail", None) => return Err("a voicemail message needs its mailbox".into()),
        ("recording", _) => engine.media().recordings.file(id),
        _ => return Err(format!("unknown kind '{kind}'")),
    }
    .ok_or("no such message or recording")?;
    let size = std::fs::metadata(&path)
        .map_err(|_| "no such message or recording")?
        .len();
    if size > MAX_FETCH {
        return Err(format!(
            "the file is {size} bytes, over the 10 MB fetch-audio hands out"
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}
