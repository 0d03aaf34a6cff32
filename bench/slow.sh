#!/usr/bin/env bash
# Slow clients against every example server and nginx (docs/14-slow-clients.md).
#
#     bench/slow.sh                         # every server, every attack: about 30 minutes
#     SERVERS="pool prefork_t4" ATTACKS="H X" bench/slow.sh
#
# Attacks, with slowhttptest (a Debian package; installed if missing):
#   H  slow headers (slowloris): 1000 connections, a header line every 5 s
#   B  slow body (R-U-Dead-Yet): 1000 connections, a POST body 10 bytes every 5 s
#   X  slow read: 200 connections that read a 4 MB /bytes response 1 byte at a time
# "prefork_behind_nginx" is a sync prefork_server with nginx in front (bench/nginx/slow-front.conf):
# the setup gunicorn's documentation asks of its sync workers.
# During each attack a probe (bench/probe.py) asks for /hello ten times a second on a new
# connection and reports its latency. slowhttptest's own verdict, "service available", is
# sampled once a second; the table counts the samples that said YES.
#
# Loopback only; every run is bounded by LEN seconds; every server runs in its own process
# group and is stopped (SIGTERM, then SIGKILL) and reaped, also when the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
LEN=${LEN:-30}
SERVERS=${SERVERS:-"sequential threaded forking pool prefork prefork_t4 event_loop event_loop_t2 nginx prefork_behind_nginx"}
ATTACKS=${ATTACKS:-"H B X"}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
EX=$TARGET/release/examples
WORK=$(mktemp -d /tmp/socketserver-slow.XXXXXX)
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

GROUPS_STARTED=()
stop_groups_on_exit keep

for tool in slowhttptest nginx; do
    command -v $tool >/dev/null || { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq $tool >/dev/null 2>&1; } \
        || { log "$tool is required and could not be installed"; exit 1; }
done
# 1000 attackers and the server's own descriptors: more than the default soft limit of 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --quiet --example sequential_server --example threaded_server \
    --example forking_server --example pool_server --example prefork_server --example event_loop_server

start() { start_group "$@"; }
stop() { stop_group; }
start_nginx() {
    mkdir -p "$WORK/nginx"
    PORT=18080
    sed -e "s|__PORT__|$PORT|g" -e "s|__DIR__|$WORK/nginx|g" bench/nginx/slow.conf >"$WORK/nginx/nginx.conf"
    # /bytes for the slow read: a 4 MB file, the size of the example servers' /bytes?n=4000000.
    head -c 4000000 /dev/zero >"$WORK/nginx/bytes"
    setsid nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.out" 2>&1 </dev/null &
    SPID=$!
    GROUPS_STARTED+=("$SPID")
    sleep 1
}
# start_front BACKEND_PORT: nginx on 18081 in front of the backend (bench/nginx/slow-front.conf).
start_front() {
    mkdir -p "$WORK/front"
    sed -e "s|__PORT__|18081|g" -e "s|__BACKEND__|$1|g" -e "s|__DIR__|$WORK/front|g" \
        bench/nginx/slow-front.conf >"$WORK/front/nginx.conf"
    setsid nginx -p "$WORK/front" -c "$WORK/front/nginx.conf" >"$WORK/front.out" 2>&1 </dev/null &
    FPID=$!
    GROUPS_STARTED+=("$FPID")
    sleep 1
    PORT=18081
}
cmd_of() {
    case $1 in
        sequential) echo "$EX/sequential_server" ;;
        threaded) echo "$EX/threaded_server" ;;
        forking) echo "$EX/forking_server" ;;
        pool) echo "$EX/pool_server" ;;
        pool_handoff) echo "$EX/pool_server --hand-off" ;;
        # The kernel's default send queue (no TCP_NOTSENT_LOWAT): chapter 14, "Slow readers".
        pool_nolimit) echo "$EX/pool_server --unsent-limit 0" ;;
        event_loop_nolimit) echo "$EX/event_loop_server --unsent-limit 0" ;;
        prefork) echo "$EX/prefork_server" ;;
        prefork_t4) echo "$EX/prefork_server --threads 4" ;;
        event_loop) echo "$EX/event_loop_server" ;;
        event_loop_t2) echo "$EX/event_loop_server --threads 2" ;;
    esac
}
attack() { # attack LETTER PORT PREFIX
    case $1 in
        H) slowhttptest -c 1000 -H -i 5 -r 200 -l "$LEN" -u "http://127.0.0.1:$2/hello" -g -o "$3" ;;
        B) slowhttptest -c 1000 -B -i 5 -r 200 -s 8192 -x 10 -l "$LEN" -u "http://127.0.0.1:$2/hello" -g -o "$3" ;;
        X) slowhttptest -c 200 -X -r 100 -w 1 -y 2 -n 5 -z 1 -k 10 -l "$LEN" \
            -u "http://127.0.0.1:$2/bytes?n=4000000" -g -o "$3" ;;
    esac
}

printf '| server | attack | samples available | probe /hello (ok, failed, p50, p99, max) | peak RSS |\n'
printf '|---|---|---|---|---|\n'
for s in $SERVERS; do
    for a in $ATTACKS; do
        FPID=
        if [[ $s == nginx ]]; then start_nginx
        elif [[ $s == *_behind_nginx ]]; then
            # shellcheck disable=SC2046
            start "$s" $(cmd_of "${s%_behind_nginx}") --port 0 --quiet || continue
            start_front "$PORT"
        else
            # shellcheck disable=SC2046
            start "$s" $(cmd_of "$s") --port 0 --quiet || continue
        fi
        log "$s: attack -$a on port $PORT for $LEN s"
        python3 bench/probe.py "$PORT" "$LEN" 10 >"$WORK/$s-$a.probe" 2>"$WORK/$s-$a.slowest" &
        PROBE=$!
        peak=0
        ( while kill -0 "$SPID" 2>/dev/null; do
              r=$(ps -o rss= -g "$(ps -o sid= -p "$SPID" | tr -d ' ')" 2>/dev/null | awk '{s+=$1} END {print s+0}')
              echo "$r"; sleep 1
          done ) >"$WORK/$s-$a.rss" &
        SAMPLER=$!
        attack "$a" "$PORT" "$WORK/$s-$a" >"$WORK/$s-$a.log" 2>&1 || true
        wait "$PROBE" || true
        kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
        stop
        if [[ -n $FPID ]]; then kill -TERM -- "-$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true; fi
        csv=$WORK/$s-$a.csv
        avail=$(awk -F, 'NR > 1 && $5 != "" { n++; if ($5 > 0) y++ } END { printf "%d of %d", y, n }' "$csv" 2>/dev/null || echo "-")
        peak=$(sort -n "$WORK/$s-$a.rss" | tail -n 1)
        printf '| %s | -%s | %s | %s | %s MiB |\n' "$s" "$a" "$avail" \
            "$(sed 's/^probe //' "$WORK/$s-$a.probe")" "$((peak / 1024))"
        log "$s -$a probe $(cat "$WORK/$s-$a.slowest")"
    done
done
log "raw outputs in $WORK"
