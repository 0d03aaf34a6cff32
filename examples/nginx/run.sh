#!/bin/sh
# Three example servers behind nginx, all on 127.0.0.1 (docs/11-scaling-out.md).
#
#   examples/nginx/run.sh            # start, fire the client, stop everything
#   examples/nginx/run.sh --load     # also measure nginx and one backend with load mode
#
# Needs nginx (apt-get install -y nginx). Ports: 8001-8003 the backends, 8080 nginx.
# Everything nginx writes goes to a temp dir, removed at the end; every process is stopped.
set -eu
cd "$(dirname "$0")/../.."
TMP=$(mktemp -d)
PIDS=""
cleanup() {
    [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v nginx >/dev/null || { echo "nginx is not installed: apt-get install -y nginx" >&2; exit 1; }
cargo build --release --example threaded_server --example client
EX=${CARGO_TARGET_DIR:-target}/release/examples

for port in 8001 8002 8003; do
    "$EX/threaded_server" --port "$port" --quiet >"$TMP/backend-$port.out" 2>&1 &
    PIDS="$PIDS $!"
    echo "backend on port $port: pid $!"
done
cp examples/nginx/nginx.conf "$TMP/"
nginx -p "$TMP" -c nginx.conf -e error.log &
PIDS="$PIDS $!"
sleep 1 # let nginx and the backends bind; the client would say "refused" otherwise

"$EX/client" -n 9 'http://127.0.0.1:8080/delay?s=0.5' | tail -n 24
if [ "${1:-}" = "--load" ]; then
    echo "--- through nginx"
    "$EX/client" --load -c 32 -d 5s http://127.0.0.1:8080/hello | head -n 9
    echo "--- one backend directly"
    "$EX/client" --load -c 32 -d 5s http://127.0.0.1:8001/hello | head -n 9
fi
