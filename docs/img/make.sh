#!/usr/bin/env bash
# Regenerates the pictures in docs/img/ from real runs of the chapters' commands:
#
#     docs/img/make.sh            # about two minutes, most of it the chapters' requests
#
# Each picture is what the bundled client draws with `--svg FILE` (or the demo with `--svg DIR`)
# against a freshly started example server, the chapter's own command with `--port 0`:
#
#   01-sequential.svg  sequential_server;          client -n 10 /delay?s=1      (chapter 1)
#   02-threaded.svg    threaded_server;            client -n 3 /delay?s=3       (chapter 2)
#   03-forking.svg     forking_server;             client -n 5 /delay?s=3       (chapter 3)
#   05-pool.svg        pool_server --threads 32;   client -n 512 /delay?s=1     (chapter 5)
#   05-prefork.svg     prefork_server --workers 4, one more by SIGTTIN; client -n 10 /delay?s=1
#   09-load.svg        pool_server --threads 4;    client --load -c 32 -d 5s /delay?s=0.01 (ch. 9)
#   13-loop-delay.svg  event_loop_server --threads 1; client -n 20 /delay?s=1  (chapter 13)
#   13-loop-block.svg  event_loop_server --threads 1; client -n 5 /block?s=1   (chapter 13)
#   demo.svg           cargo run --example demo -- --svg docs/img
#   bench-*.svg        bench/report.py --charts-from docs/benchmarks.md (the last bench run's
#                      numbers; bench/run.sh redraws them when it measures anew)
#
# Loopback only; every request loop is bounded (a count, or -d), every command runs under
# `timeout`. Every server it starts is stopped (SIGTERM, then SIGKILL after 10 s) and reaped,
# also when this script fails or is interrupted (the EXIT trap).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=docs/img
BIN=target/release/examples
WORK=$(mktemp -d)
SERVERS=()

log() { printf '== %s\n' "$*" >&2; }

# Stops one server: SIGTERM (graceful: it finishes in-flight requests and reaps its children),
# then waits at most 10 s before SIGKILL; always reaps it.
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    for pid in "${SERVERS[@]}"; do stop "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME ARGS...: starts an example server on a free port; sets PID and PORT.
start() {
    local name=$1
    shift
    "$BIN/$name" --port 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    SERVERS+=("$PID")
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -nE '1s/^Serving HTTP on .* port ([0-9]+) .*/\1/p' "$WORK/$name.out" 2>/dev/null || true)
        [[ -n $PORT ]] && return 0
        sleep 0.1
    done
    log "$name did not print its banner within 10 s:"
    cat "$WORK/$name.err" >&2
    exit 1
}

# finish: stops the server started last and forgets it.
finish() {
    stop "$PID"
    unset 'SERVERS[-1]'
}

# fire FILE ARGS...: the bundled client, its report kept, its picture written to FILE.
fire() {
    local file=$1
    shift
    timeout 120 "$BIN/client" --svg "$OUT/$file" "$@" >"$WORK/$file.txt"
    log "$OUT/$file: $(grep -E '^(wall time|verdict|requests) ' "$WORK/$file.txt" | tr -s ' ' | paste -sd';')"
}

log "building the examples (release)"
cargo build --release --quiet --example client --example sequential_server --example threaded_server \
    --example forking_server --example pool_server --example prefork_server --example demo --example event_loop_server
mkdir -p "$OUT"

start sequential_server
fire 01-sequential.svg -n 10 "http://127.0.0.1:$PORT/delay?s=1"
finish

start threaded_server
fire 02-threaded.svg -n 3 "http://127.0.0.1:$PORT/delay?s=3"
finish

start forking_server
fire 03-forking.svg -n 5 "http://127.0.0.1:$PORT/delay?s=3"
finish

start pool_server --threads 32 --quiet
fire 05-pool.svg -n 512 "http://127.0.0.1:$PORT/delay?s=1"
finish

# Chapter 5's respawn section: four workers, one more asked for with SIGTTIN, then ten requests
# in two waves of five.
start prefork_server --workers 4
for _ in $(seq 100); do grep -q '(4 running)' "$WORK/prefork_server.err" && break; sleep 0.1; done
kill -TTIN "$PID"
for _ in $(seq 100); do grep -q '(5 running)' "$WORK/prefork_server.err" && break; sleep 0.1; done
grep -q '(5 running)' "$WORK/prefork_server.err" || { log "prefork_server did not boot a fifth worker"; exit 1; }
fire 05-prefork.svg -n 10 "http://127.0.0.1:$PORT/delay?s=1"
finish

start pool_server --threads 4 --quiet
fire 09-load.svg --load -c 32 -d 5s "http://127.0.0.1:$PORT/delay?s=0.01"
finish

start event_loop_server --threads 1 --quiet
fire 13-loop-delay.svg -n 20 "http://127.0.0.1:$PORT/delay?s=1"
fire 13-loop-block.svg -n 5 "http://127.0.0.1:$PORT/block?s=1"
finish

log "demo"
timeout 120 "$BIN/demo" --svg "$OUT" >"$WORK/demo.txt"
grep -q "^picture: $OUT/demo.svg" "$WORK/demo.txt"

log "benchmark charts from docs/benchmarks.md"
python3 bench/report.py --charts-from docs/benchmarks.md "$OUT"

# Every picture well-formed (a real XML parser) and small.
python3 - "$OUT"/*.svg <<'EOF'
import os, sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    ET.parse(path)
    size = os.path.getsize(path)
    assert size < 50_000, f"{path}: {size} bytes"
    print(f"{size:>7} bytes  {path}")
EOF
