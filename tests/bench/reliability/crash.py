"""Crash test of the commit path (issue 13 item 7): drives COMMITS commits over
NETCONF (ncclient) into a box of daemons started with --root, kill -9s either
besip-netconfd or besip-pbxd at random points, restarts it, and checks after
every restart and at the end that these agree:

  running.xml            the durable record
  besip_pbx (UCI)        rendered from it
  besip-pbxd's `state`   over its IPC socket (the dispatcher destination it runs)
  the commit history     newest record in history.db
  the client             every acknowledged commit is in running.xml; a commit
                         in flight at the kill is either wholly in or wholly out

Each commit i replaces the dispatcher set "crash" by one destination
sip:127.0.0.1:<BASE+i> and sets a monitoring and a security leaf from i, so
every commit reloads all three daemons. Prints one JSON line of figures.
Loopback only; the working directory is removed unless KEEP=1."""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

from ncclient import manager
from ncclient.operations.rpc import RPCError

BASE = 20000
NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'
URI = re.compile(r"sip:127\.0\.0\.1:(\d+)")
PASSWORD = "crash-test"


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Box:
    def __init__(self, bin_dir, work, with_secd):
        self.bin_dir = bin_dir
        self.root = os.path.join(work, "root")
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.nc_port = free_port()
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.web_port = free_port()
        self.procs = {}
        self.starts = {}
        self.with_secd = with_secd

    def start(self, name, args, env=None):
        self.starts[name] = self.starts.get(name, 0) + 1
        log = open(os.path.join(self.logs, f"{name}.{self.starts[name]}.log"), "w")
        self.procs[name] = subprocess.Popen(
            [os.path.join(self.bin_dir, name), "--root", self.root, "--log-level", "warn", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **(env or {})})

    def start_netconfd(self):
        self.start("besip-netconfd", ["--listen", f"127.0.0.1:{self.nc_port}"],
                   {"BESIP_ADMIN_PASSWORD": PASSWORD})
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.procs["besip-netconfd"].poll() is not None:
                raise SystemExit("besip-netconfd exited at start; see " + self.logs)
            try:
                socket.create_connection(("127.0.0.1", self.nc_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("besip-netconfd never listened")

    def daemons(self):
        return ["besip-pbxd", "besip-monitord"] + (["besip-secd"] if self.with_secd else [])

    def kill(self, name):
        proc = self.procs[name]
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def path(self, *parts):
        return os.path.join(self.root, *parts)


def connect(box):
    deadline = time.time() + 30
    while True:
        try:
            return manager.connect(host="127.0.0.1", port=box.nc_port, username="admin",
                                   password=PASSWORD, hostkey_verify=False, allow_agent=False,
                                   look_for_keys=False, timeout=20)
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def commit_config(i):
    return (f'<config {NC}>'
            f'<pbx xmlns="urn:besip:pbx"><dispatcher-set nc:operation="replace"><name>crash</name>'
            f'<probing>false</probing><destination><uri>sip:127.0.0.1:{BASE + i}</uri></destination>'
            f'</dispatcher-set></pbx>'
            f'<monitoring xmlns="urn:besip:monitoring"><retention>{1 + i % 3650}</retention></monitoring>'
            f'<security xmlns="urn:besip:security"><max-tracked-sources>{1000 + i}</max-tracked-sources>'
            f'</security></config>')


def first_uri(text):
    m = URI.search(text or "")
    return int(m.group(1)) - BASE if m else None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def ipc_state(sock_path, timeout=5.0):
    """besip-pbxd's own view: JSON-RPC `state` on its socket (None: not answering)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(sock_path)
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"state"}\n')
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return json.loads(data)["result"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    return None


def pbxd_view(box):
    state = ipc_state(box.path("run", "pbx.sock"))
    if state is None:
        return None
    sets = state.get("besip-pbx:pbx", {}).get("dispatcher-set", [])
    for s in sets:
        if s.get("name") == "crash":
            return first_uri(json.dumps(s.get("destination", [])))
    return -1


def history_newest(box):
    db = box.path("var", "lib", "besip", "history.db")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT config FROM commits ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            con.close()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def check(box, acked, in_flight, why, problems):
    """Everything agrees with running.xml, and running.xml with the client."""
    running = read(box.path("etc", "besip", "running.xml"))
    r = first_uri(running)
    uci = first_uri(read(box.path("etc", "config", "besip_pbx")))
    view = pbxd_view(box)
    # The history writer is asynchronous: give a queued record a moment.
    deadline = time.time() + 3
    while True:
        hist = history_newest(box)
        if hist == running or time.time() > deadline:
            break
        time.sleep(0.05)
    found = []
    if r is None or not (r == acked or (in_flight is not None and r == in_flight)):
        found.append(f"running.xml has commit {r}, client acked {acked}, in flight {in_flight}")
    if uci != r:
        found.append(f"besip_pbx has commit {uci}, running.xml {r}")
    if view != r:
        found.append(f"besip-pbxd runs commit {view}, running.xml {r}")
    if hist != running:
        found.append(f"newest history record is commit {first_uri(hist)}, running.xml {r}")
    for f in found:
        problems.append(f"{why}: {f}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default="target/debug")
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--victim", choices=["besip-netconfd", "besip-pbxd"], default="besip-netconfd")
    ap.add_argument("--kill-every", type=float, default=10.0,
                    help="mean number of commits between kills")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--with-secd", action="store_true",
                    help="also run besip-secd (log-only firewall; captures on lo, needs root)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="besip-crash.")
    box = Box(os.path.abspath(a.bin_dir), work, a.with_secd)
    problems, kills, failed_commits, refused = [], 0, 0, 0
    started = time.time()
    try:
        box.start_netconfd()
        m = connect(box)
        m.edit_config(target="candidate", config=(
            f'<config><system xmlns="urn:besip:system"><web><listen-address>127.0.0.1</listen-address>'
            f'<port>{box.web_port}</port></web></system>'
            f'<pbx xmlns="urn:besip:pbx"><listen><name>crash</name><transport>udp</transport>'
            f'<address>127.0.0.1</address><port>{box.sip_port}</port></listen></pbx>'
            f'<monitoring xmlns="urn:besip:monitoring"><interface>lo</interface>'
            f'<sip-port>{box.sip_port}</sip-port></monitoring>'
            f'<security xmlns="urn:besip:security"><firewall><backend>log-only</backend></firewall>'
            f'<capture><interface>lo</interface><sip-port>{box.sip_port}</sip-port></capture>'
            f'</security></config>'))
        m.edit_config(target="candidate", config=commit_config(0))
        m.commit()
        for d in box.daemons():
            box.start(d, ["--foreground"])
        if pbxd_view(box) is None:
            raise SystemExit("besip-pbxd does not answer on its socket; see " + box.logs)
        acked, latency = 0, 0.02
        i = 1
        while i <= a.commits:
            victim_killed = threading.Event()

            def kill_victim():
                box.kill(a.victim)
                victim_killed.set()
                if a.victim == "besip-pbxd":
                    # Restart at once: it starts while the commits go on.
                    box.start("besip-pbxd", ["--foreground"])

            timer = None
            if rng.random() < 1.0 / a.kill_every:
                timer = threading.Timer(rng.uniform(0, 2 * latency), kill_victim)
            try:
                m.edit_config(target="candidate", config=commit_config(i))
                t0 = time.perf_counter()
                if timer:
                    timer.start()
                m.commit()
                latency = 0.9 * latency + 0.1 * (time.perf_counter() - t0)
                acked = i
            except RPCError:
                # Refused (a reload hit the dying daemon): rolled back, not acked.
                refused += 1
                m.discard_changes()
            except Exception:
                failed_commits += 1
            if timer:
                timer.join()
                if victim_killed.is_set():
                    kills += 1
                    if a.victim == "besip-netconfd":
                        try:
                            m.close_session()
                        except Exception:
                            pass
                        box.start_netconfd()
                        m = connect(box)
                    else:
                        # A few commits while it starts, then look.
                        for j in range(1, 4):
                            if i + j > a.commits:
                                break
                            try:
                                m.edit_config(target="candidate", config=commit_config(i + j))
                                m.commit()
                                acked = i + j
                            except RPCError:
                                refused += 1
                                m.discard_changes()
                        i += 3
                        i = min(i, a.commits)
                    r = check(box, acked, i, f"after kill {kills}", problems)
                    acked = r if r is not None else acked
            i += 1
        check(box, acked, None, "at the end", problems)
        try:
            m.close_session()
        except Exception:
            pass
    finally:
        box.stop_all()
        if os.environ.get("KEEP"):
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"victim": a.victim, "commits": a.commits, "kills": kills,
                      "refused_commits": refused, "lost_replies": failed_commits,
                      "disagreements": len(problems), "problems": problems[:20],
                      "seconds": round(time.time() - started, 1), "seed": seed}))
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
