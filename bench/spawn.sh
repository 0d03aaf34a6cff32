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
# With BREAKDOWN=1 each server then runs once more under `perf record -e task-clock -c 50000
# --kernel-callchains` (children included; kernel call chains only, since those are what the
# split needs and user-space unwinding without frame pointers costs more than the server), and
# its sampled CPU is split by where it was spent, callees included, in per cent: starting the
# thread or process (`kernel_clone`; for threads also the stack's mmap/mprotect/munmap), page
# faults (first touches), exit (`do_exit`), reaping (`wait4`; for threads the futex that
# `pthread_join` and the thread-exit wake-up use), CPU feature detection (`cpuid`), the
# request's own system calls (accept, recv, send, shutdown, close, poll), and the rest.
# Multiply a share by the CPU per connection of the lines above. Sampling costs CPU too, and a
# child shorter than one period may go unsampled, so the shares are a picture, not a ledger.
#
# Environment: ROUNDS (3), SECS (wrk duration, 5), CONNS (32), MODES ("close"),
# PAIRS ("threaded forking"), MAX_CHILDREN (forking_server --max-children, 64), BREAKDOWN (0),
# EXAMPLES (the directory of threaded_server and forking_server: default this tree's release
# build; point it at copies of the binaries from before a change to measure that change).
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
EXAMPLES=${EXAMPLES:-${CARGO_TARGET_DIR:-$PWD/target}/release/examples}
MIN=${CARGO_TARGET_DIR:-$PWD/bench/minimal/target}/release
WORK=$(mktemp -d /tmp/socketserver-spawn.XXXXXX)

cargo build --release --quiet --examples
cargo build --release --quiet --manifest-path bench/minimal/Cargo.toml

PERF_PID=
cleanup() { [[ -n $PERF_PID ]] && kill -KILL -- "-$PERF_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# run NAME MODE CMD...: start CMD under perf stat, wrk it, stop it, print one line.
# under_perf PERF-ARGS... -- SERVER...: starts `perf PERF-ARGS -- SERVER --port 0 --quiet` in a
# process group of its own (setsid: the stop reaches every child the server forks), waits up to
# 5 s for the banner, and sets PERF_PID, port and spid (the server, perf's child; empty if it
# did not start). Output in $WORK/out and $WORK/err.
under_perf() {
    local line=
    setsid perf "$@" --port 0 --quiet >"$WORK/out" 2>"$WORK/err" </dev/null &
    PERF_PID=$!
    for _ in $(seq 100); do
        line=$(head -n1 "$WORK/out" 2>/dev/null) && [[ -n $line ]] && break
        sleep 0.05
    done
    port=$(sed -n 's/.*(http:\/\/127\.0\.0\.1:\([0-9]*\)\/).*/\1/p' <<<"$line")
    spid=$(pgrep -P "$PERF_PID" | head -n1)
}

run() {
    local name=$1 mode=$2 port spid hdr=() reqs rps faults clock
    shift 2
    [[ $mode == close ]] && hdr=(-H 'Connection: close')
    rm -f "$WORK/out" "$WORK/err" "$WORK/perf" "$WORK/wrk"
    under_perf stat -x, -e page-faults,task-clock -o "$WORK/perf" -- "$@"
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

# breakdown NAME CMD...: one perf record run under Connection: close, split as described above.
breakdown() {
    local name=$1 port spid reqs total
    shift
    rm -f "$WORK/out" "$WORK/err" "$WORK/wrk" "$WORK/rec"
    under_perf record -q -e task-clock -c 50000 --kernel-callchains -g -o "$WORK/rec" -- "$@"
    wrk -t2 -c"$CONNS" -d"${SECS}s" -H 'Connection: close' "http://127.0.0.1:$port/hello" >"$WORK/wrk" 2>&1 || true
    kill -TERM "$spid" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=
    perf report -i "$WORK/rec" --children --sort sym --stdio -g none 2>/dev/null |
        awk -v n="$name" '
        /^#/ || NF < 4 { next }
        { s = $NF; c = $1 + 0 }
        s == "kernel_clone" { spawn += c }
        s == "__x64_sys_mmap" || s == "__x64_sys_mprotect" || s == "__x64_sys_munmap" { stack += c }
        s == "asm_exc_page_fault" { fault += c }
        s == "do_exit" { ex += c }
        s == "kernel_wait4" || s == "__x64_sys_futex" { reap += c }
        s ~ /^std_detect::detect::cache::detect_and_initialize/ { cpuid += c }
        s == "__x64_sys_accept4" || s == "__x64_sys_recvfrom" || s == "__x64_sys_sendto" || s == "__x64_sys_read" ||
            s == "__x64_sys_write" || s == "__x64_sys_shutdown" || s == "__x64_sys_close" || s == "__x64_sys_poll" { io += c }
        END {
            printf "%-34s %% of sampled CPU: spawn/fork %.0f, stack maps %.0f, page faults %.0f, exit %.0f, reap/join %.0f, cpuid %.0f, request syscalls %.0f, rest %.0f\n", \
                n, spawn, stack, fault, ex, reap, cpuid, io, 100 - spawn - stack - fault - ex - reap - cpuid - io
        }'

}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for pair in $PAIRS; do
            case $pair in
                threaded)
                    run threaded_server "$mode" "$EXAMPLES/threaded_server"
                    run min_threaded "$mode" "$MIN/min_threaded" ;;
                forking)
                    run "forking_server --max-children $MAX_CHILDREN" "$mode" \
                        "$EXAMPLES/forking_server" --max-children "$MAX_CHILDREN"
                    run min_forking "$mode" "$MIN/min_forking" ;;
            esac
        done
    done
    echo "round $round done, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
if [[ ${BREAKDOWN:-0} == 1 ]]; then
    for pair in $PAIRS; do
        case $pair in
            threaded)
                breakdown threaded_server "$EXAMPLES/threaded_server"
                breakdown min_threaded "$MIN/min_threaded" ;;
            forking)
                breakdown "forking_server --max-children $MAX_CHILDREN" "$EXAMPLES/forking_server" --max-children "$MAX_CHILDREN"
                breakdown min_forking "$MIN/min_forking" ;;
        esac
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
rm -rf "$WORK"
