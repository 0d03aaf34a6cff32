# bench/lib.sh: one server's life, shared by bench/run.sh and bench/slow.sh (sourced, not run).
#
# The caller sets WORK (a temp dir), GROUPS_STARTED=() (its EXIT trap, or stop_groups_on_exit below, kills every group in it)
# and a log function.

# start_group NAME CMD...: starts CMD in a new process group (setsid: a stop then reaches every
# child it forks) with stdout/stderr in $WORK/NAME.out/.err, waits up to 10 s for the banner
# line, and sets SPID and PORT. Returns 1, stopping what it started, if no banner came.
start_group() {
    local name=$1 line=
    shift
    setsid "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
    SPID=$!
    GROUPS_STARTED+=("$SPID")
    for _ in $(seq 100); do
        line=$(head -n 1 "$WORK/$name.out" 2>/dev/null || true)
        [[ $line == Serving* ]] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $line != Serving* ]]; then
        log "  $name did not print its banner; stderr: $(head -c 300 "$WORK/$name.err")"
        stop_group
        return 1
    fi
    PORT=$(sed -n 's/.*(http:\/\/127\.0\.0\.1:\([0-9]*\)\/).*/\1/p' <<<"$line")
}

# Is PID alive and not a zombie?
alive() {
    local s
    s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $s && $s != Z ]]
}

# stop_group: SIGTERM to the whole group of $SPID, wait up to 5 s, then SIGKILL (stragglers:
# children of a killed parent); reap the leader.
stop_group() {
    kill -TERM -- "-$SPID" 2>/dev/null || true
    for _ in $(seq 50); do alive "$SPID" || break; sleep 0.1; done
    if alive "$SPID"; then log "  pid $SPID ignored SIGTERM for 5 s: SIGKILL"; fi
    kill -KILL -- "-$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
}

# stop_groups_on_exit [keep]: an EXIT trap that SIGKILLs every group in GROUPS_STARTED (whatever
# a failed step left running) and removes $WORK, unless `keep` is given (scripts that leave their
# raw outputs there for a reader); INT/TERM exit through it.
stop_groups_on_exit() {
    _KEEP_WORK=${1:-}
    trap '_stop_groups_and_clean' EXIT
    trap 'exit 130' INT TERM
}
_stop_groups_and_clean() {
    local g
    for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ $_KEEP_WORK == keep ]] || rm -rf "$WORK"
}
