#!/usr/bin/env bash
# RESTCONF vs NETCONF edit+commit per second, against ONE besip-netconfd
# (same datastore, same commit path), in one run, loopback only.
#   tests/bench/restconf/run.sh [EDITS]
# NETCONF: OpenSSH `ssh -s netconf` with hand-framed messages
# (tests/bench/netconf/raw.py: <edit-config> + <commit>, two round trips);
# RESTCONF: one POST per extension over a kept-alive TLS connection
# (client.py; the server edits the candidate and commits it).
set -euo pipefail
cd "$(dirname "$0")/../../.."
EDITS=${1:-500}
WORK=$(mktemp -d /tmp/besip-rc-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -q -p besip-netconf; else cargo build -q -p besip-netconf; fi
NC=$(free_port); RC=$(free_port)
BESIP_ADMIN_PASSWORD=bench ./target/"$PROFILE"/besip-netconfd --root "$WORK/besip" \
  --listen 127.0.0.1:"$NC" --restconf-listen 127.0.0.1:"$RC" --log-level warn 2>"$WORK/besip.log" &
PIDS+=($!)
wait_port "$NC"; wait_port "$RC"

ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
/usr/bin/python3 - "$NC" "$(cat "$WORK/client_key.pub")" <<'PY'
import sys
from ncclient import manager
m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="admin", password="bench",
                    hostkey_verify=False, allow_agent=False, look_for_keys=False)
m.edit_config(target="candidate", config='<config><system xmlns="urn:besip:system"><user><name>admin</name>'
              f'<ssh-key>{sys.argv[2].strip()}</ssh-key></user></system></config>')
m.commit()
m.close_session()
PY

ROUNDS=${ROUNDS:-2}
echo "workload: $EDITS x (create one extension + commit), one besip-netconfd ($PROFILE build), $ROUNDS rounds alternating"
NS=(); RS=()
for round in $(seq 1 "$ROUNDS"); do
  N=$(/usr/bin/python3 tests/bench/netconf/raw.py --port "$NC" --user admin --key "$WORK/client_key" --edits "$EDITS" --first $((300000 + round * 10000)))
  echo "round $round NETCONF  (ssh -s netconf, edit-config + commit): $N"
  R=$(python3 tests/bench/restconf/client.py --port "$RC" --password bench --edits "$EDITS" --first $((400000 + round * 10000)))
  echo "round $round RESTCONF (HTTPS keep-alive, POST /data):         $R"
  NS+=("$N"); RS+=("$R")
done
python3 - "${#NS[@]}" "${NS[@]}" "${RS[@]}" <<'PY'
import json, sys
k = int(sys.argv[1])
n = [json.loads(x)["edit_commit_per_s"] for x in sys.argv[2:2 + k]]
r = [json.loads(x)["edit_commit_per_s"] for x in sys.argv[2 + k:]]
mn, mr = sum(n) / k, sum(r) / k
print(f"mean NETCONF {mn:.0f}/s, RESTCONF {mr:.0f}/s; RESTCONF/NETCONF edit+commit ratio: {mr / mn:.2f}")
PY
