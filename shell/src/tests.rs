//! Unit tests of parsing, rendering, completion and the line editor. The
//! session here is a recording fake (cross-process tests use besip-netconfd).

use super::complete::{candidates, common_prefix};
use super::editor::{Editor, Event};
use super::engine::execute;
use super::path::{resolve, Scope};
use super::render::{data_lines, diff, quote, split_words, steps_to_xml};
use super::{Session, ShellError};
use besip_core::xml::{parse, Element};

/// Records RPC bodies; answers get-config with `config`, everything else `<ok/>`.
struct Fake {
    sent: Vec<String>,
    config: String,
}

impl Session for Fake {
    async fn rpc(&mut self, body: &str) -> Result<Element, ShellError> {
        self.sent.push(body.to_owned());
        let reply = if body.starts_with("<get-config") {
            format!("<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><data>{}</data></rpc-reply>", self.config)
        } else if body.contains("unban") {
            "<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><rpc-error><error-type>application</error-type><error-tag>invalid-value</error-tag><error-severity>error</error-severity><error-path>/x</error-path><error-message>no such ban</error-message></rpc-error></rpc-reply>".to_owned()
        } else {
            "<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><ok/></rpc-reply>"
                .to_owned()
        };
        Ok(parse(&reply).unwrap().remove(0))
    }
}

const CONFIG: &str = "<pbx xmlns=\"urn:besip:pbx\"><mode>b2bua</mode><extension><number>100</number><password>s3cret</password></extension><extension><number>101</number><password>two words</password></extension></pbx>";

fn fake() -> Fake {
    Fake {
        sent: Vec::new(),
        config: CONFIG.into(),
    }
}

fn words(line: &str) -> Vec<String> {
    split_words(line).unwrap().into_iter().flatten().collect()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn split_handles_quotes_and_pipes() {
    let w = split_words("set pbx x \"a b\\\"c\" 'd|e' | match 1").unwrap();
    assert_eq!(
        w,
        vec![
            Some("set".into()),
            Some("pbx".into()),
            Some("x".into()),
            Some("a b\"c".into()),
            Some("d|e".into()),
            None,
            Some("match".into()),
            Some("1".into())
        ]
    );
    assert!(split_words("set \"open").is_err());
    assert_eq!(quote("two words"), "\"two words\"");
    assert_eq!(quote("plain"), "plain");
    assert_eq!(quote(""), "\"\"");
}

#[test]
fn set_path_becomes_edit_xml() {
    let steps = resolve(
        &words("pbx extension 100 password s3cret"),
        Scope::Config,
        true,
    )
    .unwrap();
    assert_eq!(
        steps_to_xml(&steps, None, true),
        "<pbx xmlns=\"urn:besip:pbx\"><extension><number>100</number><password>s3cret</password></extension></pbx>"
    );
    let steps = resolve(&words("pbx extension 100"), Scope::Config, false).unwrap();
    let xml = steps_to_xml(&steps, Some("delete"), true);
    assert!(xml.contains("<extension xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\" nc:operation=\"delete\"><number>100</number></extension>"), "{xml}");
}

#[test]
fn bad_words_are_named_with_suggestions() {
    let e = resolve(&words("pbx extensoin 100 password x"), Scope::Config, true)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "unknown word 'extensoin' after 'pbx'; did you mean: extension?"
    );
    let e = resolve(&words("pbz"), Scope::Config, true).err().unwrap();
    assert!(e.to_string().contains("did you mean: pbx"), "{e}");
    // State nodes are not configuration.
    let e = resolve(&words("pbx registrations"), Scope::Config, false)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("unknown word 'registrations'"),
        "{e}"
    );
    assert!(resolve(&words("pbx registrations"), Scope::All, false).is_ok());
    let e = resolve(&words("pbx extension 100 password"), Scope::Config, true)
        .err()
        .unwrap();
    assert!(e.to_string().contains("'password' needs a value"), "{e}");
    let e = resolve(&words("pbx mode proxy extra"), Scope::Config, true)
        .err()
        .unwrap();
    assert!(e.to_string().contains("unexpected word 'extra'"), "{e}");
}

#[test]
fn config_renders_as_set_lines_and_diffs() {
    let elements = parse(CONFIG).unwrap();
    let lines = data_lines(&elements);
    assert_eq!(
        lines,
        vec![
            "pbx mode b2bua",
            "pbx extension 100 password s3cret",
            "pbx extension 101 password \"two words\""
        ]
    );
    let new = vec![lines[0].clone(), "pbx extension 102".to_string()];
    let d = diff(&lines, &new);
    assert_eq!(
        d,
        vec![
            "- set pbx extension 100 password s3cret",
            "- set pbx extension 101 password \"two words\"",
            "+ set pbx extension 102"
        ]
    );
    // Every rendered line parses back to the same path.
    for line in &lines {
        assert!(resolve(&words(line), Scope::Config, true).is_ok(), "{line}");
    }
}

#[test]
fn completion_offers_commands_nodes_keys_and_enums() {
    let config = data_lines(&parse(CONFIG).unwrap());
    let (partial, c) = candidates("com", &config);
    assert_eq!(partial, "com");
    let w: Vec<&str> = c.iter().map(|c| c.word.as_str()).collect();
    assert_eq!(w, vec!["compare", "commit"]);
    assert_eq!(common_prefix(&c), "com");

    let (_, c) = candidates("set pbx ext", &config);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].word, "extension");
    assert!(!c[0].help.is_empty());

    let (_, c) = candidates("set pbx extension ", &config);
    let w: Vec<&str> = c.iter().map(|c| c.word.as_str()).collect();
    assert_eq!(w, vec!["100", "101", "<number>"]);
    assert!(!c[2].insert);

    let (_, c) = candidates("set pbx mode ", &config);
    let w: Vec<&str> = c.iter().map(|c| c.word.as_str()).collect();
    assert_eq!(w, vec!["proxy", "b2bua"]);
    assert!(c[1].help.contains("Back-to-back"), "{:?}", c[1]);

    let (_, c) = candidates("show ", &config);
    assert!(c.iter().any(|c| c.word == "configuration"));
    let (_, c) = candidates("show pbx reg", &config);
    assert!(c.iter().any(|c| c.word == "registrations"));
    let (_, c) = candidates("set pbx reg", &config);
    assert!(c.iter().all(|c| c.word != "registrations"));
    let (_, c) = candidates("show configuration r", &config);
    let w: Vec<&str> = c.iter().map(|c| c.word.as_str()).collect();
    assert_eq!(w, vec!["running"]);
    let (_, c) = candidates("show configuration running pbx ext", &config);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].word, "extension");
    let (_, c) = candidates("show configuration | ", &config);
    assert!(c.iter().any(|c| c.word == "count"));
}

#[test]
fn commands_send_the_right_rpcs() {
    block(async {
        let mut s = fake();
        execute(&mut s, "set pbx extension 100 password s3cret")
            .await
            .unwrap();
        assert!(s.sent[0].starts_with("<edit-config><target><candidate/></target><config><pbx"));
        execute(&mut s, "commit confirmed 2 comment moving \"the box\"")
            .await
            .unwrap();
        assert_eq!(
            s.sent[1],
            "<commit><confirmed/><confirm-timeout>120</confirm-timeout><comment xmlns=\"urn:besip:system\">moving the box</comment></commit>"
        );
        execute(&mut s, "rollback 3").await.unwrap();
        assert_eq!(
            s.sent[2],
            "<rollback xmlns=\"urn:besip:system\"><back>3</back></rollback>"
        );
        execute(&mut s, "discard").await.unwrap();
        execute(&mut s, "validate").await.unwrap();
        assert_eq!(s.sent[3], "<discard-changes/>");
        assert_eq!(
            s.sent[4],
            "<validate><source><candidate/></source></validate>"
        );
        let out = execute(&mut s, "show configuration pbx extension | count")
            .await
            .unwrap();
        assert_eq!(out, "Count: 2 lines");
        let out = execute(&mut s, "show configuration | match 101")
            .await
            .unwrap();
        assert_eq!(out, "set pbx extension 101 password \"two words\"");
        execute(&mut s, "show pbx registrations").await.unwrap();
        assert!(s.sent.last().unwrap().contains("<filter type=\"subtree\"><pbx xmlns=\"urn:besip:pbx\"><registrations></registrations></pbx></filter>"), "{:?}", s.sent.last());
        let e = execute(&mut s, "comit").await.err().unwrap();
        assert!(e.to_string().contains("did you mean: commit"), "{e}");
        let e = execute(&mut s, "rollback x").await.err().unwrap();
        assert_eq!(e.exit_code(), 1);
        let e = execute(&mut s, "show configuration | grep x")
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown filter"), "{e}");
    });
}

#[test]
fn rpc_errors_carry_message_and_path() {
    let reply = parse("<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><rpc-error><error-severity>error</error-severity><error-tag>invalid-value</error-tag><error-path>/besip-pbx:pbx/mode</error-path><error-message>Invalid enumeration value \"x\".</error-message></rpc-error></rpc-reply>").unwrap().remove(0);
    assert_eq!(
        super::reply_error(&reply).as_deref(),
        Some("error: Invalid enumeration value \"x\". (path /besip-pbx:pbx/mode)")
    );
    let ok =
        parse("<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><ok/></rpc-reply>")
            .unwrap()
            .remove(0);
    assert_eq!(super::reply_error(&ok), None);
    block(async {
        let mut s = fake();
        let e = execute(&mut s, "request security-unknown unban 1.2.3.4")
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown RPC"), "{e}");
        // Positional single input; the fake refuses unban-like RPCs with an rpc-error.
        let e = execute(&mut s, "request nosuchrpc").await.err().unwrap();
        assert!(e.to_string().contains("unknown RPC 'nosuchrpc'"), "{e}");
    });
}

#[test]
fn editor_edits_history_and_keys() {
    let mut e = Editor::new();
    let mut out = Vec::new();
    let mut feed = |e: &mut Editor, bytes: &[u8]| {
        let mut last = None;
        for &b in bytes {
            if let Some(ev) = e.feed(b, "> ", &mut out) {
                last = Some(ev);
            }
        }
        last
    };
    assert_eq!(
        feed(&mut e, b"shwo\x7f\x7fow\r"),
        Some(Event::Line("show".into()))
    );
    assert_eq!(
        feed(&mut e, b"compare\r"),
        Some(Event::Line("compare".into()))
    );
    feed(&mut e, b"\x1b[A");
    assert_eq!(e.text(), "compare");
    feed(&mut e, b"\x1b[A");
    assert_eq!(e.text(), "show");
    feed(&mut e, b"\x1b[B");
    assert_eq!(e.text(), "compare");
    assert_eq!(feed(&mut e, b"\x03"), Some(Event::Interrupt));
    assert_eq!(e.text(), "");
    assert_eq!(feed(&mut e, b"set"), None);
    assert_eq!(feed(&mut e, b"\t"), Some(Event::Complete));
    assert_eq!(feed(&mut e, b"?"), Some(Event::Help));
    assert_eq!(
        feed(&mut e, b"\x04"),
        None,
        "Ctrl-D on a non-empty line does nothing"
    );
    feed(&mut e, b"\x15");
    assert_eq!(feed(&mut e, b"\x04"), Some(Event::Eof));
    assert_eq!(
        feed(&mut e, b"set x \"why?"),
        None,
        "? inside quotes is text"
    );
    assert_eq!(e.text(), "set x \"why?");
    feed(&mut e, b"\x15");
    feed(&mut e, "é\x1b[Dx".as_bytes());
    assert_eq!(e.text(), "xé");
}

#[test]
fn security_state_and_unban_are_reached_generically() {
    assert!(resolve(&words("security bans"), Scope::All, false).is_ok());
    assert!(resolve(&words("monitoring calls"), Scope::All, false).is_ok());
    block(async {
        let mut s = fake();
        let e = execute(&mut s, "request security unban 192.0.2.7")
            .await
            .err()
            .unwrap();
        assert_eq!(
            s.sent.last().map(String::as_str),
            Some("<unban xmlns=\"urn:besip:security\"><address>192.0.2.7</address></unban>")
        );
        assert_eq!(e.to_string(), "error: no such ban (path /x)");
        execute(&mut s, "show security bans").await.unwrap();
        assert!(s
            .sent
            .last()
            .unwrap()
            .contains("<security xmlns=\"urn:besip:security\"><bans></bans></security>"));
    });
}
