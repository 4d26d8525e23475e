#!/usr/bin/env bash
# besip-secd benchmarks (issue 5). Needs root, ip, sipp, ipset, iptables, python3.
#   1. detector throughput: a generated pcap replayed through the detector on one core
#   2. ban latency: packet that crosses the threshold -> kernel drops the source (p50/p99)
#   3. legitimate REGISTER success under a sipp flood, without and with besip-secd
# Usage: tests/bench/security/run.sh [PACKETS=300000] [RUNS=200] [FLOOD_RATE=20000]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../../.." && pwd)
PACKETS=${1:-300000}
RUNS=${2:-200}
RATE=${3:-20000}
cd "$WS"
cargo build --release -p besip-security --bins >/dev/null
SECD="$WS/target/release/besip-secd"
WORK=$(mktemp -d /tmp/besip-secbench.XXXXXX)
NS="besip-secbench-$$"
SECD_PID=""
cleanup() {
  [ -n "$SECD_PID" ] && kill "$SECD_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

config() { # backend
  mkdir -p "$WORK/root/etc/config"
  cat >"$WORK/root/etc/config/besip_security" <<UCI
package besip_security

config security 'main'
	option firewall_backend '$1'
	option firewall_set_name 'bench$$'
	list capture_interface 'lo'
	option max_tracked_sources '100000'

config rule 'rule_register'
	option name 'register'
	option method 'REGISTER'
	option count '50'
	option window '5'
	option ban_time '600'

config rule 'rule_pike'
	option name 'pike'
	option method 'any'
	option count '100'
	option window '2'
	option ban_time '300'
UCI
}

start_ns() {
  ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up
}
start_secd() {
  rm -rf "$WORK/root/var" "$WORK/root/run"
  ip netns exec "$NS" "$SECD" --root "$WORK/root" --foreground --log-level warn 2>"$WORK/secd.log" &
  SECD_PID=$!
  for _ in $(seq 100); do [ -S "$WORK/root/run/security.sock" ] && break; sleep 0.05; done
  sleep 0.5
}
stop_secd() { kill "$SECD_PID"; wait "$SECD_PID" 2>/dev/null || true; SECD_PID=""; }

if [ "${SKIP_TO_FLOOD:-0}" != 1 ]; then
echo "== 1. detector throughput (one core, $PACKETS packets replayed offline)"
config log-only
python3 "$HERE/gen_pcap.py" "$WORK/gen.pcap" "$PACKETS"
taskset -c 0 "$SECD" replay --config "$WORK/root/etc/config/besip_security" "$WORK/gen.pcap" | tee "$WORK/replay.json"

echo "== 2. ban latency, iptables-ipset backend ($RUNS runs)"
start_ns
config iptables-ipset
start_secd
ip netns exec "$NS" python3 "$HERE/latency.py" "$RUNS" 50
stop_secd
ip netns del "$NS"
echo "== 2b. ban latency, nftables backend ($RUNS runs)"
start_ns
config nftables
start_secd
ip netns exec "$NS" python3 "$HERE/latency.py" "$RUNS" 50
stop_secd
ip netns del "$NS"

fi

cat >"$WORK/flood.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register flood">
  <send>
    <![CDATA[
REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:flood@127.0.0.1>;tag=[call_number]
To: <sip:flood@127.0.0.1>
Call-ID: [call_id]
CSeq: 1 REGISTER
User-Agent: FloodTool
Content-Length: 0

    ]]>
  </send>
</scenario>
XML
flood_run() { # label
  ip netns exec "$NS" python3 "$HERE/legit.py" 10 200 >"$WORK/legit.out" &
  local lp=$!
  sleep 0.5
  ip netns exec "$NS" timeout 20 sipp -sf "$WORK/flood.xml" -i 127.0.0.2 -p 5071 -r "$RATE" -m $((RATE * 8)) \
    -nostdin 127.0.0.1:5060 >/dev/null 2>&1 || true
  wait "$lp"
  echo "$1: $(cat "$WORK/legit.out")"
  if [ -n "$SECD_PID" ]; then
    python3 - "$WORK/root/run/security.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"state","params":{}}\n')
buf = b""
while not buf.endswith(b"\n"):
    buf += s.recv(65536)
st = json.loads(buf)["result"]["besip-security:security"]
for b in st["bans"]["ban"]:
    print(f"  banned {b['address']} by {b['rule']}, packets seen {b['packets']}")
print("  detector:", st["statistics"])
PY
  fi
}
echo "== 3. legitimate success under a REGISTER flood of $RATE/s for 8 s (registrar: 200 us per request)"
start_ns
flood_run "without besip-secd"
ip netns del "$NS"
start_ns
config iptables-ipset
start_secd
flood_run "with besip-secd (ipset)"
stop_secd
