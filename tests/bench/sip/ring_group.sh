#!/usr/bin/env bash
# Calls through a ring group of 4 members (ring-all): besip-pbxd vs Kamailio,
# side by side in one run, on loopback, with the same sipp scenarios. Each
# call: INVITE/407/ACK/INVITE+auth to 600, forked to the 4 members'
# registrations; member 2001 answers at once, 2002-2004 ring (180) and are
# cancelled (200/487/ACK); the caller ACKs and hangs up. besip-pbxd:
# /pbx/ring-group 600 (strategy ring-all). Kamailio: the equivalent script,
# lookup("location", 2001) for the Request-URI and lookup_to_dset() for the
# other three, then t_relay() (tm cancels the others on the 200). Hunt and
# memory-hunt are not compared: Kamailio needs a failure_route per step and
# timers for them (no equivalent in a few lines).
# Each server is driven up a ladder of call rates; the highest rate at which
# every call completed (< 0.1 % failed) and the step finished in time is
# reported, with the ratio besip/kamailio and the server CPU per 1000 calls.
#
# Usage: tests/bench/sip/ring_group.sh           (full ladder)
#        QUICK=1 tests/bench/sip/ring_group.sh   (short steps, a smoke run)
# Tunables: RATES, STEP_SECS, CHILDREN, SIPP_BUF, BESIP_BIN.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
STEP_SECS=${STEP_SECS:-5}
RATES=${RATES:-"100 200 400 600 800 1000 1200 1500 2000"}
CHILDREN=${CHILDREN:-2}
if [ -n "${QUICK:-}" ]; then STEP_SECS=2; RATES="50 100"; fi
SIPP_BUF=${SIPP_BUF:-4194304}
BESIP_PORT=${BESIP_PORT:-15070}
KAM_PORT=${KAM_PORT:-25070}
CALLERS=100

command -v sipp >/dev/null || { echo "sipp missing: run scripts/install-deps" >&2; exit 1; }
command -v kamailio >/dev/null || { echo "kamailio missing: run scripts/install-deps" >&2; exit 1; }
if [ -z "${BESIP_BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p besip-pbx)
  BESIP_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/besip-pbxd"
fi

WORK=$(mktemp -d /tmp/besip-ring-bench.XXXXXX)
PIDS=(); BESIP_PID=""; KAM_PID=""
cleanup() {
  local p
  for p in "${PIDS[@]}" $BESIP_PID $KAM_PID; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}" $BESIP_PID $KAM_PID; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

{
  echo SEQUENTIAL
  for ((i = 0; i < CALLERS; i++)); do u=$((10000 + i)); echo "$u;[authentication username=$u password=pw$u]"; done
} > "$WORK/users.csv"
# The caller of uac.xml, to 600 instead of 2000, taking the 180s of the
# members that ring before one answers.
sed -e 's/sip:2000@/sip:600@/g' \
  -e '0,/<recv response="200" rrs="true"\/>/s//<recv response="180" optional="true"\/>\n  <recv response="180" optional="true"\/>\n  <recv response="180" optional="true"\/>\n  <recv response="200" rrs="true"\/>/' \
  "$HERE/uac.xml" > "$WORK/uac.xml"

mkdir -p "$WORK/root/etc/config" "$WORK/root/var/lib/besip" "$WORK/root/run"
{
  printf "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n\tlist domain 'bench.test'\n\toption auth_realm 'bench.test'\n\toption auth_algorithms 'md5'\n\toption max_transactions '2000000'\n\n"
  printf "config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '%s'\n\n" "$BESIP_PORT"
  for ((i = 0; i < CALLERS; i++)); do u=$((10000 + i)); printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$u" "$u" "$u"; done
  for m in 2001 2002 2003 2004; do
    printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$m" "$m" "$m"
  done
  printf "config ring_group 'rg_600'\n\toption number '600'\n\toption strategy 'ring-all'\n\n"
  for m in 2001 2002 2003 2004; do
    printf "config ring_group_member 'rg_600_%s'\n\toption ring_group '600'\n\toption number '%s'\n\n" "$m" "$m"
  done
} > "$WORK/root/etc/config/besip_pbx"
# Kamailio: the bench script, with 600 forked to the four members.
awk '
  /if \(!lookup\("location"\)\) \{/ && !done {
    print "\tif ($rU == \"600\") {"
    print "\t\tif (!lookup(\"location\", \"sip:2001@bench.test\")) {"
    print "\t\t\tsl_send_reply(\"480\", \"Temporarily Unavailable\");"
    print "\t\t\texit;"
    print "\t\t}"
    print "\t\tlookup_to_dset(\"location\", \"sip:2002@bench.test\");"
    print "\t\tlookup_to_dset(\"location\", \"sip:2003@bench.test\");"
    print "\t\tlookup_to_dset(\"location\", \"sip:2004@bench.test\");"
    print "\t\tt_relay();"
    print "\t\texit;"
    print "\t}"
    done = 1
  }
  { print }
' "$HERE/kamailio.cfg.in" | sed -e "s/@PORT@/$KAM_PORT/" -e "s/@CHILDREN@/$CHILDREN/" > "$WORK/kamailio.cfg"
grep -q lookup_to_dset "$WORK/kamailio.cfg" || { echo "kamailio.cfg.in changed: no lookup to extend" >&2; exit 1; }

"$BESIP_BIN" --root "$WORK/root" --log-level warn --threads "$CHILDREN" 2> "$WORK/besip.log" &
BESIP_PID=$!
kamailio -f "$WORK/kamailio.cfg" -DD -E -m 512 -M 32 -P "$WORK/kam.pid" -w "$WORK" 2> "$WORK/kamailio.log" &
KAM_PID=$!
sleep 2
kill -0 "$BESIP_PID" || { cat "$WORK/besip.log"; exit 1; }
kill -0 "$KAM_PID" || { cat "$WORK/kamailio.log"; exit 1; }

cpu_ticks() {
  local total=0 p t
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
TICK_MS=$((1000 / $(getconf CLK_TCK)))

# members PORT BASE: registers 2001..2004 from ports BASE+1..BASE+4 and
# starts their UAS (2001 answers, the others ring until cancelled).
members() {
  local port=$1 base=$2 m
  for m in 2001 2002 2003 2004; do
    local p=$((base + m - 2000)) sf=uas_cancelled.xml
    [ "$m" = 2001 ] && sf=uas.xml
    printf 'SEQUENTIAL\n%s;[authentication username=%s password=pw%s]\n' "$m" "$m" "$m" > "$WORK/m$m.csv"
    sipp "127.0.0.1:$port" -sf "$HERE/register.xml" -i 127.0.0.1 -p "$p" -m 1 -nostdin \
      -inf "$WORK/m$m.csv" -timeout 10s > "$WORK/reg-$port-$m.out" 2>&1 || {
      echo "registration of $m failed" >&2; cat "$WORK/reg-$port-$m.out" >&2; exit 1; }
    sipp "127.0.0.1:$port" -sf "$HERE/$sf" -i 127.0.0.1 -p "$p" -nostdin -buff_size "$SIPP_BUF" \
      > "$WORK/uas-$port-$m.out" 2>&1 &
    PIDS+=($!)
  done
  sleep 0.5
}

# step PORT PID NAME RATE → "ok|fail successful failed seconds cpu_ms"
step() {
  local port=$1 pid=$2 name=$3 rate=$4 total=$(($4 * STEP_SECS))
  local stat="$WORK/$name.stat.csv" t0 t1 c0 c1 succ fail secs verdict=fail
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  sipp "127.0.0.1:$port" -sf "$WORK/uac.xml" -i 127.0.0.1 -r "$rate" -rp 1000 -m "$total" \
    -nostdin -recv_timeout 8000 -timeout "$((STEP_SECS * 4 + 30))s" -inf "$WORK/users.csv" -d 0 \
    -default_behaviors all,-abortunexp \
    -trace_stat -stf "$stat" -fd 3600 -buff_size "$SIPP_BUF" -trace_err -error_file "$WORK/$name.err" \
    > "$WORK/$name.out" 2>&1 || true
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  succ=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="SuccessfulCall(C)") c=i} END {print $c+0}' "$stat" 2>/dev/null || echo 0)
  fail=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="FailedCall(C)") c=i} END {print $c+0}' "$stat" 2>/dev/null || echo 0)
  secs=$(echo "$t1 - $t0" | bc)
  if [ "$((succ + fail))" -ge "$total" ] && [ "$((fail * 1000))" -le "$total" ] &&
    [ "$(echo "$secs <= $total / $rate * 1.3 + 2" | bc)" = 1 ]; then
    verdict=ok
  fi
  echo "$verdict $succ $fail $secs $(((c1 - c0) * TICK_MS))"
}

# ladder WHO PORT PID → highest passing rate (CPU per step kept in $WORK)
ladder() {
  local who=$1 port=$2 pid=$3 best=0 r
  for r in $RATES; do
    read -r verdict succ fail secs cpu < <(step "$port" "$pid" "$who-$r" "$r")
    printf '  %-8s rate %5s/s  ok %6s  failed %4s  %6.2f s  server CPU %6s ms  %s\n' "$who" "$r" "$succ" "$fail" "$secs" "$cpu" "$verdict" >&2
    echo "$cpu $succ" > "$WORK/cpu-$who-$r"
    [ "$verdict" = ok ] || break
    best=$r
  done
  echo "$best"
}
ratio() { if [[ "$1" =~ ^[0-9]+$ && "$2" =~ ^[1-9][0-9]*$ ]]; then echo "scale=2; $1 / $2" | bc; else echo "n/a"; fi; }
cpu_per_k() {
  local f="$WORK/cpu-$1-$2" cpu succ
  [ -f "$f" ] || { echo n/a; return; }
  read -r cpu succ < "$f"
  if [ "$succ" -gt 0 ]; then echo "$((cpu * 1000 / succ))"; else echo n/a; fi
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== calls through a ring group of 4 (ring-all), steps of ${STEP_SECS}s" >&2
members "$BESIP_PORT" 16100
B=$(ladder besip "$BESIP_PORT" "$BESIP_PID")
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; PIDS=(); sleep 0.5
members "$KAM_PORT" 26100
K=$(ladder kamailio "$KAM_PORT" "$KAM_PID")
COMMON=$(( B < K ? B : K ))
CPU_B=$(cpu_per_k besip "$COMMON"); CPU_K=$(cpu_per_k kamailio "$COMMON")
cat <<OUT

Ring group benchmark (loopback, 4 members ring-all, $CHILDREN worker threads / children, steps ${STEP_SECS}s, sipp $(sipp -v 2>&1 | awk '/SIPp/ {print $2; exit}'), $(kamailio -v | head -1))
load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)
                                   besip-pbxd   kamailio   ratio
ring-group calls, max rate/s       $(printf '%10s %10s %7s' "$B" "$K" "$(ratio "$B" "$K")")
server CPU ms / 1000 calls
  at $(printf '%5s' "$COMMON")/s (lower is better)     $(printf '%10s %10s %7s' "$CPU_B" "$CPU_K" "$(ratio "$CPU_K" "$CPU_B")")
OUT
