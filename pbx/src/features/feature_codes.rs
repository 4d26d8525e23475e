//! Feature codes dialled from a phone (YANG /pbx/feature-codes): an INVITE
//! to e.g. *90200 sets the busy forwarding of the extension that
//! authenticated it to 200. Only that extension's own settings change: a
//! stranger (no credentials, another domain) is refused, and a From that
//! does not match the credentials never gets this far (`admission`).
//!
//! The INVITE is answered at once with a final response and no dialog:
//! 480 with reason phrase "Feature Set" or "Feature Cleared". A 2xx would
//! need a dialog set up (ACK) and torn down (BYE) for nothing and media
//! for a confirmation tone we have no player for; a final non-2xx ends the
//! attempt on every phone, which shows the reason phrase.

use crate::config::forwarding::FeatureAction;
use crate::config::Config;
use crate::features::decision::Decision;
use crate::features::forwarding::DND;
use crate::features::outbound::Origin;
use crate::features::state::Engine;

/// Some(answer) when `user` (the dialled user part) is a feature code.
pub fn dialled(engine: &Engine, cfg: &Config, user: &str, origin: &Origin) -> Option<Decision> {
    let (action, number) = cfg.feature_codes.parse(user)?;
    let reply = |code, reason| Some(Decision::Reply(code, reason, vec![]));
    let Origin::Extension(own) = origin else {
        // Only an extension that proved its password changes its own settings.
        return reply(403, "Forbidden: Feature Codes Are For Own Extensions");
    };
    let ext = cfg.extensions.get(own)?;
    let (key, value, reason) = match action {
        FeatureAction::Set(setting) => {
            if number.is_empty() {
                return reply(484, "Address Incomplete: Number Missing");
            }
            if let Err(reason) = check_target(cfg, own, number) {
                return reply(404, reason);
            }
            (setting.name(), Some(number.to_owned()), "Feature Set")
        }
        FeatureAction::Clear(setting) => (setting.name(), None, "Feature Cleared"),
        FeatureAction::DoNotDisturb(on) => {
            let reason = if on { "Feature Set" } else { "Feature Cleared" };
            (DND, Some(on.to_string()), reason)
        }
    };
    if let Err(e) = engine.forwarding().set(ext, key, value.clone()) {
        tracing::error!(extension = %own, setting = key, error = %e, "feature code not stored");
        return reply(500, "Server Internal Error: Setting Not Stored");
    }
    tracing::info!(extension = %own, setting = key, value = ?value, "feature code");
    reply(480, reason)
}

/// A forward target the phone may set: one of our extensions (not itself)
/// or a number a dialplan route takes (whether the extension may call it
/// is checked for each forwarded call, as for its own calls).
fn check_target(cfg: &Config, own: &str, number: &str) -> Result<(), &'static str> {
    let plain = number
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "*#+._-".contains(c));
    if !plain || number.len() > 64 {
        return Err("Not Found: Forward Target Not A Number");
    }
    match cfg.resolve_user(number) {
        Some(e) if e.number == own => Err("Not Found: Forward To Itself"),
        Some(_) => Ok(()),
        None if cfg.routes.iter().any(|r| number.starts_with(&r.prefix)) => Ok(()),
        None => Err("Not Found: Forward Target Unknown"),
    }
}
