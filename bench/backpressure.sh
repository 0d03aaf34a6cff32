#!/usr/bin/env bash
# bench/backpressure.sh: what each strategy does when it is full, shown with one burst.
#
# Fires the same burst (the bundled client's fire mode: N connections, one GET each, all at
# once) at every example server, each made small on purpose so that the burst overfills it,
# and prints, per server, the client's summary and how many answers had which status.
# docs/appendix-choosing-a-strategy.md ("Backpressure") pastes its output.
#
#   bench/backpressure.sh            # -n 40 /delay?s=0.1
#   N=200 DELAY=0.2 bench/backpressure.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-40}
DELAY=${DELAY:-0.1}
WORK=$(mktemp -d)
GROUPS_STARTED=()
log() { echo "$@" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
stop_groups_on_exit

cargo build -q --release --example client --example sequential_server --example threaded_server \
    --example forking_server --example pool_server --example prefork_server --example event_loop_server
B=target/release/examples

run() {
    local name=$1
    shift
    start_group "$name" "$B/$@" --port 0 --quiet || return 0
    echo "== ${*} ; client -n $N /delay?s=$DELAY"
    # Exit status 1 (some request failed) is part of what is shown, not an error here.
    "$B/client" -n "$N" "http://127.0.0.1:$PORT/delay?s=$DELAY" >"$WORK/$name.client" 2>&1 || true
    grep -E '^(wall time|answered|most in flight) ' "$WORK/$name.client"
    # The status column of the table (failed requests show how they failed there instead).
    awk '/^ +#  sent at/ {t=1; next} t && NF == 0 {exit} t {print $4}' "$WORK/$name.client" \
        | sort | uniq -c | awk '{printf "status %-13s %s\n", $2, $1}'
    stop_group
}

run seq sequential_server
run thr threaded_server --max-threads 4
run fork forking_server --max-children 4
run pool pool_server --threads 2 --queue-size 2
run shed pool_server --threads 2 --queue-size 2 --shed-when-full 1
run pre prefork_server --workers 2
run loop event_loop_server
