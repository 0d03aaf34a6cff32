#!/usr/bin/env python3
"""Many idle keep-alive connections against one server: what do they cost it?

    bench/idle.py PORT PID [N]        # N connections (default 10000, at most 12000)

Opens N connections to 127.0.0.1:PORT without sending anything, then sends one GET /hello on
each (200 at a time) and reads every answer, then holds them all open and idle for a second,
and times twenty /hello probes on new connections while they are still open.
After each step it prints the server's resident memory, threads and open descriptors, summed
over PID and its children (/proc). Loopback only; bounded in count and in time (gives up after
180 s). Needs a descriptor limit above N (ulimit -n) for both this script and the server.
"""
import os
import re
import socket
import sys
import time

port, pid = int(sys.argv[1]), int(sys.argv[2])
n = min(int(sys.argv[3]) if len(sys.argv) > 3 else 10000, 12000)
deadline = time.monotonic() + 180
REQ = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def tree(p):
    kids = []
    try:
        for t in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{t}/children") as f:
                kids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return [p] + [q for k in kids for q in tree(k)]


def cost():
    rss = threads = fds = 0
    for p in tree(pid):
        try:
            status = open(f"/proc/{p}/status").read()
            rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            threads += int(re.search(r"Threads:\s+(\d+)", status).group(1))
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except (OSError, AttributeError):
            pass
    return f"RSS {rss / 1024:.1f} MiB, {threads} threads, {fds} fds"


def answer(s):
    buf = b""
    while True:
        head = buf.find(b"\r\n\r\n")
        if head >= 0:
            m = re.search(rb"content-length: *(\d+)", buf[:head], re.I)
            if m and len(buf) >= head + 4 + int(m.group(1)):
                return buf.startswith(b"HTTP/1.1 200")
        d = s.recv(65536)
        if not d:
            return False
        buf += d


print(f"before:                 {cost()}", flush=True)
socks = []
t0 = time.monotonic()
while len(socks) < n and time.monotonic() < deadline:
    socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
print(f"{len(socks)} connected, silent: {cost()} ({time.monotonic() - t0:.1f} s)", flush=True)
ok = 0
t0 = time.monotonic()
for i in range(0, len(socks), 200):
    chunk = socks[i : i + 200]
    for s in chunk:
        s.sendall(REQ)
    for s in chunk:
        try:
            ok += answer(s)
        except OSError:
            pass
    if time.monotonic() > deadline:
        break
print(f"{ok} of {len(socks)} answered 200:  {cost()} ({time.monotonic() - t0:.1f} s)", flush=True)
time.sleep(1)
print(f"all idle, kept open:    {cost()}", flush=True)
# A new client among them: twenty /hello probes, each on a connection of its own, one after
# the other, timed from connect to the whole answer.
took = []
for _ in range(20):
    t = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as p:
            p.sendall(REQ)
            if answer(p):
                took.append(time.monotonic() - t)
    except OSError:
        pass
took.sort()
if took:
    print(
        f"probe /hello meanwhile:  {len(took)} of 20 answered, p50 {took[len(took) // 2] * 1000:.2f} ms, "
        f"max {took[-1] * 1000:.2f} ms",
        flush=True,
    )
else:
    print("probe /hello meanwhile:  0 of 20 answered", flush=True)
for s in socks:
    s.close()
