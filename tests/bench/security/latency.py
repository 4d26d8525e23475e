#!/usr/bin/env python3
"""Ban latency, run inside the bench namespace while besip-secd watches lo:
for each run a fresh source 127.0.1.X sends COUNT-1 REGISTERs, then the one
that crosses the rule at t0, then a probe every 0.2 ms; the registrar socket
notes the last probe that still arrived. latency = last arrival - t0 (the
kernel dropped everything after it). Usage: latency.py RUNS COUNT"""
import socket, statistics, sys, time

runs, count = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
srv.bind(("127.0.0.1", 5060))
srv.setblocking(False)

def msg(i, seq):
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.{i}:5099;branch=z9hG4bK{seq}\r\n"
            f"From: <sip:lat{i}@127.0.0.1>;tag=1\r\nTo: <sip:lat{i}@127.0.0.1>\r\nCall-ID: {i}-{seq}\r\n"
            f"CSeq: {seq} REGISTER\r\nUser-Agent: Bench\r\nContent-Length: 0\r\n\r\n").encode()

def drain(src, last):
    while True:
        try:
            _, peer = srv.recvfrom(65535)
        except BlockingIOError:
            return last
        if peer[0] == src:
            last = time.perf_counter()

lat = []
for i in range(1, runs + 1):
    a = f"127.0.{1 + i // 250}.{1 + i % 250}"
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind((a, 0))
    for s in range(count - 1):
        c.sendto(msg(i, s), ("127.0.0.1", 5060))
    time.sleep(0.02)
    drain(a, 0)
    t0 = time.perf_counter()
    c.sendto(msg(i, count), ("127.0.0.1", 5060))
    last, seq = t0, count
    while time.perf_counter() - last < 0.3 and time.perf_counter() - t0 < 3:
        seq += 1
        c.sendto(msg(i, seq), ("127.0.0.1", 5060))
        last = drain(a, last)
        time.sleep(0.0002)
    if time.perf_counter() - t0 >= 3:
        print(f"run {i}: source {a} never dropped", file=sys.stderr)
        continue
    lat.append((last - t0) * 1000)
    c.close()
lat.sort()
if lat:
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"ban latency over {len(lat)}/{runs} runs: p50 {p(0.5):.1f} ms  p99 {p(0.99):.1f} ms  max {lat[-1]:.1f} ms")
