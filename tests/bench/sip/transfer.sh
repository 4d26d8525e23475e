#!/usr/bin/env bash
# Blind transfers per second executed by besip-pbxd's B2BUA (issue 17), on
# loopback with sipp. Each transfer: caller 1xxxx calls 2001 (INVITE/407/
# ACK/INVITE+auth, 200, ACK); 2001 sends REFER (Refer-To 2002); the B2BUA
# answers 202, NOTIFYs 100, invites 2002 without SDP, re-INVITEs the caller
# with 2002's offer, ACKs 2002 with the caller's answer, NOTIFYs 200 and
# hangs 2001 up; the caller then hangs up and the BYE reaches 2002. That is
# 3 dialogs and ~22 messages through the server per transfer.
# Kamailio is not run: a proxy cannot execute a REFER (it relays it to the
# transferee, which places the new call itself), so there is no equivalent
# script; the figure is ours alone, with the server CPU per transfer.
#
# Usage: tests/bench/sip/transfer.sh           (full ladder)
#        QUICK=1 tests/bench/sip/transfer.sh   (short steps, a smoke run)
# Tunables: RATES, STEP_SECS, THREADS, SIPP_BUF, BESIP_BIN.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
STEP_SECS=${STEP_SECS:-5}
RATES=${RATES:-"200 500 1000 1500 2000 2500 3000 3500 4000"}
THREADS=${THREADS:-2}
if [ -n "${QUICK:-}" ]; then STEP_SECS=2; RATES="20 50"; fi
SIPP_BUF=${SIPP_BUF:-4194304}
PORT=${BESIP_PORT:-15090}
CALLERS=100

command -v sipp >/dev/null || { echo "sipp missing: run scripts/install-deps" >&2; exit 1; }
if [ -z "${BESIP_BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p besip-pbx)
  BESIP_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/besip-pbxd"
fi

WORK=$(mktemp -d /tmp/besip-transfer-bench.XXXXXX)
PIDS=(); BESIP_PID=""
cleanup() {
  local p
  for p in "${PIDS[@]}" $BESIP_PID; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}" $BESIP_PID; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

{
  echo SEQUENTIAL
  for ((i = 0; i < CALLERS; i++)); do u=$((10000 + i)); echo "$u;[authentication username=$u password=pw$u]"; done
} > "$WORK/users.csv"
mkdir -p "$WORK/root/etc/config" "$WORK/root/var/lib/besip" "$WORK/root/run"
{
  printf "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'b2bua'\n\tlist domain 'bench.test'\n\toption auth_realm 'bench.test'\n\toption auth_algorithms 'md5'\n\toption max_transactions '2000000'\n\n"
  printf "config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '%s'\n\n" "$PORT"
  for ((i = 0; i < CALLERS; i++)); do u=$((10000 + i)); printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$u" "$u" "$u"; done
  for m in 2001 2002; do
    printf "config extension 'extension_%s'\n\toption number '%s'\n\toption password 'pw%s'\n\n" "$m" "$m" "$m"
  done
} > "$WORK/root/etc/config/besip_pbx"

"$BESIP_BIN" --root "$WORK/root" --log-level warn --threads "$THREADS" 2> "$WORK/besip.log" &
BESIP_PID=$!
sleep 1.5
kill -0 "$BESIP_PID" || { cat "$WORK/besip.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK_MS=$((1000 / $(getconf CLK_TCK)))

# parties: registers 2001 (the transferor) and 2002 (the target) from their
# ports and starts their scenarios.
parties() {
  local m p sf
  for m in 2001 2002; do
    p=$((16200 + m - 2000)); sf=transferor.xml
    [ "$m" = 2002 ] && sf=target.xml
    printf 'SEQUENTIAL\n%s;[authentication username=%s password=pw%s]\n' "$m" "$m" "$m" > "$WORK/m$m.csv"
    sipp "127.0.0.1:$PORT" -sf "$HERE/register.xml" -i 127.0.0.1 -p "$p" -m 1 -nostdin \
      -inf "$WORK/m$m.csv" -timeout 10s > "$WORK/reg-$m.out" 2>&1 || {
      echo "registration of $m failed" >&2; cat "$WORK/reg-$m.out" >&2; exit 1; }
    sipp "127.0.0.1:$PORT" -sf "$HERE/transfer/$sf" -i 127.0.0.1 -p "$p" -nostdin -buff_size "$SIPP_BUF" \
      -default_behaviors all,-abortunexp -trace_err -error_file "$WORK/err-$m.log" \
      > "$WORK/uas-$m.out" 2>&1 &
    PIDS+=($!)
  done
  sleep 0.5
}

# step RATE → "ok|fail successful failed seconds cpu_ms"
step() {
  local rate=$1 total=$(($1 * STEP_SECS)) name="step-$1"
  local stat="$WORK/$name.stat.csv" t0 t1 c0 c1 succ fail secs verdict=fail
  c0=$(cpu_ticks "$BESIP_PID"); t0=$(date +%s.%N)
  sipp "127.0.0.1:$PORT" -sf "$HERE/transfer/transferee.xml" -i 127.0.0.1 -r "$rate" -rp 1000 -m "$total" \
    -nostdin -recv_timeout 8000 -timeout "$((STEP_SECS * 4 + 30))s" -inf "$WORK/users.csv" \
    -default_behaviors all,-abortunexp \
    -trace_stat -stf "$stat" -fd 3600 -buff_size "$SIPP_BUF" -trace_err -error_file "$WORK/$name.err" \
    > "$WORK/$name.out" 2>&1 || true
  t1=$(date +%s.%N); c1=$(cpu_ticks "$BESIP_PID")
  succ=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="SuccessfulCall(C)") c=i} END {print $c+0}' "$stat" 2>/dev/null || echo 0)
  fail=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="FailedCall(C)") c=i} END {print $c+0}' "$stat" 2>/dev/null || echo 0)
  secs=$(echo "$t1 - $t0" | bc)
  if [ "$((succ + fail))" -ge "$total" ] && [ "$((fail * 1000))" -le "$total" ] &&
    [ "$(echo "$secs <= $total / $rate * 1.3 + 2" | bc)" = 1 ]; then
    verdict=ok
  fi
  echo "$verdict $succ $fail $secs $(((c1 - c0) * TICK_MS))"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== blind transfers executed by the B2BUA, steps of ${STEP_SECS}s" >&2
parties
BEST=0; BEST_CPU=n/a
for r in $RATES; do
  read -r verdict succ fail secs cpu < <(step "$r")
  printf '  besip    rate %5s/s  ok %6s  failed %4s  %6.2f s  server CPU %6s ms  %s\n' "$r" "$succ" "$fail" "$secs" "$cpu" "$verdict" >&2
  [ "$verdict" = ok ] || break
  BEST=$r
  if [ "$succ" -gt 0 ]; then BEST_CPU=$(echo "scale=3; $cpu / $succ" | bc); fi
done
cat <<OUT

Blind transfer benchmark (loopback, B2BUA, $THREADS worker threads, steps ${STEP_SECS}s, sipp $(sipp -v 2>&1 | awk '/SIPp/ {print $2; exit}'))
load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)
                                       besip-pbxd   kamailio
blind transfers, max rate/s            $(printf '%10s' "$BEST")        n/a (a proxy cannot execute REFER)
server CPU ms per transfer at $(printf '%5s' "$BEST")/s $(printf '%10s' "$BEST_CPU")
OUT
