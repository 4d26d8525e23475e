#!/usr/bin/env python3
"""RTP relay benchmark: besip-pbxd's relay vs rtpengine (userspace), side by
side in one run, on loopback (in a namespace of its own made by run.sh,
whose lo steers received packets to the relay's core).

Relays: "besip" (its userspace relay), "besip-kernel" (the same with
/pbx/rtp/kernel-forwarding: after a 3 s warm-up the calls' flows are in the
kernel's hands, checked in its nftables map), "rtpengine".

Each relay gets N calls set up through its own control plane — rtpengine by
its ng protocol (offer/answer), besip-pbxd by real SIP calls through its B2BUA
across the NAT boundary (caller 127.0.0.1 inside, callee registered from
127.0.1.5 outside, so the media is anchored) — then besip-rtp-load sends a
G.711 stream each way per call (50 packets/s/direction) for STEP_SECS and
reports loss and latency. The relay under test is pinned to one core, the
load generator to the other; the relay's CPU time over the step is read from
/proc, and so is its core's busy time (what "core %" and the ratios use: it
includes the kernel's packet work, which kernel forwarding moves out of the
relay's process). The relays take turns at each N (besip N, rtpengine N, besip N2, ...)
so that a busy machine weighs on both alike. For each relay, the ladder of N
stops at the first step with >= 0.1 % loss; the highest passing N is its
"calls per core".

The load generator reports its own health (packets sent > 5 ms late, its
sockets' drops, gen_ok); a step where it lagged is run again (up to RETRIES
times) and, if it lags still, marked "GEN" and neither counted as passing
nor as the relay's loss. (The calls are set up once; only the step is
repeated.)

The calls' media addresses on the generator's side share PORTS ports per
side (calls i, i + PORTS, ... announce the same address), so that the
generator can send and read in batches; the relay still has its own socket
pair per call. PORTS=0: a port per call (the generator then needs a system
call per packet and lags from ~1,000 calls on).

Environment: RTPENGINE (binary), PBXD, LOAD (binaries), CALLS ("100 200 ..."),
STEP_SECS, RELAYS ("besip besip-kernel rtpengine"), PORTS (8), LOAD_THREADS (default: the
generator's CPUs, 1 when pinned), TICK_US (the generator sends and reads
every 1000 us), RETRIES (2), NICE (-15: as root, relay and
generator run at that niceness, ahead of builds sharing the machine).
"""
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../../.."))
PBXD = os.environ.get("PBXD", os.path.join(REPO, "target/release/besip-pbxd"))
LOAD = os.environ.get("LOAD", os.path.join(REPO, "target/release/besip-rtp-load"))
RTPENGINE = os.environ.get("RTPENGINE", shutil.which("rtpengine") or "/usr/bin/rtpengine")
CALLS = [int(n) for n in os.environ.get("CALLS", "100 200 300 400 600 800 1000 1200 1500 2000").split()]
STEP_SECS = float(os.environ.get("STEP_SECS", "10"))
RELAYS = os.environ.get("RELAYS", "besip besip-kernel rtpengine").split()
PORTS = int(os.environ.get("PORTS", "8"))
LOAD_THREADS = os.environ.get("LOAD_THREADS", "")
RETRIES = int(os.environ.get("RETRIES", "2"))
TICK_US = os.environ.get("TICK_US", "")
MAX_LOSS = 0.1  # percent
INSIDE, OUTSIDE, EXTERNAL = "127.0.0.1", "127.0.1.5", "127.0.0.2"
# Pinned, and ahead of other work on the machine (builds) when we may: a
# relay or generator waiting for its core measures the machine, not itself.
NICE = ["nice", "-n", os.environ.get("NICE", "-15")] if os.geteuid() == 0 else []
RELAY_CORE = 1
PIN_RELAY, PIN_LOAD = NICE + ["taskset", "-c", str(RELAY_CORE)], NICE + ["taskset", "-c", "0"]


def cpu_seconds(pid):
    """User+system CPU time of a process, all its threads and its reaped
    children (besip-pbxd's `nft` runs when it hands flows to the kernel)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def core_idle_seconds(core):
    """Idle time of one core. Its busy time over a step (wall time minus
    this) is what relaying costs there, whoever it is charged to: with the
    namespace's lo steering received packets to the relay's core (run.sh),
    the kernel's delivery of every packet (to the relay and back to the
    generator), and kernel forwarding, run there too. Idle time is the one
    figure this kernel keeps exactly (tickless idle); its user, system and
    softirq figures are sampled by ticks and disagree with it in a VM.
    Anything else on the core counts too: run on a quiet machine; each step
    prints the load average."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                return (v[3] + v[4]) / os.sysconf("SC_CLK_TCK")  # idle, iowait
    return 0.0


def kernel_flows():
    """Flows besip-pbxd handed to the kernel (elements of its verdict map)."""
    out = subprocess.run(["nft", "-j", "list", "map", "netdev", "besip_relay", "flows"],
                         capture_output=True, text=True).stdout
    m = re.search(r'"elem":\s*\[(.*)\]', out, re.S)
    return m.group(1).count('"concat"') if m else 0


def sdp(ip, port, sess):
    return (f"v=0\r\no=- {sess} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def media_of(body):
    ip = re.search(r"c=IN IP[46] (\S+)", body).group(1)
    port = int(re.search(r"m=audio (\d+)", body).group(1))
    return ip, port


def media_port(i):
    """The generator's media port of call i (both sides, on their own IPs)."""
    return 20000 + 2 * (i % PORTS if PORTS > 0 else i)


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --- rtpengine: ng protocol (bencode over UDP) ---------------------------------

def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def bdecode(data, i=0):
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i:i + 1] != b"e":
            x, i = bdecode(data, i)
            out.append(x)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            v, i = bdecode(data, i)
            out[k.decode()] = v
        return out, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n], colon + 1 + n


class Ng:
    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self.addr = ("127.0.0.1", port)

    def call(self, msg):
        cookie = b"%08x" % random.getrandbits(32)
        self.sock.sendto(cookie + b" " + bencode(msg), self.addr)
        while True:
            data, _ = self.sock.recvfrom(65536)
            if data.startswith(cookie + b" "):
                reply, _ = bdecode(data, len(cookie) + 1)
                if reply.get("result") not in (b"ok", b"pong"):
                    raise RuntimeError(f"rtpengine: {reply}")
                return reply


def run_rtpengine(n, workdir):
    ng_port = free_port()
    proc = subprocess.Popen(
        PIN_RELAY + [RTPENGINE, "--foreground", "--table=-1", "--interface=127.0.0.1",
                     f"--listen-ng=127.0.0.1:{ng_port}", "--port-min=30000", "--port-max=45000",
                     "--num-threads=1", "--log-level=3", "--log-stderr", "--delete-delay=0"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "rtpengine.log"), "w"))
    try:
        ng = Ng(ng_port)
        deadline = time.time() + 10
        while True:
            try:
                ng.call({"command": "ping"})
                break
            except (socket.timeout, ConnectionRefusedError):
                if time.time() > deadline:
                    raise RuntimeError("rtpengine did not answer ping")
        lines = []
        for i in range(n):
            a_port = b_port = media_port(i)
            cid = f"bench-{i}"
            offer = ng.call({"command": "offer", "call-id": cid, "from-tag": "a",
                             "sdp": sdp(INSIDE, a_port, i)})
            b_dest = media_of(offer["sdp"].decode())
            answer = ng.call({"command": "answer", "call-id": cid, "from-tag": "a", "to-tag": "b",
                              "sdp": sdp(OUTSIDE, b_port, i)})
            a_dest = media_of(answer["sdp"].decode())
            lines.append(f"{INSIDE}:{a_port} {a_dest[0]}:{a_dest[1]} {OUTSIDE}:{b_port} {b_dest[0]}:{b_dest[1]}")
        return measure(proc.pid, lines, workdir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- besip-pbxd: SIP through the B2BUA -----------------------------------------

def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


class Ua:
    """A minimal SIP user agent on one UDP socket (enough for the bench)."""

    def __init__(self, ip, pbx_port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(5)
        self.ip, self.port = self.sock.getsockname()
        self.pbx = ("127.0.0.1", pbx_port)

    def send(self, text, to=None):
        self.sock.sendto(text.encode(), to or self.pbx)

    def recv(self):
        data, src = self.sock.recvfrom(65536)
        return data.decode(errors="replace"), src

    def recv_reply(self, cseq_method, call_id=None):
        while True:
            msg, src = self.recv()
            if call_id and header(msg, "Call-ID") != call_id:
                continue  # a retransmission of an earlier call's reply
            if msg.startswith("SIP/2.0 ") and re.search(rf"^CSeq: *\d+ {cseq_method}\r?$", msg, re.M | re.I):
                code = int(msg.split()[1])
                if code >= 200:
                    return code, msg

    def auth_header(self, challenge, method, uri, user, password):
        realm = re.search(r'realm="([^"]*)"', challenge).group(1)
        nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
        ha1 = md5(f"{user}:{realm}:{password}")
        ha2 = md5(f"{method}:{uri}")
        resp = md5(f"{ha1}:{nonce}:00000001:c0:auth:{ha2}")
        name = "Authorization" if challenge.startswith("SIP/2.0 401") else "Proxy-Authorization"
        return (f'{name}: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0"\r\n')


def header(msg, name):
    m = re.search(rf"^{name}: *(.*?)\r?$", msg, re.M | re.I)
    return m.group(1) if m else ""


def body_of(msg):
    return msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""


def request(method, uri, ua, user, call_id, cseq, to_tag="", extra="", body="", branch=None):
    branch = branch or f"z9hG4bK{random.getrandbits(48):x}"
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    to = f"<sip:{uri.split(':', 1)[1]}>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ua.ip}:{ua.port};branch={branch};rport\r\n"
            f"From: <sip:{user}@besip.test>;tag={call_id}f\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:{user}@{ua.ip}:{ua.port}>\r\nMax-Forwards: 70\r\n"
            f"{extra}{ctype}Content-Length: {len(body)}\r\n\r\n{body}")


def register(ua, user, password):
    uri = "sip:besip.test"
    cid = f"reg-{user}-{random.getrandbits(32)}"
    ua.send(request("REGISTER", uri, ua, user, cid, 1, extra="Expires: 3600\r\n").replace(
        f"To: <sip:besip.test>", f"To: <sip:{user}@besip.test>"))
    code, msg = ua.recv_reply("REGISTER")
    if code == 401:
        auth = ua.auth_header(msg, "REGISTER", uri, user, password)
        ua.send(request("REGISTER", uri, ua, user, cid, 2, extra="Expires: 3600\r\n" + auth).replace(
            f"To: <sip:besip.test>", f"To: <sip:{user}@besip.test>"))
        code, msg = ua.recv_reply("REGISTER")
    if code != 200:
        raise RuntimeError(f"REGISTER {user}: {msg}")


def reply_to(req, code, reason, ua, to_tag, body=""):
    vias = "".join(f"Via: {v}\r\n" for v in re.findall(r"^Via: *(.*?)\r?$", req, re.M | re.I))
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"SIP/2.0 {code} {reason}\r\n{vias}From: {header(req, 'From')}\r\n"
            f"To: {header(req, 'To')};tag={to_tag}\r\nCall-ID: {header(req, 'Call-ID')}\r\n"
            f"CSeq: {header(req, 'CSeq')}\r\nContact: <sip:101@{ua.ip}:{ua.port}>\r\n"
            f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}")


def besip_call(caller, callee, i):
    """One call 100 -> 101 through the B2BUA; returns the load line."""
    a_port = b_port = media_port(i)
    cid = f"bench-{i}-{random.getrandbits(32):x}"
    uri = "sip:101@besip.test"
    offer = sdp(INSIDE, a_port, i)
    branch = f"z9hG4bK{random.getrandbits(48):x}"
    caller.send(request("INVITE", uri, caller, "100", cid, 1, body=offer, branch=branch))
    code, msg = caller.recv_reply("INVITE", cid)
    if code == 407 or code == 401:
        # The ACK of a failure reply belongs to the INVITE's transaction (same branch).
        caller.send(request("ACK", uri, caller, "100", cid, 1, branch=branch,
                            to_tag=re.search(r";tag=([^;>\s]+)", header(msg, "To")).group(1)))
        auth = caller.auth_header(msg, "INVITE", uri, "100", "pw100")
        caller.send(request("INVITE", uri, caller, "100", cid, 2, extra=auth, body=offer))
    # The callee side: INVITE in, 200 with our SDP out, ACK in.
    while True:
        req, src = callee.recv()
        if req.startswith("INVITE "):
            break
    b_dest = media_of(body_of(req))
    callee.send(reply_to(req, 200, "OK", callee, f"u{i}", sdp(OUTSIDE, b_port, i)), src)
    code, msg = caller.recv_reply("INVITE", cid)
    if code != 200:
        raise RuntimeError(f"call {i}: {msg[:200]}")
    a_dest = media_of(body_of(msg))
    to_tag = re.search(r";tag=([^;>\s]+)", header(msg, "To")).group(1)
    cseq = int(header(msg, "CSeq").split()[0])
    contact = re.search(r"<([^>]+)>", header(msg, "Contact")).group(1)
    caller.send(request("ACK", contact, caller, "100", cid, cseq, to_tag=to_tag).replace(
        f"To: <sip:{contact.split(':', 1)[1]}>", f"To: <sip:101@besip.test>"))
    return f"{INSIDE}:{a_port} {a_dest[0]}:{a_dest[1]} {OUTSIDE}:{b_port} {b_dest[0]}:{b_dest[1]}"


def run_besip(n, workdir, kernel=False):
    root = tempfile.mkdtemp(prefix="besip-rtp-bench-", dir=workdir)
    for d in ("etc/config", "run", "var/lib/besip"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    sip_port = free_port()
    with open(os.path.join(root, "etc/config/besip_pbx"), "w") as f:
        f.write(
            "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'b2bua'\n\tlist domain 'besip.test'\n"
            "\toption auth_realm 'besip.test'\n\toption auth_algorithms 'md5'\n"
            f"\toption nat_external_address '{EXTERNAL}'\n\tlist nat_local_network '127.0.0.0/24'\n"
            "\toption rtp_port_min '30000'\n\toption rtp_port_max '45000'\n"
            f"\toption rtp_kernel_forwarding '{int(kernel)}'\n\n"
            f"config listen 'listen_udp'\n\toption name 'udp'\n\toption transport 'udp'\n\toption address '127.0.0.1'\n\toption port '{sip_port}'\n\n"
            "config extension 'extension_100'\n\toption number '100'\n\toption password 'pw100'\n\n"
            "config extension 'extension_101'\n\toption number '101'\n\toption password 'pw101'\n\n")
    proc = subprocess.Popen(PIN_RELAY + [PBXD, "--root", root, "--log-level", "warn", "--threads", "1",
                                         "--udp-readers", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "pbxd.log"), "w"))
    try:
        deadline = time.time() + 10
        while not os.path.exists(os.path.join(root, "run/pbx.sock")):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("besip-pbxd did not start (see pbxd.log)")
            time.sleep(0.05)
        caller, callee = Ua(INSIDE, sip_port), Ua(OUTSIDE, sip_port)
        register(callee, "101", "pw101")
        try:
            lines = [besip_call(caller, callee, i) for i in range(n)]
        except (OSError, RuntimeError) as e:
            with open(os.path.join(workdir, "pbxd.log")) as log:
                tail = log.read()[-3000:]
            raise RuntimeError(f"call setup failed after {n} calls asked: {e}\n{tail}") from e
        if kernel:
            # The calls go to the kernel after their first packets: a warm-up
            # sends them, then the step measures the kernel's forwarding.
            warm_up(lines, workdir)
            deadline = time.time() + 20
            while kernel_flows() < 2 * n and time.time() < deadline:
                time.sleep(0.5)
            print(f"  ({kernel_flows()} of {2 * n} flow directions in the kernel)", file=sys.stderr, flush=True)
        return measure(proc.pid, lines, workdir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


# --- the measured step ----------------------------------------------------------

def warm_up(lines, workdir):
    calls_file = os.path.join(workdir, "calls.txt")
    with open(calls_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(PIN_LOAD + [LOAD, calls_file, "3", LOAD_THREADS or "0"],
                   capture_output=True, text=True, check=True)


def measure(pid, lines, workdir):
    calls_file = os.path.join(workdir, "calls.txt")
    with open(calls_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(2)  # the relay's backlog of the last attempt drains away
        cpu0, core0, t0 = cpu_seconds(pid), core_idle_seconds(RELAY_CORE), time.time()
        args = [calls_file, str(STEP_SECS), LOAD_THREADS or "0"] + ([TICK_US] if TICK_US else [])
        out = subprocess.run(PIN_LOAD + [LOAD] + args,
                             capture_output=True, text=True, check=True).stdout
        cpu1, core1, t1 = cpu_seconds(pid), core_idle_seconds(RELAY_CORE), time.time()
        r = dict(kv.split("=") for kv in out.split())
        # The relay's CPU for STEP_SECS of media: per call-second, and as a
        # share of its core over the sending (without the generator's start
        # and drain, idle for the relay; longer when the generator lagged).
        r["cpu_ms_per_call_s"] = 1000.0 * (cpu1 - cpu0) / (len(lines) * STEP_SECS)
        r["relay_cpu_pct"] = 100.0 * (cpu1 - cpu0) / max(STEP_SECS, t1 - t0 - 0.35)
        # The core's busy time over the whole run of the generator (its
        # start and drain too: the relay idles then, the core's idle counts).
        busy = max(0.0, (t1 - t0) - (core1 - core0))
        r["core_ms_per_call_s"] = 1000.0 * busy / (len(lines) * STEP_SECS)
        r["core_pct"] = 100.0 * busy / max(STEP_SECS, t1 - t0 - 0.35)
        r["attempts"] = attempt + 1
        r["load"] = os.getloadavg()[0]
        if r.get("gen_ok") == "1":
            break
        print(f"  (generator not on time, attempt {attempt + 1}: {out.strip()})", file=sys.stderr, flush=True)
    return r


def ahead_of_builds():
    """As root: our own session, hence our own scheduler autogroup, at NICE.
    With autogroups (Debian's default) a process's niceness weighs only
    within its session; a build in another session would otherwise take
    half of the relay's or the generator's core whatever its niceness."""
    if not NICE:
        return
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (e.g. started by setsid)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(NICE[2])
    except OSError:
        pass


def main():
    ahead_of_builds()
    besip = any(r.startswith("besip") for r in RELAYS)
    for b in (LOAD,) + ((PBXD,) if besip else ()) + ((RTPENGINE,) if "rtpengine" in RELAYS else ()):
        if not os.access(b, os.X_OK):
            sys.exit(f"missing {b}")
    workdir = tempfile.mkdtemp(prefix="rtp-relay-bench-")
    best, failed, per_call = {}, set(), {}
    print(f"{'relay':12} {'calls':>6} {'loss %':>8} {'p50 us':>7} {'p99 us':>7} {'relay CPU %':>11} "
          f"{'CPU ms/call/s':>13} {'core %':>7} {'core ms/call/s':>14} {'gen late %':>10} "
          f"{'gen lag p99 ms':>14} {'gen CPU %':>9} {'load':>5} {'note':>5}")
    try:
        for n in CALLS:
            for relay in RELAYS:
                if relay in failed:
                    continue
                if relay == "rtpengine":
                    r = run_rtpengine(n, workdir)
                else:
                    r = run_besip(n, workdir, kernel=relay == "besip-kernel")
                gen_ok = r.get("gen_ok") == "1"
                loss = float(r["loss_pct"])
                cpu = r["core_ms_per_call_s"]
                note = "" if gen_ok else "GEN"
                print(f"{relay:12} {n:6} {loss:8.3f} {r['p50_us']:>7} {r['p99_us']:>7} "
                      f"{r['relay_cpu_pct']:11.1f} {r['cpu_ms_per_call_s']:13.3f} {r['core_pct']:7.1f} "
                      f"{cpu:14.3f} {float(r['late_pct']):10.3f} "
                      f"{float(r['lag_p99_ms']):14.2f} {float(r['gen_cpu_pct']):9.1f} {r['load']:5.2f} {note:>5}",
                      flush=True)
                if not gen_ok:
                    continue  # the generator, not the relay, was the limit: no verdict
                per_call[(relay, n)] = cpu
                if loss >= MAX_LOSS:
                    failed.add(relay)
                    continue
                best[relay] = (n, cpu, int(r["p99_us"]), r["core_pct"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    ours = [r for r in RELAYS if r != "rtpengine"]
    for n in CALLS:
        for mine in ours:
            if (mine, n) in per_call and ("rtpengine", n) in per_call:
                print(f"{n} calls: relay core's CPU per call rtpengine/{mine} = "
                      f"{per_call[('rtpengine', n)] / per_call[(mine, n)]:.2f}")
    for relay, (n, cpu, p99, pct) in best.items():
        print(f"{relay}: {n} calls on one core with < {MAX_LOSS} % loss "
              f"(its core {pct:.0f} % busy, {cpu:.3f} ms per call-second, p99 {p99} us)")
    for mine in ours:
        if mine in best and "rtpengine" in best:
            print(f"ratio {mine}/rtpengine (calls per core by the loss ladder): "
                  f"{best[mine][0] / best['rtpengine'][0]:.2f}")


if __name__ == "__main__":
    main()
