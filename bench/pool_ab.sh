#!/usr/bin/env bash
# bench/pool_ab.sh: two or three pool_server binaries (or flag sets) measured in alternation,
# A B (C) A B (C) ..., so that a machine shared with other work loads each alike.
#
#   bench/pool_ab.sh A_BINARY B_BINARY [ROUNDS] [-- extra wrk args, e.g. -H 'Connection: close']
#   C=C_BINARY bench/pool_ab.sh A B 5        # a third side
#   A_FLAGS='--blocking-workers' bench/pool_ab.sh bin bin 3
#
# Prints one line per run: the round, which side, wrk's Requests/sec, and the 1-minute load
# average when it started.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 ROUNDS=${3:-3}
shift $(($# < 3 ? $# : 3))
[[ ${1:-} == -- ]] && shift
WORK=$(mktemp -d)
GROUPS_STARTED=()
log() { echo "$@" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
stop_groups_on_exit
# utime + stime of every thread of PID, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Context switches (voluntary and not) of every thread of PID.
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
one() {
    local side=$1 bin=$2 flags=$3
    shift 3
    # shellcheck disable=SC2086  # the flags are words
    # A name per run: start_group reads the banner from NAME.out, which must not be the last run's.
    start_group "$side$round" "$bin" --port 0 --quiet $flags || return 0
    local load out rps n cpu0 cpu1 cs0 cs1
    load=$(cut -d' ' -f1 /proc/loadavg)
    cpu0=$(cpu_ticks "$SPID") cs0=$(switches "$SPID")
    out=$(wrk -t2 -c32 -d5s "$@" "http://127.0.0.1:$PORT/hello")
    cpu1=$(cpu_ticks "$SPID") cs1=$(switches "$SPID")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    # The server's own CPU time and context switches per request: much less sensitive to the
    # machine's other load than req/s, which is what a shared machine makes noisy.
    printf '%s %s %10s req/s  %5.1f us CPU/req  %4.2f switches/req  (load %s)\n' "$round" "$side" "$rps" \
        "$(bc -l <<<"($cpu1 - $cpu0) * 1000000 / $(getconf CLK_TCK) / $n")" \
        "$(bc -l <<<"($cs1 - $cs0) / $n")" "$load"
    stop_group
}
for round in $(seq "$ROUNDS"); do
    one A "$A" "${A_FLAGS:-}" "$@"
    one B "$B" "${B_FLAGS:-}" "$@"
    if [[ -n ${C:-} ]]; then one C "$C" "${C_FLAGS:-}" "$@"; fi
done
