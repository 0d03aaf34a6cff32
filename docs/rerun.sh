#!/bin/sh
# Reruns the chapters' commands and prints their outputs, chapter by chapter, for a human to
# compare with (and paste into) the pasted outputs in docs/*.md. It rewrites nothing.
#
#   docs/rerun.sh              # every chapter below (about 4 minutes on 2 cores)
#   docs/rerun.sh 1 6 12       # only these chapters
#
# Release builds throughout (timing matters in chapters 6-12; chapters 1-4 sleep, so a debug
# build, what `cargo run` makes, prints the same shapes). Every server gets a free port
# (--port 0, read from its banner line), runs on 127.0.0.1 only, and is stopped at the end of
# its chapter; every load is bounded (-n or -d). Chapter 11 needs nginx, chapter 12 wrk; a
# missing tool skips that part with a note. tests/docs.rs checks that the commands in the
# chapters exist; this script shows what they print today.
set -eu
cd "$(dirname "$0")/.."
CHAPTERS=${*:-1 2 3 4 6 7 8 9 10 11 12}
TMP=$(mktemp -d)
SERVERS=""
stop_servers() {
    for p in $SERVERS; do kill "$p" 2>/dev/null || true; done
    for p in $SERVERS; do wait "$p" 2>/dev/null || true; done
    SERVERS=""
}
trap 'stop_servers; rm -rf "$TMP"' EXIT INT TERM

cargo build --release --examples >&2
EX=${CARGO_TARGET_DIR:-target}/release/examples

# serve NAME ARGS...: starts an example server on a free port; sets PORT and PID.
serve() {
    name=$1
    shift
    out="$TMP/$name.$$.$(date +%s%N).log"
    : >"$out" # exists before the server opens it, for the banner loop below
    "$EX/$name" --port 0 "$@" >"$out" 2>&1 &
    PID=$!
    SERVERS="$SERVERS $PID"
    i=0
    until PORT=$(sed -n 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p' "$out" | head -n 1) && [ -n "$PORT" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "$name printed no banner" >&2; cat "$out" >&2; exit 1; }
        sleep 0.05
    done
}
client() { "$EX/client" "$@"; }
say() { printf '\n===== %s\n$ %s\n' "$1" "$2"; }

for ch in $CHAPTERS; do
    case $ch in
    1)
        serve sequential_server
        say "chapter 1: ten 1-second requests, one at a time" "client -n 10 /delay?s=1"
        client -n 10 "http://127.0.0.1:$PORT/delay?s=1" || true
        say "chapter 1, try this: Python's HTTPServer, backlog 5, 30 requests" "python3 tests/python/servers.py sequential"
        : >"$TMP/py.out"
        python3 tests/python/servers.py sequential >"$TMP/py.out" 2>&1 &
        SERVERS="$SERVERS $!"
        until PY=$(sed -n 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p' "$TMP/py.out") && [ -n "$PY" ]; do sleep 0.05; done
        client -n 30 "http://127.0.0.1:$PY/delay?s=0.2" | tail -n 12 || true
        ;;
    2)
        serve threaded_server
        say "chapter 2: three slow requests, three threads" "client -n 3 /delay?s=3"
        client -n 3 "http://127.0.0.1:$PORT/delay?s=3" &
        sleep 1.2
        ps -L -o pid,lwp,nlwp,stat,cmd -p "$PID"
        wait $!
        say "chapter 2: two CPU-bound requests on the threaded server" "client -n 2 /cpu?ms=1000"
        client -n 2 "http://127.0.0.1:$PORT/cpu?ms=1000" | tail -n 6
        say "chapter 2: rounds of work, alone and two at once" "curl /cpu?ms=1000"
        curl -s "http://127.0.0.1:$PORT/cpu?ms=1000"
        curl -s "http://127.0.0.1:$PORT/cpu?ms=1000" &
        other=$!
        curl -s "http://127.0.0.1:$PORT/cpu?ms=1000"
        wait "$other" # not a bare wait: that would wait for the server too
        ;;
    3)
        serve forking_server
        say "chapter 3: five requests, five processes" "client -n 5 /delay?s=3"
        client -n 5 "http://127.0.0.1:$PORT/delay?s=3" | tail -n 7 &
        sleep 1.5
        ps -o pid,ppid,stat,cmd --ppid "$PID"
        wait $!
        ;;
    4)
        serve forking_server --no-reap
        say "chapter 4: zombies on purpose" "forking_server --no-reap; client -n 5 /delay?s=0.2; ps --ppid"
        client -n 5 "http://127.0.0.1:$PORT/delay?s=0.2" | tail -n 1
        ps -o pid,ppid,stat,cmd --ppid "$PID" || true
        stop_servers
        serve forking_server --max-children 40 --quiet
        say "chapter 4: 100 one-second requests against max_children 40" "client -n 100 /delay?s=1"
        client -n 100 "http://127.0.0.1:$PORT/delay?s=1" >"$TMP/cap.txt" || true
        tail -n 7 "$TMP/cap.txt"
        awk '$1 ~ /^[0-9]+$/ && NF == 6 {print int($3)}' "$TMP/cap.txt" | sort | uniq -c
        ;;
    6)
        say "chapter 6: fork in numbers" "cargo run --release --example fork_demo"
        "$EX/fork_demo"
        ;;
    7)
        say "chapter 7: scheduling" "cargo run --release --example scheduling"
        "$EX/scheduling"
        ;;
    8)
        say "chapter 8: caching" "cargo run --release --example caching"
        "$EX/caching"
        ;;
    9)
        serve threaded_server --quiet
        say "chapter 9: keep-alive against --close" "client --load -c 32 -d 5s [--close] /hello"
        client --load -c 32 -d 5s "http://127.0.0.1:$PORT/hello" | head -n 8
        client --load -c 32 -d 5s --close "http://127.0.0.1:$PORT/hello" | head -n 8
        stop_servers
        serve pool_server --threads 4 --quiet
        say "chapter 9: a saturated pool" "client --load -c 4 / -c 32 -d 5s /delay?s=0.01"
        client --load -c 4 -d 5s "http://127.0.0.1:$PORT/delay?s=0.01" | head -n 8
        client --load -c 32 -d 5s "http://127.0.0.1:$PORT/delay?s=0.01" | head -n 8
        ;;
    10)
        say "chapter 10: the gateway demo" "cargo run --release --example gateway -- --demo"
        "$EX/gateway" --demo 2>&1 | tail -n 8
        ;;
    11)
        if command -v nginx >/dev/null; then
            # Ports of their own, so a server left on 8000-8080 does not collide.
            for mode in "" --load --state --failover --deploy; do
                say "chapter 11" "examples/nginx/run.sh $mode"
                PORTS="18001 18002 18003" NGINX_PORT=18080 examples/nginx/run.sh $mode 2>/dev/null
            done
        else
            echo "chapter 11: nginx is not installed; skipped"
        fi
        ;;
    12)
        serve threaded_server --quiet
        for round in 1 2 3; do
            if command -v wrk >/dev/null; then
                say "chapter 12, round $round: wrk" "wrk -t2 -c32 -d5s --latency /hello"
                wrk -t2 -c32 -d5s --latency "http://127.0.0.1:$PORT/hello" | grep -E 'Requests/sec|50%'
            else
                echo "chapter 12: wrk is not installed; skipped"
            fi
            say "chapter 12, round $round: the client" "client --load -c 32 -d 5s /hello"
            client --load -c 32 -d 5s "http://127.0.0.1:$PORT/hello" | grep -E '^requests|^ +[0-9]'
            say "chapter 12, round $round: the client, a thread per connection" "client --load --thread-per-connection -c 32 -d 5s"
            client --load --thread-per-connection -c 32 -d 5s "http://127.0.0.1:$PORT/hello" | grep -E '^requests'
        done
        ;;
    *) echo "no chapter $ch here (5 and 13+ are rerun by their own scripts: bench/)" >&2 ;;
    esac
    stop_servers
done
