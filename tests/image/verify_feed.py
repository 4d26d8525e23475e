#!/usr/bin/python3
"""Independent check of a BESIP opkg feed (not our writer's code): reads the
.ipk files with tarfile/gzip as opkg would, compares Packages with the
archives, and verifies Packages.sig in usign's format with the `cryptography`
package's Ed25519. Usage: verify_feed.py FEED_DIR. Prints OK or fails."""
import base64, gzip, hashlib, io, os, sys, tarfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FIELDS = ["Package", "Version", "Depends", "Source", "SourceName", "License",
          "Section", "Architecture", "Installed-Size", "Description"]
DAEMONS = {"besip-netconfd": "besip_system", "besip-pbxd": "besip_pbx",
           "besip-secd": "besip_security", "besip-monitord": "besip_monitoring"}


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def fields_of(text):
    out = []
    for line in text.splitlines():
        if line.startswith(" "):
            continue
        key, _, value = line.partition(": ")
        out.append((key, value))
    return out


def read_ipk(path):
    outer = tarfile.open(fileobj=io.BytesIO(gzip.decompress(open(path, "rb").read())))
    names = outer.getnames()
    if names != ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]:
        fail(f"{path}: outer members {names}")
    members = {m: outer.extractfile(m).read() for m in names}
    for m in outer.getmembers():
        if m.uid != 0 or m.gid != 0:
            fail(f"{path}: {m.name} not owned by 0:0")
    if members["./debian-binary"] != b"2.0\n":
        fail(f"{path}: debian-binary {members['./debian-binary']!r}")
    control_tar = tarfile.open(fileobj=io.BytesIO(members["./control.tar.gz"]), mode="r:gz")
    data_tar = tarfile.open(fileobj=io.BytesIO(members["./data.tar.gz"]), mode="r:gz")
    control = {m.name: control_tar.extractfile(m).read().decode() for m in control_tar.getmembers() if m.isfile()}
    data = {m.name: m for m in data_tar.getmembers()}
    return members, control, data, data_tar


def main(feed):
    ipks = sorted(f for f in os.listdir(feed) if f.endswith(".ipk"))
    expected = {"besip", "besip-box", "besip-cli", *DAEMONS}
    if {f.split("_")[0] for f in ipks} != expected:
        fail(f"packages {ipks}")
    controls = {}
    for name in ipks:
        path = os.path.join(feed, name)
        members, control, data, data_tar = read_ipk(path)
        text = control["./control"]
        keys = [k for k, _ in fields_of(text)]
        order = [f for f in FIELDS if f in keys]
        if keys != order or "Depends" not in keys and not name.startswith("besip-box"):
            fail(f"{name}: control fields {keys}")
        values = dict(fields_of(text))
        if int(values["Installed-Size"]) != len(members["./data.tar.gz"]):
            fail(f"{name}: Installed-Size {values['Installed-Size']} != data.tar.gz size")
        if values["Architecture"] != "x86_64" or values["License"] != "GPL-2.0-or-later":
            fail(f"{name}: {values}")
        for script, call in (("./postinst", "default_postinst $0 $@"), ("./prerm", "default_prerm $0 $@")):
            body = control.get(script, "")
            if not body.startswith("#!/bin/sh\n") or call not in body or ". ${IPKG_INSTROOT}/lib/functions.sh" not in body:
                fail(f"{name}: {script} does not follow OpenWrt's default script: {body!r}")
        package = values["Package"]
        if package in DAEMONS:
            conffiles = control.get("./conffiles", "").split()
            if conffiles != [f"/etc/config/{DAEMONS[package]}"]:
                fail(f"{name}: conffiles {conffiles}")
            for conffile in conffiles:
                if "." + conffile not in data or not data["." + conffile].isfile():
                    fail(f"{name}: conffile {conffile} not in data.tar.gz")
            init = data_tar.extractfile(f"./etc/init.d/{package}").read().decode()
            for needle in ("#!/bin/sh /etc/rc.common", "USE_PROCD=1", "procd_open_instance",
                           "procd_set_param respawn", "procd_set_param stdout 1",
                           "procd_set_param stderr 1", "service_triggers()",
                           f"procd_add_reload_trigger {DAEMONS[package]}",
                           f"/usr/sbin/besip-uci-import {DAEMONS[package]}"):
                if needle not in init:
                    fail(f"{name}: init script lacks {needle!r}")
            if data[f"./etc/init.d/{package}"].mode != 0o755:
                fail(f"{name}: init script not executable")
            link = data[f"./usr/sbin/{package}"]
            if not link.issym() or link.linkname != "/usr/bin/besip-box":
                fail(f"{name}: /usr/sbin/{package} is not a link to the multi-call binary")
            if "besip-box (=" not in values["Depends"]:
                fail(f"{name}: Depends {values['Depends']}")
        if package == "besip-box":
            if not data["./usr/bin/besip-box"].isfile() or data["./usr/bin/besip-box"].mode != 0o755:
                fail("besip-box: binary missing or not executable")
            if "./etc/uci-defaults/90-besip" not in data or "./lib/upgrade/keep.d/besip" not in data:
                fail("besip-box: uci-defaults or keep.d file missing")
            link = data.get("./usr/sbin/besip-uci-import")
            if link is None or not link.issym() or link.linkname != "/usr/bin/besip-box":
                fail("besip-box: /usr/sbin/besip-uci-import is not a link to the multi-call binary")
        controls[package] = (text, path)

    packages = open(os.path.join(feed, "Packages"), "rb").read()
    if gzip.decompress(open(os.path.join(feed, "Packages.gz"), "rb").read()) != packages:
        fail("Packages.gz is not Packages")
    paragraphs = [p for p in packages.decode().split("\n\n") if p.strip()]
    if len(paragraphs) != len(ipks):
        fail(f"{len(paragraphs)} paragraphs for {len(ipks)} packages")
    for paragraph in paragraphs:
        values = dict(fields_of(paragraph))
        text, path = controls[values["Package"]]
        blob = open(os.path.join(feed, values["Filename"]), "rb").read()
        if int(values["Size"]) != len(blob) or values["SHA256sum"] != hashlib.sha256(blob).hexdigest():
            fail(f"{values['Package']}: Size/SHA256sum do not match {values['Filename']}")
        without = "\n".join(l for l in paragraph.splitlines()
                            if not l.startswith(("Filename: ", "Size: ", "SHA256sum: ")))
        if without.strip() != text.strip():
            fail(f"{values['Package']}: Packages entry differs from the package's control")
        keys = [k for k, _ in fields_of(paragraph)]
        if keys.index("SHA256sum") + 1 != keys.index("Description"):
            fail("Filename/Size/SHA256sum are not inserted before Description")

    sig_lines = open(os.path.join(feed, "Packages.sig")).read().splitlines()
    if not sig_lines[0].startswith("untrusted comment: signed by key "):
        fail(f"signature comment {sig_lines[0]!r}")
    sig = base64.b64decode(sig_lines[1])
    if len(sig) != 74 or sig[:2] != b"Ed":
        fail("signature is not usign Ed25519")
    key_id = format(int.from_bytes(sig[2:10], "big"), "x")
    key_path = os.path.join(feed, key_id)
    if not os.path.exists(key_path):
        fail(f"no public key file named after key id {key_id}")
    key_lines = open(key_path).read().splitlines()
    key = base64.b64decode(key_lines[1])
    if key_lines[0] != f"untrusted comment: public key {key_id}" or len(key) != 42 or key[:2] != b"Ed" or key[2:10] != sig[2:10]:
        fail("public key file is not the usign key of the signature")
    public = Ed25519PublicKey.from_public_bytes(key[10:])
    try:
        public.verify(sig[10:], packages)
    except InvalidSignature:
        fail("Packages.sig does not verify with the published key")
    tampered = packages.replace(b"Version: ", b"Version: 9", 1)
    try:
        public.verify(sig[10:], tampered)
        fail("the signature verifies a tampered Packages")
    except InvalidSignature:
        pass
    print(f"OK {len(ipks)} packages, key {key_id}")


if __name__ == "__main__":
    main(sys.argv[1])
