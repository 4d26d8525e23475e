#!/usr/bin/env bash
# besip-netconfd vs yuma123 netconfd (through OpenSSH's netconf subsystem),
# same ncclient workload, same besip-pbx YANG module, one run, loopback only.
#   tests/bench/netconf/run.sh [EDITS] [BULK]
set -euo pipefail
cd "$(dirname "$0")/../../.."
EDITS=${1:-1000}
BULK=${2:-10000}
WORK=$(mktemp -d /tmp/besip-nc-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

cargo build --release -q -p besip-netconf
# --- besip-netconfd
P1=$(free_port)
BESIP_ADMIN_PASSWORD=bench ./target/release/besip-netconfd --root "$WORK/besip" \
  --listen 127.0.0.1:"$P1" --log-level warn 2>"$WORK/besip.log" &
PIDS+=($!)
wait_port "$P1"

# --- yuma123 netconfd behind a private sshd (key login as root)
P2=$(free_port)
SOCK="$WORK/ncxserver.sock"
mkdir -p "$WORK/yuma" "$WORK/modules"
# Only the module under test: yang/ietf also holds a 'notifications' module
# that would shadow yuma123's own.
cp yang/besip-pbx.yang "$WORK/modules/"
# netconfd saves running to this file on every commit (durable, like besip).
echo '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>' >"$WORK/yuma/startup-cfg.xml"
( cd "$WORK/yuma" && HOME="$WORK/yuma" exec netconfd --startup="$WORK/yuma/startup-cfg.xml" --target=candidate --superuser=root \
    --access-control=off --port="$P2" --ncxserver-sockname="$SOCK" --log-level=${NETCONFD_LOG:-error} \
    --modpath="$WORK/modules:/usr/share/yuma/modules" --module=besip-pbx >"$WORK/netconfd.log" 2>&1 ) &
PIDS+=($!)
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
chmod 600 "$WORK/authorized_keys"
mkdir -p /run/sshd
cat >"$WORK/sshd_config" <<CONF
Port $P2
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
Subsystem netconf "/usr/sbin/netconf-subsystem --ncxserver-sockname=$P2@$SOCK"
CONF
/usr/sbin/sshd -D -f "$WORK/sshd_config" -E "$WORK/sshd.log" &
PIDS+=($!)
wait_port "$P2"
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done

echo "workload: $EDITS x (edit-config + commit) of one extension; get-config of $BULK extensions"
# Raw client first (OpenSSH + hand-framed messages; it removes its extensions
# again): besip's admin gets the client key, yuma123 already trusts it.
/usr/bin/python3 - "$P1" "$(cat "$WORK/client_key.pub")" <<'PY'
import sys
from ncclient import manager
m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="admin", password="bench",
                    hostkey_verify=False, allow_agent=False, look_for_keys=False)
m.edit_config(target="candidate", config='<config><system xmlns="urn:besip:system"><user><name>admin</name>'
              f'<ssh-key>{sys.argv[2].strip()}</ssh-key></user></system></config>')
m.commit()
m.close_session()
PY
RB=$(/usr/bin/python3 tests/bench/netconf/raw.py --port "$P1" --user admin --key "$WORK/client_key" --edits "$EDITS")
echo "besip-netconfd (raw client):  $RB"
RY=$(/usr/bin/python3 tests/bench/netconf/raw.py --port "$P2" --user root --key "$WORK/client_key" --edits "$EDITS")
echo "yuma123 netconfd (raw client): $RY"
# ncclient with its transport loop woken by each request (no polling delay);
# these runs remove their extensions again, the last run below fills the store.
BW=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$P1" --password bench --edits "$EDITS" --wake-on-send --no-bulk)
echo "besip-netconfd (ncclient, wake-on-send):   $BW"
YW=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$P2" --user root --key "$WORK/client_key" --edits "$EDITS" --wake-on-send --no-bulk)
echo "yuma123 netconfd (ncclient, wake-on-send): $YW"
# ncclient exactly as shipped (100 ms poll), a few edits: what it can show.
BS=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$P1" --password bench --edits 20 --stock-poll --no-bulk)
YS=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$P2" --user root --key "$WORK/client_key" --edits 20 --stock-poll --no-bulk)
B=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$P1" --password bench --edits "$EDITS" --bulk "$BULK")
echo "besip-netconfd:  $B"
Y=$(/usr/bin/python3 tests/bench/netconf/bench.py --port "$P2" --user root --key "$WORK/client_key" --edits "$EDITS" --bulk "$BULK")
echo "yuma123 netconfd: $Y"
/usr/bin/python3 - "$B" "$Y" "$RB" "$RY" "$BW" "$YW" "$BS" "$YS" <<'PY'
import json, sys
b, y, rb, ry, bw, yw, bs, ys = (json.loads(a) for a in sys.argv[1:9])
print(f"edit+commit, raw OpenSSH client: besip {rb['edit_commit_per_s']:.0f}/s, netconfd {ry['edit_commit_per_s']:.0f}/s, ratio {rb['edit_commit_per_s']/ry['edit_commit_per_s']:.1f}x")
print(f"edit+commit, ncclient woken on send: besip {bw['edit_commit_per_s']:.0f}/s, netconfd {yw['edit_commit_per_s']:.0f}/s, ratio {bw['edit_commit_per_s']/yw['edit_commit_per_s']:.1f}x")
print(f"edit+commit, ncclient polling every 1 ms: besip {b['edit_commit_per_s']:.0f}/s, netconfd {y['edit_commit_per_s']:.0f}/s, ratio {b['edit_commit_per_s']/y['edit_commit_per_s']:.1f}x")
print(f"edit+commit, stock ncclient (100 ms poll, 20 edits): besip {bs['edit_commit_per_s']:.1f}/s, netconfd {ys['edit_commit_per_s']:.1f}/s, ratio {bs['edit_commit_per_s']/ys['edit_commit_per_s']:.1f}x")
print(f"ncclient's ceiling (pairs of no-op RPCs): polling with besip {b['null_rpc_pairs_per_s']:.0f}/s, with netconfd {y['null_rpc_pairs_per_s']:.0f}/s; woken with besip {bw['null_rpc_pairs_per_s']:.0f}/s, with netconfd {yw['null_rpc_pairs_per_s']:.0f}/s")
print(f"get-config of {b['extensions']} (besip) / {y['extensions']} (netconfd) extensions: besip {b['get_config_ms_median']:.0f} ms, netconfd {y['get_config_ms_median']:.0f} ms, ratio {y['get_config_ms_median']/b['get_config_ms_median']:.1f}x")
PY
