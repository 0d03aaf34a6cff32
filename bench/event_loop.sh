#!/bin/sh
# The measurements of docs/13-the-event-loop.md, in the order the chapter pastes them:
#   bench/event_loop.sh [delay|block|cpu|idle|accept|burst|prefork]...   (default: all of them)
# Loopback only, bounded: each part starts its servers on 127.0.0.1 ports 18340-18349, runs a
# fixed number of requests or a fixed duration, and kills them. Release builds first:
#   cargo build --release --examples
# `idle` needs `ulimit -n` of at least 20000 (10,000 client sockets + 10,000 server sockets).
set -e
cd "$(dirname "$0")/.."
bin=target/release/examples
parts=${*:-delay block cpu idle accept burst prefork}

start() { # start PORT EXAMPLE ARGS... : runs it in the background, sets $pid
  port=$1; shift
  name=$1; shift
  "$bin/$name" --port "$port" --quiet "$@" > /dev/null 2>&1 &
  pid=$!
  # The banner comes before serving; a /hello answered means it serves.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    curl -s -o /dev/null "http://127.0.0.1:$port/hello" && return 0
    sleep 0.2
  done
  echo "$name did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" || true; }

for part in $parts; do
  case $part in
  delay)
    echo "== 1000 concurrent /delay?s=1, one loop"
    start 18340 event_loop_server --threads 1
    "$bin/client" -n 1000 "http://127.0.0.1:18340/delay?s=1" | tail -7
    stop ;;
  block)
    echo "== 10 concurrent /block?s=1, one loop"
    start 18341 event_loop_server --threads 1
    "$bin/client" -n 10 "http://127.0.0.1:18341/block?s=1" | tail -7
    stop
    echo "== 10 concurrent /block?s=1, one loop, --offload 10"
    start 18342 event_loop_server --threads 1 --offload 10
    "$bin/client" -n 10 "http://127.0.0.1:18342/block?s=1" | tail -7
    stop ;;
  cpu)
    for args in "" "--offload 2"; do
      echo "== 10 concurrent /cpu?ms=200, one loop ${args:-(inline)}, a /hello probe 0.3 s in"
      # shellcheck disable=SC2086
      start 18343 event_loop_server --threads 1 $args
      "$bin/client" -n 10 "http://127.0.0.1:18343/cpu?ms=200" > /tmp/event_loop_cpu.$$ &
      sleep 0.3
      curl -s -o /dev/null -w "probe /hello: %{time_total} s\n" "http://127.0.0.1:18343/hello"
      wait $!
      tail -6 /tmp/event_loop_cpu.$$
      rm -f /tmp/event_loop_cpu.$$
      stop
    done ;;
  idle)
    echo "== idle keep-alive connections: the server's RSS and threads (bench/idle.py)"
    for n in 1000 10000; do
      for s in threaded_server pool_server event_loop_server; do
        start 18344 "$s" --idle-timeout 120
        printf '%-18s ' "$s"
        python3 bench/idle.py 18344 "$pid" "$n"
        stop
      done
    done ;;
  accept)
    echo "== wrk -t2 -c32 -d5s /hello on two loops: handed off, each accepting (EPOLLEXCLUSIVE), or a listener each (SO_REUSEPORT)"
    for mode in "" --accept-on-loops --reuse-port; do
      # shellcheck disable=SC2086
      start 18345 event_loop_server --threads 2 $mode
      for close in keep-alive close; do
        printf 'threads 2 %-17s %-11s ' "${mode:-hand-off}" "$close"
        if [ "$close" = close ]; then set -- -H "Connection: close"; else set --; fi
        wrk -t2 -c32 -d5s --latency "$@" http://127.0.0.1:18345/hello |
          awk '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%s req/s  p50 %s  p99 %s\n", r, p50, p99}'
      done
      stop
    done ;;
  burst)
    for mode in "" --accept-on-loops --reuse-port; do
      echo "== 20 concurrent /block?s=1 on two loops ${mode:-(handed off)}"
      # shellcheck disable=SC2086
      start 18346 event_loop_server --threads 2 $mode
      "$bin/client" -n 20 "http://127.0.0.1:18346/block?s=1" | tail -6
      stop
    done ;;
  prefork)
    echo "== prefork_server --workers 2 --event-loop: 1000 concurrent /delay?s=1, then 20 /block?s=1"
    start 18347 prefork_server --workers 2 --event-loop
    "$bin/client" -n 1000 "http://127.0.0.1:18347/delay?s=1" | tail -6
    "$bin/client" -n 20 "http://127.0.0.1:18347/block?s=1" | tail -6
    stop
    echo "== prefork_server --workers 2 --event-loop --reuse-port: 20 /block?s=1"
    start 18348 prefork_server --workers 2 --event-loop --reuse-port
    "$bin/client" -n 20 "http://127.0.0.1:18348/block?s=1" | tail -6
    stop ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
