#!/usr/bin/env bash
# RTP analysis benchmark: besip-monitord analyze vs tshark -z rtp,streams on
# the same capture (~1,000 streams, ~1.5 M packets), one after the other in
# one run. Prints time, packets/s and peak RSS of both, and the ratios.
# Usage: tests/bench/rtp/run.sh [STREAMS] [PACKETS_PER_STREAM]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
streams="${1:-1000}"
per="${2:-1500}"
work="$(mktemp -d /tmp/besip-rtp-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT

(cd "$repo" && cargo build --release -p besip-monitoring --bin besip-monitord >/dev/null)
bin="${CARGO_TARGET_DIR:-$repo/target}/release/besip-monitord"
cap="$work/bench.pcap"
python3 "$here/gen_capture.py" "$cap" "$streams" "$per"
# Warm the page cache so neither side pays for the first read.
cat "$cap" >/dev/null

measure() { # name, command...
  local name="$1"; shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$work/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
  echo "$secs $rss"
}

read -r ours_s ours_kb < <(measure besip "$bin" analyze "$cap" --format json)
read -r ts_s ts_kb < <(measure tshark tshark -q -o rtp.heuristic_rtp:TRUE -z rtp,streams -r "$cap")

n_packets=$(python3 -c "import json,sys; r=json.load(open('$work/besip.out')); print(sum(s['packets'] for s in r['streams']))")
n_streams=$(python3 -c "import json; print(len(json.load(open('$work/besip.out'))['streams']))")
ts_streams=$(grep -c ' 0x' "$work/tshark.out" || true)
ts_packets=$(awk '$7 ~ /^0x/ {n += $9} END {print n+0}' "$work/tshark.out")
echo "capture: besip $n_streams streams / $n_packets RTP packets; tshark $ts_streams streams / $ts_packets packets"
python3 - "$n_packets" "$ours_s" "$ours_kb" "$ts_s" "$ts_kb" <<'PY'
import sys
n, os_, okb, ts, tkb = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"besip-monitord analyze: {os_:.2f} s, {n/os_:,.0f} packets/s, peak RSS {okb/1024:.1f} MiB")
print(f"tshark -z rtp,streams:  {ts:.2f} s, {n/ts:,.0f} packets/s, peak RSS {tkb/1024:.1f} MiB")
print(f"ratio: {ts/os_:.1f}x tshark's speed, {okb/tkb:.3f} of its memory (target: >= 10x, <= 0.2)")
PY
