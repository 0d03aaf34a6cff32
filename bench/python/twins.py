#!/usr/bin/env python3
"""Python twins of the example servers: the standard library's http.server, three ways.

    python3 bench/python/twins.py sequential --port 0     # HTTPServer
    python3 bench/python/twins.py threading  --port 0     # ThreadingHTTPServer
    python3 bench/python/twins.py forking    --port 0     # ForkingMixIn + HTTPServer

Same endpoints as the Rust examples (/hello, /delay?s=, 404 otherwise), HTTP/1.1 keep-alive,
no per-request log line, and the same first line on stdout. Everything else is the standard
library's default, on purpose: these are what a Python programmer gets -- with two
exceptions, each of which would otherwise dominate the numbers and hide the model:

- TCP_NODELAY (`disable_nagle_algorithm = True`, a StreamRequestHandler knob): the handler
  writes the head and the body with two send() calls, and with Nagle's algorithm the second
  waits for the client's delayed ACK, about 40 ms per keep-alive response (we measured 8
  req/s for HTTPServer instead of thousands). socketserver sets TCP_NODELAY too.
- a listen backlog of SOMAXCONN instead of socketserver's request_queue_size = 5: with 5, a
  burst of 100 connections overflows the accept queue, the kernel drops handshakes and the
  clients wait for retransmissions (we measured 71 s and 22 timeouts for 100 one-second
  requests on ThreadingHTTPServer). socketserver defaults to SOMAXCONN. `--stdlib-backlog`
  keeps Python's 5, to see it.

ForkingMixIn.max_children stays 40 unless --max-children says otherwise.
"""

import argparse
import http.server
import socket
import socketserver
import sys
import time
from urllib.parse import parse_qs, urlsplit


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 so that connections stay open between requests, as in the Rust servers.
    protocol_version = "HTTP/1.1"
    # Head and body go out in two sends; without TCP_NODELAY the second waits ~40 ms for the
    # client's delayed ACK (see the module docstring).
    disable_nagle_algorithm = True

    def handle(self):
        # A client that goes away mid-response (wrk stopping, a reset) is not worth a
        # traceback on stderr for every connection.
        try:
            super().handle()
        except ConnectionError:
            pass

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/hello":
            self.reply(200, b"Hello, world!\n")
        elif url.path == "/delay":
            try:
                s = float(parse_qs(url.query).get("s", ["1"])[0])
            except ValueError:
                s = -1.0
            if not 0.0 <= s <= 60.0:
                self.reply(400, b"s must be a number of seconds from 0 to 60\n")
                return
            time.sleep(s)
            self.reply(200, f"slept {s:.3f} s\n".encode())
        else:
            self.reply(404, f"no such endpoint: {url.path}\nGET / lists them\n".encode())

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            # The client sent `Connection: close`. Say so, as socketserver does: a client that
            # sees the connection end without it (wrk) counts a read error per request.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        # Silenced: a benchmark must not measure the terminal.
        pass


class ForkingHTTPServer(socketserver.ForkingMixIn, http.server.HTTPServer):
    """A process per connection: the class Python's docs build from the mixin."""


SERVERS = {
    "sequential": http.server.HTTPServer,
    "threading": http.server.ThreadingHTTPServer,
    "forking": ForkingHTTPServer,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=sorted(SERVERS))
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-children", type=int, default=None, help="forking only (default 40)")
    p.add_argument("--stdlib-backlog", action="store_true", help="listen backlog 5, as socketserver's default")
    p.add_argument("--quiet", action="store_true", help="accepted for symmetry; nothing is logged anyway")
    a = p.parse_args()
    cls = SERVERS[a.kind]
    if a.max_children is not None:
        cls.max_children = a.max_children
    if not a.stdlib_backlog:
        cls.request_queue_size = socket.SOMAXCONN
    with cls(("127.0.0.1", a.port), Handler) as httpd:
        host, port = httpd.server_address[:2]
        print(f"Serving HTTP on {host} port {port} (http://{host}:{port}/) ...", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
