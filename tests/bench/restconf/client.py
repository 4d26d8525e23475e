"""The edit+commit workload of tests/bench/netconf/raw.py over RESTCONF:
one extension created per request (POST to /restconf/data, which edits the
candidate and commits it), on one kept-alive TLS connection with the
session cookie (the password hash is checked once). Standard library only.
Prints one JSON line."""
import argparse
import base64
import http.client
import json
import ssl
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--first", type=int, default=400000, help="number of the first extension")
    a = ap.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", a.port, context=ctx)
    auth = "Basic " + base64.b64encode(f"admin:{a.password}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/yang-data+json"}

    def request(method, path, body=None, expect=(200, 201, 204)):
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status not in expect:
            raise SystemExit(f"{method} {path}: {r.status} {data[:1500]!r}")
        cookie = r.getheader("Set-Cookie")
        if cookie:
            headers.pop("Authorization", None)
            headers["Cookie"] = cookie.split(";")[0]
        return data

    request("GET", "/restconf/data/besip-system:system/hostname")
    start = time.perf_counter()
    for i in range(a.edits):
        n = a.first + i
        body = json.dumps({"besip-pbx:extension": [{"number": str(n), "password": f"pw{n}"}]})
        request("POST", "/restconf/data/besip-pbx:pbx", body)
    elapsed = time.perf_counter() - start
    # Leave the datastore as it was.
    for i in range(a.edits):
        request("DELETE", f"/restconf/data/besip-pbx:pbx/extension={a.first + i}")
    print(json.dumps({"edits": a.edits, "edit_commit_per_s": a.edits / elapsed}))


if __name__ == "__main__":
    main()
