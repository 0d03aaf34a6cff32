#!/usr/bin/env bash
# A hundred datagrams at once at each kind of UDP echo server (sequential, a thread per datagram,
# a process per datagram), three volleys each, with the server's CPU time for all of them:
# chapter 15's "why most UDP servers are sequential".
#
#     bench/udp_kinds.sh              # 3 runs of 100 datagrams per kind
#     RUNS=5 N=200 bench/udp_kinds.sh
#
# Release builds; loopback only; every server is stopped with SIGTERM and reaped. The CPU is
# the server's user+system time with its reaped children's (/proc/PID/stat fields 14-17), read
# just before the stop, in clock ticks of 10 ms: below one tick reads 0.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
N=${N:-100}
WORK=$(mktemp -d)
GROUPS_STARTED=()
log() { echo "$@" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
stop_groups_on_exit
cargo build --release -q --example echo_server --example client
EX=target/release/examples
TICK_MS=$((1000 / $(getconf CLK_TCK)))

for kind in sequential threading forking; do
    flag=()
    [[ $kind != sequential ]] && flag=("--$kind")
    start_group "echo-$kind" "$EX/echo_server" --udp --port 0 --quiet "${flag[@]}"
    port=$(sed -n 's/.* port \([0-9]*\) (udp).*/\1/p' "$WORK/echo-$kind.out" | head -n 1)
    for run in $(seq "$RUNS"); do
        out=$("$EX/client" --echo udp -n "$N" "127.0.0.1:$port" || true)
        wall=$(sed -n 's/^wall time *\([0-9.]*\) s.*/\1/p' <<<"$out")
        answered=$(sed -n 's/^answered *//p' <<<"$out")
        echo "udp --$kind run $run: wall time $wall s, answered $answered"
    done
    ticks=$(sed 's/.*) //' "/proc/$SPID/stat" | awk '{print $12 + $13 + $14 + $15}')
    echo "    server CPU: $((ticks * TICK_MS)) ms for $((RUNS * N)) datagrams (user+system, children included)"
    stop_group
done
