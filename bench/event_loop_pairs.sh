#!/usr/bin/env bash
# The event loop's throughput beside its peers, in one run (docs/13-the-event-loop.md,
# docs/benchmarks.md): event_loop_server with one and two loops (two loops three ways: handed
# off, --accept-on-loops, --reuse-port), nginx with one and two worker processes, the
# hand-written epoll server of bench/minimal (the model's limit) with one and two loops,
# prefork_server with two event-loop worker processes (nginx's architecture in this crate),
# and hyper on tokio with two workers.
#
#     bench/event_loop_pairs.sh                 # 5 s per wrk run, 3 rounds: about 7 minutes
#     SECS=3 ROUNDS=1 bench/event_loop_pairs.sh
#     SERVERS="el2 nginx2 min2" bench/event_loop_pairs.sh
#     SERVERS="pool poolb nginx2" MODES="keepalive close" bench/event_loop_pairs.sh   # issue 9's pairs
#
# Each round measures every server once per mode (wrk -t2 -c32 --latency on /hello, keep-alive
# then `Connection: close`; then `h2load --h1 -m 16`, 16 requests pipelined on each of 32
# connections), in the same order, so the servers of a pair alternate and a drift of the
# machine touches them alike; the table gives each server's median round (req/s, and that
# round's p50 and p99 -- for h2load, which reports no percentiles, the mean and the max time
# per request) and the range of its rounds. MODES picks modes ("keepalive close pipelined").
#
# Loopback only: every server binds 127.0.0.1. Bounded: every wrk run lasts SECS seconds; each
# server runs in its own process group and session (setsid, as bench/run.sh: with autogroup
# scheduling a session gets about the CPU time of wrk's), is stopped with SIGTERM, SIGKILLed
# after 5 s, and reaped; a trap does the same for anything left when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
MODES=${MODES:-"keepalive close pipelined"}
SERVERS=${SERVERS:-"el1 nginx1 min1 el2 el2x el2r pf2 nginx2 min2 hyper2"}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MIN=${CARGO_TARGET_DIR:-$ROOT/bench/minimal/target}/release
EX=$TARGET/release/examples
WORK=$(mktemp -d /tmp/socketserver-elpairs.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

GROUPS_STARTED=()
stop_groups_on_exit keep

for tool in wrk nginx h2load; do
    pkg=$tool
    [[ $tool == h2load ]] && pkg=nghttp2-client
    command -v $tool >/dev/null || { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq $pkg >/dev/null 2>&1; } \
        || { log "$tool is required and could not be installed"; exit 1; }
done
log "building (release): event_loop_server, prefork_server, min_epoll, hyper_hello"
cargo build --release --quiet --example event_loop_server --example prefork_server
cargo build --release --quiet --manifest-path bench/minimal/Cargo.toml --bin min_epoll --bin min_oneshot
# hyper and tokio are an optional feature of bench/minimal (its Cargo.toml says why); a
# machine that cannot build them still measures the rest.
HAVE_HYPER=1
cargo build --release --quiet --manifest-path bench/minimal/Cargo.toml --features hyper --bin hyper_hello \
    || { HAVE_HYPER=0; log "hyper_hello did not build: no hyper row"; }

cmd_of() {
    case $1 in
        el1) echo "$EX/event_loop_server --threads 1" ;;
        el2) echo "$EX/event_loop_server --threads 2" ;;
        el2x) echo "$EX/event_loop_server --threads 2 --accept-on-loops" ;;
        el2r) echo "$EX/event_loop_server --threads 2 --reuse-port" ;;
        pf2) echo "$EX/prefork_server --workers 2 --event-loop" ;;
        pool) echo "$EX/pool_server" ;;
        poolb) echo "$EX/pool_server --blocking-workers" ;;
        poolh) echo "$EX/pool_server --hand-off" ;;
        min1) echo "$MIN/min_epoll --threads 1" ;;
        min2) echo "$MIN/min_epoll --threads 2" ;;
        mino4) echo "$MIN/min_oneshot --threads 4" ;;
        hyper1) echo "$MIN/hyper_hello --threads 1" ;;
        hyper2) echo "$MIN/hyper_hello --threads 2" ;;
        *) return 1 ;;
    esac
}
label_of() {
    case $1 in
        el1) echo "event_loop_server --threads 1" ;;
        el2) echo "event_loop_server --threads 2 (hand-off)" ;;
        el2x) echo "event_loop_server --threads 2 --accept-on-loops" ;;
        el2r) echo "event_loop_server --threads 2 --reuse-port" ;;
        pf2) echo "prefork_server --workers 2 --event-loop" ;;
        pool) echo "pool_server (4 workers, leader/followers)" ;;
        poolb) echo "pool_server --blocking-workers" ;;
        poolh) echo "pool_server --hand-off (a reactor thread)" ;;
        nginx1) echo "nginx, 1 worker process" ;;
        nginx2) echo "nginx, 2 worker processes" ;;
        min1) echo "min_epoll --threads 1" ;;
        min2) echo "min_epoll --threads 2" ;;
        mino4) echo "min_oneshot --threads 4 (one shared epoll set)" ;;
        hyper1) echo "hyper on tokio, 1 worker" ;;
        hyper2) echo "hyper on tokio, 2 workers" ;;
    esac
}

# start_nginx N: nginx with N worker processes on a free port (bench/nginx/nginx.conf).
start_nginx() {
    local dir=$WORK/nginx$1
    mkdir -p "$dir"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed -e "s#__DIR__#$dir#g" -e "s#__PORT__#$PORT#g" -e "s#^worker_processes .*#worker_processes $1;#" \
        bench/nginx/nginx.conf >"$dir/nginx.conf"
    setsid nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/out" 2>&1 </dev/null &
    SPID=$!
    GROUPS_STARTED+=("$SPID")
    for _ in $(seq 100); do
        (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    log "  nginx did not come up: $(head -c 300 "$dir/error.log" "$dir/out" 2>/dev/null)"
    stop_group
    return 1
}

for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        log "round $round of $ROUNDS, $mode: /hello, $CONNS connections, ${SECS} s"
        for s in $SERVERS; do
            [[ $s == hyper* && $HAVE_HYPER == 0 ]] && continue
            if [[ $s == nginx* ]]; then
                start_nginx "${s#nginx}" || continue
            else
                # shellcheck disable=SC2046 # a command line: split into words
                start_group "$s.$mode.$round" $(cmd_of "$s") --port 0 --quiet || continue
            fi
            hdr=()
            [[ $mode == close ]] && hdr=(-H 'Connection: close')
            out=$WORK/$s.$mode.$round.out
            if [[ $mode == pipelined ]]; then
                h2load --h1 -m 16 -c "$CONNS" -t 2 -D "$SECS" "http://127.0.0.1:$PORT/hello" >"$out" 2>&1 || true
                # "finished in 5.00s, 226852.50 req/s, ..."; "time for request: min max mean sd".
                line=$(awk -v s="$s" -v m="$mode" '
                    /^finished in/ { r = $4 } /^time for request:/ { max = $5; mean = $6 }
                    /^requests:/ { if ($10 + $12 + $14 > 0) err = $0 }
                    END { printf "%s\t%s\t%s\t%s\t%s\t%s", s, m, r, mean, max, err }' "$out")
            else
                wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "${hdr[@]}" "http://127.0.0.1:$PORT/hello" >"$out" 2>&1 || true
                line=$(awk -v s="$s" -v m="$mode" '
                    /Requests\/sec/ { r = $2 } / 50%/ { p50 = $2 } / 99%/ { p99 = $2 }
                    /Socket errors/ { err = $0 } /Non-2xx/ { bad = $0 }
                    END { printf "%s\t%s\t%s\t%s\t%s\t%s", s, m, r, p50, p99, err bad }' "$out")
            fi
            stop_group
            printf '%s\t%s\n' "$line" "$round" >>"$RESULTS"
            log "  $(label_of "$s"): $(cut -f3-5 <<<"$line" | tr '\t' ' ')"
        done
    done
done

# The table: each server's median round, in the order of SERVERS.
LABELS=$(for s in $SERVERS; do printf '%s\t%s\n' "$s" "$(label_of "$s")"; done)
python3 - "$RESULTS" "$SERVERS" "$LABELS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
order = sys.argv[2].split()
# label_of's names, passed in from the shell (one list of them).
labels = dict(l.split("\t", 1) for l in sys.argv[3].splitlines() if "\t" in l)
def rate(r):
    try:
        return float(r[2])
    except (IndexError, ValueError):
        return 0.0
modes = (("keepalive", "keep-alive", "wrk -t2 -c32", "p50", "p99"),
         ("close", "Connection: close", "wrk -t2 -c32", "p50", "p99"),
         ("pipelined", "16 pipelined per connection", "h2load --h1 -m 16 -c32 -t2", "mean", "max"))
for mode, title, tool, a, b in modes:
    if not any(r[1] == mode for r in rows):
        continue
    print(f"\n/hello, {title} ({tool}, median of {len({r[6] for r in rows})} rounds)\n")
    print(f"| server | req/s | {a} | {b} | rounds' range | errors |")
    print("|---|---|---|---|---|---|")
    for s in order:
        runs = sorted((r for r in rows if r[0] == s and r[1] == mode), key=rate)
        if not runs:
            continue
        med = runs[(len(runs) - 1) // 2]
        lo, hi = rate(runs[0]), rate(runs[-1])
        err = (med[5].strip() or "none").replace("|", "/")
        print(f"| {labels.get(s, s)} | {rate(med):,.0f} | {med[3]} | {med[4]} | {lo:,.0f} to {hi:,.0f} | {err} |")
    def med_rate(s):
        runs = sorted((rate(r) for r in rows if r[0] == s and r[1] == mode))
        return statistics.median(runs) if runs else 0
    pairs = [("el2", "nginx2"), ("el2", "min2"), ("el2x", "nginx2"), ("el2x", "min2"), ("el2r", "nginx2"),
             ("el2r", "min2"), ("el1", "nginx1"), ("el1", "min1"), ("el2", "hyper2"), ("pf2", "nginx2"),
             ("pool", "nginx2"), ("poolb", "nginx2"), ("poolh", "nginx2"), ("pool", "poolb"), ("pool", "poolh"),
             ("pool", "mino4")]
    said = [f"{a}/{b} {med_rate(a) / med_rate(b):.2f}" for a, b in pairs if med_rate(a) and med_rate(b)]
    if said:
        print("\nratios of medians: " + ", ".join(said))
EOF
log "raw outputs in $WORK"
