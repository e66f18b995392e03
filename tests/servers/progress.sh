# Progress lines for steps that take more than a few seconds; sourced (bash) by scripts/setup,
# scripts/demo and tests/servers/*.sh. Rule: a long step says what it is doing and how long it
# usually takes when it begins, "still ..., N s" every $GENESIS_PROGRESS_EVERY seconds (default
# 15) while it runs, and how long it took when it ends. Lines go to stderr, prefixed with
# "$PROGRESS_NAME: ", so stdout stays for what a caller may read.

PROGRESS_NAME=${PROGRESS_NAME:-genesis}
PROGRESS_EVERY=${GENESIS_PROGRESS_EVERY:-15}
PROGRESS_NEXT=$PROGRESS_EVERY

note() { echo "$PROGRESS_NAME: $*" >&2; }
now_ms() { date +%s%3N; }
since() { echo $((($(now_ms) - $1 + 500) / 1000)); } # whole seconds since a now_ms value

# In a wait loop: `progress_tick T0 WHAT` prints "still WHAT, N s" once per PROGRESS_EVERY
# seconds since T0 (a now_ms value). `progress_reset` before each new loop.
progress_reset() { PROGRESS_NEXT=$PROGRESS_EVERY; }
progress_tick() {
    local elapsed
    elapsed=$(since "$1")
    if [ "$elapsed" -ge "$PROGRESS_NEXT" ]; then
        note "still $2, $elapsed s"
        PROGRESS_NEXT=$((elapsed - elapsed % PROGRESS_EVERY + PROGRESS_EVERY))
    fi
}

# `run_phase WHAT USUALLY LOG CMD...` runs CMD with its output appended to LOG:
#   NAME: WHAT (usually USUALLY)...       at the start (no parenthesis when USUALLY is empty)
#   NAME: still WHAT, 30 s                while it runs
#   NAME: WHAT: done in 42 s              at the end
# If CMD fails: the last lines of LOG, then "NAME: hint: $PROGRESS_HINT" when the caller set one
# (what to do about it), and exit 1. Ctrl-C stops CMD too (a background job of a
# script ignores SIGINT, so it is passed on by hand).
run_phase() {
    local what=$1 usually=$2 log=$3 t0 pid rc=0
    shift 3
    t0=$(now_ms)
    note "$what${usually:+ (usually $usually)}..."
    "$@" >>"$log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM
    progress_reset
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2
        progress_tick "$t0" "$what"
    done
    wait "$pid" || rc=$?
    trap - INT TERM
    if [ "$rc" != 0 ]; then
        note "error: $what failed after $(since "$t0") s (exit $rc); last lines of $log:"
        tail -n 30 "$log" >&2
        [ -z "${PROGRESS_HINT:-}" ] || note "hint: $PROGRESS_HINT"
        exit 1
    fi
    note "$what: done in $(since "$t0") s"
}
