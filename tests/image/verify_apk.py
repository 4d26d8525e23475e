#!/usr/bin/python3
"""Independent check of the apk-tools v3 side of a BESIP feed (FEED/apk),
written from apk-tools' documentation and headers (doc/apk-v3.5.scd,
src/adb.h, src/apk_adb.h, src/apk_adb.c schemas, src/adb.c signature
layout), not from our writer: inflates the "ADBd" files, walks the blocks
and the tagged values, names every field by the pckg/indx schemas, and
compares each .apk with the .ipk of the same package in FEED (files, modes,
link targets, contents, depends) and with packages.adb (hash of the ADB
block, file size), checks every DATA block against the file hashes, and
verifies the ECDSA signatures of the index and of every package with the
published .pem key using the `cryptography` package -- and that they fail
once what they sign is altered.
Usage: verify_apk.py FEED_DIR. Prints OK or FAIL and exits non-zero."""
import gzip, hashlib, io, os, struct, sys, tarfile, zlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

DAEMONS = {"besip-netconfd": "besip_system", "besip-pbxd": "besip_pbx",
           "besip-secd": "besip_security", "besip-monitord": "besip_monitoring"}
EXPECTED = {"besip", "besip-box", "besip-cli", *DAEMONS}


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


# ---- container --------------------------------------------------------------

def inflate(path):
    raw = open(path, "rb").read()
    if raw[:4] == b"ADB.":
        return raw
    if raw[:4] == b"ADBd":
        return zlib.decompress(raw[4:], -15)
    if raw[:4] == b"ADBc":
        if raw[4] != 1:
            fail(f"{path}: compression algorithm {raw[4]} not handled here")
        return zlib.decompress(raw[6:], -15)
    fail(f"{path}: not an ADB file (starts {raw[:4]!r})")


def blocks(path, data):
    """[(type, payload)] after the 8-byte header, checking sizes and padding."""
    if data[:4] != b"ADB.":
        fail(f"{path}: magic {data[:4]!r}")
    out, pos = [], 8
    while pos < len(data):
        if pos + 4 > len(data):
            fail(f"{path}: truncated block header at {pos}")
        (tag,) = struct.unpack_from("<I", data, pos)
        kind, size = tag >> 30, tag & 0x3FFFFFFF
        if kind == 3:
            fail(f"{path}: extended block header (not expected for these sizes)")
        if size < 4 or pos + size > len(data):
            fail(f"{path}: block at {pos} of size {size} overruns the file")
        padded = (size + 7) & ~7
        if data[pos + size:pos + padded] != b"\0" * (padded - size):
            fail(f"{path}: block at {pos} is not zero-padded to 8 bytes")
        out.append((kind, data[pos + 4:pos + size]))
        pos += padded
    if pos != len(data):
        fail(f"{path}: trailing bytes")
    kinds = [k for k, _ in out]
    # One ADB block, then SIG blocks, then DATA blocks (apk-v3(5), BLOCKS).
    if not kinds or kinds[0] != 0 or kinds.count(0) != 1 or kinds != sorted(kinds):
        fail(f"{path}: block order {kinds}")
    return data[4:8], out


# ---- values -----------------------------------------------------------------

class Blob(bytes):
    """A blob that remembers where its bytes sit in the ADB block."""
    offset = 0


def value(adb, v):
    kind, x = v >> 28, v & 0x0FFFFFFF

    def need(at, n):
        if at + n > len(adb):
            fail(f"value {v:#010x} points outside the ADB block")

    if kind == 0x0:
        if x not in (0, 1, 2):
            fail(f"special value {x}")
        return None if x == 0 else x == 1
    if kind == 0x1:
        return x
    if kind == 0x2:
        need(x, 4)
        return struct.unpack_from("<I", adb, x)[0]
    if kind == 0x3:
        need(x, 8)
        return struct.unpack_from("<Q", adb, x)[0]
    if kind in (0x8, 0x9, 0xA):
        width = {0x8: 1, 0x9: 2, 0xA: 4}[kind]
        need(x, width)
        n = int.from_bytes(adb[x:x + width], "little")
        need(x + width, n)
        b = Blob(adb[x + width:x + width + n])
        b.offset = x + width
        return b
    if kind in (0xD, 0xE):
        need(x, 4)
        (n,) = struct.unpack_from("<I", adb, x)
        if n == 0:
            fail("object with no slot count")
        need(x, 4 * n)
        slots = list(struct.unpack_from(f"<{n}I", adb, x))[1:]
        return ("array" if kind == 0xD else "object", slots)
    fail(f"unknown value type {kind:#x}")


# Schemas (src/apk_adb.c): field number -> (name, kind); kinds are
# "str", "int", "hex" (raw bytes) or a nested schema / ("array", item).
DEPENDENCY = {1: ("name", "str"), 2: ("version", "str"), 3: ("match", "int")}
PKGINFO = {1: ("name", "str"), 2: ("version", "str"), 3: ("hashes", "hex"),
           4: ("description", "str"), 5: ("arch", "str"), 6: ("license", "str"),
           7: ("origin", "str"), 8: ("maintainer", "str"), 9: ("url", "str"),
           10: ("repo-commit", "hex"), 11: ("build-time", "int"),
           12: ("installed-size", "int"), 13: ("file-size", "int"),
           14: ("provider-priority", "int"),
           15: ("depends", ("array", DEPENDENCY)), 16: ("provides", ("array", DEPENDENCY)),
           17: ("replaces", ("array", DEPENDENCY)), 18: ("install-if", ("array", DEPENDENCY)),
           19: ("recommends", ("array", DEPENDENCY)), 20: ("layer", "int"),
           21: ("tags", ("array", "str"))}
ACL = {1: ("mode", "int"), 2: ("user", "str"), 3: ("group", "str"),
       4: ("xattrs", ("array", "hex"))}
FILE = {1: ("name", "str"), 2: ("acl", ACL), 3: ("size", "int"), 4: ("mtime", "int"),
        5: ("hash", "hex"), 6: ("target", "hex")}
DIR = {1: ("name", "str"), 2: ("acl", ACL), 3: ("files", ("array", FILE))}
SCRIPTS = {1: ("trigger", "str"), 2: ("pre-install", "str"), 3: ("post-install", "str"),
           4: ("pre-deinstall", "str"), 5: ("post-deinstall", "str"),
           6: ("pre-upgrade", "str"), 7: ("post-upgrade", "str")}
PACKAGE = {1: ("info", PKGINFO), 2: ("paths", ("array", DIR)), 3: ("scripts", SCRIPTS),
           4: ("triggers", ("array", "str")), 5: ("replaces-priority", "int")}
INDEX = {1: ("description", "str"), 2: ("packages", ("array", PKGINFO)),
         3: ("pkgname-spec", "str")}


def walk(adb, v, kind, where):
    got = value(adb, v)
    if got is None:
        return None
    if kind == "int":
        if not isinstance(got, int) or isinstance(got, bool):
            fail(f"{where}: not an integer")
        return got
    if kind in ("str", "hex"):
        if not isinstance(got, Blob):
            fail(f"{where}: not a blob")
        if kind == "str":
            try:
                got.decode()
            except UnicodeDecodeError:
                fail(f"{where}: not UTF-8")
        return got
    if isinstance(kind, tuple):
        if got[0] != "array":
            fail(f"{where}: not an array")
        return [walk(adb, s, kind[1], f"{where}[{i}]") for i, s in enumerate(got[1], 1)]
    if got[0] != "object":
        fail(f"{where}: not an object")
    out = {}
    for i, slot in enumerate(got[1], 1):
        if i not in kind:
            if slot != 0:
                fail(f"{where}: unknown field {i}")
            continue
        name, sub = kind[i]
        item = walk(adb, slot, sub, f"{where}.{name}")
        if item is not None:
            out[name] = item
    return out


def root(adb, schema, where):
    if len(adb) < 8 or adb[0] != 0:
        fail(f"{where}: ADB header compat version {adb[:1]!r}")
    (v,) = struct.unpack_from("<I", adb, 4)
    return walk(adb, v, schema, where)


# ---- the .ipk side (what the apk must agree with) ---------------------------

def ipk_contents(path):
    outer = tarfile.open(fileobj=io.BytesIO(gzip.decompress(open(path, "rb").read())))
    data_tar = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./data.tar.gz").read()), mode="r:gz")
    control_tar = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./control.tar.gz").read()), mode="r:gz")
    control = control_tar.extractfile("./control").read().decode()
    fields = dict(l.split(": ", 1) for l in control.splitlines() if ": " in l and not l.startswith(" "))
    tree = {}
    for m in data_tar.getmembers():
        name = m.name[2:] if m.name.startswith("./") else m.name
        name = name.rstrip("/")
        if name in ("", "."):
            continue
        if m.isdir():
            tree[name] = ("dir", m.mode)
        elif m.issym():
            tree[name] = ("link", m.linkname)
        else:
            tree[name] = ("file", m.mode, hashlib.sha256(data_tar.extractfile(m).read()).digest())
    return fields, tree


def parse_depends(text):
    """opkg "a (=1), b" -> {(name, version or None, match)} as apk stores it."""
    out = set()
    for item in filter(None, (d.strip() for d in text.split(","))):
        if "(" not in item:
            out.add((item, None, None))
            continue
        name, rest = item.split("(", 1)
        rest = rest.rstrip(")").strip()
        for op, bits in ((">=", 5), ("<=", 3), ("=", 1), (">", 4), ("<", 2)):
            if rest.startswith(op):
                # EQUAL is apk's default and not stored.
                out.add((name.strip(), rest[len(op):].strip(), None if bits == 1 else bits))
                break
    return out


# ---- checks -----------------------------------------------------------------

def check_package(path, name, ipks, keys):
    data = inflate(path)
    schema, blks = blocks(path, data)
    if schema != b"pckg":
        fail(f"{name}: schema {schema!r}")
    adb = blks[0][1]
    # Packages are signed by the index key (apk mkpkg --sign): each SIG
    # block must verify, and not once the ADB block is altered.
    sigs = [p for k, p in blks if k == 1]
    if not sigs:
        fail(f"{name}: not signed")
    for sig in sigs:
        key_id, problem = verify_signature(schema, adb, sig, keys)
        if not key_id:
            fail(f"{name}: {problem}")
        if verify_signature(schema, adb[:-1] + bytes([adb[-1] ^ 1]), sig, keys)[0]:
            fail(f"{name}: the signature verifies an altered package")
    pkg = root(adb, PACKAGE, name)
    info = pkg.get("info") or fail(f"{name}: no info")
    version = info["version"].decode()
    if info["name"].decode() not in ipks:
        fail(f"{name}: package {info['name']!r} has no .ipk counterpart")
    ipk = ipk_contents(ipks[info["name"].decode()])
    if os.path.basename(path) != f"{info['name'].decode()}-{version}.apk":
        fail(f"{name}: file name does not follow ${{name}}-${{version}}.apk")
    fields, tree = ipk
    expect = {"name": fields["Package"], "version": fields["Version"],
              "arch": fields["Architecture"], "license": fields["License"],
              "origin": fields["Source"], "description": fields["Description"]}
    for key, want in expect.items():
        if info.get(key, b"").decode() != want:
            fail(f"{name}: {key} {info.get(key)!r}, the .ipk says {want!r}")
    deps = {(d["name"].decode(), d["version"].decode() if "version" in d else None, d.get("match"))
            for d in info.get("depends", [])}
    if deps != parse_depends(fields.get("Depends", "")):
        fail(f"{name}: depends {sorted(deps, key=str)} differ from the .ipk's {fields.get('Depends')!r}")
    names = [d["name"] for d in info.get("depends", [])]
    if names != sorted(names):
        fail(f"{name}: depends not sorted")

    # Unique id: SHA-256 of the ADB block with the id zeroed, first 20 bytes.
    uid = info.get("hashes")
    if uid is None or len(uid) != 20:
        fail(f"{name}: unique id {uid!r}")
    zeroed = adb[:uid.offset] + b"\0" * 20 + adb[uid.offset + 20:]
    if hashlib.sha256(zeroed).digest()[:20] != uid:
        fail(f"{name}: unique id is not the hash of its ADB block")

    # The tree, DATA blocks and hashes.
    paths = pkg.get("paths", [])
    dir_names = [p.get("name", b"") for p in paths]
    if dir_names != sorted(dir_names) or len(set(dir_names)) != len(dir_names):
        fail(f"{name}: paths not sorted/unique: {dir_names}")
    expected_data, seen, size_sum = [], {}, 0
    for i, d in enumerate(paths, 1):
        dname = d.get("name", b"").decode()
        acl = d.get("acl", {})
        if acl.get("user") != b"root" or acl.get("group") != b"root":
            fail(f"{name}: directory {dname} not root:root")
        if dname:
            seen[dname] = ("dir", 0o040000 | acl.get("mode", 0))
        files = d.get("files", [])
        fnames = [f["name"] for f in files]
        if fnames != sorted(fnames):
            fail(f"{name}: files of {dname} not sorted")
        for j, f in enumerate(files, 1):
            full = f"{dname}/{f['name'].decode()}" if dname else f["name"].decode()
            facl = f.get("acl", {})
            if facl.get("user") != b"root" or facl.get("group") != b"root":
                fail(f"{name}: {full} not root:root")
            if "target" in f:
                target = f["target"]
                if struct.unpack_from("<H", target)[0] != 0o120000:
                    fail(f"{name}: {full} target is not a symlink")
                seen[full] = ("link", target[2:].decode())
                continue
            digest = f.get("hash")
            if digest is None or len(digest) != 32:
                fail(f"{name}: {full} has no SHA-256")
            size = f.get("size", 0)
            size_sum += size
            seen[full] = ("file", 0o100000 | facl.get("mode", 0), bytes(digest))
            if size:
                expected_data.append((i, j, size, bytes(digest), full))
    data_blocks = [p for k, p in blks if k == 2]
    if len(data_blocks) != len(expected_data):
        fail(f"{name}: {len(data_blocks)} DATA blocks for {len(expected_data)} non-empty files")
    for payload, (i, j, size, digest, full) in zip(data_blocks, expected_data):
        pi, fj = struct.unpack_from("<II", payload)
        if (pi, fj) != (i, j):
            fail(f"{name}: DATA block for ({pi},{fj}) where ({i},{j}) {full} was due")
        body = payload[8:]
        if len(body) != size or hashlib.sha256(body).digest() != digest:
            fail(f"{name}: DATA of {full} does not match its size/hash")
    if info.get("installed-size") != max(size_sum, 1):
        fail(f"{name}: installed-size {info.get('installed-size')} != {max(size_sum, 1)}")

    # Same files as the .ipk (modes, link targets, contents), plus OpenWrt's
    # /lib/apk/packages/<name>.conffiles* for packages with conffiles.
    ipk_tree = {k: (v[0], 0o040000 | v[1]) if v[0] == "dir" else
                ((v[0], 0o100000 | v[1], v[2]) if v[0] == "file" else v)
                for k, v in tree.items()}
    extra = {k: v for k, v in seen.items() if k not in ipk_tree}
    for k, v in ipk_tree.items():
        if seen.get(k) != v:
            fail(f"{name}: {k} is {seen.get(k)} in the .apk, {v} in the .ipk")
    package = info["name"].decode()
    allowed = {"lib", "lib/apk", "lib/apk/packages",
               f"lib/apk/packages/{package}.conffiles", f"lib/apk/packages/{package}.conffiles_static"}
    if set(extra) - allowed:
        fail(f"{name}: files not in the .ipk: {sorted(set(extra) - allowed)}")
    if package in DAEMONS:
        conffile = f"/etc/config/{DAEMONS[package]}"
        by_path = {}
        for i, d in enumerate(paths, 1):
            for j, f in enumerate(d.get("files", []), 1):
                by_path[f"{d.get('name', b'').decode()}/{f['name'].decode()}"] = (i, j, f)
        listed = by_path.get(f"lib/apk/packages/{package}.conffiles")
        if listed is None:
            fail(f"{name}: no /lib/apk/packages/{package}.conffiles")
        i, j, _ = listed
        body = next(p[8:] for p in data_blocks if struct.unpack_from("<II", p) == (i, j))
        if body.decode().split() != [conffile]:
            fail(f"{name}: conffiles {body!r}")
    elif any(k.endswith(".conffiles") for k in extra):
        fail(f"{name}: conffiles for a package without configuration")

    scripts = pkg.get("scripts", {})
    post, pre = scripts.get("post-install", b"").decode(), scripts.get("pre-deinstall", b"").decode()
    for label, body, call in (("post-install", post, "default_postinst"), ("pre-deinstall", pre, "default_prerm")):
        if not body.startswith("#!/bin/sh\n") or call not in body or f'export pkgname="{package}"' not in body \
                or ". ${IPKG_INSTROOT}/lib/functions.sh" not in body:
            fail(f"{name}: {label} does not follow OpenWrt's default script: {body!r}")
    return info, adb


def pem_key_id(public):
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha512(point).digest()[:16]


def verify_signature(schema, adb, sig, keys):
    """adb_sign_v0: sign_ver, hash_alg, id[16], signature over
    le32(schema) | the 18 header bytes | digest(ADB block)."""
    if len(sig) < 18 or sig[0] != 0:
        return None, "not a v0 signature"
    if sig[1] != 4:
        return None, f"hash algorithm {sig[1]} is not SHA-512"
    key = keys.get(sig[2:18])
    if key is None:
        return None, f"signed by key id {sig[2:18].hex()}, which is not published"
    message = schema + sig[:18] + hashlib.sha512(adb).digest()
    try:
        key.verify(sig[18:], message, ec.ECDSA(hashes.SHA512()))
    except InvalidSignature:
        return None, "signature does not verify with the published key"
    return sig[2:18].hex(), None


def main(feed):
    apk_dir = os.path.join(feed, "apk")
    apks = sorted(f for f in os.listdir(apk_dir) if f.endswith(".apk"))
    ipks = {f.split("_")[0]: os.path.join(feed, f) for f in os.listdir(feed) if f.endswith(".ipk")}
    if set(ipks) != EXPECTED or len(apks) != len(EXPECTED):
        fail(f"apk files {apks}, ipk packages {sorted(ipks)}")
    keys = {}
    for f in os.listdir(apk_dir):
        if f.endswith(".pem"):
            public = serialization.load_pem_public_key(open(os.path.join(apk_dir, f), "rb").read())
            if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
                fail(f"{f}: not an EC P-256 public key")
            keys[pem_key_id(public)] = public
    if not keys:
        fail("no public key (.pem) published next to packages.adb")
    infos = {}
    for f in apks:
        path = os.path.join(apk_dir, f)
        info, adb = check_package(path, f, ipks, keys)
        infos[info["name"].decode()] = (info, hashlib.sha256(adb).digest(), os.path.getsize(path))
    if set(infos) != EXPECTED:
        fail(f"apk packages {sorted(infos)}")

    index_path = os.path.join(apk_dir, "packages.adb")
    schema, blks = blocks(index_path, inflate(index_path))
    if schema != b"indx":
        fail(f"packages.adb schema {schema!r}")
    adb = blks[0][1]
    # As apk does: trust the index (its signature) before reading it.
    sigs = [p for k, p in blks if k == 1]
    if not sigs:
        fail("packages.adb is not signed")
    problems, key_id = [], None
    for sig in sigs:
        key_id, problem = verify_signature(schema, adb, sig, keys)
        if key_id:
            break
        problems.append(problem)
    if not key_id:
        fail("packages.adb signature: " + "; ".join(problems))
    # The same signature must not cover an altered index.
    altered = bytearray(adb)
    altered[-1] ^= 1
    if any(verify_signature(schema, bytes(altered), sig, keys)[0] for sig in sigs):
        fail("the signature verifies an altered packages.adb")
    index = root(adb, INDEX, "packages.adb")
    listed = index.get("packages", [])
    listed_names = [p["name"].decode() for p in listed]
    if listed_names != sorted(listed_names) or set(listed_names) != set(infos) or len(listed) != len(infos):
        fail(f"index lists {listed_names}, packages are {sorted(infos)}")
    for p in listed:
        info, identity, size = infos[p["name"].decode()]
        if p.get("hashes") != identity:
            fail(f"index: {p['name']!r} hash is not the SHA-256 of its ADB block")
        if p.get("file-size") != size:
            fail(f"index: {p['name']!r} file-size {p.get('file-size')} != {size}")
        for key in ("version", "arch", "license", "origin", "description", "installed-size", "depends"):
            if p.get(key) != info.get(key):
                fail(f"index: {p['name']!r} {key} differs from the package's")
    if any(k == 2 for k, _ in blks):
        fail("index has DATA blocks")

    print(f"OK {len(apks)} apk packages, index signed by key {key_id}")


if __name__ == "__main__":
    main(sys.argv[1])
