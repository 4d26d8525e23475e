#!/usr/bin/env bash
# Crash consistency of the commit path (issue 13 item 7): COMMITS commits over
# NETCONF while kill -9 hits besip-netconfd, then (a second run) besip-pbxd,
# at random points; after every restart running.xml, the rendered besip_pbx,
# besip-pbxd's own state and the newest commit-history record must agree.
#   tests/bench/reliability/crash.sh [COMMITS] [KILL_EVERY] [PROFILE]
# Loopback only; needs python3-ncclient. Exit 1 on any disagreement.
set -euo pipefail
cd "$(dirname "$0")/../../.."
COMMITS=${1:-1000}
KILL_EVERY=${2:-10}
PROFILE=${3:-debug}
if [[ "$PROFILE" == release ]]; then
  cargo build --release -q -p besip-netconf -p besip-pbx -p besip-monitoring --bins
else
  cargo build -q -p besip-netconf -p besip-pbx -p besip-monitoring --bins
fi
status=0
printf '%-15s %8s %6s %8s %13s %14s %8s\n' victim commits kills refused "lost replies" disagreements seconds
for victim in besip-netconfd besip-pbxd; do
  line=$(/usr/bin/python3 tests/bench/reliability/crash.py --bin-dir "target/$PROFILE" \
           --commits "$COMMITS" --kill-every "$KILL_EVERY" --victim "$victim" 2>/dev/null | tail -1) || status=1
  python3 -c 'import json,sys; f=json.loads(sys.argv[1])
print("%-15s %8d %6d %8d %13d %14d %8.0f" % (f["victim"], f["commits"], f["kills"], f["refused_commits"], f["lost_replies"], f["disagreements"], f["seconds"]))
for p in f["problems"]: print("   ", p)' "$line"
done
exit $status
