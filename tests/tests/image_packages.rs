//! The OpenWrt packages and the signed feed written by `besip-image packages`,
//! read back by an independent reader (tests/image/verify_feed.py: Python's
//! tarfile/gzip/hashlib and the `cryptography` package's Ed25519, not our
//! writer's code): archive structure, control fields, conffiles, procd init
//! scripts, checksums in Packages, and Packages.sig verifying with the
//! published key and failing on a tampered Packages.

use std::path::Path;
use std::process::Command;

use besip_tests::harness::bin_path;

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn verify(feed: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/verify_feed.py");
    let output = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(feed)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success() && text.contains("OK "), text)
}

#[test]
fn feed_reads_back_with_an_independent_reader_and_its_signature_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = bin_path("besip-image");
    let key_id = run(Command::new(&image)
        .arg("keygen")
        .arg("--secret")
        .arg(dir.path().join("feed.sec"))
        .arg("--public")
        .arg(dir.path().join("feed.pub")));
    // Any file stands in for the multi-call binary: this test is about the format.
    let binary = dir.path().join("besip-box");
    std::fs::write(&binary, vec![0x7fu8; 200_000]).expect("write stand-in binary");
    let feed = dir.path().join("feed");
    run(Command::new(&image)
        .args(["packages", "--arch", "x86_64", "--out"])
        .arg(&feed)
        .arg("--key")
        .arg(dir.path().join("feed.sec"))
        .arg("--binary")
        .arg(&binary));

    let (ok, report) = verify(&feed);
    assert!(ok, "independent check failed: {report}");
    assert!(
        report.contains(key_id.trim()),
        "feed signed by another key: {report}"
    );
    assert!(
        feed.join(key_id.trim()).exists(),
        "public key not named after its key id"
    );

    // The default IVR prompts ride in besip-pbxd, made with espeak-ng.
    let have_tts = ["espeak-ng", "sox"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if have_tts {
        let pbxd = std::fs::read_dir(&feed)
            .expect("read feed")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.starts_with("besip-pbxd_") && n.ends_with(".ipk")
            })
            .expect("besip-pbxd ipk");
        let listing = run(Command::new("sh").arg("-c").arg(format!(
            "tar -xzOf '{}' ./data.tar.gz | tar -tzvf -",
            pbxd.display()
        )));
        for prompt in ["welcome", "invalid", "goodbye", "pin", "vm-greeting"] {
            let line = listing
                .lines()
                .find(|l| l.ends_with(&format!("usr/share/besip/prompts/{prompt}.wav")))
                .unwrap_or_else(|| panic!("no {prompt} prompt in besip-pbxd:\n{listing}"));
            // Seconds of speech at 8 kHz, 16 bits: more than a header.
            let size: u64 = line
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            assert!(size > 8000, "{prompt} is {size} bytes: {line}");
        }
    } else {
        eprintln!("espeak-ng or sox missing: the prompts check is skipped");
    }

    // A Packages edited after signing is refused.
    let packages = feed.join("Packages");
    let mut text = std::fs::read_to_string(&packages).expect("read Packages");
    text = text.replacen("SHA256sum: ", "SHA256sum: 0", 1);
    std::fs::write(&packages, text).expect("tamper Packages");
    let (ok, report) = verify(&feed);
    assert!(!ok, "a tampered feed passed the check: {report}");

    // The same input builds byte-identical packages (reproducible feed).
    let again = dir.path().join("again");
    run(Command::new(&image)
        .args(["packages", "--arch", "x86_64", "--out"])
        .arg(&again)
        .arg("--binary")
        .arg(&binary));
    for entry in std::fs::read_dir(&again).expect("read feed") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "ipk") {
            let name = path.file_name().expect("name");
            assert_eq!(
                std::fs::read(&path).expect("read ipk"),
                std::fs::read(feed.join(name)).expect("read ipk"),
                "{name:?} differs between two builds"
            );
        }
    }
}
