# shellcheck shell=bash
# What the bench scripts share (sourced from the checkout's root): the daemon's client, timed runs,
# and the figures file that bench/summary.py reads at the end of `make bench`.

# The checkout's venv first, also when the script is run on its own (not through make bench).
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_NOCOLOR=1

# The fleet daemon's client command (LXD's or Incus'): INVENTORY's fleet_backend (default: the lab's,
# which honours FLEET_BACKEND) through the backend map (bench/fleet_backend.py). Exported once: the
# scripts a bench script runs (and the loops it times) do not look it up again.
CLI=${CLI:-$(python bench/fleet_backend.py -i "${INVENTORY:-inventories/lab}" cli)}
export CLI

# One figure a line: KEY VALUE [CHANGED]. VALUE is seconds, FAILED, or a word (default_strategy);
# CHANGED is the recap's changed count, "-" when the command is not a playbook. bench/converge.sh
# empties it when it starts; a key written twice counts with its last value.
BENCH_FIGURES=${BENCH_FIGURES:-build/bench/figures}
mkdir -p "$(dirname "$BENCH_FIGURES")"

# timed NAME COMMAND...: run it quietly, then print NAME, its seconds and, for a playbook, how many
# tasks changed (the sum over the recap). Sets TAKEN, CHANGED and HOST_TASKS for `record`. When it fails: the
# last 40 lines of its output, "NAME: FAILED", and status 1 (a script under set -e stops there).
timed() {
    local name=$1; shift
    local log start end
    log=$(mktemp)
    start=$(date +%s.%N)
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log"; echo "$name: FAILED"; rm -f "$log"
        TAKEN=FAILED; CHANGED=-
        return 1
    fi
    end=$(date +%s.%N)
    CHANGED=$(awk '/ changed=/ {n++; sub(/.*changed=/, ""); sum += $1} END {print n ? sum : "-"}' "$log")
    # Host-tasks: every task result of every host (the recap's ok + skipped + failed); bench/executors.sh reads it.
    # shellcheck disable=SC2034
    HOST_TASKS=$(awk '/ ok=[0-9]+ / {for (i = 1; i <= NF; i++) if ($i ~ /^(ok|skipped|failed)=/) {sub(/.*=/, "", $i); sum += $i}}
                      END {print sum + 0}' "$log")
    TAKEN=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", e - s}')
    if [ "$CHANGED" = - ]; then
        printf '%-60s %7s s\n' "$name" "$TAKEN"
    else
        printf '%-60s %7s s   changed=%s\n' "$name" "$TAKEN" "$CHANGED"
    fi
    rm -f "$log"
}

# quietly NAME COMMAND...: a step that is not a figure; silent unless it fails (then as timed).
quietly() {
    local name=$1; shift
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log"; echo "$name: FAILED"; rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# record KEY: the last timed run's seconds (or FAILED) and changed count, under KEY.
record() {
    echo "$1 $TAKEN $CHANGED" >>"$BENCH_FIGURES"
}

# record_value KEY VALUE [CHANGED]
record_value() {
    echo "$1 $2 ${3:--}" >>"$BENCH_FIGURES"
}

# figure KEY: its last value (empty when never recorded).
figure() {
    awk -v k="$1" '$1 == k {v = $2} END {print v}' "$BENCH_FIGURES"
}

# best_of PATTERN: among the figures whose key matches the extended regular expression and that did
# not fail, the smallest seconds and that run's changed count ("SECONDS CHANGED"; nothing when none).
best_of() {
    awk -v p="$1" '
        $1 ~ p {value[$1] = $2; changed[$1] = $3}
        END {
            for (key in value)
                if (value[key] != "FAILED" && (best == "" || value[key] + 0 < best + 0)) {best = value[key]; ch = changed[key]}
            if (best != "") print best, ch
        }' "$BENCH_FIGURES"
}

# forget PATTERN: drop the figures whose key matches the extended regular expression (a script run
# on its own again replaces its figures instead of mixing runs).
forget() {
    local kept
    kept=$(mktemp)
    awk -v p="$1" '$1 !~ p' "$BENCH_FIGURES" >"$kept" 2>/dev/null || true
    mv "$kept" "$BENCH_FIGURES"
}
