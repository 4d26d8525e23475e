#!/usr/bin/env bash
# REGISTER over TLS: besip-pbxd vs Kamailio with its tls module, side by side
# in one run, on loopback. Both servers present the same certificate (the
# self-signed one besip-pbxd generates on first start; Kamailio is given the
# same files), both have the same users with digest passwords (as
# tests/bench/sip), both get the same load: besip-sip-tls-load keeps
# CONNECTIONS persistent TLS connections busy registering (REGISTER, 401,
# REGISTER with credentials, 200) in a closed loop for STEP_SECS after a
# warm-up, and reports registrations/s and the CPU each side used.
#
# The server under test is pinned to core 1 (besip-pbxd --threads 1; Kamailio
# tcp_children=1, which serve TLS), the one-threaded load generator to core 0.
# Each server runs ROUNDS times, alternating, and its best round is reported.
# When the generator's core is the limit (load CPU ~ 100 % of the window) the
# rate compares the generator more than the servers: then read the CPU per
# 1,000 REGISTERs, which stays a property of each server.
#
# Usage: tests/bench/sip-tls/run.sh  (CONNECTIONS=32 STEP_SECS=10 ROUNDS=2 USERS=10000)
# Needs: kamailio, kamailio-tls-modules, taskset, 2 cores.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
USERS=${USERS:-10000}
CONNECTIONS=${CONNECTIONS:-32}
STEP_SECS=${STEP_SECS:-10}
ROUNDS=${ROUNDS:-2}
BESIP_PORT=${BESIP_PORT:-15061}
KAM_PORT=${KAM_PORT:-25061}
KAM_MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules

command -v kamailio >/dev/null || { echo "kamailio missing: run scripts/install-deps" >&2; exit 1; }
[ -f "$KAM_MODULES/tls.so" ] || { echo "Kamailio's tls module missing: apt-get install kamailio-tls-modules" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset missing (util-linux)" >&2; exit 1; }
[ "$(nproc --all)" -ge 2 ] || { echo "needs 2 cores" >&2; exit 1; }

(cd "$REPO" && cargo build --release -q -p besip-pbx -p besip-sip-tls-load)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BESIP_BIN=${BESIP_BIN:-$TARGET/release/besip-pbxd}
LOAD_BIN=$TARGET/release/besip-sip-tls-load

# The ports must be free (a leftover server would take part of the load).
for port in "$BESIP_PORT" "$KAM_PORT"; do
  if ss -Htln "sport = :$port" | grep -q .; then
    echo "TCP port $port is in use; choose another with BESIP_PORT / KAM_PORT:" >&2
    ss -Htlnp "sport = :$port" >&2
    exit 1
  fi
done

WORK=$(mktemp -d /tmp/besip-sip-tls-bench.XXXXXX)
SERVER_PID=""
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  pkill -9 -f "kamailio -f $WORK" 2>/dev/null || true
  SERVER_PID=""
}
cleanup() { stop_server; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/root/etc/config" "$WORK/root/var/lib/besip" "$WORK/root/run"
{
  # All load comes from 127.0.0.1: lift the per-source limits.
  printf "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'bench.test'\n\toption auth_realm 'bench.test'\n\toption auth_algorithms 'md5'\n\toption max_transactions '2000000'\n"
  printf "\toption tcp_max_connections '4096'\n\toption tcp_max_connections_per_source '4096'\n\n"
  printf "config listen 'listen_tls'\n\toption name 'tls'\n\toption transport 'tls'\n\toption address '127.0.0.1'\n\toption port '%s'\n\n" "$BESIP_PORT"
  for ((i = 0; i < USERS; i++)); do u=$((10000 + i)); printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$u" "$u" "$u"; done
} > "$WORK/root/etc/config/besip_pbx"

# Kamailio: the registrar of tests/bench/sip, listening on TLS only.
sed -e "s|^listen=udp:127.0.0.1:@PORT@|enable_tls=yes\nlisten=tls:127.0.0.1:$KAM_PORT\ntcp_max_connections=4096|" \
  -e "s|^tcp_children=1|tcp_children=1\nchildren=1|" \
  -e "s|^children=@CHILDREN@||" \
  -e "s|^loadmodule \"kex.so\"|loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"$WORK/kamailio-tls.cfg\")\nloadmodule \"kex.so\"|" \
  "$HERE/../sip/kamailio.cfg.in" > "$WORK/kamailio.cfg"


# start_besip / start_kamailio: the server pinned to core 1; sets SERVER_PID.
start_besip() {
  taskset -c 1 "$BESIP_BIN" --root "$WORK/root" --log-level warn --threads 1 2> "$WORK/besip.log" &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$WORK/root/etc/besip/sip-tls-key.pem" ] && ss -Htln "sport = :$BESIP_PORT" | grep -q . && return 0
    sleep 0.1
  done
  echo "besip-pbxd did not come up:" >&2; cat "$WORK/besip.log" >&2; exit 1
}
start_kamailio() {
  taskset -c 1 kamailio -f "$WORK/kamailio.cfg" -DD -E -m 512 -M 32 -P "$WORK/kam.pid" -w "$WORK" > "$WORK/kamailio.out" 2> "$WORK/kamailio.log" &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    ss -Htln "sport = :$KAM_PORT" | grep -q . && return 0
    sleep 0.1
  done
  echo "Kamailio did not come up:" >&2; cat "$WORK/kamailio.log" >&2; exit 1
}

# The certificate: besip-pbxd generates it on its first start; Kamailio uses the same files.
start_besip
stop_server
cat > "$WORK/kamailio-tls.cfg" <<EOF
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = $WORK/root/etc/besip/sip-tls-cert.pem
private_key = $WORK/root/etc/besip/sip-tls-key.pem
EOF

# run_round NAME PORT → prints the load generator's line
run_round() {
  local name=$1 port=$2
  taskset -c 0 "$LOAD_BIN" --target "127.0.0.1:$port" --server-pid "$SERVER_PID" \
    --connections "$CONNECTIONS" --users "$USERS" --secs "$STEP_SECS" --warmup 2 2> "$WORK/load-$name.err"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== REGISTER over TLS, $USERS users, $CONNECTIONS connections, ${STEP_SECS}s per round, $ROUNDS rounds each" >&2
declare -A BEST_RATE BEST_LINE
for ((r = 1; r <= ROUNDS; r++)); do
  for who in besip kamailio; do
    if [ "$who" = besip ]; then start_besip; port=$BESIP_PORT; else start_kamailio; port=$KAM_PORT; fi
    line=$(run_round "$who" "$port")
    stop_server
    echo "  round $r $who: $line" >&2
    if [ -s "$WORK/load-$who.err" ]; then
      echo "    (load generator: $(sort "$WORK/load-$who.err" | uniq -c | sort -rn | head -3 | tr '\n' ' '))" >&2
    fi
    rate=$(awk '{print $8}' <<< "$line")
    if [ "${rate:-0}" -ge "${BEST_RATE[$who]:-0}" ]; then BEST_RATE[$who]=$rate; BEST_LINE[$who]=$line; fi
  done
done

per_1000() { awk -v cpu="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", cpu * 1000 / n; else print "n/a" }'; }
summary() {
  local who=$1 line=${BEST_LINE[$1]}
  local done failed server load
  done=$(awk '{print $2}' <<< "$line"); failed=$(awk '{print $4}' <<< "$line")
  server=$(awk '{print $10}' <<< "$line"); load=$(awk '{print $12}' <<< "$line")
  printf '%-9s %7s REGISTER/s  failed %5s  server CPU %5s ms/1000 REGISTERs  load generator CPU %5s ms/1000 (%s %% of its core)\n' \
    "$who" "${BEST_RATE[$who]}" "$failed" "$(per_1000 "$server" "$done")" "$(per_1000 "$load" "$done")" \
    "$(awk -v l="$load" -v s="$STEP_SECS" 'BEGIN { printf "%.0f", l / (s * 10) }')"
  echo "$(per_1000 "$server" "$done")" > "$WORK/cpu-$who"
}
echo
echo "REGISTER over TLS (load average at start: $LOAD_START)"
summary besip
summary kamailio
echo "rate ratio besip/kamailio: $(awk -v a="${BEST_RATE[besip]}" -v b="${BEST_RATE[kamailio]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
echo "CPU ratio kamailio/besip (per REGISTER): $(awk -v a="$(cat "$WORK/cpu-kamailio")" -v b="$(cat "$WORK/cpu-besip")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
