#!/bin/sh
# nginx in front of pool_server on a Unix socket (docs/15-other-transports.md): chapter 11's
# setup with `upstream { server unix:PATH; }` instead of three loopback ports.
#
#   examples/nginx/unix.sh            # owner-only socket: nginx's worker is refused (502), then
#                                     # the socket is opened to its group: 200
#   examples/nginx/unix.sh --load     # the same, then 32 connections for 5 s through nginx and
#                                     # straight at the socket, side by side
#
# NGINX_PORT=8090 by default. Needs nginx (apt-get install -y nginx) and curl. Loopback and a
# temporary directory only; every process is stopped and the directory removed on exit.
set -eu
cd "$(dirname "$0")/../.."
NGINX_PORT=${NGINX_PORT:-8090}
MODE=${1:-}
TMP=$(mktemp -d)
cleanup() {
    [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    [ -f "$TMP/backend.pid" ] && kill "$(cat "$TMP/backend.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v nginx >/dev/null || { echo "nginx is not installed: apt-get install -y nginx" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }
cargo build --release -q --example pool_server --example client
EX=${CARGO_TARGET_DIR:-target}/release/examples
SOCK=$TMP/run/app.sock
mkdir "$TMP/run"

"$EX/pool_server" --unix "$SOCK" --quiet >"$TMP/backend.out" 2>&1 &
echo $! >"$TMP/backend.pid"
i=0
until curl -s -o /dev/null --unix-socket "$SOCK" http://localhost/hello; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || { echo "nothing answers on $SOCK" >&2; exit 1; }
    sleep 0.1
done
echo "backend: $(head -n 1 "$TMP/backend.out" | sed "s|$TMP|\$TMP|g")"
ls -l "$SOCK" | awk '{print "socket file:", $1, $3, $4}'

# nginx.conf with the three loopback backends replaced by the one socket.
awk -v sock="$SOCK" -v port="$NGINX_PORT" '
    /^ *server 127\.0\.0\.1:[0-9]+;/ { if (!done) { printf "        server unix:%s;\n", sock; done = 1 } next }
    /^ *listen 127\.0\.0\.1:/ { sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" port) }
    { print }' examples/nginx/nginx.conf >"$TMP/nginx.conf"
grep 'server unix:' "$TMP/nginx.conf" | sed "s|^ *|nginx.conf: |; s|$TMP|\$TMP|"
nginx -p "$TMP" -c nginx.conf -e error.log &
i=0
until curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || { echo "nginx does not answer on port $NGINX_PORT" >&2; exit 1; }
    sleep 0.1
done
FRONT=http://127.0.0.1:$NGINX_PORT
echo "nginx on port $NGINX_PORT, its worker runs as: $(ps -o user= --ppid "$(cat "$TMP/nginx.pid")" | sort -u | tr '\n' ' ')"

echo "--- the socket is owner-only (the library's default, 0600): nginx's worker is someone else"
curl -s -o /dev/null -w 'through nginx: %{http_code}\n' "$FRONT/hello"
grep -o 'connect() to unix:[^ ]* failed ([^)]*)' "$TMP/error.log" | head -n 1 | sed "s|$TMP|\$TMP|"

echo "--- opened to the worker's group: the directories searchable, the socket group-writable"
group=$(id -gn nobody)
chmod 711 "$TMP" "$TMP/run"
chgrp "$group" "$SOCK"
chmod 660 "$SOCK"
ls -l "$SOCK" | awk '{print "socket file:", $1, $3, $4}'
curl -s -D - -o /dev/null "$FRONT/hello" | grep -E '^(HTTP|X-Pid|X-Tid|Server)' | tr -d '\r'

if [ "$MODE" = --load ]; then
    echo "--- 32 connections, 5 s, through nginx"
    "$EX/client" --load -c 32 -d 5s "$FRONT/hello" | awk '/^requests/ { print } /^latency  / { print; getline; print }'
    echo "--- 32 connections, 5 s, straight at the socket"
    "$EX/client" --load -c 32 -d 5s --unix "$SOCK" http://localhost/hello | awk '/^requests/ { print } /^latency  / { print; getline; print }'
fi
