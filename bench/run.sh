#!/usr/bin/env bash
# Benchmarks every concurrency model three ways -- socketserver's example server, the
# hand-written minimal server of the same model (bench/minimal, the model's limit), and the
# Python standard library twin (bench/python/twins.py) -- plus nginx as a reference when it is
# installed, and writes docs/benchmarks.md.
#
#     bench/run.sh                    # wrk runs of 5 s each, 3 rounds; about 9 minutes on 2 cores
#     BENCH_SECS=3 bench/run.sh       # shorter runs
#
# Environment: BENCH_SECS (wrk duration, default 5), CONNS (wrk connections, 32),
# ROUNDS (times the wrk matrix is measured, best round reported, 3), ATTEMPTS (retries of a
# measurement a machine stall overlapped, 3), POOL_THREADS (pool_server / min_pool, one per
# core: see "autogroup" in the report), PREFORK_WORKERS (prefork_server / min_prefork, 4),
# PREFORK_THREADS (prefork_server --threads, passed only when above 1; default 1),
# BURSTS (concurrent /delay?s=1 requests per burst, "100 1000"), BURST_MAX_SECS (skip a burst
# that would take longer than this by the model's arithmetic, 30), BENCH_OUT (the report,
# docs/benchmarks.md).
#
# Loopback only: every server binds 127.0.0.1 and every load goes to 127.0.0.1.
# Each server runs in its own process group (setsid), is measured, then stopped with SIGTERM
# to the whole group, waited for, and SIGKILLed if it is still there after 5 s; a trap does the
# same for anything still running when the script exits, however it exits.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_SECS=${BENCH_SECS:-5}
CONNS=${CONNS:-32}
POOL_THREADS=${POOL_THREADS:-$(nproc)}
PREFORK_WORKERS=${PREFORK_WORKERS:-4}
PREFORK_THREADS=${PREFORK_THREADS:-1}
BURSTS=${BURSTS:-100 1000}
BURST_MAX_SECS=${BURST_MAX_SECS:-30}
BENCH_OUT=${BENCH_OUT:-docs/benchmarks.md}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MIN_TARGET=${CARGO_TARGET_DIR:-$ROOT/bench/minimal/target}
WORK=$(mktemp -d /tmp/socketserver-bench.XXXXXX)
INDEX=$WORK/index.tsv
: >"$INDEX"

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

# ---------------------------------------------------------------- cleanup on every exit
GROUPS_STARTED=()
SAMPLERS=()
SAMPLER=
cleanup() {
    local g
    for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    for g in "${SAMPLERS[@]}"; do kill "$g" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } \
        || { log "wrk is required and could not be installed"; exit 1; }
fi
if ! command -v nginx >/dev/null; then
    log "trying to install nginx (optional)"
    apt-get install -y nginx >/dev/null 2>&1 || log "nginx not available: the nginx column stays empty"
fi
HAVE_NGINX=0
command -v nginx >/dev/null && HAVE_NGINX=1

# ---------------------------------------------------------------- stall watchdog
# Now and then the whole machine stops running us for a fraction of a second or more: a
# virtual machine's host pausing it, or other work on the machine taking both cores. A
# measurement a stall overlaps measures that, not the server, so it is repeated (up to
# ATTEMPTS times); if every attempt stalled, the report marks the row.
ATTEMPTS=${ATTEMPTS:-3}
# The whole wrk matrix is measured ROUNDS times (ours, minimal, Python, ..., then again), and
# the report keeps each server's best round: interference from anything else on the machine
# only ever slows a run down, so the best round is the least disturbed one.
ROUNDS=${ROUNDS:-3}
STALLS=$WORK/stalls.log
: >"$STALLS"
python3 bench/stall.py "$STALLS" &
SAMPLERS+=("$!")
now() { date +%s.%N; }
# stalled T0 T1: did a stall overlap the interval [T0, T1]?
stalled() {
    awk -v a="$1" -v b="$2" '$1 >= a && $1 - $2 <= b { found = 1 } END { exit !found }' "$STALLS"
}

# Other work on the machine (builds, tests) disturbs the numbers; the report shows the load.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- build
log "building the examples and the minimal servers (release)"
cargo build --release --examples --quiet
cargo build --release --quiet --manifest-path bench/minimal/Cargo.toml
CLIENT=$TARGET/release/examples/client
ours() { # model -> path of the example binary, or nothing if it does not exist (yet)
    local f=$TARGET/release/examples/$1_server
    [[ -x $f ]] && echo "$f" || true
}

# ---------------------------------------------------------------- one server's life
# start NAME CMD...: bench/lib.sh's start_group (new process group, banner, PORT and SPID),
# then the RSS sampler. Returns 1 if the server did not come up.
start() {
    start_group "$@" || return 1
    start_sampler "$1"
}

start_sampler() {
    rm -f "$WORK/$1.rss"
    python3 bench/rss.py "$SPID" "$WORK/$1.rss" &
    SAMPLER=$!
    SAMPLERS+=("$SAMPLER")
}

# stop: bench/lib.sh's stop_group, then the sampler.
stop() {
    stop_group
    if [[ -n ${SAMPLER:-} ]]; then
        kill "$SAMPLER" 2>/dev/null || true
        wait "$SAMPLER" 2>/dev/null || true
        SAMPLER=
    fi
}

rss_of() { cat "$WORK/$1.rss" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- the servers
# Each line: model role name command... (the command gets --port 0 --quiet appended).
SERVERS=$WORK/servers.tsv
: >"$SERVERS"
add() { printf '%s\n' "$*" >>"$SERVERS"; }
note() { printf 'note\t%s\n' "$*" >>"$INDEX"; log "$*"; }
MIN=$MIN_TARGET/release
PY="python3 $ROOT/bench/python/twins.py"
for model in sequential threaded forking pool prefork; do
    bin=$(ours "$model")
    case $model in
        sequential) extra= ;;
        threaded) extra= ;;
        # The burst needs up to 1000 children at once (the default cap is Python's 40).
        forking) extra="--max-children 1000" ;;
        pool) extra="--threads $POOL_THREADS" ;;
        prefork) extra="--workers $PREFORK_WORKERS"
                 (( PREFORK_THREADS > 1 )) && extra="$extra --threads $PREFORK_THREADS" ;;
    esac
    if [[ -n $bin ]]; then
        add "$model ours ${model}_server $bin $extra"
    else
        note "examples/${model}_server.rs does not exist in this tree: skipped (only its minimal counterpart is measured)"
    fi
    case $model in
        sequential) add "$model minimal min_sequential $MIN/min_sequential"
                    add "$model python HTTPServer $PY sequential" ;;
        threaded) add "$model minimal min_threaded $MIN/min_threaded"
                  add "$model python ThreadingHTTPServer $PY threading" ;;
        forking) add "$model minimal min_forking $MIN/min_forking"
                 add "$model python ForkingHTTPServer $PY forking --max-children 1000" ;;
        pool) add "$model minimal min_pool $MIN/min_pool --threads $POOL_THREADS" ;;
        prefork) add "$model minimal min_prefork $MIN/min_prefork --workers $PREFORK_WORKERS" ;;
    esac
done
[[ $HAVE_NGINX == 1 ]] || note "nginx is not installed: no nginx reference"

# ---------------------------------------------------------------- wrk on /hello
# The servers of one model run back to back (ours, minimal, Python) for each mode, each one
# freshly started, so that a drift of the machine during the run touches all three alike.
run_wrk() { # name mode url
    local name=$1 mode=$2 url=$3 out=$WORK/$1.$2.r$ROUND.wrk hdr=()
    [[ $mode == close ]] && hdr=(-H 'Connection: close')
    wrk -t2 -c"$CONNS" -d"${BENCH_SECS}s" --latency "${hdr[@]}" "$url" >"$out" 2>&1 || true
    log "  $name $mode: $(grep -E 'Requests/sec' "$out" | tr -s ' ' || echo 'no result')"
}

nginx_start() { # sampler-name
    local dir=$WORK/nginx port
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed "s#__DIR__#$dir#g; s#__PORT__#$port#g" bench/nginx/nginx.conf >"$dir/nginx.conf"
    setsid nginx -p "$dir" -c "$dir/nginx.conf" >"$WORK/nginx.out" 2>"$WORK/nginx.err" </dev/null &
    SPID=$!
    GROUPS_STARTED+=("$SPID")
    PORT=$port
    for _ in $(seq 100); do
        (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { start_sampler "$1"; return 0; }
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    log "  nginx did not come up: $(head -c 300 "$dir/error.log" "$WORK/nginx.err" 2>/dev/null)"
    stop
    return 1
}

# measure_hello MODE MODEL ROLE NAME CMD...: start, wrk, stop; again if a stall overlapped it.
measure_hello() {
    local mode=$1 model=$2 role=$3 name=$4 attempt t0 t1 stall=0
    shift 4
    for attempt in $(seq "$ATTEMPTS"); do
        if [[ $role == reference ]]; then nginx_start "$name.$mode.r$ROUND" || return 0; else
            start "$name.$mode.r$ROUND" "$@" --port 0 --quiet || {
                printf 'hello\t%s\t%s\t%s\t%s\tFAILED\t\t0\n' "$mode" "$model" "$role" "$name" >>"$INDEX"
                return 0
            }
        fi
        t0=$(now)
        run_wrk "$name" "$mode" "http://127.0.0.1:$PORT/hello"
        t1=$(now)
        stop
        stall=0
        stalled "$t0" "$t1" || break
        stall=1
        log "  (the machine stalled during that run: measuring $name again)"
    done
    printf 'hello\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$model" "$role" "$name" \
        "$WORK/$name.$mode.r$ROUND.wrk" "$(rss_of "$name.$mode.r$ROUND")" "$stall" >>"$INDEX"
}

for ROUND in $(seq "$ROUNDS"); do
    for mode in keepalive close; do
        log "round $ROUND of $ROUNDS: wrk -t2 -c$CONNS -d${BENCH_SECS}s --latency /hello, $mode"
        while read -r model role name cmd <&3; do
            # shellcheck disable=SC2086 # cmd is a command line: split it into words
            measure_hello "$mode" "$model" "$role" "$name" $cmd
        done 3<"$SERVERS"
        if [[ $HAVE_NGINX == 1 ]]; then measure_hello "$mode" reference reference nginx; fi
    done
done

# ---------------------------------------------------------------- bursts of /delay?s=1
# How long a burst of N one-second requests takes at best, by the model's arithmetic: a
# sequential server answers one at a time (N s); a pool or prefork of C answers C at a time.
estimate() { # model role n
    case $1:$2 in
        sequential:*) echo "$3" ;;
        pool:*) echo $(( ($3 + POOL_THREADS - 1) / POOL_THREADS )) ;;
        prefork:minimal) echo $(( ($3 + PREFORK_WORKERS - 1) / PREFORK_WORKERS )) ;;
        prefork:*) echo $(( ($3 + PREFORK_WORKERS * PREFORK_THREADS - 1) / (PREFORK_WORKERS * PREFORK_THREADS) )) ;;
        *) echo 1 ;;
    esac
}

for n in $BURSTS; do
    log "bursts of $n concurrent /delay?s=1 with the bundled client"
    while read -r model role name cmd <&3; do
        est=$(estimate "$model" "$role" "$n")
        if (( est > BURST_MAX_SECS )); then
            printf 'burst\t%s\t%s\t%s\t%s\tSKIP\t%s\t0\n' "$n" "$model" "$role" "$name" "$est" >>"$INDEX"
            log "  $name: skipped, would take about $est s (> $BURST_MAX_SECS s)"
            continue
        fi
        stall=0 out=
        for attempt in $(seq 2); do
            # shellcheck disable=SC2086
            start "$name.burst$n" $cmd --port 0 --quiet || break
            out=$WORK/$name.burst$n.client
            t0=$(now)
            "$CLIENT" -n "$n" "http://127.0.0.1:$PORT/delay?s=1" >"$out" 2>&1 || true
            t1=$(now)
            stop
            log "  $name: $(grep -E '^wall time' "$out" | tr -s ' ') $(grep -E '^errors' "$out" | tr -s ' ' || true)"
            stall=0
            stalled "$t0" "$t1" || break
            stall=1
            log "  (the machine stalled during that burst: again)"
        done
        if [[ ! -f ${out:-/nonexistent} ]]; then
            printf 'burst\t%s\t%s\t%s\t%s\tFAILED\t\t0\n' "$n" "$model" "$role" "$name" >>"$INDEX"
            continue
        fi
        printf 'burst\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$model" "$role" "$name" "$out" "$(rss_of "$name.burst$n")" "$stall" >>"$INDEX"
    done 3<"$SERVERS"
done

# ---------------------------------------------------------------- the report
mkdir -p "$(dirname "$BENCH_OUT")"
{
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -srm)"
    echo "rustc=$(rustc --version)"
    echo "python=$(python3 --version 2>&1)"
    echo "wrk=$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
    echo "nginx=$( [[ $HAVE_NGINX == 1 ]] && nginx -v 2>&1 | cut -d/ -f2 || echo none)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "bench_secs=$BENCH_SECS"
    echo "conns=$CONNS"
    echo "pool_threads=$POOL_THREADS"
    echo "prefork_workers=$PREFORK_WORKERS"
    echo "prefork_threads=$PREFORK_THREADS"
    echo "burst_max_secs=$BURST_MAX_SECS"
    echo "attempts=$ATTEMPTS"
    echo "rounds=$ROUNDS"
    echo "autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo)"
    echo "load_before=$LOAD_BEFORE"
    echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$WORK/meta.env"
# The sections between `<!-- bench/spawn.sh -->`, `<!-- bench/slow.sh -->`,
# `<!-- bench/event_loop_pairs.sh -->` and `<!-- bench/pool_ab.sh -->` markers and their
# `<!-- end ... -->` hold figures of bench/spawn.sh (a connection per request, broken down),
# bench/slow.sh (slow clients), bench/event_loop_pairs.sh (the event loop beside nginx, its limit
# and hyper) and bench/pool_ab.sh (the pool reactor's hand-off, binaries in alternation), written
# from their output by hand: this script does not measure them, so it carries the sections over
# instead of dropping them.
KEPT=""
for tool in spawn slow event_loop_pairs pool_ab; do
    KEPT+=$(sed -n "/^<!-- bench\/$tool.sh -->\$/,/^<!-- end bench\/$tool.sh -->\$/p" "$BENCH_OUT" 2>/dev/null || true)
    KEPT+=$'\n'
done
python3 bench/report.py "$WORK/meta.env" "$INDEX" >"$BENCH_OUT"
if [[ -n ${KEPT//$'\n'/} ]]; then printf '\n%s' "$KEPT" >>"$BENCH_OUT"; fi
log "wrote $BENCH_OUT (raw outputs in $WORK)"
