#!/usr/bin/env bash
# besip-pbxd vs Kamailio, side by side in one run, on loopback, with the same
# sipp scenarios:
#   (a) REGISTER with digest auth (401 + credentials),
#   (b) calls INVITE/407/ACK/INVITE+auth/180/200/ACK/BYE/200 between two sipp
#       endpoints through the proxy,
#   (c) simultaneous calls (held open) and the memory of each server.
# For (a) and (b) each server is driven up a ladder of rates; the highest rate
# at which every call completed (< 0.1 % failed) and the step finished in time
# is reported, with the ratio besip/kamailio.
#
# Usage: tests/bench/sip/run.sh            (full ladder)
#        QUICK=1 tests/bench/sip/run.sh    (short steps, for a smoke run)
#        PIN=1 tests/bench/sip/run.sh      (one core each, see below)
#        PIN=1 SERVER_CPU_PCT=30 tests/bench/sip/run.sh   (and a CPU quota)
#        PG=1 PIN=1 PARTS=a tests/bench/sip/run.sh   (location on PostgreSQL, issue 20:
#          besip-pbxd's cluster_database vs Kamailio usrloc db_mode 2 and db_mode 1
#          on one throwaway PostgreSQL; see pg.sh, which lists the packages needed)
# Tunables: USERS, STEP_SECS, RATES_REG, RATES_CALL, HOLD_RATE, HOLD_MS, CHILDREN,
# SIPP_BUF, BESIP_BIN, PARTS (which of a b c to run, default "a b c").
#
# PIN=1: the server under test is pinned to core 1 (besip-pbxd --threads 1,
# Kamailio children=1; their helper threads/processes inherit the pin) and
# every sipp to core 0, so neither side takes CPU from the other and the
# highest passing rate measures the server, not how much CPU the shared cores
# left to the single-threaded load generator. Same for both servers. Without
# PIN everything shares both cores (CHILDREN=2).
#
# PIN=1 SERVER_CPU_PCT=30: as PIN=1, and each server (all its threads or
# processes) gets a CPU quota of 30 % of its core (cgroup cpu quota, 10 ms
# period). On 2 cores a single-threaded sipp on one core tops out near
# 16,000 REGISTER/s, below what either server does on a whole core, so even
# the PIN=1 rate is the load generator's; with the quota the servers reach
# their limit first and the highest passing rate is the server's capacity for
# that CPU budget. The ladder is finer in this mode (steps of 1,000/s).
#
# sipp runs with 4 MiB socket buffers (-buff_size): with its 128 KiB default
# the single-threaded load generator, starved of CPU on a 2-core machine,
# overflowed its own receive buffer at ~12,000 REGISTER/s (kernel drops at
# sipp's socket, then 500 ms retransmissions and failed "calls") whichever
# server it was testing. Both servers get the same sipp.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
USERS=${USERS:-10000}
STEP_SECS=${STEP_SECS:-5}
if [ -n "${SERVER_CPU_PCT:-}" ]; then
  RATES_REG=${RATES_REG:-"2000 3000 4000 5000 6000 7000 8000 9000 10000 11000 12000 13000 14000 15000 16000"}
  RATES_CALL=${RATES_CALL:-"250 500 750 1000 1250 1500 1750 2000 2500 3000"}
fi
# PG=1: finer, the database makes every server slower.
if [ -n "${PG:-}" ]; then
  RATES_REG=${RATES_REG:-"1000 2000 3000 4000 5000 6000 7000 8000 10000 12000 14000 16000 20000 24000 28000"}
fi
# Kamailio with usrloc db_mode 1 (PG=1) writes every REGISTER through: its own, lower ladder.
RATES_REG_DBM1=${RATES_REG_DBM1:-"250 500 750 1000 1250 1500 2000 2500 3000 4000 5000 6000 8000"}
# besip-pbxd passes 28,000 REGISTER/s in both modes: the ladder goes on until it fails.
RATES_REG=${RATES_REG:-"2000 4000 8000 12000 16000 20000 24000 28000 32000 36000 40000"}
RATES_CALL=${RATES_CALL:-"250 500 1000 1500 2000 2500 3000 4000 5000 6000 7000"}
HOLD_RATE=${HOLD_RATE:-500}
HOLD_MS=${HOLD_MS:-12000}
PARTS=${PARTS:-"a b c"}
SERVER_CPU=(); SIPP_CPU=()
if [ -n "${PIN:-}" ]; then
  command -v taskset >/dev/null || { echo "taskset missing (util-linux)" >&2; exit 1; }
  [ "$(nproc --all)" -ge 2 ] || { echo "PIN=1 needs 2 cores" >&2; exit 1; }
  CHILDREN=${CHILDREN:-1}; SERVER_CPU=(taskset -c 1); SIPP_CPU=(taskset -c 0)
fi
CHILDREN=${CHILDREN:-2}
CG_ROOT=""; CG_DIRS=()
if [ -n "${SERVER_CPU_PCT:-}" ]; then
  [ -n "${PIN:-}" ] || { echo "SERVER_CPU_PCT needs PIN=1" >&2; exit 1; }
  [[ "$SERVER_CPU_PCT" =~ ^[1-9][0-9]?$ ]] || { echo "SERVER_CPU_PCT: 1..99" >&2; exit 1; }
  if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    CG_ROOT=/sys/fs/cgroup/cpu      # cgroup v1
  elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    CG_ROOT=/sys/fs/cgroup          # cgroup v2
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu > /sys/fs/cgroup/cgroup.subtree_control
  else
    echo "SERVER_CPU_PCT needs a writable cgroup cpu controller (run as root)" >&2; exit 1
  fi
fi
# make_cgroup NAME → a new cgroup with the quota; prints its directory.
make_cgroup() {
  local dir="$CG_ROOT/besip-sip-bench-$$-$1" quota=$((SERVER_CPU_PCT * 100))
  mkdir "$dir"
  if [ -f "$dir/cpu.cfs_quota_us" ]; then
    echo 10000 > "$dir/cpu.cfs_period_us"; echo "$quota" > "$dir/cpu.cfs_quota_us"
  else
    echo "$quota 10000" > "$dir/cpu.max"
  fi
  echo "$dir"
}
if [ -n "${QUICK:-}" ]; then
  STEP_SECS=2; RATES_REG="500 2000"; RATES_REG_DBM1="500 2000"; RATES_CALL="100 400"; HOLD_RATE=100; HOLD_MS=3000; USERS=1000
fi
SIPP_BUF=${SIPP_BUF:-4194304}
BESIP_PORT=${BESIP_PORT:-15060}
KAM_PORT=${KAM_PORT:-25060}

command -v sipp >/dev/null || { echo "sipp missing: run scripts/install-deps" >&2; exit 1; }
command -v kamailio >/dev/null || { echo "kamailio missing: run scripts/install-deps" >&2; exit 1; }
# shellcheck source=tests/bench/sip/pg.sh
[ -n "${PG:-}" ] && . "$HERE/pg.sh"
PG_SETTLE=${PG_SETTLE:-1.5}

# BESIP_BIN=/path/to/besip-pbxd runs that binary instead of building (e.g. an older build, to compare).
if [ -z "${BESIP_BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p besip-pbx)
  BESIP_BIN="$REPO/target/release/besip-pbxd"
  [ -n "${CARGO_TARGET_DIR:-}" ] && BESIP_BIN="$CARGO_TARGET_DIR/release/besip-pbxd"
fi

WORK=$(mktemp -d /tmp/besip-sip-bench.XXXXXX)
BESIP_PID=""; KAM_PID=""; KAM1_PID=""; UAS_PID=""
cleanup() {
  for p in $UAS_PID $BESIP_PID $KAM_PID $KAM1_PID; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in $UAS_PID $BESIP_PID $KAM_PID $KAM1_PID; do kill -9 "$p" 2>/dev/null || true; done
  # Wait until they are gone (a server throttled by its CPU quota exits
  # slowly): a leftover besip-pbxd would share the next run's port (SO_REUSEPORT).
  local i
  for ((i = 0; i < 100; i++)); do
    local alive=""
    for p in $BESIP_PID $KAM_PID $KAM1_PID; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  [ -n "${PG:-}" ] && pg_stop
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
  local d
  for d in "${CG_DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT

# Users 10000.. with password pw<user> (Kamailio derives the same password
# from the user name); the callee of the call bench is 2000.
{
  echo SEQUENTIAL
  for ((i = 0; i < USERS; i++)); do u=$((10000 + i)); echo "$u;[authentication username=$u password=pw$u]"; done
} > "$WORK/users.csv"
printf 'SEQUENTIAL\n2000;[authentication username=2000 password=pw2000]\n' > "$WORK/callee.csv"

mkdir -p "$WORK/root/etc/config" "$WORK/root/var/lib/besip" "$WORK/root/run"
{
  # All load comes from 127.0.0.1: lift the per-source share of the transaction table.
  printf "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'bench.test'\n\toption auth_realm 'bench.test'\n\toption auth_algorithms 'md5'\n\toption max_transactions '2000000'\n"
  [ -n "${PG:-}" ] && pg_besip_options
  echo
  printf "config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '%s'\n\n" "$BESIP_PORT"
  for ((i = 0; i < USERS; i++)); do u=$((10000 + i)); printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$u" "$u" "$u"; done
  printf "config extension 'extension_2000'\n\toption number '2000'\n\toption password 'pw2000'\n"
} > "$WORK/root/etc/config/besip_pbx"
sed -e "s/@PORT@/$KAM_PORT/" -e "s/@CHILDREN@/$CHILDREN/" "$HERE/kamailio.cfg.in" > "$WORK/kamailio.cfg"
if [ -n "${PG:-}" ]; then
  pg_kamailio_cfg 2 kam2 "$KAM_PORT" "$WORK/kamailio.cfg"
  pg_kamailio_cfg 1 kam1 "$KAM1_PORT" "$WORK/kamailio1.cfg"
fi

# The ports must be free: besip-pbxd binds with SO_REUSEPORT, so a leftover
# process from an earlier run would silently take part of the traffic.
for port in "$BESIP_PORT" "$KAM_PORT" ${PG:+"$KAM1_PORT"}; do
  for ((i = 0; i < 100; i++)); do
    ss -Huln "sport = :$port" | grep -q . || break
    sleep 0.1
  done
  if ss -Huln "sport = :$port" | grep -q .; then
    echo "UDP port $port is in use (an earlier run still going?):" >&2
    ss -Hulnp "sport = :$port" >&2
    exit 1
  fi
done

# in_cgroup DIR cmd… : runs cmd (same pid) inside the cgroup DIR, or as is without one.
in_cgroup() {
  local dir=$1; shift
  if [ -n "$dir" ]; then echo "$BASHPID" > "$dir/cgroup.procs"; fi
  exec "$@"
}
CG_B=""; CG_K=""; CG_K1=""
if [ -n "$CG_ROOT" ]; then
  CG_B=$(make_cgroup besip); CG_DIRS+=("$CG_B")
  CG_K=$(make_cgroup kamailio); CG_DIRS+=("$CG_K")
  [ -n "${PG:-}" ] && { CG_K1=$(make_cgroup kamailio1); CG_DIRS+=("$CG_K1"); }
fi
[ -n "${PG:-}" ] && pg_start
( in_cgroup "$CG_B" "${SERVER_CPU[@]}" "$BESIP_BIN" --root "$WORK/root" --log-level warn --threads "$CHILDREN" ) 2> "$WORK/besip.log" &
BESIP_PID=$!
( in_cgroup "$CG_K" "${SERVER_CPU[@]}" kamailio -f "$WORK/kamailio.cfg" -DD -E -m 512 -M 32 -P "$WORK/kam.pid" -w "$WORK" ) 2> "$WORK/kamailio.log" &
KAM_PID=$!
if [ -n "${PG:-}" ]; then
  ( in_cgroup "$CG_K1" "${SERVER_CPU[@]}" kamailio -f "$WORK/kamailio1.cfg" -DD -E -m 512 -M 32 -P "$WORK/kam1.pid" -w "$WORK" ) 2> "$WORK/kamailio1.log" &
  KAM1_PID=$!
fi
sleep 2
kill -0 "$BESIP_PID" || { cat "$WORK/besip.log"; exit 1; }
kill -0 "$KAM_PID" || { cat "$WORK/kamailio.log"; exit 1; }
[ -z "$KAM1_PID" ] || kill -0 "$KAM1_PID" || { cat "$WORK/kamailio1.log"; exit 1; }

# Proportional set size of a process and its direct children, in MiB.
pss_mib() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    local kb
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "scale=1; $total / 1024" | bc
}

# CPU time (clock ticks) used so far by a process and its direct children.
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    local t
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
TICK_MS=$((1000 / $(getconf CLK_TCK)))

# run_sipp PORT NAME SCENARIO RATE TOTAL [args…] → prints "ok|fail successful failed seconds cpu_ms pg_cpu_ms"
# With PG=1 both CPU figures run PG_SETTLE s past the end of the step, so the
# write-back of the step's last bindings is counted (pg_cpu_ms is - without PG).
run_sipp() {
  local port=$1 name=$2 sf=$3 rate=$4 total=$5; shift 5
  local stat="$WORK/$name.stat.csv"
  local server_pid=$BESIP_PID
  [ "$port" = "$KAM_PORT" ] && server_pid=$KAM_PID
  [ "$port" = "${KAM1_PORT:-}" ] && server_pid=$KAM1_PID
  rm -f "$stat"
  local t0 t1 c0 c1 p0=0 p1=0
  c0=$(cpu_ticks "$server_pid")
  [ -n "${PG:-}" ] && p0=$(pg_cpu_ticks)
  local lagger=""
  if [ -n "${PG_LAG:-}" ]; then
    local who=besip
    [ "$server_pid" = "$KAM_PID" ] && who=kamailio
    [ "$server_pid" = "$KAM1_PID" ] && who=kam-dbm1
    rm -f "$WORK/$name.lag"; pg_lag_loop "$who" "$WORK/$name.lag" & lagger=$!
  fi
  t0=$(date +%s.%N)
  "${SIPP_CPU[@]}" sipp "127.0.0.1:$port" -sf "$HERE/$sf" -i 127.0.0.1 -r "$rate" -rp 1000 -m "$total" \
    -nostdin -recv_timeout 8000 -timeout "$((STEP_SECS * 4 + 30))s" \
    -trace_stat -stf "$stat" -fd 3600 -buff_size "$SIPP_BUF" "$@" > "$WORK/$name.out" 2>&1 || true
  t1=$(date +%s.%N)
  [ -n "$lagger" ] && { kill "$lagger" 2>/dev/null; wait "$lagger" 2>/dev/null || true; }
  [ -n "${PG:-}" ] && { sleep "$PG_SETTLE"; p1=$(pg_cpu_ticks); }
  c1=$(cpu_ticks "$server_pid")
  local succ fail
  succ=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="SuccessfulCall(C)") c=i} END {print $c+0}' "$stat" 2>/dev/null || echo 0)
  fail=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="FailedCall(C)") c=i} END {print $c+0}' "$stat" 2>/dev/null || echo 0)
  local secs verdict=fail
  secs=$(echo "$t1 - $t0" | bc)
  # Pass: every call finished, < 0.1 % failed, and the step kept pace (30 % slack + 2 s).
  if [ "$((succ + fail))" -ge "$total" ] && [ "$((fail * 1000))" -le "$total" ] &&
    [ "$(echo "$secs <= $total / $rate * 1.3 + 2" | bc)" = 1 ]; then
    verdict=ok
  fi
  local pg=-
  [ -n "${PG:-}" ] && pg=$(((p1 - p0) * TICK_MS))
  echo "$verdict $succ $fail $secs $(((c1 - c0) * TICK_MS)) $pg"
}

# ladder SERVER PORT SCENARIO "RATES" [args…] → highest passing rate
ladder() {
  local who=$1 port=$2 sf=$3 rates=$4; shift 4
  local best=0 r
  for r in $rates; do
    local total=$((r * STEP_SECS))
    read -r verdict succ fail secs cpu pgcpu < <(run_sipp "$port" "$who-${sf%.xml}-$r" "$sf" "$r" "$total" "$@")
    printf '  %-8s %-12s rate %6s/s  ok %7s  failed %5s  %6.2f s  server CPU %6s ms%s  %s\n' "$who" "$sf" "$r" "$succ" "$fail" "$secs" "$cpu" \
      "${PG:+  PostgreSQL CPU $(printf '%6s' "$pgcpu") ms}${PG_LAG:+  DB lag max $(sort -n "$WORK/$who-${sf%.xml}-$r.lag" 2>/dev/null | tail -1) s}" "$verdict" >&2
    echo "$cpu $succ $pgcpu" > "$WORK/cpu-$who-${sf%.xml}-$r"
    [ "$verdict" = ok ] || break
    best=$r
  done
  echo "$best"
}

ratio() { if [[ "$1" =~ ^[0-9]+$ && "$2" =~ ^[1-9][0-9]*$ ]]; then echo "scale=2; $1 / $2" | bc; else echo "n/a"; fi; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== (a) REGISTER with digest auth, $USERS users, steps of ${STEP_SECS}s" >&2
REG_B=0; REG_K=0; REG_K1=0; CALL_B=0; CALL_K=0; ROWS_B=-; ROWS_K=-; ROWS_K1=-
CONC_B=0; SUCC_HB=-; FAIL_HB=-; MEM_HB=-; CONC_K=0; SUCC_HK=-; FAIL_HK=-; MEM_HK=-
if [[ " $PARTS " == *" a "* ]]; then
# idle_cpu PID → "server PostgreSQL" CPU ms over IDLE_SECS s without load (PG=1:
# the fixed cost of keeping the location in sync, counted in every step too).
IDLE_SECS=${IDLE_SECS:-5}
idle_cpu() {
  local c0 p0 c1 p1
  c0=$(cpu_ticks "$1"); p0=$(pg_cpu_ticks); sleep "$IDLE_SECS"; c1=$(cpu_ticks "$1"); p1=$(pg_cpu_ticks)
  echo "$(((c1 - c0) * TICK_MS)) $(((p1 - p0) * TICK_MS))"
}
IDLE_B="- -"; IDLE_K="- -"
REG_B=$(ladder besip "$BESIP_PORT" register.xml "$RATES_REG" -inf "$WORK/users.csv")
if [ -n "${PG:-}" ]; then
  ROWS_B=$(pg_rows_besip); echo "  besip-pbxd: $ROWS_B rows in besip_location" >&2
  IDLE_B=$(idle_cpu "$BESIP_PID"); echo "  besip-pbxd idle ${IDLE_SECS}s (server, PostgreSQL CPU ms): $IDLE_B" >&2
fi
REG_K=$(ladder kamailio "$KAM_PORT" register.xml "$RATES_REG" -inf "$WORK/users.csv")
if [ -n "${PG:-}" ]; then
  ROWS_K=$(pg_rows_kam kam2); echo "  kamailio db_mode 2: $ROWS_K rows in location" >&2
  IDLE_K=$(idle_cpu "$KAM_PID"); echo "  kamailio db_mode 2 idle ${IDLE_SECS}s (server, PostgreSQL CPU ms): $IDLE_K" >&2
fi
if [ -n "${PG:-}" ]; then
  REG_K1=$(ladder kam-dbm1 "$KAM1_PORT" register.xml "$RATES_REG_DBM1" -inf "$WORK/users.csv")
  ROWS_K1=$(pg_rows_kam kam1); echo "  kamailio db_mode 1: $ROWS_K1 rows in location" >&2
fi
fi

start_uas() {
  local port=$1 uas_port=$2
  "${SIPP_CPU[@]}" sipp "127.0.0.1:$port" -sf "$HERE/register.xml" -i 127.0.0.1 -p "$uas_port" -m 1 -nostdin \
    -inf "$WORK/callee.csv" -timeout 10s > "$WORK/uas-reg-$port.out" 2>&1 || {
    echo "callee registration failed" >&2; cat "$WORK/uas-reg-$port.out" >&2; exit 1; }
  "${SIPP_CPU[@]}" sipp "127.0.0.1:$port" -sf "$HERE/uas.xml" -i 127.0.0.1 -p "$uas_port" -nostdin -buff_size "$SIPP_BUF" \
    > "$WORK/uas-$port.out" 2>&1 &
  UAS_PID=$!
  sleep 0.5
}
stop_uas() { [ -n "$UAS_PID" ] && kill "$UAS_PID" 2>/dev/null || true; UAS_PID=""; sleep 0.5; }

if [[ " $PARTS " == *" b "* ]]; then
echo "== (b) calls through the proxy, steps of ${STEP_SECS}s" >&2
start_uas "$BESIP_PORT" 16000
CALL_B=$(ladder besip "$BESIP_PORT" uac.xml "$RATES_CALL" -inf "$WORK/users.csv" -d 0)
stop_uas
start_uas "$KAM_PORT" 26000
CALL_K=$(ladder kamailio "$KAM_PORT" uac.xml "$RATES_CALL" -inf "$WORK/users.csv" -d 0)
stop_uas
fi

# (c) simultaneous calls: HOLD_RATE calls/s held HOLD_MS ms; memory read at the peak.
hold() {
  local who=$1 port=$2 pid=$3 uas_port=$4
  start_uas "$port" "$uas_port"
  local total=$((HOLD_RATE * HOLD_MS / 1000 + HOLD_RATE))
  run_sipp "$port" "$who-hold" uac.xml "$HOLD_RATE" "$total" -inf "$WORK/users.csv" -d "$HOLD_MS" \
    > "$WORK/$who-hold.result" &
  local runner=$!
  sleep "$(echo "$HOLD_MS / 1000 - 0.5" | bc)"
  local mem
  mem=$(pss_mib "$pid")
  wait "$runner" || true
  stop_uas
  read -r verdict succ fail secs cpu _ < "$WORK/$who-hold.result"
  echo "$((HOLD_RATE * HOLD_MS / 1000)) $succ $fail $mem"
}
if [[ " $PARTS " == *" c "* ]]; then
echo "== (c) $((HOLD_RATE * HOLD_MS / 1000)) simultaneous calls ($HOLD_RATE/s held ${HOLD_MS} ms)" >&2
read -r CONC_B SUCC_HB FAIL_HB MEM_HB < <(hold besip "$BESIP_PORT" "$BESIP_PID" 16001)
read -r CONC_K SUCC_HK FAIL_HK MEM_HK < <(hold kamailio "$KAM_PORT" "$KAM_PID" 26001)
fi

# Server CPU per 1000 calls at the highest rate both passed (efficiency,
# independent of how fast the single-threaded sipp can generate load).
cpu_per_k() {
  local f="$WORK/cpu-$1-$2-$3"
  [ -f "$f" ] || { echo n/a; return; }
  local cpu succ
  read -r cpu succ _ < "$f"
  if [ "$succ" -gt 0 ]; then echo "$((cpu * 1000 / succ))"; else echo n/a; fi
}
COMMON_REG=$(( REG_B < REG_K ? REG_B : REG_K ))
COMMON_CALL=$(( CALL_B < CALL_K ? CALL_B : CALL_K ))
CPU_REG_B=$(cpu_per_k besip register "$COMMON_REG"); CPU_REG_K=$(cpu_per_k kamailio register "$COMMON_REG")
CPU_CALL_B=$(cpu_per_k besip uac "$COMMON_CALL"); CPU_CALL_K=$(cpu_per_k kamailio uac "$COMMON_CALL")

MEM_B=$(pss_mib "$BESIP_PID")
MEM_K=$(pss_mib "$KAM_PID")
cat <<EOF

SIP benchmark (loopback, ${PIN:+PIN=1: server on core 1, sipp on core 0, }${SERVER_CPU_PCT:+server CPU quota $SERVER_CPU_PCT % of its core, }$CHILDREN worker threads / children, $USERS users, steps ${STEP_SECS}s, sipp $(sipp -v 2>&1 | awk '/SIPp/ {print $2; exit}'), $(kamailio -v | head -1))
load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)
                                  besip-pbxd   kamailio   ratio
(a) REGISTER+digest, max rate/s   $(printf '%10s %10s %7s' "$REG_B" "$REG_K" "$(ratio "$REG_B" "$REG_K")")
(b) calls, max rate/s             $(printf '%10s %10s %7s' "$CALL_B" "$CALL_K" "$(ratio "$CALL_B" "$CALL_K")")
server CPU ms / 1000 REGISTERs
  at $(printf '%6s' "$COMMON_REG")/s (lower is better)  $(printf '%10s %10s %7s' "$CPU_REG_B" "$CPU_REG_K" "$(ratio "$CPU_REG_K" "$CPU_REG_B")")
server CPU ms / 1000 calls
  at $(printf '%6s' "$COMMON_CALL")/s (lower is better)  $(printf '%10s %10s %7s' "$CPU_CALL_B" "$CPU_CALL_K" "$(ratio "$CPU_CALL_K" "$CPU_CALL_B")")
(c) $CONC_B held calls: ok/failed     $(printf '%10s %10s' "$SUCC_HB/$FAIL_HB" "$SUCC_HK/$FAIL_HK")
    memory at peak (PSS MiB)      $(printf '%10s %10s' "$MEM_HB" "$MEM_HK")
memory at end (PSS MiB)           $(printf '%10s %10s' "$MEM_B" "$MEM_K")
EOF
if [ -n "${PG:-}" ] && [[ " $PARTS " == *" a "* ]]; then
  # pg_cpu_per_k WHO RATE → "server PostgreSQL total" ms per 1000 REGISTERs at RATE
  pg_cpu_per_k() {
    local f="$WORK/cpu-$1-register-$2" cpu succ pg
    [ -f "$f" ] || { echo "n/a n/a n/a"; return; }
    read -r cpu succ pg < "$f"
    [ "$succ" -gt 0 ] || { echo "n/a n/a n/a"; return; }
    echo "$((cpu * 1000 / succ)) $((pg * 1000 / succ)) $(((cpu + pg) * 1000 / succ))"
  }
  # common_rate A B MAX → the highest rate ≤ MAX that both ladders ran (the ladders differ).
  common_rate() {
    local best=0 f r
    for f in "$WORK/cpu-$1-register-"*; do
      r=${f##*-}
      [[ "$r" =~ ^[0-9]+$ ]] && [ "$r" -le "$3" ] && [ "$r" -gt "$best" ] && [ -f "$WORK/cpu-$2-register-$r" ] && best=$r
    done
    echo "$best"
  }
  C2=$(common_rate besip kamailio $(( REG_B < REG_K ? REG_B : REG_K )))
  C1=$(common_rate besip kam-dbm1 $(( REG_B < REG_K1 ? REG_B : REG_K1 )))
  read -r SB2 PB2 TB2 < <(pg_cpu_per_k besip "$C2"); read -r SK2 PK2 TK2 < <(pg_cpu_per_k kamailio "$C2")
  read -r SB1 PB1 TB1 < <(pg_cpu_per_k besip "$C1"); read -r SK1 PK1 TK1 < <(pg_cpu_per_k kam-dbm1 "$C1")
  cat <<EOT

Location on PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (PG=1; besip-pbxd cluster_database, sync every 0.5 s; Kamailio usrloc timer_interval 1 s)
                                  besip-pbxd   kam dbm2   ratio | kam dbm1   ratio
REGISTER+digest, max rate/s       $(printf '%10s %10s %7s | %8s %7s' "$REG_B" "$REG_K" "$(ratio "$REG_B" "$REG_K")" "$REG_K1" "$(ratio "$REG_B" "$REG_K1")")
CPU ms / 1000 REGISTERs (lower is better; ratio = Kamailio/besip)
  vs dbm2 at $(printf '%6s' "$C2")/s: server      $(printf '%10s %10s %7s' "$SB2" "$SK2" "$(ratio "$SK2" "$SB2")")
                     PostgreSQL  $(printf '%10s %10s %7s' "$PB2" "$PK2" "$(ratio "$PK2" "$PB2")")
                     together    $(printf '%10s %10s %7s' "$TB2" "$TK2" "$(ratio "$TK2" "$TB2")")
  vs dbm1 at $(printf '%6s' "$C1")/s: server      $(printf '%10s %21s | %8s %7s' "$SB1" "" "$SK1" "$(ratio "$SK1" "$SB1")")
                     PostgreSQL  $(printf '%10s %21s | %8s %7s' "$PB1" "" "$PK1" "$(ratio "$PK1" "$PB1")")
                     together    $(printf '%10s %21s | %8s %7s' "$TB1" "" "$TK1" "$(ratio "$TK1" "$TB1")")
rows in the database after the ladder  $(printf '%5s %10s %7s | %8s' "$ROWS_B" "$ROWS_K" "" "$ROWS_K1")  ($USERS users)
idle ${IDLE_SECS} s after the ladder, CPU ms server+PostgreSQL  $(printf '%s %s' "${IDLE_B/ /+}" "${IDLE_K/ /+}")
EOT
  echo "besip-pbxd log: $(grep -ciE 'error|warn' "$WORK/besip.log" || true) error/warning lines;" \
    "Kamailio logs: $(cat "$WORK/kamailio.log" "$WORK/kamailio1.log" | grep 'ERROR' | grep -vc 'io_wait_loop_epoll' || true) ERROR lines (besides epoll_wait EINVAL of the TCP process)"
  # The lines without their timestamp and colours, by count (sipp sends a BYE for each "call" it gives up).
  grep -iE 'error|warn' "$WORK/besip.log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^[^ ]* *//' -e 's/ source=.*//' |
    cut -c1-160 | sort | uniq -c | sort -rn | head -5 || true
fi
