"""The same ncclient workload against one NETCONF server: N edit-config+commit
of single PBX extensions, then get-config of a datastore holding M extensions.
Prints one JSON line with the figures."""
import argparse
import json
import selectors
import socket
import statistics
import threading
import time
import types

import ncclient.transport.ssh
from ncclient import manager
from ncclient.transport.session import Session

# ncclient's transport thread sends a queued request only when its select()
# on the channel returns: at the next reply or after TICK (0.1 s), which would
# cap any server at ~10 RPCs/s. Poll every 1 ms instead, same for both servers
# (the default mode); with --wake-on-send a queued request also wakes it.
ncclient.transport.ssh.TICK = 0.001


class WakingSelector:
    """The selector ncclient's transport loop makes, plus a socket that
    Session.send writes to: a queued request ends the select() at once."""

    def __init__(self):
        self._inner = selectors.DefaultSelector()
        self._wake_receiver, wake_sender = socket.socketpair()
        self._wake_receiver.setblocking(False)
        self._inner.register(self._wake_receiver, selectors.EVENT_READ)
        # Made inside the session's own thread (an SSHSession is a Thread).
        threading.current_thread()._wake_sender = wake_sender

    def register(self, *args, **kwargs):
        return self._inner.register(*args, **kwargs)

    def select(self, timeout=None):
        ready = []
        for key, mask in self._inner.select(timeout):
            if key.fileobj is self._wake_receiver:
                try:
                    self._wake_receiver.recv(4096)
                except BlockingIOError:
                    pass
            else:
                ready.append((key, mask))
        return ready

    def close(self):
        self._inner.close()


def wake_on_send():
    ncclient.transport.ssh.selectors = types.SimpleNamespace(
        DefaultSelector=WakingSelector, EVENT_READ=selectors.EVENT_READ)
    queue_request = Session.send

    def send(self, message):
        queue_request(self, message)
        sender = getattr(self, "_wake_sender", None)
        if sender is not None:
            sender.send(b"\0")

    Session.send = send

PBX = "urn:besip:pbx"


def ext(n):
    return f"<extension><number>{n}</number><password>pw{n}</password></extension>"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password")
    ap.add_argument("--key")
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--bulk", type=int, default=10000)
    ap.add_argument("--gets", type=int, default=5)
    ap.add_argument("--wake-on-send", action="store_true",
                    help="wake ncclient's transport loop when a request is queued (no 1 ms poll)")
    ap.add_argument("--no-bulk", action="store_true", help="only the edit+commit figures")
    ap.add_argument("--stock-poll", action="store_true",
                    help="keep ncclient's own 100 ms poll interval (use few --edits)")
    a = ap.parse_args()
    if a.stock_poll:
        ncclient.transport.ssh.TICK = 0.1
    if a.wake_on_send:
        wake_on_send()
    kw = dict(host="127.0.0.1", port=a.port, username=a.user, hostkey_verify=False,
              allow_agent=False, look_for_keys=False, timeout=600)
    if a.key:
        kw["key_filename"] = a.key
    else:
        kw["password"] = a.password
    m = manager.connect(**kw)

    # The client's own ceiling: two RPCs the server answers at once
    # (discard-changes on an unchanged candidate), as many pairs as edits.
    start = time.perf_counter()
    for _ in range(a.edits):
        m.discard_changes()
        m.discard_changes()
    null_pairs_per_s = a.edits / (time.perf_counter() - start)

    start = time.perf_counter()
    for i in range(a.edits):
        m.edit_config(target="candidate", config=f'<config><pbx xmlns="{PBX}">{ext(100000 + i)}</pbx></config>')
        m.commit()
    edit_s = time.perf_counter() - start
    figures = {
        "edits": a.edits,
        "edit_commit_per_s": a.edits / edit_s,
        "null_rpc_pairs_per_s": null_pairs_per_s,
    }
    if a.no_bulk:
        # Leave the datastore as it was for the next run.
        removals = "".join(f'<extension xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete">'
                           f"<number>{100000 + i}</number></extension>" for i in range(a.edits))
        m.edit_config(target="candidate", config=f'<config><pbx xmlns="{PBX}">{removals}</pbx></config>')
        m.commit()
        m.close_session()
        print(json.dumps(figures))
        return

    # Bring the datastore to `bulk` extensions in one commit (not timed).
    rest = "".join(ext(200000 + i) for i in range(a.bulk - a.edits))
    m.edit_config(target="candidate", config=f'<config><pbx xmlns="{PBX}">{rest}</pbx></config>')
    m.commit()

    filt = ("subtree", f'<pbx xmlns="{PBX}"/>')
    times = []
    count = 0
    for _ in range(a.gets):
        t = time.perf_counter()
        reply = m.get_config("running", filter=filt)
        times.append(time.perf_counter() - t)
        count = reply.xml.count("<extension>") + reply.xml.count("<extension ")
    m.close_session()
    figures["extensions"] = count
    figures["get_config_ms_median"] = statistics.median(times) * 1000
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
