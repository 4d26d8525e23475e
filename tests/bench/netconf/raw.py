"""The edit+commit workload of bench.py through OpenSSH's `ssh -s netconf`
with hand-framed base:1.0 messages: no Python SSH stack in the loop, so the
figure is the server's own round trip (plus OpenSSH), not paramiko's.
Prints one JSON line."""
import argparse
import json
import os
import subprocess
import time

EOM = b"]]>]]>"
PBX = "urn:besip:pbx"
HELLO = (b'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
         b"<capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>")


class Session:
    def __init__(self, port, user, key):
        self.proc = subprocess.Popen(
            ["ssh", "-p", str(port), "-i", key, "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
             f"{user}@127.0.0.1", "-s", "netconf"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.buffer = b""
        self.message_id = 0
        self.read_message()  # the server's hello
        self.send(HELLO)
        # yuma123 netconfd drops an rpc that arrives in the same read as the
        # client's hello; let the hello land alone (outside the timed part).
        time.sleep(0.5)

    def send(self, body):
        self.proc.stdin.write(body + EOM)

    def read_message(self):
        while EOM not in self.buffer:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise SystemExit("server closed the session")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(EOM, 1)
        return message

    def rpc(self, body):
        self.message_id += 1
        self.send(f'<rpc message-id="{self.message_id}" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{body}</rpc>'.encode())
        reply = self.read_message()
        if b"<rpc-error" in reply or b":rpc-error" in reply:
            raise SystemExit(f"rpc failed: {reply[:1500]!r}")
        return reply


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--first", type=int, default=300000, help="number of the first extension")
    a = ap.parse_args()
    s = Session(a.port, a.user, a.key)
    start = time.perf_counter()
    for i in range(a.edits):
        n = a.first + i
        s.rpc(f'<edit-config><target><candidate/></target><config><pbx xmlns="{PBX}"><extension>'
              f"<number>{n}</number><password>pw{n}</password></extension></pbx></config></edit-config>")
        s.rpc("<commit/>")
    elapsed = time.perf_counter() - start
    # Leave the datastore as it was, so the ncclient run sees the same size.
    removals = "".join(f'<extension nc:operation="delete" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">'
                       f"<number>{a.first + i}</number></extension>" for i in range(a.edits))
    s.rpc(f'<edit-config><target><candidate/></target><config><pbx xmlns="{PBX}">{removals}</pbx></config></edit-config>')
    s.rpc("<commit/>")
    s.rpc("<close-session/>")
    print(json.dumps({"edits": a.edits, "edit_commit_per_s": a.edits / elapsed}))


if __name__ == "__main__":
    main()
