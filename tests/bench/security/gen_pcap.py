#!/usr/bin/env python3
"""Write a pcap of N SIP-over-UDP packets (Ethernet/IPv4) from many sources:
mostly ordinary phones (REGISTER, INVITE, OPTIONS, 200/401 replies), a few
flooders, and some garbage. Usage: gen_pcap.py OUT.pcap N"""
import random, struct, sys

out, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(5)
BOX = bytes([10, 0, 0, 1])

def ip(a):
    return bytes([10, 1 + (a >> 16) % 200, (a >> 8) & 255, a & 255])

def frame(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + hdr + udp

def req(method, user, src, seq, ua):
    return (f"{method} sip:{user}@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5060;branch=z9hG4bK{seq}\r\n"
            f"From: <sip:{user}@10.0.0.1>;tag={seq}\r\nTo: <sip:{user}@10.0.0.1>\r\nCall-ID: {seq}@{src}\r\n"
            f"CSeq: {seq} {method}\r\nContact: <sip:{user}@{src}:5060>\r\nUser-Agent: {ua}\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()

def resp(code, user, seq, method):
    text = {200: "OK", 401: "Unauthorized"}[code]
    return (f"SIP/2.0 {code} {text}\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK{seq}\r\nFrom: <sip:{user}@10.0.0.1>;tag={seq}\r\n"
            f"To: <sip:{user}@10.0.0.1>;tag=s\r\nCall-ID: {seq}@x\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n").encode()

with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t = 1_700_000_000.0
    for i in range(n):
        t += 0.00001
        r = rnd.random()
        if r < 0.01:
            p = frame(ip(rnd.randrange(5000)), BOX, 5060, 5060, bytes(rnd.randrange(256) for _ in range(60)))
        elif r < 0.2:  # flooders
            a = rnd.randrange(20)
            p = frame(ip(100000 + a), BOX, 5060, 5060, req("REGISTER", "flood", "x", i, "FloodTool"))
        elif r < 0.6:
            a = rnd.randrange(5000)
            m = rnd.choice(["REGISTER", "INVITE", "OPTIONS"])
            p = frame(ip(a), BOX, 5060, 5060, req(m, str(100 + a % 900), "10.1.0.1", i, "Yealink SIP-T46S"))
        else:
            a = rnd.randrange(5000)
            code = 200 if rnd.random() < 0.8 else 401
            p = frame(BOX, ip(a), 5060, 5060, resp(code, str(100 + a % 900), i, "REGISTER"))
        sec = int(t)
        f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(p), len(p)))
        f.write(p)
