#!/usr/bin/env python3
"""Writes a pcap of N RTP streams (G.711, 20 ms) interleaved in time, with
about 1 % random loss and a few ms of arrival jitter, for the rtp benchmark.
Usage: gen_capture.py OUT.pcap [STREAMS] [PACKETS_PER_STREAM]"""
import random
import struct
import sys

out = sys.argv[1]
streams = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
per_stream = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
rnd = random.Random(42)
payload = b"\xd5" * 160
eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
hdrs = []
for s in range(streams):
    src = bytes([10, 1 + s // 250, s % 250, 1])
    dst = bytes([10, 200, s // 250, s % 250 + 1])
    sport = 20000 + 2 * s
    dport = 40000 + 2 * s
    udp_len = 8 + 12 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src, dst)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0)
    hdrs.append(eth + ip + udp)
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t0 = 1_700_000_000.0
    rec = struct.Struct("<IIII")
    rtp = struct.Struct("!BBHII")
    written = 0
    for k in range(per_stream):
        base = t0 + k * 0.020
        for s in range(streams):
            if rnd.random() < 0.01 and 0 < k < per_stream - 1:
                continue
            # Streams start spread over 20 ms; jitter up to 4 ms keeps order.
            ts = base + s * (0.016 / streams) + rnd.random() * 0.004
            frame = hdrs[s] + rtp.pack(0x80, 8, (1000 + k) & 0xFFFF, 160 * k, 0x10000 + s) + payload
            sec = int(ts)
            f.write(rec.pack(sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)
            written += 1
print(f"{out}: {streams} streams, {written} packets")
