#!/usr/bin/env bash
# RTP relay: besip-pbxd's relay vs rtpengine (Debian's rtpengine-daemon, userspace
# forwarding, driven by its ng protocol), side by side in one run. See bench.py
# for what is measured. Needs 2 cores (relay pinned to core 1, load to core 0).
# Usage: tests/bench/rtp-relay/run.sh   (CALLS="100 200 ..." STEP_SECS=10 RELAYS="besip rtpengine"
#   PORTS=8 LOAD_THREADS= TICK_US=1000 RETRIES=2 NICE=-15; see bench.py)
# setsid: bench.py gets a session, hence a scheduler autogroup, of its own.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
command -v rtpengine >/dev/null || { echo "rtpengine missing: apt-get install rtpengine-daemon" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset missing (util-linux)" >&2; exit 1; }
[ "$(nproc --all)" -ge 2 ] || { echo "needs 2 cores" >&2; exit 1; }
# rtpengine-daemon's packaged service would hold ports and CPU beside the one we start.
systemctl stop rtpengine-daemon 2>/dev/null || true
(cd "$REPO" && cargo build --release -q -p besip-pbx -p besip-rtp-load)
exec setsid --wait python3 "$HERE/bench.py"
