//! Caller ID, phonebook and speed dial values (YANG besip-pbx) are copied
//! into SIP headers and Request-URIs: a value that could end the header,
//! its quoted string or the URI is refused by YANG validation.

mod common;
use common::*;

const PBX: &str = "urn:besip:pbx";

fn pbx(inner: &str) -> String {
    format!("<pbx xmlns=\"{PBX}\">{inner}</pbx>")
}

fn ext(inner: &str) -> String {
    pbx(&format!(
        "<extension><number>100</number><password>pw</password>{inner}</extension>"
    ))
}

fn trunk(inner: &str) -> String {
    pbx(&format!(
        "<trunk><name>prov</name><host>192.0.2.1</host>{inner}</trunk>"
    ))
}

fn phonebook(number: &str, name: &str) -> String {
    pbx(&format!(
        "<phonebook><number>{number}</number><name>{name}</name></phonebook>"
    ))
}

fn speed_dial(code: &str, number: &str) -> String {
    pbx(&format!(
        "<speed-dial><code>{code}</code><number>{number}</number></speed-dial>"
    ))
}

#[test]
fn malformed_caller_id_values_are_refused() {
    let refused = [
        (
            "caller name with CR LF",
            ext("<caller-id-name>Alice&#13;&#10;X: y</caller-id-name>"),
        ),
        (
            "caller name with a quote",
            ext("<caller-id-name>Al&quot;ice</caller-id-name>"),
        ),
        (
            "caller number with a space",
            ext("<caller-id-number>030 1100</caller-id-number>"),
        ),
        (
            "caller number with @",
            ext("<caller-id-number>a@b</caller-id-number>"),
        ),
        (
            "trunk number with LF",
            trunk("<caller-id-number>0301&#10;X: y</caller-id-number>"),
        ),
        (
            "phonebook name with a quote",
            phonebook("0555", "Bob&quot; &lt;sip:x&gt;"),
        ),
        ("phonebook name with LF", phonebook("0555", "Bob&#10;X: y")),
        ("phonebook number with &gt;", phonebook("0555&gt;", "Bob")),
        ("speed dial code with letters", speed_dial("*1a", "0555")),
        ("speed dial number with @", speed_dial("*11", "0555@evil")),
        (
            "anonymous code without star",
            pbx("<feature-codes><anonymous>67</anonymous></feature-codes>"),
        ),
    ];
    for (what, xml) in &refused {
        let (_d, mut store) = open();
        if edit(&mut store, xml).is_ok() {
            panic!("accepted: {what}");
        }
    }
    let accepted = [
        ext("<caller-id-number>+420301100</caller-id-number><caller-id-name>Jiří Novák, O'Brien</caller-id-name>"),
        trunk("<caller-id-number>0301000</caller-id-number><send-pai>true</send-pai>"),
        phonebook("+420555777", "Bob (supplier)"),
        speed_dial("*11", "+420555123"),
        speed_dial("11", "102"),
        pbx("<feature-codes><anonymous>*31</anonymous></feature-codes>"),
    ];
    for xml in &accepted {
        let (_d, mut store) = open();
        edit(&mut store, xml).unwrap_or_else(|e| panic!("refused {xml}: {e:?}"));
    }
}
