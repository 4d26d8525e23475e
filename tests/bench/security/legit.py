#!/usr/bin/env python3
"""Legitimate success rate under a flood, inside the bench namespace: a single
threaded registrar on 127.0.0.1:5060 (answers every REGISTER with 200 after
PROC_US of work, like a busy PBX) and a phone on 127.0.0.3 registering every
200 ms (below the 50-in-5-s rule) for SECONDS. The flood (sipp from 127.0.0.2) is started by run.sh.
Prints the phone's success rate. Usage: legit.py SECONDS PROC_US"""
import socket, sys, threading, time

secs, proc_us = float(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", 5060))
srv.settimeout(0.2)
stop = False

def registrar():
    while not stop:
        try:
            data, peer = srv.recvfrom(65535)
        except socket.timeout:
            continue
        end = time.perf_counter() + proc_us / 1e6
        while time.perf_counter() < end:
            pass
        lines = data.decode(errors="replace").split("\r\n")
        keep = [l for l in lines if l.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
        srv.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(), peer)

# The registrar runs in its own process so its busy work does not starve the phone (GIL).
import multiprocessing
th = multiprocessing.Process(target=registrar, daemon=True)
th.start()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.bind(("127.0.0.3", 0))
c.settimeout(0.5)
sent = ok = 0
t_end = time.time() + secs
while time.time() < t_end:
    sent += 1
    c.sendto((f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKp{sent}\r\nFrom: <sip:alice@127.0.0.1>;tag=1\r\n"
              f"To: <sip:alice@127.0.0.1>\r\nCall-ID: p{sent}\r\nCSeq: {sent} REGISTER\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", 5060))
    t0 = time.time()
    while time.time() - t0 < 0.5:
        try:
            d = c.recv(65535)
        except socket.timeout:
            break
        if f"CSeq: {sent} REGISTER".encode() in d:
            ok += 1
            break
    time.sleep(max(0, 0.2 - (time.time() - t0)))
th.terminate()
print(f"legit success {ok}/{sent} = {100.0 * ok / max(sent, 1):.1f} %")
