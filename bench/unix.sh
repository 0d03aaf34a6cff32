#!/usr/bin/env bash
# HTTP over a Unix stream socket against loopback TCP, on the same server: pool_server (and
# threaded_server) started once with --port 0 and once with --unix, each loaded by the bundled
# client's load mode (wrk cannot speak to a Unix socket, so the client loads both sides, and the
# comparison is fair: the same client, the same request, the same connections), alternating in
# pairs within one run.
#
#     bench/unix.sh                    # 3 rounds, keep-alive, 5 s each, pool_server
#     ROUNDS=5 MODES="keepalive close" SERVERS="pool_server threaded_server" bench/unix.sh
#
# Prints one line per run (req/s, p50, p99, errors) and the load average before and after: the
# machine may be shared, so compare the two transports of a round, not figures from elsewhere.
# Environment: ROUNDS (3), SECS (5), CONNS (32), THREADS (client epoll threads, 2), MODES
# ("keepalive"), SERVERS ("pool_server"). Loopback and a temporary directory only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
MODES=${MODES:-keepalive}
SERVERS=${SERVERS:-pool_server}
WORK=$(mktemp -d)
GROUPS_STARTED=()
log() { echo "$@" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
stop_groups_on_exit

cargo build --release -q --example pool_server --example threaded_server --example client
EX=target/release/examples

# load NAME MODE TRANSPORT CLIENT-ARGS...: one load run, printed as one line.
load() {
    local name=$1 mode=$2 transport=$3 out
    shift 3
    local close=()
    [[ $mode == close ]] && close=(--close)
    out=$("$EX/client" --load -c "$CONNS" -t "$THREADS" -d "${SECS}s" "${close[@]}" "$@" 2>&1 || true)
    local rps p50 p99 errors
    rps=$(sed -n 's/^requests .* \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    # The latency table: a header row (min mean p50 p90 p99 ...) and a row of values.
    read -r -a vals < <(grep -A1 '^latency  ' <<<"$out" | tail -n 1 | sed 's/ \([mun]*s\)/\1/g')
    p50=${vals[2]:-?}
    p99=${vals[4]:-?}
    errors=$(sed -n 's/^errors *//p' <<<"$out")
    printf '%-16s %-9s %-5s %9s req/s  p50 %9s  p99 %9s  errors %s\n' "$name" "$mode" "$transport" "${rps:-?}" "$p50" "$p99" "$errors"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "client --load -c $CONNS -t $THREADS -d ${SECS}s GET /hello; $ROUNDS rounds, alternating"
for server in $SERVERS; do
    for mode in $MODES; do
        for round in $(seq "$ROUNDS"); do
            start_group tcp "$EX/$server" --port 0 --quiet
            load "$server" "$mode" tcp "http://127.0.0.1:$PORT/hello"
            stop_group
            sock="$WORK/$server.sock"
            start_group unix "$EX/$server" --unix "$sock" --quiet
            load "$server" "$mode" unix --unix "$sock" "http://localhost/hello"
            stop_group
            [[ -e $sock ]] && log "  $sock left behind after SIGTERM"
            : "$round"
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
