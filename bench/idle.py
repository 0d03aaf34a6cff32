#!/usr/bin/env python3
"""Idle keep-alive connections and what a server pays for them: `idle.py PORT PID N`.

Opens N connections to 127.0.0.1:PORT (loopback only), sends one `GET /hello` on each and reads
its answer, so every connection has been served once and is now an idle keep-alive connection
(start the server with `--idle-timeout 120`, or the default 5 s closes them). Then it reads the
server PID's resident memory (VmRSS) and thread count from /proc, sends one more request on every
connection (all must be answered, 200), and prints one line:

    N idle keep-alive connections: RSS 5.9 MiB (3.1 MiB before), 3 threads; all N answered again

Bounded: N is at most 20,000 (and `ulimit -n` must allow N for this process and the server),
every socket operation times out after 30 s, and the script closes everything when it ends.
docs/13-the-event-loop.md runs it against threaded_server, pool_server and event_loop_server.
"""

import socket
import sys
import time

REQUEST = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"


def status(pid):
    rss, threads = 0, 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def read_reply(s):
    """Reads one response to /hello (small, Content-Length framed); returns its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("EOF before a response")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("EOF in a body")
        body += chunk
    return int(head.split()[1])


def main():
    port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if not 0 < n <= 20000:
        sys.exit("N must be from 1 to 20000")
    before, _ = status(pid)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(REQUEST)
            if read_reply(s) != 200:
                sys.exit("a first request was not answered 200")
            socks.append(s)
        # Let the server settle (threads park, buffers are freed) before reading its numbers.
        time.sleep(1)
        rss, threads = status(pid)
        t0 = time.monotonic()
        for s in socks:
            s.sendall(REQUEST)
        ok = sum(read_reply(s) == 200 for s in socks)
        took = time.monotonic() - t0
    finally:
        for s in socks:
            s.close()
    print(
        f"{n} idle keep-alive connections: RSS {rss / 1024:.1f} MiB ({before / 1024:.1f} MiB before), "
        f"{threads} threads; {ok} of {n} answered again in {took:.2f} s"
    )


if __name__ == "__main__":
    main()
