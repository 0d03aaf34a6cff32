#!/usr/bin/env bash
# bench/syscalls.sh: system calls, context switches and CPU time *per request* of one or more
# server commands under wrk -t2 -c32 on /hello, counted by the kernel's own tracepoints
# (`perf stat -e syscalls:sys_enter_*`), which cost the server almost nothing where strace
# slows it tenfold and changes which thread does what (docs/14-slow-clients.md,
# docs/benchmarks.md).
#
#   bench/syscalls.sh                                     # the three pool designs, keep-alive and close
#   bench/syscalls.sh "pool_server --hand-off" "event_loop_server"
#   MODES=close bench/syscalls.sh pool_server
#
# Each argument is an example server and its flags (built in release; `--port 0 --quiet` are
# added). For every server and mode: a 1 s warm-up, then a 2 s wrk run during which perf counts;
# the counts are divided by the requests wrk completed. Loopback only; every server runs in its
# own process group and is stopped and reaped (bench/lib.sh), also when the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
MODES=${MODES:-"keepalive close"}
[[ $# -gt 0 ]] || set -- "pool_server" "pool_server --hand-off" "pool_server --blocking-workers"
WORK=$(mktemp -d /tmp/socketserver-syscalls.XXXXXX)
GROUPS_STARTED=()
log() { echo "$@" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
stop_groups_on_exit
for tool in wrk perf; do
    pkg=$tool
    [[ $tool == perf ]] && pkg=linux-perf
    command -v $tool >/dev/null || { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq $pkg >/dev/null 2>&1; } \
        || { log "$tool is required and could not be installed"; exit 1; }
done
cargo build --release --quiet --examples
EVENTS=futex,write,epoll_wait,epoll_ctl,recvfrom,sendto,accept4,close
perf_events=$(tr , '\n' <<<"$EVENTS" | sed 's/^/syscalls:sys_enter_/' | paste -sd,)
printf '| server | mode | requests | %s | context switches | CPU µs |\n' "$(sed 's/,/ | /g' <<<"$EVENTS")"
printf '|---|---|---|%s---|---|\n' "$(tr , '\n' <<<"$EVENTS" | sed 's/.*/---|/' | paste -sd '')"
i=0
for server in "$@"; do
    for mode in $MODES; do
        i=$((i + 1))
        hdr=()
        [[ $mode == close ]] && hdr=(-H 'Connection: close')
        # shellcheck disable=SC2086  # the flags are words
        start_group "s$i" target/release/examples/$server --port 0 --quiet || continue
        url="http://127.0.0.1:$PORT/hello"
        wrk -t2 -c32 -d1s "${hdr[@]}" "$url" >/dev/null
        perf stat -x, -e "$perf_events,context-switches,task-clock" -p "$SPID" -o "$WORK/perf$i" -- sleep 2.5 &
        perf_pid=$!
        sleep 0.2
        n=$(wrk -t2 -c32 -d2s "${hdr[@]}" "$url" | awk '/requests in/ {print $1}')
        wait "$perf_pid"
        stop_group
        # perf -x,: value,unit,event,...; task-clock is in ms.
        awk -F, -v n="$n" -v server="$server" -v mode="$mode" '
            /^[0-9]/ { v[$3] = $1 }
            END {
                printf "| %s | %s | %d |", server, mode, n
                split("'"$EVENTS"'", names, ",")
                for (k = 1; k in names; k++) printf " %.2f |", v["syscalls:sys_enter_" names[k]] / n
                printf " %.2f | %.1f |\n", v["context-switches"] / n, v["task-clock"] * 1000 / n
            }' "$WORK/perf$i"
    done
done
