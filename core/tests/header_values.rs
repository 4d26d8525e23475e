//! Values copied from configuration into SIP headers (realm, display name,
//! trunk user name, forwarding targets, dispatcher URIs, prepended digits)
//! are refused by YANG validation when they hold a character that could end
//! the header or its quoted string (CR, LF, other control characters, a
//! quote, a backslash, white space in a URI): such an edit never reaches
//! the PBX.

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

fn dispatcher(uri: &str) -> String {
    pbx(&format!(
        "<dispatcher-set><name>d</name><destination><uri>{uri}</uri></destination></dispatcher-set>"
    ))
}

#[test]
fn header_breaking_values_are_refused_and_ordinary_ones_kept() {
    // XML character references: &#13;&#10; is CR LF, &#9; a tab, &quot; a quote.
    let refused = [
        ("realm with CR LF", pbx("<auth><realm>pbx&#13;&#10;Via: SIP/2.0/UDP evil</realm></auth>")),
        ("realm with a quote", pbx("<auth><realm>pbx&quot;, nonce=&quot;x</realm></auth>")),
        ("realm with a backslash", pbx("<auth><realm>pbx\\</realm></auth>")),
        ("display name with LF", ext("<display-name>Alice&#10;X-Evil: 1</display-name>")),
        ("display name with a quote", ext("<display-name>Al&quot;ice</display-name>")),
        ("display name with a tab", ext("<display-name>Al&#9;ice</display-name>")),
        ("trunk user with CR LF", trunk("<username>acme&#13;&#10;X: y</username>")),
        ("trunk user with a quote", trunk("<username>acme&quot;</username>")),
        ("trunk user with a space", trunk("<username>ac me</username>")),
        ("trunk user with @", trunk("<username>a@b</username>")),
        ("forward target with CR LF", ext("<forwarding><unconditional>sip:101@x&#13;&#10;X: y</unconditional></forwarding>")),
        ("forward target with &gt;", ext("<forwarding><busy>sip:101@x&gt;;evil</busy></forwarding>")),
        ("dispatcher URI with a space", dispatcher("sip:a@b Via")),
        ("dispatcher URI with LF", dispatcher("sip:a@b&#10;X: y")),
        ("prepend with a quote", pbx("<route><name>r</name><match>0</match><prepend>&quot;</prepend><trunk>prov</trunk></route>")),
    ];
    for (what, xml) in &refused {
        let (_d, mut store) = open();
        let errors = match edit(&mut store, xml) {
            Ok(()) => panic!("accepted: {what}"),
            Err(e) => format!("{e:?}"),
        };
        // Refused by the pattern, not for another reason.
        assert!(
            errors.contains("SIP") || errors.contains("pattern"),
            "{what}: {errors}"
        );
    }
    let accepted = [
        pbx("<auth><realm>besip.example.com</realm></auth>"),
        ext("<display-name>Jiří Novák (sales), O'Brien</display-name>"),
        trunk("<username>acme.user-1+420</username>"),
        ext("<forwarding><unconditional>sip:101@pbx.example.com;transport=tcp</unconditional><busy>+420555123</busy></forwarding>"),
        dispatcher("sip:gw1.example.com:5060;transport=udp"),
    ];
    for xml in &accepted {
        let (_d, mut store) = open();
        edit(&mut store, xml).unwrap_or_else(|e| panic!("refused {xml}: {e:?}"));
    }
}
