#!/usr/bin/env bash
# RTP relay: besip-pbxd's relay vs rtpengine (Debian's rtpengine-daemon, userspace
# forwarding, driven by its ng protocol), side by side in one run. See bench.py
# for what is measured. Needs 2 cores (relay pinned to core 1, load to core 0).
# Usage: tests/bench/rtp-relay/run.sh   (CALLS="100 200 ..." STEP_SECS=10 RELAYS="besip besip-kernel rtpengine"
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
# A network namespace of its own: its lo steers received packets (RPS) to
# the relay's core, so the kernel's delivery of each packet, and kernel
# forwarding, are counted on the relay's core for every relay alike,
# instead of on whichever core sent the packet (on loopback, the sender's).
# Steered packets wait in the relay core's backlog, 1,000 packets by default:
# the generator's 1 ms bursts (and a forwarded packet's second pass) overflow
# it whenever the core is held up a few ms, for every relay alike. Raised for
# the run (a usual media-server setting), put back after.
NS=besip-rtp-bench-$$
BACKLOG=$(sysctl -n net.core.netdev_max_backlog)
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true; sysctl -qw net.core.netdev_max_backlog="$BACKLOG"' EXIT
sysctl -qw net.core.netdev_max_backlog=10000
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" sh -c 'echo 2 > /sys/class/net/lo/queues/rx-0/rps_cpus'
ip netns exec "$NS" setsid --wait python3 "$HERE/bench.py"
