#!/usr/bin/env bash
# bench/cuda-code-size.sh - machine-code size of each CUDA kernel, without a GPU.
#
#   bench/cuda-code-size.sh [FILE.cu ...] [--arch sm_90]
#
# Compiles each kernel file (default: every kernels/cuda/*.cu) to a cubin with
# nvcc and prints, per __global__ function, its .text size in bytes and SASS
# instructions (16 bytes each on sm_70 and later), with ptxas' registers,
# stack and spills. Why: a kernel whose hot loop outgrows the instruction
# caches stalls on fetching instructions ("no instruction" in Nsight
# Compute; 40% of the local aggregation kernel's stall samples on an H200,
# bench/RESULTS.md 2026-11-28), and code size is the one part of that a
# machine without a GPU can measure. Exit 0, 2 on usage, 1 when nvcc fails.
set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCH=sm_90
FILES=()
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) ARCH=${2:?--arch needs a value}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "cuda-code-size: unknown option $1" >&2; exit 2 ;;
    *) FILES+=("$1"); shift ;;
    esac
done
[ ${#FILES[@]} -eq 0 ] && FILES=("$ROOT"/kernels/cuda/*.cu)
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$NVCC" ] || { echo "cuda-code-size: nvcc not found" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
for f in "${FILES[@]}"; do
    out=$tmp/$(basename "$f" .cu).cubin
    if ! "$NVCC" -O3 -DNDEBUG -std=c++17 -arch="$ARCH" -cubin -Xptxas -v \
        -I"$ROOT/kernels/cuda" -I"$ROOT/engine" -I"$ROOT/include" -o "$out" "$f" \
        >"$tmp/ptxas.log" 2>&1; then
        cat "$tmp/ptxas.log" >&2
        exit 1
    fi
    python3 - "$out" "$tmp/ptxas.log" "$(basename "$f")" <<'PY'
import re, struct, sys
cubin, log, name = sys.argv[1:4]
d = open(cubin, "rb").read()
shoff = struct.unpack_from("<Q", d, 0x28)[0]
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
secs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
stro = secs[shstrndx][4]
sizes = {}
for s in secs:
    n = d[stro + s[0]:d.index(b"\0", stro + s[0])].decode()
    if n.startswith(".text."):
        sizes[n[6:]] = s[5]
info, fn = {}, None
for line in open(log):
    m = re.search(r"Compiling entry function '(\S+)'", line) or re.search(r"Function properties for (\S+)", line)
    if m:
        fn = m.group(1)
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and fn:
        info.setdefault(fn, {})["stack"] = m.groups()
    m = re.search(r"Used (\d+) registers", line)
    if m and fn:
        info.setdefault(fn, {})["regs"] = m.group(1)
print("%s:" % name)
print("  %-52s %9s %7s %5s %14s" % ("kernel", "bytes", "instr", "regs", "stack/spills"))
for k in sorted(sizes):
    i = info.get(k, {})
    st = "/".join(i.get("stack", ("?", "?", "?")))
    print("  %-52s %9d %7d %5s %14s" % (k, sizes[k], sizes[k] // 16, i.get("regs", "?"), st))
PY
done
