# Sourced by scripts/profile-instructions.sh and scripts/annotate-instructions.sh: runs one
# `cip bench` scenario of one module under valgrind's callgrind, with wasmtime's perf map on.
#
#   callgrind_bench module default-mode iterations [callgrind option ...]
#
# Reads BENCH_ONLY (default 10x20), BENCH_MODE (default: default-mode), BENCH_ROTATION,
# BENCH_STOCK and CIP_BENCH (default target/release/cip-bench). Sets `work` (a temporary
# directory, removed on exit, holding the compiled-module cache `$work/cache`), `out` (callgrind's
# output, evaluations only: `call_with_stats_by` toggles collection) and `map` (wasmtime's perf
# map of the module's compiled functions, for the counted run).
callgrind_bench() {
    local module=$1 mode=$2 iterations=$3
    shift 3
    command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
    local bench=${CIP_BENCH:-target/release/cip-bench}
    [ -x "$bench" ] || { echo "$bench is missing (cargo build --release -p e2e-tests --bin cip-bench -p cip)" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    export BENCH_ONLY=${BENCH_ONLY:-10x20} BENCH_MODE=${BENCH_MODE:-$mode} BENCH_ROUNDS=1 \
        BENCH_MODULES="$module" BENCH_CACHE_DIR="$work/cache"
    # Compiled once under valgrind without a tool (see count-instructions.sh), then counted: the
    # counted run loads the cached code, whose addresses the perf map gives.
    BENCH_ITERATIONS=1 BENCH_FRESH_ITERATIONS=1 BENCH_WRAPPER="valgrind --tool=none -q" "$bench" >/dev/null
    # wasmtime writes its map to /tmp/perf-<pid>.map; the pid is in callgrind's output name.
    CIP_PROFILER=perfmap BENCH_ITERATIONS=$iterations BENCH_FRESH_ITERATIONS=$iterations \
        BENCH_WRAPPER="valgrind --tool=callgrind $* --toggle-collect=*call_with_stats_by* --callgrind-out-file=$work/out.%p" \
        "$bench" >/dev/null
    out=$(ls "$work"/out.*)
    map=/tmp/perf-${out##*.}.map
    [ -f "$map" ] || { echo "no perf map $map: was the module compiled again?" >&2; exit 1; }
}
