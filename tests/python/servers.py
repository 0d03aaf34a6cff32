"""Python's own HTTP servers, for the bundled client to judge (tests/python_servers.rs).

    python3 tests/python/servers.py sequential|threading|forking [PORT]

Sequential is http.server.HTTPServer (socketserver.TCPServer: one request at a time, and
request_queue_size = 5, the backlog that overflows under a burst); threading is
http.server.ThreadingHTTPServer; forking is ForkingMixIn + HTTPServer, as socketserver's docs
build ForkingTCPServer. The handler sends no X-Pid / X-Tid / X-Start / X-Elapsed headers: the
client must judge these servers from what it sees on its own side.

GET /delay?s=0.2 sleeps s seconds and answers; any other path answers at once. PORT 0 (the
default) picks a free port; the first line on stdout says which, in http.server's own words.
SIGTERM stops the server; the tests' ServerProcess kills a forking server's children too, and
reaps everything it started.
"""
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from socketserver import ForkingMixIn
from urllib.parse import parse_qs, urlsplit


class ForkingHTTPServer(ForkingMixIn, HTTPServer):
    pass


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/delay":
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # quiet: the test reads only the first line


class Quick:
    """HTTPServer.server_bind asks socket.getfqdn, a DNS lookup that can take seconds on a
    machine without a resolver; the name is only used in CGI variables, so skip it."""

    def server_bind(self):
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


KINDS = {
    "sequential": type("Sequential", (Quick, HTTPServer), {}),
    "threading": type("Threading", (Quick, ThreadingHTTPServer), {}),
    "forking": type("Forking", (Quick, ForkingHTTPServer), {}),
}


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "sequential"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = KINDS[kind](("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print(f"Serving HTTP on {host} port {port} (http://{host}:{port}/) ...", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
