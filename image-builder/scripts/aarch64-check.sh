#!/usr/bin/env bash
# The aarch64 package set, built and tried (kept out of scripts/test: the size
# build takes minutes on 2 cores). Builds besip-box for aarch64-musl
# (build-musl.sh), writes the signed feed with besip-image, prints the sizes,
# then runs the aarch64 besip-netconfd under qemu-user and commits an
# extension over NETCONF (ncclient), checking the rendered UCI package.
# Needs: gcc-aarch64-linux-gnu, qemu-user, flex, bison, cmake, python3-ncclient.
# Usage: image-builder/scripts/aarch64-check.sh [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$root/target/aarch64-feed}")
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "aarch64-check: $tool missing (apt-get install gcc-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
done
binary=$("$root/image-builder/scripts/build-musl.sh" aarch64)
file "$binary" | grep -q "ARM aarch64" || { echo "aarch64-check: $binary is not an aarch64 executable" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p besip-image)
image="$root/target/release/besip-image"
rm -rf "$out"; mkdir -p "$out"
"$image" keygen --secret "$out/test.key" --public "$out/test.pub" >/dev/null
"$image" packages --arch aarch64 --binary "$binary" --key "$out/test.key" --out "$out/feed" | tail -1
echo "besip-box aarch64: $(stat -c %s "$binary") bytes; apk set: $(cat "$out"/feed/apk/*.apk | wc -c) bytes"

work=$(mktemp -d)
qemu=
trap '[ -z "$qemu" ] || kill "$qemu" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BESIP_ADMIN_PASSWORD=aarch64-check qemu-aarch64 -0 besip-netconfd "$binary" --root "$work/root" \
  --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
qemu=$!
for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.2; done
/usr/bin/python3 - "$port" <<'PY'
import sys
from ncclient import manager
m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="admin", password="aarch64-check",
                    hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=120)
m.edit_config(target="candidate", config='<config><pbx xmlns="urn:besip:pbx"><extension><number>100</number>'
              '<password>pw-100-aarch64</password></extension></pbx></config>')
m.commit()
assert "pw-100-aarch64" in m.get_config("running").xml
m.close_session()
PY
grep -q "option password 'pw-100-aarch64'" "$work/root/etc/config/besip_pbx" \
  || { echo "aarch64-check: the commit was not rendered to UCI" >&2; cat "$work/log" >&2; exit 1; }
echo "aarch64-check: besip-netconfd (aarch64, qemu-user) answered NETCONF, committed and rendered UCI"
