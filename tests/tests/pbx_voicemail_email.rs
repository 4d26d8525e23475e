//! Voicemail to e-mail against a real SMTP server in the test (Debian's
//! python3-aiosmtpd with STARTTLS required and AUTH, its certificate from a
//! CA of the test): a message left by phone arrives with the WAV attached
//! (read back by Python's email parser: the caller's tone is in it); with a
//! CA that does not match, delivery fails after the retries, the state says
//! why, and the notification voicemail-email-failed reaches an IPC
//! subscriber.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use besip_core::ipc::IpcClient;
use besip_tests::baresip::{dominant_frequency, wav_samples};
use besip_tests::certs::test_ca_for;
use besip_tests::pbx::media_phone::{media_caller, MediaPhone};
use besip_tests::pbx::office::{base, with_ext};
use besip_tests::pbx::*;

const SERVER: &str = r#"
import ssl, sys, time, os
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Save:
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(out))
        with open(os.path.join(out, f"{n}.eml.part"), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(os.path.join(out, f"{n}.eml.part"), os.path.join(out, f"{n}.eml"))
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"vm" and data.password == b"secret"
    return AuthResult(success=ok)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Save(), hostname="127.0.0.1", port=port, server_hostname="localhost",
               tls_context=ctx, require_starttls=True, authenticator=auth, auth_require_tls=True)
c.start()
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

const EXTRACT: &str = r#"
import email, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read())
print(m["To"]); print(m["Subject"])
for part in m.walk():
    if part.get_content_type() == "audio/wav":
        open(sys.argv[2], "wb").write(part.get_payload(decode=True))
        print(part.get_filename())
"#;

struct Smtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    fn start(cert: &str, key: &str) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let port = free_port();
        let mut child = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(SERVER)
            .arg(port.to_string())
            .arg(dir.path().join("cert.pem"))
            .arg(dir.path().join("key.pem"))
            .arg(dir.path().join("mail"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Smtp { child, port, dir }
    }

    fn mails(&self) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_aiosmtpd() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn config(port: u16, smtp: u16, ca: &str, rtp: u16) -> String {
    let main = format!(
        "\toption rtp_port_min '{rtp}'\n\toption rtp_port_max '{}'\n\toption voicemail_email_server 'localhost'\n\toption voicemail_email_port '{smtp}'\n\toption voicemail_email_username 'vm'\n\toption voicemail_email_password 'secret'\n\toption voicemail_email_from 'pbx@office.test'\n\toption voicemail_email_ca_certificate '{ca}'\n",
        rtp + 99
    );
    with_ext(
        &base(port, "b2bua", &main),
        "101",
        "\toption voicemail_enabled '1'\n\toption voicemail_email 'boss@office.test'\n",
    )
}

fn leave_message(sipp: &Sipp, port: u16, tone: f64) {
    let phone = MediaPhone::start(tone);
    let call = sipp.spawn(
        "leave",
        &media_caller("100", "101", &phone.sdp(), None),
        free_port(),
        port,
        &["-au", "100", "-ap", "pw100"],
    );
    let t = Instant::now();
    phone.wait_peer();
    while !phone.heard_tone_since(t, 1000.0) {
        assert!(t.elapsed() < Duration::from_secs(8), "no beep");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    phone.press("#");
    let done = sipp.wait(call);
    assert!(done.success, "{}", done.log);
}

#[test]
fn a_message_is_mailed_with_its_wav_over_starttls() {
    if !have_sipp() || !have_aiosmtpd() {
        eprintln!("sipp or python3-aiosmtpd missing: skipped");
        return;
    }
    let (ca, cert, key) = test_ca_for("mail CA", &["localhost"]);
    let smtp = Smtp::start(&cert, &key);
    let port = free_port();
    let pbx = Pbx::start(&config(port, smtp.port, &ca, 44000), port);
    let sipp = Sipp::new();
    leave_message(&sipp, port, 850.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while smtp.mails().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no mail arrived: {}",
            pbx.state()["besip-pbx:pbx"]["voicemail-state"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let wav = smtp.dir.path().join("attached.wav");
    let out = Command::new("/usr/bin/python3")
        .args(["-c", EXTRACT])
        .arg(&smtp.mails()[0])
        .arg(&wav)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"boss@office.test"), "{text}");
    assert!(
        lines[1].starts_with("New voicemail from sip:100@besip.test"),
        "{text}"
    );
    assert!(lines[2].ends_with(".wav"), "{text}");
    let f = dominant_frequency(&wav_samples(&wav), 8000);
    assert!((f - 850.0).abs() <= 10.0, "the attachment holds {f} Hz");
    let d = &pbx.state()["besip-pbx:pbx"]["voicemail-state"]["email-delivery"];
    assert_eq!(
        (d["sent"].as_u64(), d["failed"].as_u64()),
        (Some(1), Some(0)),
        "{d}"
    );
}

#[test]
fn an_undeliverable_message_is_counted_explained_and_notified() {
    if !have_sipp() || !have_aiosmtpd() {
        eprintln!("sipp or python3-aiosmtpd missing: skipped");
        return;
    }
    let (_, cert, key) = test_ca_for("mail CA", &["localhost"]);
    let (other_ca, _, _) = test_ca_for("some other CA", &["localhost"]);
    let smtp = Smtp::start(&cert, &key);
    let port = free_port();
    let pbx = Pbx::start(&config(port, smtp.port, &other_ca, 44100), port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(IpcClient::connect(&pbx.socket())).expect("IPC");
    let mut notes = client.notifications();
    rt.block_on(client.call("ping", serde_json::json!({})))
        .unwrap();
    let sipp = Sipp::new();
    leave_message(&sipp, port, 850.0);
    // Three tries, 2 s and 10 s apart.
    let n = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(40), notes.recv()).await })
        .expect("notification in time")
        .expect("notification");
    assert_eq!(n.name, "besip-pbx:voicemail-email-failed", "{n:?}");
    assert_eq!(n.data["mailbox"], "101");
    let error = n.data["error"].as_str().unwrap_or("").to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("issuer"),
        "{error}"
    );
    assert!(
        smtp.mails().is_empty(),
        "mail delivered despite the wrong CA"
    );
    let state = pbx.state();
    assert_state_valid(&pbx, &state);
    let d = &state["besip-pbx:pbx"]["voicemail-state"]["email-delivery"];
    assert_eq!(
        (d["sent"].as_u64(), d["failed"].as_u64()),
        (Some(0), Some(1)),
        "{d}"
    );
    assert!(
        d["last-error"].as_str().is_some_and(|e| !e.is_empty()),
        "{d}"
    );
    // The message itself is kept in the mailbox.
    let m = &state["besip-pbx:pbx"]["voicemail-state"]["mailbox"][0];
    assert_eq!(m["new-messages"], 1, "{m}");
}
