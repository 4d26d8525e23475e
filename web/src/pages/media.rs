//! Voicemail messages and call recordings (besip-pbxd's state, read with
//! `<get>`), each with a player and a download link. The audio comes from
//! the pbx RPC `fetch-audio` run as the logged-in user, so NACM decides
//! who may listen, as it would over NETCONF. Beside each recording, the
//! MOS besip-monitord computed for that call (matched by Call-ID).

use crate::html::{esc, page};
use crate::session::User;
use crate::{nc, Web};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use besip_core::xml::Element;
use besip_restconf::{Backend, Reply};
use std::collections::HashMap;

const NS: &str = "urn:besip:pbx";

fn valid(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 64
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
}

fn text<'a>(e: &'a Element, name: &str) -> &'a str {
    e.child(name).map(|c| c.trimmed_text()).unwrap_or("")
}

fn seconds(ms: &str) -> String {
    ms.parse::<u64>()
        .map(|m| format!("{:.1} s", m as f64 / 1000.0))
        .unwrap_or_default()
}

fn player(src: &str) -> String {
    format!(
        "<audio controls preload=\"metadata\" src=\"{s}\"></audio> <a href=\"{s}?download=1\">download</a>",
        s = esc(src)
    )
}

pub async fn show<B: Backend>(web: &Web<B>, user: &User) -> Response {
    let filter = format!("<pbx xmlns=\"{NS}\"><voicemail-state/><recording-state/></pbx>");
    let mut body = String::new();
    let data = match nc::get(web.backend.as_ref(), &user.who, &filter).await {
        Ok(d) => d,
        Err(e) => {
            body.push_str(&format!(
                "<p class=\"refused\">{}</p>",
                esc(&nc::describe(&e))
            ));
            return page(
                StatusCode::OK,
                &user.who,
                &user.csrf,
                "Voicemail and recordings",
                None,
                &body,
            );
        }
    };
    let pbx: Vec<&Element> = data.iter().filter(|e| e.name == "pbx").collect();
    let children = |name: &str| -> Vec<&Element> {
        pbx.iter()
            .flat_map(|p| p.children.iter().filter(|c| c.name == name))
            .collect()
    };
    body.push_str("<h2>Voicemail</h2>");
    let mut rows = String::new();
    for state in children("voicemail-state") {
        for mailbox in state.children.iter().filter(|c| c.name == "mailbox") {
            let ext = text(mailbox, "extension");
            for m in mailbox.children.iter().filter(|c| c.name == "message") {
                let id = text(m, "id");
                if !valid(ext) || !valid(id) {
                    continue;
                }
                rows.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(ext),
                    esc(text(m, "caller")),
                    esc(text(m, "received")),
                    seconds(text(m, "duration")),
                    if text(m, "heard") == "true" {
                        "heard"
                    } else {
                        "new"
                    },
                    player(&format!("/admin/audio/voicemail/{ext}/{id}.wav"))
                ));
            }
        }
    }
    if rows.is_empty() {
        body.push_str("<p id=\"no-voicemail\">No voicemail message.</p>");
    } else {
        body.push_str(&format!(
            "<table id=\"voicemail\"><tr><th>mailbox</th><th>caller</th><th>received</th><th>length</th><th></th><th>listen</th></tr>{rows}</table>"
        ));
    }
    body.push_str("<h2>Call recordings</h2>");
    // The monitoring daemon's MOS of each call, by Call-ID (none when the
    // call was not captured or the reader may not see it).
    let monitoring = "<monitoring xmlns=\"urn:besip:monitoring\"><calls/></monitoring>";
    let mos: HashMap<String, String> = nc::get(web.backend.as_ref(), &user.who, monitoring)
        .await
        .map(|data| {
            data.iter()
                .filter(|e| e.name == "monitoring")
                .flat_map(|m| m.children.iter().filter(|c| c.name == "calls"))
                .flat_map(|c| c.children.iter().filter(|c| c.name == "call"))
                .filter_map(|call| {
                    let mos = text(call, "mos");
                    (!mos.is_empty()).then(|| (text(call, "call-id").to_owned(), mos.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut rows = String::new();
    for state in children("recording-state") {
        for r in state.children.iter().filter(|c| c.name == "recording") {
            let id = text(r, "id");
            if !valid(id) {
                continue;
            }
            let quality = mos
                .get(text(r, "call-id"))
                .map(|m| esc(m))
                .unwrap_or_else(|| "—".into());
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mos\">{quality}</td><td>{}</td></tr>",
                esc(text(r, "caller")),
                esc(text(r, "callee")),
                esc(text(r, "started")),
                seconds(text(r, "duration")),
                player(&format!("/admin/audio/recording/{id}.wav"))
            ));
        }
    }
    if rows.is_empty() {
        body.push_str("<p id=\"no-recordings\">No call recording.</p>");
    } else {
        body.push_str(&format!(
            "<table id=\"recordings\"><tr><th>caller</th><th>callee</th><th>started</th><th>length</th><th>MOS</th><th>listen</th></tr>{rows}</table>"
        ));
    }
    page(
        StatusCode::OK,
        &user.who,
        &user.csrf,
        "Voicemail and recordings",
        None,
        &body,
    )
}

/// `/admin/audio/voicemail/<mailbox>/<id>.wav` or `/admin/audio/recording/<id>.wav`.
pub async fn audio<B: Backend>(
    web: &Web<B>,
    user: &User,
    rest: &str,
    query: &HashMap<String, String>,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    let (kind, mailbox, file) = match parts.as_slice() {
        ["voicemail", mailbox, file] => ("voicemail", Some(*mailbox), *file),
        ["recording", file] => ("recording", None, *file),
        _ => return crate::not_found(user),
    };
    let Some(id) = file.strip_suffix(".wav").filter(|id| valid(id)) else {
        return crate::not_found(user);
    };
    if mailbox.is_some_and(|m| !valid(m)) {
        return crate::not_found(user);
    }
    let mailbox_xml = mailbox
        .map(|m| format!("<mailbox>{}</mailbox>", esc(m)))
        .unwrap_or_default();
    let xml = format!(
        "<fetch-audio xmlns=\"{NS}\"><kind>{kind}</kind>{mailbox_xml}<id>{}</id></fetch-audio>",
        esc(id)
    );
    let reply = match nc::op(web.backend.as_ref(), &user.who, &xml).await {
        Ok(r) => r,
        Err(e) => {
            let status = if nc::denied(&e) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::NOT_FOUND
            };
            return (status, nc::describe(&e)).into_response();
        }
    };
    let (Reply::Body(x) | Reply::Data(x)) = reply else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let audio = besip_core::xml::parse(&x)
        .ok()
        .and_then(|els| {
            els.iter()
                .find(|e| e.name == "audio")
                .map(|e| e.trimmed_text().to_owned())
        })
        .and_then(|b64| {
            let compact: String = b64.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
        });
    let Some(bytes) = audio else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let disposition = if query.contains_key("download") {
        format!("attachment; filename=\"{id}.wav\"")
    } else {
        "inline".to_owned()
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "audio/wav".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response()
}
