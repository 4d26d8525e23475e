"""The same ncclient workload against one NETCONF server: N edit-config+commit
of single PBX extensions, then get-config of a datastore holding M extensions.
Prints one JSON line with the figures."""
import argparse
import json
import statistics
import time

import ncclient.transport.ssh
from ncclient import manager

# ncclient polls its channel every TICK (0.1 s) before sending a queued
# request; that would cap any server at ~10 RPCs/s. Poll faster, same for both.
ncclient.transport.ssh.TICK = 0.001

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
    a = ap.parse_args()
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
    print(json.dumps({
        "edits": a.edits,
        "edit_commit_per_s": a.edits / edit_s,
        "null_rpc_pairs_per_s": null_pairs_per_s,
        "extensions": count,
        "get_config_ms_median": statistics.median(times) * 1000,
    }))


if __name__ == "__main__":
    main()
