//! The apk-tools v3 packages and signed `packages.adb` that `besip-image
//! packages` writes into OUT/apk, read back by an independent reader
//! (tests/image/verify_apk.py: Python's zlib/hashlib and the `cryptography`
//! package's ECDSA, written from apk-tools' format documentation, not our
//! writer's code): the ADB container and schemas, each .apk against the
//! .ipk of the same package, DATA blocks against file hashes, the index's
//! hashes and sizes, and the ECDSA P-256 signatures with the published key.
//! The signing key is made the way OpenWrt makes its apk build key
//! (`openssl ecparam -name prime256v1 -genkey -noout`).
//!
//! With BESIP_APK_TOOLS set to an apk-tools 3 binary, the packages are also
//! installed with it into a scratch root (Debian ships no apk-tools 3).

use std::path::{Path, PathBuf};
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
    verify_with("verify_apk.py", feed)
}

fn verify_with(script: &str, feed: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("image")
        .join(script);
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

/// Alter an ADB file after the fact (inflate, change, deflate again):
/// `index` flips a letter of the index's own description ("BESIP <version>
/// <arch>") inside the signed ADB block, `data` flips a byte in the middle of the file (inside the DATA
/// block of the multi-call binary for besip-box).
fn tamper(file: &Path, how: &str) {
    let script = r#"
import sys, zlib
path, how = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
assert raw[:4] == b"ADBd", raw[:4]
data = bytearray(zlib.decompress(raw[4:], -15))
if how == "index":
    data[data.index(b"BESIP 1.2.3-r1 x86_64")] ^= 0x20
else:
    data[len(data) // 2] ^= 1
out = zlib.compressobj(9, zlib.DEFLATED, -15)
open(path, "wb").write(b"ADBd" + out.compress(bytes(data)) + out.flush())
"#;
    run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(file)
        .arg(how));
}

const VERSION: &str = "1.2.3-r1";

/// `besip-image packages` with the usign key (for the .ipk feed) made next
/// to `apk_key` by the test and the apk signing key.
fn packages(image: &Path, out: &Path, apk_key: &Path, binary: &Path) -> String {
    let usign = apk_key.with_file_name("usign.sec");
    if !usign.exists() {
        run(Command::new(image)
            .arg("keygen")
            .arg("--secret")
            .arg(&usign)
            .arg("--public")
            .arg(apk_key.with_file_name("usign.pub")));
    }
    run(Command::new(image)
        // An OpenWrt-style version (with the -r release) in the file names.
        .args([
            "packages",
            "--arch",
            "x86_64",
            "--version",
            VERSION,
            "--out",
        ])
        .arg(out)
        .arg("--key")
        .arg(&usign)
        .arg("--apk-key")
        .arg(apk_key)
        .arg("--binary")
        .arg(binary))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn published_key(feed: &Path) -> PathBuf {
    std::fs::read_dir(feed.join("apk"))
        .expect("read apk dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "pem"))
        .expect("a .pem public key next to packages.adb")
}

#[test]
fn apk_feed_reads_back_with_an_independent_reader_and_its_signatures_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = bin_path("besip-image");
    let key = dir.path().join("apk.key");
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key));
    // Any file stands in for the multi-call binary: this test is about the format.
    let binary = dir.path().join("besip-box");
    std::fs::write(&binary, vec![0x7fu8; 200_000]).expect("write stand-in binary");
    let feed = dir.path().join("feed");
    let listing = packages(&image, &feed, &key, &binary);
    assert!(listing.contains("apk/packages.adb"), "{listing}");

    let (ok, report) = verify(&feed);
    assert!(ok, "independent check failed: {report}");
    // The published key is openssl's public half of the key we were given.
    let public = run(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key));
    assert_eq!(
        std::fs::read_to_string(published_key(&feed)).expect("read key"),
        public,
        "the published key is not the signing key's public half"
    );
    // The .ipk feed next to it still passes its own check.
    let (ok, report) = verify_with("verify_feed.py", &feed);
    assert!(ok, "the .ipk feed broke: {report}");

    // Same input, same key: byte-identical packages and index (ECDSA with
    // RFC 6979 nonces is deterministic).
    let again = dir.path().join("again");
    packages(&image, &again, &key, &binary);
    for entry in std::fs::read_dir(feed.join("apk")).expect("read apk dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            std::fs::read(again.join("apk").join(name)).expect("read again"),
            "{name:?} differs between two builds"
        );
    }

    // An index altered after signing is refused.
    let altered = dir.path().join("altered-index");
    copy_tree(&feed, &altered);
    tamper(&altered.join("apk/packages.adb"), "index");
    let (ok, report) = verify(&altered);
    assert!(!ok, "an altered index passed: {report}");
    assert!(report.contains("signature"), "{report}");

    // A package whose file data changed no longer matches its hashes.
    let altered = dir.path().join("altered-data");
    copy_tree(&feed, &altered);
    tamper(
        &altered.join(format!("apk/besip-box-{VERSION}.apk")),
        "data",
    );
    let (ok, report) = verify(&altered);
    assert!(!ok, "an altered package passed: {report}");
    assert!(report.contains("usr/bin/besip-box"), "{report}");

    // An index signed by another key (apk-keygen's) verifies against that
    // key only: with our published key it is refused.
    let other_key = dir.path().join("other.key");
    let other_id = run(Command::new(&image)
        .arg("apk-keygen")
        .arg("--secret")
        .arg(&other_key)
        .arg("--public")
        .arg(dir.path().join("other.pem")));
    let other = dir.path().join("other");
    packages(&image, &other, &other_key, &binary);
    let (ok, report) = verify(&other);
    assert!(ok, "feed signed by apk-keygen's key failed: {report}");
    assert!(
        report.contains(other_id.trim()),
        "key id not reported: {report}"
    );
    let mixed = dir.path().join("mixed");
    copy_tree(&feed, &mixed);
    std::fs::copy(
        other.join("apk/packages.adb"),
        mixed.join("apk/packages.adb"),
    )
    .expect("copy index");
    let (ok, report) = verify(&mixed);
    assert!(
        !ok,
        "an index signed by an unpublished key passed: {report}"
    );
    assert!(report.contains("not published"), "{report}");

    if let Ok(apk) = std::env::var("BESIP_APK_TOOLS") {
        install_with_apk_tools(Path::new(&apk), &feed, &binary, dir.path());
    } else {
        eprintln!("BESIP_APK_TOOLS not set: not installing with a real apk-tools 3");
    }
}

/// Install from the feed with a real apk-tools 3 into scratch roots: with
/// the published key it installs the files; without it the index is
/// untrusted and nothing is found.
fn install_with_apk_tools(apk: &Path, feed: &Path, binary: &Path, scratch: &Path) {
    let index = feed.join("apk/packages.adb");
    let add = |root: &Path| {
        Command::new(apk)
            .arg("--root")
            .arg(root)
            .args([
                "--initdb",
                "--arch",
                "x86_64",
                "--no-scripts",
                "--repository",
            ])
            .arg(&index)
            .args(["add", "besip-pbxd", "besip-cli"])
            .output()
            .expect("run apk")
    };
    let root = scratch.join("root");
    std::fs::create_dir_all(root.join("etc/apk/keys")).expect("mkdir keys");
    let key = published_key(feed);
    std::fs::copy(
        &key,
        root.join("etc/apk/keys")
            .join(key.file_name().expect("name")),
    )
    .expect("copy key");
    let output = add(&root);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "apk add failed: {text}");
    assert_eq!(
        std::fs::read(root.join("usr/bin/besip-box")).expect("installed binary"),
        std::fs::read(binary).expect("binary")
    );
    assert_eq!(
        std::fs::read_link(root.join("usr/sbin/besip-pbxd")).expect("link"),
        Path::new("/usr/bin/besip-box")
    );
    assert!(root.join("etc/init.d/besip-pbxd").exists(), "{text}");

    let untrusted = scratch.join("untrusted");
    std::fs::create_dir_all(untrusted.join("etc/apk/keys")).expect("mkdir keys");
    let output = add(&untrusted);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "apk trusted an unknown key: {text}"
    );
    assert!(text.contains("UNTRUSTED"), "{text}");
}
