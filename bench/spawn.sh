#!/usr/bin/env bash
# The cost of a connection per request: socketserver's threaded_server and forking_server
# against the hand-written minimal servers of the same model (bench/minimal), each pair
# alternating, with the server's own CPU time and page faults per connection.
#
#     bench/spawn.sh                          # 3 rounds, Connection: close, 5 s each
#     ROUNDS=5 MODES="close keepalive" bench/spawn.sh
#     PAIRS=forking bench/spawn.sh            # one pair only
#
# Each server runs under `perf stat -e page-faults,task-clock` (software counters: they work
# in a virtual machine without hardware counters), children and threads included, so the
# figures are the server's whole cost -- accept, spawn or fork, the request, exit, reap --
# divided by the connections wrk completed (its "requests in" line; with Connection: close
# one request is one connection). wrk's own CPU is not counted.
#
# Environment: ROUNDS (3), SECS (wrk duration, 5), CONNS (32), MODES ("close"),
# PAIRS ("threaded forking"), MAX_CHILDREN (forking_server --max-children, 64).
# Loopback only. Prints one line per run and the load average before and after: the machine
# may be shared, so compare the two servers of a round, not figures from elsewhere.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNS=${CONNS:-32}
MODES=${MODES:-close}
PAIRS=${PAIRS:-threaded forking}
MAX_CHILDREN=${MAX_CHILDREN:-64}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
MIN=${CARGO_TARGET_DIR:-$PWD/bench/minimal/target}/release
WORK=$(mktemp -d /tmp/socketserver-spawn.XXXXXX)

cargo build --release --quiet --examples
cargo build --release --quiet --manifest-path bench/minimal/Cargo.toml

PERF_PID=
cleanup() { [[ -n $PERF_PID ]] && kill -KILL -- "-$PERF_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# run NAME MODE CMD...: start CMD under perf stat, wrk it, stop it, print one line.
run() {
    local name=$1 mode=$2 line port spid hdr=() reqs rps faults clock
    shift 2
    [[ $mode == close ]] && hdr=(-H 'Connection: close')
    rm -f "$WORK/out" "$WORK/err" "$WORK/perf" "$WORK/wrk"
    # setsid: its own process group, so the stop below reaches every child it forked.
    setsid perf stat -x, -e page-faults,task-clock -o "$WORK/perf" -- "$@" --port 0 --quiet \
        >"$WORK/out" 2>"$WORK/err" </dev/null &
    PERF_PID=$!
    for _ in $(seq 100); do
        line=$(head -n1 "$WORK/out" 2>/dev/null) && [[ -n $line ]] && break
        sleep 0.05
    done
    port=$(sed -n 's/.*(http:\/\/127\.0\.0\.1:\([0-9]*\)\/).*/\1/p' <<<"$line")
    spid=$(pgrep -P "$PERF_PID" | head -n1)
    if [[ -z $port || -z $spid ]]; then
        printf '%-34s %-9s did not start: %s\n' "$name" "$mode" "$(head -c 200 "$WORK/err")"
        kill -KILL -- "-$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=
        return 0
    fi
    wrk -t2 -c"$CONNS" -d"${SECS}s" "${hdr[@]}" "http://127.0.0.1:$port/hello" >"$WORK/wrk" 2>&1 || true
    # SIGTERM to the server (perf's child): socketserver stops gracefully, the minimal servers
    # die of it; perf then writes its counts.
    kill -TERM "$spid" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/wrk")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$WORK/wrk")
    faults=$(awk -F, '$3=="page-faults"{print $1}' "$WORK/perf")
    clock=$(awk -F, '$3=="task-clock"{print $1}' "$WORK/perf")
    awk -v n="$name" -v m="$mode" -v r="$reqs" -v rps="$rps" -v f="$faults" -v c="$clock" 'BEGIN {
        if (r + 0 == 0) { printf "%-34s %-9s no result\n", n, m; exit }
        printf "%-34s %-9s %9.0f req/s  %6.1f faults/conn  %6.1f us CPU/conn\n", n, m, rps, f / r, c * 1000 / r
    }'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for pair in $PAIRS; do
            case $pair in
                threaded)
                    run threaded_server "$mode" "$TARGET/examples/threaded_server"
                    run min_threaded "$mode" "$MIN/min_threaded" ;;
                forking)
                    run "forking_server --max-children $MAX_CHILDREN" "$mode" \
                        "$TARGET/examples/forking_server" --max-children "$MAX_CHILDREN"
                    run min_forking "$mode" "$MIN/min_forking" ;;
            esac
        done
    done
    echo "round $round done, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
rm -rf "$WORK"
