#!/bin/sh
# Idle memory of a booted BESIP image: boots IMAGE (a copy; the image is not
# changed) in qemu, waits SETTLE seconds after "besip: boot complete", then
# prints per process Pss, VmRSS / RssAnon / RssFile / RssShmem in kB and the
# totals (VmRSS counts the shared binary once per process; Pss splits it),
# plus each besip daemon's mappings over 1 MiB (from /proc/PID/smaps).
# usage: idle-rss.sh IMAGE [SETTLE_SECONDS=60] [QEMU_SMP=1]
set -eu
image=$1
settle=${2:-60}
smp=${3:-1}
dir=$(mktemp -d)
trap 'kill "$qemu" 2>/dev/null; rm -rf "$dir"' EXIT
cp "$image" "$dir/disk.img"
qemu-system-x86_64 -m 512 -smp "$smp" -display none -no-reboot \
	-drive "file=$dir/disk.img,format=raw,if=virtio" \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
	-chardev "socket,id=s0,path=$dir/serial.sock,server=on,wait=off,logfile=$dir/console.log" \
	-serial chardev:s0 </dev/null >/dev/null 2>&1 &
qemu=$!
waited=0
until grep -qs "besip: boot complete" "$dir/console.log"; do
	sleep 2
	waited=$((waited + 2))
	[ "$waited" -lt 600 ] || { echo "no boot within 600 s" >&2; cat "$dir/console.log" >&2; exit 1; }
done
echo "booted after ${waited} s; settling ${settle} s" >&2
sleep "$settle"
# The report runs in the box; its output comes back on the console.
report='echo RSS-BEGIN; t=0; ps=0; for p in /proc/[0-9]*; do r=$(awk "/^VmRSS/{print \$2}" $p/status 2>/dev/null); [ -n "$r" ] || continue; s=$(awk "/^Pss:/{print \$2}" $p/smaps_rollup 2>/dev/null); t=$((t+r)); ps=$((ps+${s:-0})); echo "$(cat $p/comm) pid=${p#/proc/} Pss: ${s:-?} kB $(grep -E "^(VmRSS|RssAnon|RssFile|RssShmem|Threads)" $p/status | tr -s " \t" " " | tr "\n" " ")"; done; echo "TOTAL VmRSS $t kB, Pss $ps kB"; grep -E "^(MemTotal|MemAvailable)" /proc/meminfo | tr -s " " | tr "\n" " "; echo; for d in besip-netconfd besip-pbxd besip-secd besip-monitord; do p=$(pidof $d | cut -d" " -f1); [ -n "$p" ] || continue; echo "== $d big mappings"; awk "/^[0-9a-f]+-/{m=\$0} /^Rss:/{if (\$2>1024) print \$2\" kB \"m}" /proc/$p/smaps; done; echo RSS-END'
python3 - "$dir/serial.sock" "$report" "$dir/console.log" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\n")
time.sleep(2)
s.sendall(sys.argv[2].encode() + b"\n")
# The serial line is slow: keep the console open until the report's end
# marker is back (bounded).
for _ in range(120):
    time.sleep(0.5)
    with open(sys.argv[3], "rb") as log:
        if b"\nRSS-END" in log.read():
            break
PY
sed -n '/^RSS-BEGIN/,/^RSS-END/p' "$dir/console.log" | tr -d '\r'
