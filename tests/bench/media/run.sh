#!/usr/bin/env bash
# Conference mixing: how many participants besip-pbxd mixes with every
# frame on time, in rooms of 3, 10 and 50. The load (besip-media-load)
# places the calls from a trusted peer and sends G.711 every 20 ms for
# each participant; it counts the mixed frames each gets back against the
# frames due (1.0000 = none late or lost) and reads the daemon's CPU.
# The daemon is pinned to core 1, the load to core 0.
# No peer runs beside it: Asterisk (ConfBridge) is not in Debian; the
# anchors are in BENCHMARKS.md.
# MODE=voicemail: each call leaves a message in a mailbox of its own
# (extensions 1000.. with voicemail, unregistered); MODE=ivr: every call
# sits in one IVR menu (tone prompt, waiting for a key). SIZES is then 1.
# CODEC=g722: the participants speak G.722 (decoded and encoded by the box).
# Usage: tests/bench/media/run.sh   (MODE=conference|voicemail|ivr SIZES="3 10 50" TOTALS="600 1200 1800" SECS=10)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
MODE=${MODE:-conference}
SIZES=${SIZES:-"3 10 50"}
[ "$MODE" = conference ] || SIZES=1
TOTALS=${TOTALS:-"600 1200 1800"}
SECS=${SECS:-10}
(cd "$REPO" && cargo build --release -q -p besip-pbx -p besip-media-load)
root=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$root"' EXIT
mkdir -p "$root/etc/config"
port=$((20000 + RANDOM % 10000))
{
  printf "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'b2bua'\n\tlist domain 'besip.test'\n"
  printf "\toption rtp_port_min '30000'\n\toption rtp_port_max '59999'\n\toption max_transactions '100000'\n\toption voicemail_max_sessions '1000'\n\toption media_max_calls '5000'\n\n"
  printf "config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '%s'\n\n" "$port"
  printf "config outbound_trusted_peer 'load'\n\toption name 'load'\n\tlist address '127.0.0.2/32'\n\n"
  case "$MODE" in
  conference)
    for r in $(seq 1000 1700); do
      printf "config conference 'conference_%s'\n\toption number '%s'\n\toption max_participants '500'\n\n" "$r" "$r"
    done ;;
  voicemail)
    for r in $(seq 1000 3000); do
      printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\toption voicemail_enabled '1'\n\n" "$r" "$r" "$r"
    done ;;
  ivr)
    printf "config ivr 'ivr_main'\n\toption name 'main'\n\toption number '1000'\n\toption timeout '30'\n\n" ;;
  esac
} > "$root/etc/config/besip_pbx"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
taskset -c 1 "$REPO/target/release/besip-pbxd" --root "$root" --log-level warn &
pid=$!
for _ in $(seq 50); do [ -S "$root/run/pbx.sock" ] && break; sleep 0.1; done
echo "# $MODE: besip-pbxd $pid on 127.0.0.1:$port (core 1); load on core 0; $SECS s per step"
for size in $SIZES; do
  for total in $TOTALS; do
    rooms=$(( (total + size - 1) / size ))
    # One IVR menu (number 1000) takes every call.
    if [ "$MODE" = ivr ]; then size=$total; rooms=1; fi
    taskset -c 0 "$REPO/target/release/besip-media-load" "127.0.0.1:$port" 127.0.0.2 1000 "$rooms" "$size" "$SECS" "$pid"
    sleep 2
  done
done
