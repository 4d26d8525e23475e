#!/usr/bin/env bash
# Commit latency of the whole box: `besip up` (netconfd and the three daemons)
# on loopback, then EDITS × (edit-config of one new extension + commit) over
# NETCONF with ncclient. Every commit reloads besip-pbxd, so this measures the
# datastore commit plus the daemon reload round trip (prepare + apply since
# issue 14). Runs each given build directory in turn, same workload, and
# prints one line per build and the ratio of the first to the last.
#   tests/bench/core/e2e.sh [BIN_DIR ...]     (default: target/release)
#   EDITS=300 ROUNDS=3 tests/bench/core/e2e.sh /tmp/before/bin target/release
set -euo pipefail
cd "$(dirname "$0")/../../.."
EDITS=${EDITS:-300}
ROUNDS=${ROUNDS:-3}
[ $# -gt 0 ] || { cargo build --release -q --workspace --bins; set -- target/release; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
WORK=$(mktemp -d /tmp/besip-e2e-bench.XXXXXX)
BOX=
cleanup() { [ -z "$BOX" ] || kill "$BOX" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

rates=()
for dir in "$@"; do
  for round in $(seq 1 "$ROUNDS"); do
    root="$WORK/root-$round-$(basename "$(dirname "$dir")")"
    nc=$(free_port); sip=$(free_port); web=$(free_port); http=$(free_port)
    BESIP_ADMIN_PASSWORD=bench "$dir/besip" up --root "$root" --netconf-port "$nc" --sip-port "$sip" \
      --web-port "$web" --web-http-port "$http" >"$WORK/up.log" 2>&1 &
    BOX=$!
    wait_port "$nc" || { cat "$WORK/up.log" >&2; exit 1; }
    # the daemons connect to netconfd's IPC a moment after it listens
    sleep 3
    out=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$nc" --password bench \
      --edits "$EDITS" --no-bulk --wake-on-send)
    kill -INT "$BOX"; wait "$BOX" 2>/dev/null || true; BOX=
    rate=$(/usr/bin/python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["edit_commit_per_s"])' "$out")
    echo "$dir round $round: $rate edit+commit/s = $(/usr/bin/python3 -c "print('%.2f' % (1000/$rate))") ms each"
    rates+=("$dir $rate")
  done
done
# median per build
/usr/bin/python3 - "${rates[@]}" <<'PY'
import statistics, sys
by = {}
for item in sys.argv[1:]:
    d, r = item.rsplit(" ", 1)
    by.setdefault(d, []).append(float(r))
meds = [(d, statistics.median(v)) for d, v in by.items()]
for d, m in meds:
    print(f"{d}: median {m:.1f} edit+commit/s ({1000/m:.2f} ms each)")
if len(meds) > 1:
    print(f"ratio last/first: {meds[-1][1]/meds[0][1]:.2f}")
PY
