#!/usr/bin/env python3
"""A /hello probe: one new connection per request, RATE a second, for SECS seconds; prints
count, failures and latency percentiles in ms, and on stderr the five slowest with when they
were sent (seconds from the start: is the tail the attack's start, or all along?). Loopback
only; bounded in count and time.

    bench/probe.py PORT SECS [RATE]
"""
import socket
import sys
import time

port, secs = int(sys.argv[1]), float(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
req = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
lat, fails = [], 0
at = []  # (latency ms, seconds from the start)
start = time.monotonic()
end = start + secs
n = 0
while time.monotonic() < end and n < 100_000:
    n += 1
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if data.startswith(b"HTTP/1.1 200"):
            lat.append((time.monotonic() - t0) * 1000)
            at.append((lat[-1], t0 - start))
        else:
            fails += 1
    except OSError:
        fails += 1
    time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")
print(f"probe {len(lat)} ok {fails} failed p50 {pct(50):.1f} ms p99 {pct(99):.1f} ms max {lat[-1] if lat else float('nan'):.1f} ms")
at.sort(reverse=True)
print("slowest: " + ", ".join(f"{ms:.1f} ms at {t:.1f} s" for ms, t in at[:5]), file=sys.stderr)
