#!/bin/sh
# Three example servers behind nginx, all on 127.0.0.1 (docs/11-scaling-out.md).
#
#   examples/nginx/run.sh              # start, fire the client through nginx, stop everything
#   examples/nginx/run.sh --load       # load through nginx, then one backend directly
#   examples/nginx/run.sh --state      # /count through nginx: each instance counts for itself
#   examples/nginx/run.sh --failover   # kill -9 one backend under load, with and without
#                                      # nginx's proxy_next_upstream: count the failed requests
#   examples/nginx/run.sh --deploy     # replace the backends one by one under load: drain
#                                      # each (down + reload), stop, start, undrain
#   examples/nginx/run.sh --deploy-naive  # the same without draining
#
# Ports: PORTS="8001 8002 8003" (the backends) and NGINX_PORT=8080 by default; set either to
# move them, e.g. PORTS="9001 9002 9003" NGINX_PORT=9080 examples/nginx/run.sh --deploy.
# SERVER_PARAMS="max_fails=0" adds parameters to each upstream `server` line.
# Needs nginx (apt-get install -y nginx) and curl. Loopback only; every load is bounded (-d).
# Everything nginx writes goes to a temp dir, removed at the end; every process is stopped.
set -eu
cd "$(dirname "$0")/../.."
PORTS=${PORTS:-8001 8002 8003}
NGINX_PORT=${NGINX_PORT:-8080}
MODE=${1:-}
TMP=$(mktemp -d)
cleanup() {
    [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    for f in "$TMP"/backend-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v nginx >/dev/null || { echo "nginx is not installed: apt-get install -y nginx" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }
cargo build --release --example threaded_server --example client
EX=${CARGO_TARGET_DIR:-target}/release/examples

# Waits (at most 5 s) until http://127.0.0.1:$1/hello answers: no fixed sleeps.
ready() {
    i=0
    until curl -s -o /dev/null "http://127.0.0.1:$1/hello"; do
        i=$((i + 1))
        [ "$i" -lt 50 ] || { echo "nothing answers on port $1" >&2; exit 1; }
        sleep 0.1
    done
}

# Starts one backend on port $1; its pid goes to $TMP/backend-$1.pid.
start_backend() {
    "$EX/threaded_server" --port "$1" --quiet >>"$TMP/backend-$1.out" 2>&1 &
    echo $! >"$TMP/backend-$1.pid"
    ready "$1"
    echo "backend on port $1: pid $!"
}

# Writes nginx.conf into $TMP with our ports (with $1 = off: proxy_next_upstream off; with a
# port in $2: that backend marked `down`, so nginx sends it nothing new), then starts nginx, or
# reloads it if it is running (a graceful reload: old workers finish their requests).
start_nginx() {
    servers=""
    for p in $PORTS; do
        if [ "$p" = "${2:-}" ]; then mark=" down"; else mark=""; fi
        servers="$servers        server 127.0.0.1:$p${SERVER_PARAMS:+ $SERVER_PARAMS}$mark;\n"
    done
    awk -v servers="$servers" -v port="$NGINX_PORT" -v retry="${1:-on}" '
        /^ *server 127\.0\.0\.1:[0-9]+;/ { if (!done) { printf "%s", servers; done = 1 } next }
        /^ *listen 127\.0\.0\.1:/ { sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" port) }
        /proxy_next_upstream/ && retry == "off" { sub(/proxy_next_upstream [^;]*;/, "proxy_next_upstream off;   ") }
        { print }' examples/nginx/nginx.conf >"$TMP/nginx.conf"
    if [ -f "$TMP/nginx.pid" ]; then
        nginx -p "$TMP" -c nginx.conf -e error.log -s reload
        sleep 1 # nginx has no "reload done" signal; its old worker finishes within this
    else
        nginx -p "$TMP" -c nginx.conf -e error.log &
        ready "$NGINX_PORT"
    fi
    echo "nginx on port $NGINX_PORT, proxy_next_upstream $(grep -o 'proxy_next_upstream [^;]*' "$TMP/nginx.conf" | cut -d' ' -f2-)"
}

pid_of() { cat "$TMP/backend-$1.pid"; }
second() { echo "$PORTS" | awk '{print $2}'; }

for port in $PORTS; do start_backend "$port"; done
start_nginx
FRONT=http://127.0.0.1:$NGINX_PORT

case "$MODE" in
"")
    "$EX/client" -n 9 "$FRONT/delay?s=0.5" | tail -n 24
    ;;
--load)
    echo "--- through nginx"
    "$EX/client" --load -c 32 -d 5s "$FRONT/hello" | head -n 9
    echo "--- one backend directly"
    "$EX/client" --load -c 32 -d 5s "http://127.0.0.1:$(echo "$PORTS" | awk '{print $1}')/hello" | head -n 9
    ;;
--state)
    for i in 1 2 3 4 5 6 7 8 9; do curl -s "$FRONT/count"; done
    ;;
--failover)
    for retry in on off; do
        [ "$retry" = off ] && { start_backend "$(second)"; start_nginx off; }
        victim=$(second)
        echo "--- 8 connections, 6 s of /delay?s=0.05; after 2 s: kill -KILL $(pid_of "$victim") (port $victim)"
        "$EX/client" --load -c 8 -d 6s "$FRONT/delay?s=0.05" >"$TMP/load.out" &
        load=$!
        sleep 2
        kill -KILL "$(pid_of "$victim")"
        wait "$load" || true # exit status 1 when some request failed: counted below
        grep -E '^(requests|status|errors)' "$TMP/load.out"
        rm -f "$TMP/backend-$victim.pid"
    done
    ;;
--deploy | --deploy-naive)
    echo "--- 8 connections, 15 s of /delay?s=0.05; meanwhile each backend in turn is replaced"
    "$EX/client" --load -c 8 -d 15s "$FRONT/delay?s=0.05" >"$TMP/load.out" &
    load=$!
    sleep 1
    for port in $PORTS; do
        old=$(pid_of "$port")
        # Drain first: mark it down and reload, so nginx sends it nothing new. (--deploy-naive
        # skips this: the refused connects of the restart then make nginx mark the backend
        # failed for fail_timeout, 10 s, and with all three marked, nginx answers 502 at once.)
        [ "$MODE" = --deploy ] && start_nginx on "$port" >/dev/null
        kill -TERM "$old"
        # The old one finishes its requests in flight and exits; then its port is free.
        wait "$old" || true
        echo "port $port: pid $old drained and stopped"
        start_backend "$port"
        [ "$MODE" = --deploy ] && start_nginx on >/dev/null
        sleep 1
    done
    wait "$load" || true
    grep -E '^(requests|status|errors)' "$TMP/load.out"
    ;;
*)
    echo "unknown mode $MODE: see the top of $0" >&2
    exit 2
    ;;
esac
