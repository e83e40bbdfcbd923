#!/usr/bin/env bash
# Instructions per `validate` evaluation of each policy module, counted by valgrind's callgrind
# inside `cip bench` (the module's code as wasmtime compiled it, plus the host callbacks and the
# call itself; with BENCH_MODE=fresh, the instantiation too). Unlike time, the count does not move
# with the machine's load: on the shared 2 cores where this project is measured, the minimum time
# of the same module moves up to 2x between minutes, so a 5-20 % change to the module can only
# be told apart this way. (Instructions are not time: page faults and cache misses are not
# counted. Confirm a gain with `cip-bench` rounds, docs/benchmarks.md.)
#
#   scripts/count-instructions.sh a.wasm b.wasm ...
#
# Environment: BENCH_ONLY (scenario, default 10x20), BENCH_MODE (warm or fresh, default warm),
# BENCH_ROTATION, CIP_BENCH (default target/release/cip-bench, with target/release/cip beside it).
# Each module is evaluated in two `cip bench` processes (50 and 250 evaluations after the same
# warm-up); the difference divided by 200 is the count per evaluation, so start-up, the
# warm-up and the first reading of the settings cancel out. Needs valgrind (Debian: valgrind).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 module.wasm..." >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
bench=${CIP_BENCH:-target/release/cip-bench}
[ -x "$bench" ] || { echo "$bench is missing (cargo build --release -p e2e-tests --bin cip-bench -p cip)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
modules=$(IFS=:; echo "$*")
export BENCH_ONLY=${BENCH_ONLY:-10x20} BENCH_MODE=${BENCH_MODE:-warm} BENCH_ROUNDS=1 \
    BENCH_MODULES="$modules" BENCH_CACHE_DIR="$work/cache"

# Every module compiled once into the cache the counted runs read it from, under valgrind without
# a tool (several times quicker than callgrind): the CPU valgrind presents has other features than
# the real one, and wasmtime keys its compiled code by them.
BENCH_ITERATIONS=1 BENCH_FRESH_ITERATIONS=1 BENCH_WRAPPER="valgrind --tool=none -q" "$bench" >/dev/null

for n in 50 250; do
    BENCH_ITERATIONS=$n BENCH_FRESH_ITERATIONS=$n \
        BENCH_WRAPPER="valgrind --tool=callgrind --toggle-collect=*call_with_stats_by* --callgrind-out-file=$work/$n.%p" \
        "$bench" >/dev/null
done

# The count of the runs of $1 evaluations with module $2: each output file holds its command line,
# which ends with the module's path.
count() {
    local file
    for file in "$work/$1".*; do
        if awk -v m=" $2" '/^cmd:/ && substr($0, length($0) - length(m) + 1) == m { found = 1 }
            END { exit !found }' "$file"; then
            grep '^totals:' "$file" | cut -d' ' -f2
            return
        fi
    done
    echo "no count for $2" >&2
    exit 1
}

echo "instructions per evaluation ($BENCH_ONLY, $BENCH_MODE, rotation ${BENCH_ROTATION:-on}):"
for module in "$@"; do
    few=$(count 50 "$module")
    many=$(count 250 "$module")
    printf '%12d  %s\n' $(((many - few) / 200)) "$module"
done
