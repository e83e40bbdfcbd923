#!/usr/bin/env bash
# Each x86 instruction of one of the module's functions, as wasmtime compiled it, beside the
# number of times `cip bench`'s evaluations ran it: where scripts/profile-instructions.sh says
# which function costs, this says which of its loops or moves (docs/benchmarks.md, eighteenth
# pass). Valgrind's callgrind counts every instruction (`--dump-instr=yes`), wasmtime names the
# compiled functions in its perf map (`CIP_PROFILER=perfmap`), and the code comes from `cip`'s
# compiled-module cache: a `.cwasm` is an ELF file after `cip`'s header, disassembled by objdump.
#
#   scripts/annotate-instructions.sh named.wasm 'GlobReader::read' [output]
#
# `named.wasm`: a module that kept its function names (see scripts/profile-instructions.sh); the
# second argument: part of the function's name as the perf map writes it (demangled; the first
# function that contains it). Environment: BENCH_ONLY (default 10x20), BENCH_MODE (default
# fresh), BENCH_ROTATION, BENCH_STOCK, BENCH_ITERATIONS (default 20), CIP_BENCH (default
# target/release/cip-bench). Writes the annotated disassembly (default annotated.txt): a first
# line with the function's own instructions in all evaluations (warm-up included), then one line
# per instruction, `count address: instruction`; and prints the counts that cover most of it
# (a count that is a multiple of the calls is a loop's body). Needs valgrind, objdump, python3.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 named.wasm function-name-part [output]" >&2
    exit 2
fi
for tool in objdump python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
module=$(realpath "$1")
function=$2
output=${3:-annotated.txt}
# shellcheck source=scripts/callgrind-bench.sh
. "$(dirname "$0")/callgrind-bench.sh"
callgrind_bench "$module" fresh "${BENCH_ITERATIONS:-20}" --dump-instr=yes
cwasm=$(find "$work/cache" -name '*.cwasm' | head -n 1)
[ -n "$cwasm" ] || { echo "no compiled module in the cache" >&2; exit 1; }

python3 - "$out" "$map" "$cwasm" "$function" "$output" "$work/module.elf" <<'EOF'
import collections, re, subprocess, sys

out, pmap, cwasm, wanted, output, elf = sys.argv[1:7]

# The ELF image inside the cached module (after cip's header).
data = open(cwasm, "rb").read()
start = data.find(b"\x7fELF")
if start < 0:
    sys.exit(f"{cwasm}: no ELF image")
open(elf, "wb").write(data[start:])

# Perf map: `start size name` per compiled function; the lowest address is the start of the
# ELF's .text (its first function, at offset 0).
functions = []
for line in open(pmap):
    s, z, name = line.rstrip("\n").split(" ", 2)
    functions.append((int(s, 16), int(z, 16), name))
if not functions:
    sys.exit(f"{pmap}: empty perf map")
base = min(f[0] for f in functions)
match = [f for f in functions if wanted in f[2]]
if not match:
    sys.exit(f"no function whose name contains {wanted!r}")
lo, size, name = match[0]
hi = lo + size

# Callgrind's cost lines with `positions: instr line`: `<address> <line> <count>`, the address
# absolute (0x…), relative to the last one (+n, -n) or the same (*); after a `calls=` line the
# next cost line is the call's inclusive cost, not the instruction's own.
costs = collections.Counter()
address, after_call = 0, False
position = re.compile(r"^(0x[0-9a-f]+|[+-]\d+|\*)\s+\S+\s+(\d+)")
for line in open(out):
    if line.startswith("calls="):
        after_call = True
        continue
    m = position.match(line)
    if not m:
        continue
    p = m.group(1)
    if p.startswith("0x"):
        address = int(p, 16)
    elif p[0] == "+":
        address += int(p[1:])
    elif p[0] == "-":
        address -= int(p[1:])
    if after_call:
        after_call = False
        continue
    if lo <= address < hi:
        costs[address] += int(m.group(2))

total = sum(costs.values())
listing = subprocess.run(
    ["objdump", "-d", "--no-show-raw-insn", f"--start-address={lo - base}", f"--stop-address={hi - base}", elf],
    capture_output=True, text=True, check=True,
).stdout
with open(output, "w") as f:
    f.write(f"{name}: {total} instructions of its own\n")
    for line in listing.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
        if m:
            f.write(f"{costs.get(int(m.group(1), 16) + base, 0):>10} {m.group(1)}: {m.group(2)}\n")

# Instructions grouped by how many times each ran: (times, instructions, their total).
groups = collections.Counter(costs.values())
print(f"{name}: {total} instructions of its own; by times run (times × instructions = total):")
for times, count in sorted(groups.items(), key=lambda g: -g[0] * g[1])[:8]:
    print(f"{times:>10} × {count:>5} = {times * count}")
print(f"annotated disassembly: {output}")
EOF
rm -f "$map"
