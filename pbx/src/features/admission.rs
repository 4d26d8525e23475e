//! Who a new request is placed for, and whether it may be placed: proxy
//! authentication of our users (407), trusted peers by address, and the
//! toll-fraud rules of /pbx/outbound (what leaves the box, call classes).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::Verdict;
use crate::config::Config;
use crate::features::decision::Decision;
use crate::features::fraud::Refusal;
use crate::features::outbound::Origin;
use crate::features::state::Engine;
use crate::sip::{addr_uri, Message, Uri};

/// The toll-fraud rules of a request about to be forwarded: what leaves
/// the box needs a caller we vouch for, and a call of an extension or peer
/// must be to a number of a class it may dial.
pub fn permitted(
    cfg: &Config,
    origin: &Origin,
    outbound: bool,
    invite: bool,
    dialled: &str,
) -> Result<(), Refusal> {
    if outbound && *origin == Origin::Stranger {
        return Err(Refusal::Relay);
    }
    if !invite {
        return Ok(());
    }
    let own: &[String] = match origin {
        Origin::Stranger | Origin::Configured(_) => return Ok(()),
        Origin::Extension(e) | Origin::Forwarded { extension: e, .. } => cfg
            .extensions
            .get(e)
            .map(|e| e.outbound.classes.as_slice())
            .unwrap_or(&[]),
        Origin::Peer(p) => cfg
            .outbound
            .peers
            .iter()
            .find(|peer| &peer.name == p)
            .map(|peer| peer.classes.as_slice())
            .unwrap_or(&[]),
    };
    let number = match origin {
        Origin::Forwarded { number, .. } => number.clone(),
        _ => Uri::parse(dialled).and_then(|u| u.user).unwrap_or_default(),
    };
    match cfg.outbound.check_class(own, &number) {
        Ok(()) => Ok(()),
        Err(class) => {
            tracing::info!(?origin, number, class, "call class not allowed");
            Err(Refusal::CallClass)
        }
    }
}

/// The extension that sent request `msg` (server transaction `key`) to a
/// feature only our extensions use (pickup, parking, busy lamps, mailbox
/// subscriptions); None when `msg` was answered here instead: 407 to
/// authenticate, or 403 `not_ours` to a trunk, a peer or a stranger.
pub(crate) fn our_extension(
    engine: &Arc<Engine>,
    cfg: &Config,
    key: &str,
    msg: &Message,
    source: SocketAddr,
    not_ours: &'static str,
) -> Option<String> {
    let (code, reason, extra) = match authenticate(engine, cfg, msg, msg.method(), source) {
        Ok(Origin::Extension(e)) => return Some(e),
        Ok(_) => (403, not_ours, vec![]),
        Err(Decision::Reply(code, reason, extra)) => (code, reason, extra),
        Err(_) => (403, "Forbidden", vec![]),
    };
    engine.answer_with(key, msg, (code, reason), extra);
    None
}

/// 407 for our users without valid credentials; the extension when
/// authenticated, a trusted peer by its address, else a stranger (callers
/// from other domains: they may only reach our users).
pub(crate) fn authenticate(
    engine: &Engine,
    cfg: &Config,
    msg: &Message,
    method: &str,
    source: SocketAddr,
) -> Result<Origin, Decision> {
    let Some(from) = msg.header("From").map(addr_uri).and_then(Uri::parse) else {
        return Err(Decision::Reply(400, "Bad From Header", vec![]));
    };
    if let Some(peer) = cfg.outbound.peer_of(source.ip()) {
        return Ok(Origin::Peer(peer.name.clone()));
    }
    if let Some(name) = crate::features::cluster::box_at(engine, source) {
        return Ok(Origin::Peer(format!("cluster box {name}")));
    }
    if !engine.is_our_domain(&from.host) || method == "ACK" || method == "CANCEL" {
        return Ok(Origin::Stranger);
    }
    let auth = engine.auth();
    let creds = msg
        .headers
        .iter()
        .filter(|h| h.name == "Proxy-Authorization")
        .map(|h| h.value.as_str());
    let password_of = |u: &str| cfg.password_of(u);
    let challenge = |stale: bool| {
        let extra = auth
            .challenges(stale)
            .into_iter()
            .map(|c| ("Proxy-Authenticate", c))
            .collect();
        Decision::Reply(407, "Proxy Authentication Required", extra)
    };
    match auth.verify(
        creds,
        method,
        msg.uri(),
        |u| engine.uri_is_ours(u),
        password_of,
    ) {
        Verdict::Ok(user) => {
            let from_user = from
                .user
                .as_deref()
                .and_then(|u| cfg.resolve_user(u))
                .map(|e| e.number.clone());
            if from_user.as_deref() != Some(user.as_str()) {
                engine.counters().auth_failure();
                return Err(Decision::Reply(
                    403,
                    "Forbidden: From Does Not Match Credentials",
                    vec![],
                ));
            }
            Ok(Origin::Extension(user))
        }
        Verdict::Missing => Err(challenge(false)),
        Verdict::Stale => Err(challenge(true)),
        Verdict::Failed(why) => {
            engine.counters().auth_failure();
            tracing::info!(reason = why, "proxy authentication failed");
            Err(challenge(false))
        }
    }
}
