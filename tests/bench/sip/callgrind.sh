#!/usr/bin/env bash
# Instructions per REGISTER of besip-pbxd (repeatable, unlike timings):
# N REGISTER exchanges (401 + REGISTER with credentials) from sipp at a low
# rate against besip-pbxd under `valgrind --tool=callgrind` with one UDP
# reader; prints the inclusive cost of Engine::on_message (both requests of
# every exchange) divided by N. The location writer runs on its own thread
# and is printed separately.
# Usage: tests/bench/sip/callgrind.sh [besip-pbxd binary]   (N=3000 by default)
# Note: valgrind hides SHA-NI, so the nonce HMAC runs SHA-256 in software here.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
N=${N:-3000}
PORT=${PORT:-17060}
BIN=${1:-}
if [ -z "$BIN" ]; then
  (cd "$REPO" && cargo build --release -q -p besip-pbx)
  BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/besip-pbxd"
fi
command -v valgrind >/dev/null || { echo "valgrind missing" >&2; exit 1; }
command -v sipp >/dev/null || { echo "sipp missing: run scripts/install-deps" >&2; exit 1; }
W=$(mktemp -d /tmp/besip-callgrind.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$W"' EXIT
USERS=1000
{ echo SEQUENTIAL; for ((i = 0; i < USERS; i++)); do u=$((10000 + i)); echo "$u;[authentication username=$u password=pw$u]"; done; } > "$W/users.csv"
mkdir -p "$W/root/etc/config" "$W/root/var/lib/besip" "$W/root/run"
{
  printf "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'bench.test'\n\toption auth_realm 'bench.test'\n\toption auth_algorithms 'md5'\n\toption max_transactions '2000000'\n\n"
  printf "config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '%s'\n\n" "$PORT"
  for ((i = 0; i < USERS; i++)); do u=$((10000 + i)); printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$u" "$u" "$u"; done
} > "$W/root/etc/config/besip_pbx"
valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$BIN" --root "$W/root" --log-level warn --threads 1 2> "$W/vg.log" &
PID=$!
# valgrind starts slowly: wait for the port.
for ((i = 0; i < 300; i++)); do ss -Huln "sport = :$PORT" | grep -q . && break; sleep 0.1; done
sipp "127.0.0.1:$PORT" -sf "$HERE/register.xml" -i 127.0.0.1 -r 300 -m "$N" -nostdin -inf "$W/users.csv" \
  -recv_timeout 8000 -trace_stat -stf "$W/stat.csv" > "$W/sipp.out" 2>&1 || true
ok=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="SuccessfulCall(C)") c=i} END {print $c+0}' "$W/stat.csv")
kill "$PID"; wait "$PID" || true; PID=""
[ "$ok" = "$N" ] || { echo "only $ok of $N REGISTERs succeeded" >&2; exit 1; }
callgrind_annotate --inclusive=yes "$W/cg.out" > "$W/annotate.txt" 2>/dev/null
cost() { awk -v f="$1" 'index($0, f) && /\[/ {gsub(",", "", $1); print $1; exit}' "$W/annotate.txt"; }
on_message=$(cost "besip_pbx::engine::Engine::on_message ")
writer=$(cost "besip_pbx::location::write_loop ")
echo "REGISTERs: $N"
echo "Engine::on_message: ${on_message:-?} instructions = $(( ${on_message:-0} / N )) per REGISTER"
echo "location writer:    ${writer:-?} instructions = $(( ${writer:-0} / N )) per REGISTER"
