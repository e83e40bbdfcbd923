#!/usr/bin/env bash
# Where the instructions of a `validate` evaluation go, function by function, the module's wasm
# functions named: valgrind's callgrind counts `cip bench`'s evaluations (only inside
# `Evaluator::call_with_stats_by`, as scripts/count-instructions.sh does), wasmtime names the
# module's compiled code in its perf map (`CIP_PROFILER=perfmap`), and the callgrind output is
# rewritten with those names. Unlike `perf record`, every count is exact and repeatable, which
# this project's shared 2 cores need (docs/benchmarks.md, eighth pass).
#
#   scripts/profile-instructions.sh named.wasm [output-prefix]
#
# `named.wasm`: a module that kept its function names:
#   CARGO_TARGET_DIR=target/named CARGO_PROFILE_POLICY_STRIP=false \
#     cargo build -p cluster-image-policy --target wasm32-wasip1 --profile policy
#   wasm-opt -O3 -g --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
#     --enable-mutable-globals --enable-multivalue --enable-reference-types \
#     target/named/wasm32-wasip1/policy/cluster_image_policy.wasm -o named.wasm
# Environment: BENCH_ONLY (default 10x20), BENCH_MODE (warm or fresh, default warm),
# BENCH_ROTATION, BENCH_ITERATIONS (default 200), CIP_BENCH (default target/release/cip-bench).
# Writes <prefix>.callgrind (open with callgrind_annotate or kcachegrind), <prefix>.self and
# <prefix>.inclusive (the 60 dearest functions, exclusive and inclusive counts, all
# evaluations: divide by the number of evaluations, warm-up included, for one). Needs valgrind
# and python3.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 named.wasm [output-prefix]" >&2
    exit 2
fi
module=$(realpath "$1")
prefix=${2:-profile}
iterations=${BENCH_ITERATIONS:-200}
# shellcheck source=scripts/callgrind-bench.sh
. "$(dirname "$0")/callgrind-bench.sh"
callgrind_bench "$module" warm "$iterations"

# Callgrind names the compiled wasm functions by address (`fn=(12) 0x00000000180331c0`, with a
# `'2` suffix inside recursion cycles): each becomes `wasm:<name>` from the map (start, size,
# name per line).
python3 - "$out" "$map" "$prefix.callgrind" <<'EOF'
import bisect, re, sys

entries = []
with open(sys.argv[2]) as f:
    for line in f:
        start, size, name = line.rstrip("\n").split(" ", 2)
        entries.append((int(start, 16), int(size, 16), name.replace(" ", "_")))
entries.sort()
starts = [e[0] for e in entries]
address = re.compile(r"^(c?fn=\(\d+\) )0x([0-9a-f]+)('\d+)?$")
with open(sys.argv[1]) as src, open(sys.argv[3], "w") as dst:
    for line in src:
        m = address.match(line.rstrip("\n"))
        if m:
            at = int(m.group(2), 16)
            i = bisect.bisect_right(starts, at) - 1
            if i >= 0 and at < entries[i][0] + entries[i][1]:
                line = f"{m.group(1)}wasm:{entries[i][2]}{m.group(3) or ''}\n"
        dst.write(line)
EOF
rm -f "$map"
callgrind_annotate "$prefix.callgrind" 2>/dev/null | grep -E '^ *[0-9,]+ ' | sed -n '1,60p' > "$prefix.self"
callgrind_annotate --inclusive=yes "$prefix.callgrind" 2>/dev/null | grep -E '^ *[0-9,]+ ' | sed -n '1,60p' > "$prefix.inclusive"
echo "$BENCH_ONLY $BENCH_MODE, $iterations evaluations after the warm-up: $prefix.callgrind, $prefix.self, $prefix.inclusive"
sed -n "1,25p" "$prefix.self"
