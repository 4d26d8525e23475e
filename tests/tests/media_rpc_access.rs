//! The media services' RPCs over NETCONF (ncclient against `besip up`),
//! as an attacker and as each kind of user: the admin and an operator
//! upload a prompt (it lands in the prompt store); a monitor may neither
//! upload nor fetch audio (access-denied, nothing stored); an upload over
//! the YANG length bound (2 MB) and a fetch of a path-like id are refused
//! by the model at the edge (invalid-value, the value not echoed whole);
//! a message over max-message-size (16 MB) closes that session; nothing
//! is stored by any of them and the server goes on serving.

use besip_tests::netconf::python;
use besip_tests::up::Up;
use besip_tests::web::free_tcp_port;

const PASSWORD: &str = "Media-admin-1";
/// SHA-512 crypt of "s3cret".
const HASH: &str = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";

#[test]
fn prompt_upload_and_audio_fetch_obey_nacm_and_bounds() {
    let netconf = free_tcp_port();
    let up = Up::on_loopback(netconf, PASSWORD, &[]);
    let (ok, out) = python(
        netconf,
        PASSWORD,
        &format!(
            r#"
import base64, math, struct
from ncclient.operations.rpc import RPCError
from ncclient.xml_ import to_ele

def wav(seconds):
    n = int(8000 * seconds)
    data = b''.join(struct.pack('<h', int(5000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(n))
    head = b'RIFF' + struct.pack('<I', 36 + len(data)) + b'WAVEfmt ' + struct.pack('<IHHIIHH', 16, 1, 1, 8000, 16000, 2, 16)
    return head + b'data' + struct.pack('<I', len(data)) + data

def upload(m, name, blob):
    audio = base64.b64encode(blob).decode()
    return m.dispatch(to_ele('<upload-prompt xmlns="urn:besip:pbx"><name>%s</name><audio>%s</audio></upload-prompt>' % (name, audio)))

def fetch(m, ident):
    return m.dispatch(to_ele('<fetch-audio xmlns="urn:besip:pbx"><kind>voicemail</kind><mailbox>101</mailbox><id>%s</id></fetch-audio>' % ident))

def outcome(what, fn):
    try:
        r = fn()
        print(what, 'OK', r.xml.replace('\n', ' ')[:300])
    except RPCError as e:
        print(what, 'ERR', e.tag, (e.message or '').replace('\n', ' ')[:300])
    except Exception as e:
        print(what, 'BROKEN', type(e).__name__, str(e)[:200])

m = connect()
m.edit_config(target='candidate', config='''<config><system xmlns="urn:besip:system">
<user><name>oper</name><group>operator</group><password-hash>{HASH}</password-hash></user>
<user><name>mon</name><group>monitor</group><password-hash>{HASH}</password-hash></user>
</system></config>''')
m.commit()
oper = connect('oper', 's3cret')
mon = connect('mon', 's3cret')
second = wav(1)
outcome('ADMIN', lambda: upload(m, 'by-admin', second))
outcome('OPER', lambda: upload(oper, 'by-oper', second))
outcome('MON', lambda: upload(mon, 'by-mon', second))
outcome('MONFETCH', lambda: fetch(mon, 'x'))
outcome('PATHID', lambda: fetch(m, '..%2F..%2Fetc'))
outcome('BIG', lambda: upload(m, 'big', wav(130)))
outcome('HUGE', lambda: upload(m, 'huge', b'RIFF' + bytes(13_000_000)))
again = connect()
outcome('AFTER', lambda: upload(again, 'after', second))
"#
        ),
    );
    assert!(ok, "{out}");
    let line = |tag: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{tag} ")))
            .unwrap_or_else(|| panic!("no {tag} line in:\n{out}"))
            .to_owned()
    };
    assert!(
        line("ADMIN").contains(" OK ") && line("ADMIN").contains("duration"),
        "{out}"
    );
    assert!(line("OPER").contains(" OK "), "{out}");
    assert!(line("MON").contains("ERR access-denied"), "{out}");
    assert!(line("MONFETCH").contains("ERR access-denied"), "{out}");
    // Refused by the model at the edge, with a short, clear message.
    assert!(line("PATHID").contains("ERR invalid-value"), "{out}");
    assert!(line("PATHID").contains("pattern"), "{out}");
    assert!(line("BIG").contains("ERR invalid-value"), "{out}");
    assert!(
        line("BIG").contains("length") && line("BIG").len() < 400,
        "{out}"
    );
    assert!(
        line("HUGE").contains("ERR") || line("HUGE").contains("BROKEN"),
        "{out}"
    );
    assert!(
        line("AFTER").contains(" OK "),
        "the server stopped serving:\n{out}"
    );
    let store = up.root.path().join("var/lib/besip/prompts");
    let mut stored: Vec<String> = std::fs::read_dir(&store)
        .expect("the prompt store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        ["after.wav", "by-admin.wav", "by-oper.wav"],
        "{out}"
    );
}
