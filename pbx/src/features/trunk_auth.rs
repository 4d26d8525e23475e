//! Outbound authentication of calls to a trunk (RFC 3261 §22.2, §8.1.3.5):
//! when the provider answers our INVITE with 401/407, the INVITE is sent once
//! more with the trunk's credentials and the same Call-ID on a new branch
//! (the 401/407 itself is ACKed by the client transaction). In B2BUA mode
//! the far leg is our dialog and the retry takes the next CSeq. In proxy
//! mode the CSeq belongs to the caller's dialog, so the retry keeps it (as
//! Kamailio's uac_auth() does by default): every later request and response
//! of the dialog stays consistent end to end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::uac::{credentials, pick_challenge};
use crate::config::{Mode, Transport};
use crate::features::state::Engine;
use crate::sip::Message;
use crate::transaction::{client_key, ClientState, ClientTx};

/// The retry of a challenged INVITE branch, if we can answer the challenge.
pub fn retry_request(engine: &Engine, tx: &ClientTx, resp: &Message) -> Option<(Message, String)> {
    let req = &tx.request;
    if req.method() != "INVITE" {
        return None;
    }
    let cfg = engine.config();
    if cfg.trunks.is_empty() {
        return None;
    }
    // Only a request the box itself routed to the trunk: a caller's
    // request that merely goes to the trunk's address gets no credentials.
    let trunk = cfg.trunks.get(tx.trunk.as_deref()?)?;
    let (user, password) = (trunk.username.as_deref()?, trunk.password.as_deref()?);
    let (challenge, header) = pick_challenge(resp)?;
    // Once: a request that carried credentials for this realm failed.
    let tried = req
        .headers
        .iter()
        .filter(|h| h.name == "Authorization" || h.name == "Proxy-Authorization")
        .any(|h| realm_of(&h.value) == Some(challenge.realm.as_str()));
    if tried {
        return None;
    }
    let (cseq, _) = req.cseq()?;
    let mut retry = req.clone();
    retry.remove_first_value("Via");
    if cfg.mode == Mode::B2bua {
        retry.set_header("CSeq", format!("{} INVITE", cseq + 1));
    }
    let value = credentials(&challenge, user, password, "INVITE", req.uri(), 1);
    retry.add_header(header, value);
    let branch = engine.new_branch(0);
    retry.push_header_front(
        "Via",
        engine.via_for(tx.transport, tx.dest.is_ipv6(), &branch),
    );
    tracing::info!(trunk = %trunk.name, call_id = %req.call_id(), "INVITE challenged by the trunk; sending credentials");
    Some((retry, trunk.name.clone()))
}

/// Removes the caller's credentials for our own realm before a request is
/// forwarded: they are for us, and the next hop (a provider) must not get
/// material for guessing our users' passwords.
pub fn consume_own_credentials(engine: &Engine, msg: &mut Message) {
    let auth = engine.auth();
    let realm = Some(auth.realm.as_str());
    msg.headers
        .retain(|h| h.name != "Proxy-Authorization" || realm_of(&h.value) != realm);
}

/// The realm of a credentials header value.
fn realm_of(value: &str) -> Option<&str> {
    let at = value.find("realm=\"")? + "realm=\"".len();
    value[at..].split('"').next()
}

/// Sends the retry as a new branch of server transaction `skey` in place of
/// the challenged branch `old`.
pub fn send_retry(
    engine: &Arc<Engine>,
    old: &str,
    skey: &str,
    (req, trunk): (Message, String),
    dest: SocketAddr,
    transport: Transport,
) {
    let branch = req.top_via().and_then(|v| v.branch).unwrap_or_default();
    let key = client_key(&branch, "INVITE");
    let cseq = req.cseq().map(|c| c.0).unwrap_or(1);
    // Later requests on the far leg (ACK, BYE) follow the new CSeq.
    if let Some(call) = engine.b2b_calls().lock().get(req.call_id()) {
        let mut c = call.lock();
        if c.b.call_id == req.call_id() {
            c.b.cseq = c.b.cseq.max(cseq);
        }
    }
    let bytes = req.to_bytes();
    {
        let mut tables = engine.tables();
        let Some(stx) = tables.server.get_mut(skey) else {
            return; // the caller's transaction is gone: nothing to retry for
        };
        for b in stx.branches.iter_mut().filter(|b| *b == old) {
            *b = key.clone();
        }
        let cancelled = stx.cancelled;
        tables.client.insert(
            key.clone(),
            ClientTx {
                server_key: Some(skey.to_owned()),
                request: req,
                bytes: bytes.clone(),
                dest,
                transport,
                state: ClientState::Trying,
                cancel_pending: cancelled,
                cancel_sent: false,
                created: Instant::now(),
                expires: None,
                trunk: Some(trunk),
            },
        );
    }
    engine.send(transport, dest, bytes);
    crate::call::client::spawn_client_timer(engine, key);
}
