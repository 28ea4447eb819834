#!/usr/bin/env bash
# bench/gpu-check.sh - build and check Tessera's CUDA backend on a machine with
# an NVIDIA GPU, in one go, in under five minutes (16 cores):
#
#   1. configure a fresh build directory (CUDA architecture 90, TSR_GPU_CHECK=ON:
#      packages this machine lacks are left out, never fetched)
#   2. build only the library, tessera, tessera-bench and the device tests (-j16)
#   3. nvidia-smi -L and `tessera devices`
#   4. the device tests: ctest -R 'cuda|device' (not the CPU-only emulator
#      tests): the CUDA backend, hash aggregation, the cross-device tests of
#      hash join, filter and partitioning (test_{join,filter,partition}_device),
#      and test_graph_cuda: user task kinds' CUDA implementations (kernels
#      compiled by nvcc, and the nvcc-built examples/plugins density_cuda_plugin
#      loaded into the test: its own static CUDA runtime on the engine's stream);
#      not test_kv_device, which needs the transport (the GPU machine has no UCX)
#   5. tessera-bench kernels --device cuda at 500M rows (about 12 GB of columns on
#      the GPU; also join, filter and partitioning over 64M rows from host
#      memory), at 10M rows and at 100M rows x 8 keys (aggregation only), then a
#      short table against the targets
#   6. the aggregation kernel variants (TSR_CUDA_HASHAGG, docs/devices.md "Kernel
#      variants"): 64M rows x 1000 and x 8 keys with each of auto, lane, warp,
#      coop, regs forced, one line per variant and shape (every run verified)
#
# Exit: 0 all ran and passed; 1 a build, test or benchmark failed; 77 no NVIDIA
# GPU / CUDA device here (after building: the build itself is checked); 2 usage.
#
#   bench/gpu-check.sh                 on the GPU machine (from anywhere)
#   bench/gpu-check.sh --variants      build, then only step 6 (no tests, no other
#                                      benchmarks): the quick comparison
#   bench/gpu-check.sh --profile       build, then profile the aggregation kernels
#                                      with Nsight Compute (ncu; counters,
#                                      stall reasons by source line) into
#                                      $OUT/ncu-*.txt, and run nothing else
#   bench/gpu-check.sh --stage-deps    here, before: copies the headers and
#                                      libraries a bare GPU machine may lack
#                                      (xxhash, cmocka, jansson, OpenCL ICD
#                                      loader) into build-gpudeps/, which the
#                                      check uses when present
#   bench/gpu-check.sh --stage-baseline REV
#                                      here, before: extracts commit REV's
#                                      sources into build-gpubase/; when that
#                                      is present the check also builds it
#                                      and runs every variant with both builds
#                                      (lines "base:VARIANT"), so a kernel
#                                      change is measured against its parent
#                                      in the same call on the same card
#
# Environment: TSR_GPU_BUILD (build dir, default build-gpucheck), TSR_GPU_DEPS
# (default build-gpudeps), TSR_GPU_PROFILE (--profile: "KEYS KERNEL,..." pairs, default
# "1000 tsr_k_ha_plain,8 tsr_k_ha_regs": what AUTO runs for the benchmark's aggregates at
# those shapes; tsr_k_ha_local is the lane kernel of other aggregate lists; tsr_k_ha_coop
# and tsr_k_ha_regs run forced through TSR_CUDA_HASHAGG), JOBS (default: cores, at most 16), TSR_GPU_ROWS (big run, default 500M),
# TSR_GPU_VARIANTS (default "auto lane warp coop regs"), TSR_GPU_VARIANT_SHAPES ("ROWS
# KEYS,...", default "64M 1000,64M 8"), OUT (if set, the run's logs, JSON lines and profiles
# come back as one file, $OUT/gpu-check-{check,variants,profile}.tgz).
# TSR_GPU_BASELINE (default build-gpubase). TSR_GPU_REUSE=1: keep an existing build in
# TSR_GPU_BUILD (a --profile after a check in the same call). Through the device tool: carry build-gpudeps
# (and build-gpubase) and run `bash bench/gpu-check.sh`.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS=${TSR_GPU_DEPS:-$ROOT/build-gpudeps}
BUILD=${TSR_GPU_BUILD:-$ROOT/build-gpucheck}
BASE_SRC=${TSR_GPU_BASELINE:-$ROOT/build-gpubase}
BIG_ROWS=${TSR_GPU_ROWS:-500M}
T0=$(date +%s)

say() { printf '== %s (%ds)\n' "$*" "$(($(date +%s) - T0))"; }
die() { printf 'gpu-check: error: %s\n' "$*" >&2; exit "${2:-1}"; }

# ---- --stage-deps: run on a machine that has the packages ---------------------------
stage_deps() {
    local inc="$DEPS/include" lib="$DEPS/lib" f
    rm -rf "$DEPS"
    mkdir -p "$inc/CL" "$lib" || die "cannot create $DEPS"
    for f in xxhash.h xxh3.h cmocka.h cmocka_pbc.h jansson.h jansson_config.h; do
        [ -f "/usr/include/$f" ] && cp "/usr/include/$f" "$inc/"
    done
    [ -d /usr/include/CL ] && cp /usr/include/CL/*.h "$inc/CL/"
    local libdir
    libdir=$(dirname "$(ldconfig -p | awk '/libjansson\.so/ {print $NF; exit}')" 2>/dev/null)
    for d in "$libdir" /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
        [ -d "$d" ] || continue
        # static where the package ships it (no run-time dependency), else the
        # shared library with its soname links (the build tree's RPATH finds it)
        for f in libjansson.a libxxhash.a; do
            [ -f "$d/$f" ] && [ ! -f "$lib/$f" ] && cp "$d/$f" "$lib/"
        done
        for f in "$d"/libcmocka.so* "$d"/libOpenCL.so*; do
            [ -e "$f" ] && [ ! -e "$lib/$(basename "$f")" ] && cp -a "$f" "$lib/"
        done
    done
    for f in xxhash.h cmocka.h jansson.h CL/cl.h; do
        [ -f "$inc/$f" ] || echo "gpu-check: warning: $f not found here, not staged" >&2
    done
    du -sh "$DEPS"
    echo "staged into $DEPS; carry it to the GPU machine (device tool: carry [\"$(basename "$DEPS")\"])"
}

PROFILE=0
VARIANTS_ONLY=0
stage_baseline() {
    [ -n "${1:-}" ] || die "--stage-baseline needs a commit" 2
    git -C "$ROOT" rev-parse --verify -q "$1^{commit}" >/dev/null || die "no commit '$1' here" 2
    rm -rf "$BASE_SRC" && mkdir -p "$BASE_SRC" || die "cannot create $BASE_SRC"
    git -C "$ROOT" archive "$1" | tar -x -C "$BASE_SRC" || die "git archive $1 failed"
    git -C "$ROOT" rev-parse --short "$1" >"$BASE_SRC/.gpucheck-rev"
    du -sh "$BASE_SRC"
    echo "staged $1 into $BASE_SRC; carry it too (device tool: carry [\"$(basename "$DEPS")\", \"$(basename "$BASE_SRC")\"])"
}

case "${1:-}" in
--stage-deps) stage_deps; exit $? ;;
--stage-baseline) stage_baseline "${2:-}"; exit $? ;;
--profile) PROFILE=1 ;;
--variants) VARIANTS_ONLY=1 ;;
"") ;;
-h|--help) sed -n '2,40p' "$0"; exit 0 ;;
*) die "unknown argument '$1' (see --help)" 2 ;;
esac

# ---- tools --------------------------------------------------------------------------
command -v cmake >/dev/null || die "cmake not found"
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
[ -n "$NVCC" ] || die "nvcc not found (PATH, /usr/local/cuda/bin): cannot build the CUDA backend"
CORES=$(nproc 2>/dev/null || echo 4)
JOBS=${JOBS:-$((CORES < 16 ? CORES : 16))}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# Logs go under the build; with OUT set they come back as ONE tarball per run
# (the device tool returns at most 8 files): $OUT/gpu-check-MODE.tgz.
MODE=check
[ "$PROFILE" -eq 1 ] && MODE=profile
[ "$VARIANTS_ONLY" -eq 1 ] && MODE=variants
LOGDIR=$BUILD/logs-$MODE
pack_logs() {
    [ -n "${OUT:-}" ] && [ -d "$LOGDIR" ] && mkdir -p "$OUT" &&
        tar -czf "$OUT/gpu-check-$MODE.tgz" -C "$BUILD" "logs-$MODE" 2>/dev/null
}
trap pack_logs EXIT
say "tools: $(cmake --version | head -1), $("$NVCC" --version | tail -1), ${CC:-cc}, $JOBS jobs"

# ---- configure and build ----------------------------------------------------------------
PREFIX=()
[ -d "$DEPS" ] && PREFIX=(-DCMAKE_PREFIX_PATH="$DEPS") && say "using staged packages in $DEPS"
REUSED=0
if [ "${TSR_GPU_REUSE:-0}" = 1 ] && [ -x "$BUILD/bin/tessera-bench" ]; then
    # a second step of the same call (e.g. --profile after the check): the build is there
    REUSED=1
    say "reusing the build in $BUILD (TSR_GPU_REUSE=1)"
else
    rm -rf "$BUILD" && mkdir -p "$BUILD"
fi
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
if [ "$REUSED" = 0 ]; then
    say "configure $BUILD"
    if ! cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DTSR_GPU_CHECK=ON \
        -DTSR_FUZZ=OFF -DTSR_WERROR=OFF -DTSR_SANITIZE=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DCMAKE_CUDA_COMPILER="$NVCC" "${PREFIX[@]}" >"$LOGDIR/configure.log" 2>&1; then
        tail -30 "$LOGDIR/configure.log"
        die "configure failed (log: $LOGDIR/configure.log)"
    fi
    grep -E "TSR_GPU_CHECK|CUDA:" "$LOGDIR/configure.log" | sed 's/^/   /'
    grep -q "Found CUDAToolkit" "$LOGDIR/configure.log" ||
        die "CMake did not enable CUDA (see $LOGDIR/configure.log)"
fi

# what this configuration can build: the device tests and the two programs
TARGETS_ALL=$(cmake --build "$BUILD" --target help 2>/dev/null | sed -n 's/^[.: ]*\([A-Za-z0-9_.-]*\).*/\1/p')
has_target() { grep -qx "$1" <<<"$TARGETS_ALL"; }
TARGETS=(tessera)
for t in tessera-cli tessera-bench; do has_target "$t" && TARGETS+=("$t"); done
TESTS=$(grep -E '^test_.*(cuda|device)' <<<"$TARGETS_ALL" | grep -v -e emu -e kv_device | sort -u)
for t in $TESTS; do TARGETS+=("$t"); done
if [ "$REUSED" = 0 ]; then
    say "build ${TARGETS[*]}"
    if ! cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >"$LOGDIR/build.log" 2>&1; then
        grep -E "error|Error" "$LOGDIR/build.log" | head -30
        die "build failed (log: $LOGDIR/build.log)"
    fi
fi
BIN=$BUILD/bin
BASE_BIN=
if [ -f "$BASE_SRC/CMakeLists.txt" ] && [ "$PROFILE" -eq 0 ]; then
    BASE_REV=$(cat "$BASE_SRC/.gpucheck-rev" 2>/dev/null || echo "?")
    say "build the baseline $BASE_REV ($BASE_SRC): tessera-bench"
    rm -rf "$BUILD-base"
    if cmake -S "$BASE_SRC" -B "$BUILD-base" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DTSR_GPU_CHECK=ON -DTSR_FUZZ=OFF -DTSR_WERROR=OFF -DTSR_SANITIZE=OFF \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$NVCC" "${PREFIX[@]}" \
        >"$LOGDIR/configure-base.log" 2>&1 &&
        cmake --build "$BUILD-base" -j "$JOBS" --target tessera-bench >"$LOGDIR/build-base.log" 2>&1; then
        BASE_BIN=$BUILD-base/bin
    else
        echo "   the baseline did not build (logs: $LOGDIR/configure-base.log, build-base.log)"
    fi
fi
[ -z "$TESTS" ] && echo "   no unit tests in this build (cmocka missing: stage it with --stage-deps)"
[ -x "$BIN/tessera-bench" ] || echo "   no tessera-bench in this build (jansson missing: stage it with --stage-deps)"

# ---- the GPU ------------------------------------------------------------------------
say "nvidia-smi -L"
GPUS=0
if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L 2>&1 | sed 's/^/   /'
    nvidia-smi >"$BUILD/nvidia-smi.txt" 2>&1
    GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
else
    echo "   nvidia-smi not found"
fi
CUDA_DEVS=0
if [ -x "$BIN/tessera" ]; then
    say "tessera devices"
    "$BIN/tessera" devices 2>&1 | sed 's/^/   /'
    CUDA_DEVS=$("$BIN/tessera" devices --format csv 2>/dev/null | grep -c '^cuda,' || true)
fi
if [ "$GPUS" -eq 0 ] && [ "$CUDA_DEVS" -eq 0 ]; then
    say "no NVIDIA GPU or CUDA device on this machine: the build is fine, nothing to check"
    exit 77
fi
if [ -x "$BIN/tessera" ] && [ "$CUDA_DEVS" -eq 0 ]; then
    die "nvidia-smi lists $GPUS GPU(s) but Tessera finds no CUDA device (see the cuda line above)"
fi

# ---- --profile: Nsight Compute over the aggregation kernels, nothing else ----------------
if [ "$PROFILE" -eq 1 ]; then
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
    [ -n "$NCU" ] || die "ncu (Nsight Compute) not found"
    [ -x "$BIN/tessera-bench" ] || die "no tessera-bench in this build"
    # one full launch per shape (the first launch of an AUTO aggregation is a
    # 64K-row probe: skipped); by default the lane kernel's plain twin at 1000
    # keys and the regs kernel at 8
    IFS=, read -r -a SHAPES <<<"${TSR_GPU_PROFILE:-1000 tsr_k_ha_plain,8 tsr_k_ha_regs}"
    for shape in "${SHAPES[@]}"; do
        set -- $shape # shellcheck disable=SC2086
        # the new variants run forced (AUTO may pick another kernel at this shape)
        case "$2" in
        tsr_k_ha_coop) VAR=coop ;;
        tsr_k_ha_regs) VAR=regs ;;
        *) VAR=auto ;;
        esac
        say "ncu: $2 at 64M rows x $1 keys (TSR_CUDA_HASHAGG=$VAR)"
        TSR_CUDA_HASHAGG=$VAR TSR_BENCH_OPS_ROWS=0 timeout 240 "$NCU" --clock-control none --launch-skip 1 --launch-count 1 \
            -k "regex:^$2" --set full --import-source yes -f -o "$BUILD/ncu-$2-$1" \
            "$BIN/tessera-bench" kernels --device cuda --rows 64M --keys "$1" --repeat 1 \
            >"$BUILD/ncu-run.log" 2>&1 || echo "   ncu exited $? (see $BUILD/ncu-run.log)"
        "$NCU" -i "$BUILD/ncu-$2-$1.ncu-rep" --print-details all >"$LOGDIR/ncu-$2-$1.txt" 2>&1
        # per source line: instructions, stall samples, sectors (the hot spots)
        "$NCU" -i "$BUILD/ncu-$2-$1.ncu-rep" --page source --csv --print-source cuda,sass \
            >"$LOGDIR/ncu-$2-$1-source.csv" 2>&1 || echo "   source page failed"
        grep -E "Duration|DRAM Throughput|Achieved Occupancy|Warp Cycles Per Issued|Avg. Active Threads|Executed Instructions  " \
            "$LOGDIR/ncu-$2-$1.txt" | head -12 | sed 's/^/   /'
    done
    say "profile done (logs in $LOGDIR)"
    exit 0
fi

# ---- kernel variants: one line per variant and shape -------------------------------------
# Each run forces one update kernel for every launch (TSR_CUDA_HASHAGG; retry
# rounds stay global) and is verified like any other; only the aggregation
# figures matter here (copy, distinct keys and inserts run too: the suite has
# no switch to leave them out).
run_variants() {
    [ -x "$BIN/tessera-bench" ] || { echo "   no tessera-bench in this build"; return 0; }
    local vjson=$LOGDIR/variants.jsonl shape v
    : >"$vjson"
    IFS=, read -r -a VSHAPES <<<"${TSR_GPU_VARIANT_SHAPES:-64M 1000,64M 8}"
    local builds=("$BIN") b tag
    [ -n "$BASE_BIN" ] && builds+=("$BASE_BIN")
    for shape in "${VSHAPES[@]}"; do
        for v in ${TSR_GPU_VARIANTS:-auto lane warp coop regs}; do
            # this build and the baseline back to back, per variant
            for b in "${builds[@]}"; do
                tag=$v
                [ "$b" = "$BASE_BIN" ] && tag=base:$v
                set -- $shape # shellcheck disable=SC2086
                say "variant $tag: --rows $1 --keys $2 --repeat 3"
                if ! TSR_CUDA_HASHAGG=$v TSR_BENCH_OPS_ROWS=0 timeout 90 "$b/tessera-bench" kernels \
                    --device cuda --rows "$1" --keys "$2" --repeat 3 --json \
                    >"$BUILD/variant.out" 2>"$BUILD/variant.err"; then
                    FAILED=1
                    echo "   failed:"
                    sed 's/^/   /' "$BUILD/variant.err" | tail -10
                fi
                sed "s/^{/{\"variant\": \"$tag\", /" "$BUILD/variant.out" >>"$vjson"
                { echo "--- variant $tag rows $1 keys $2"; cat "$BUILD/variant.err"; } >>"$LOGDIR/kernels.log"
            done
        done
    done
    command -v python3 >/dev/null || return 0
    say "variants (aggregation over columns in GPU memory; target >= 0.60 of copy)"
    python3 - "$vjson" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    try:
        f = json.loads(line)
    except ValueError:
        continue
    p = f["params"]
    rows.setdefault((p["rows"], p["keys"], f.get("variant", "?")), {})[f["name"]] = f["value"]
print("  %13s %6s %10s %12s %9s %9s %14s" % ("variant", "keys", "rows", "agg Grows/s", "GB/s",
                                             "of copy", "host Grows/s"))
for (n, keys, var), v in sorted(rows.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
    g = lambda k, s=1.0, w=12: ("%*.3f" % (w, v[k] / s)) if v.get(k) is not None else "%*s" % (w, "-")
    print("  %13s %6d %10d" % (var, keys, n), g("hashagg_rows_per_s", 1e9),
          g("hashagg_bytes_per_s", 1.0, 9), g("hashagg_copy_fraction", 1.0, 9),
          g("hashagg_host_rows_per_s", 1e9, 14))
EOF
}

FAILED=0
if [ "$VARIANTS_ONLY" -eq 1 ]; then
    run_variants
    [ "$FAILED" -ne 0 ] && { say "FAILED (logs in $LOGDIR)"; exit 1; }
    say "done: variants ran (logs in $LOGDIR)"
    exit 0
fi

# ---- tests --------------------------------------------------------------------------
if [ -n "$TESTS" ]; then
    say "ctest -R 'cuda|device' (the CPU-only emulator test excluded)"
    if ! (cd "$BUILD" && ctest -R 'cuda|device' -E 'emu|kv_device' --output-on-failure --timeout 120 \
        -j 4) >"$LOGDIR/ctest.log" 2>&1; then
        FAILED=1
    fi
    grep -E "tests passed|tests failed|Test +#|\*\*\*|Skipped|Failed" "$LOGDIR/ctest.log" | sed 's/^/   /' | tail -30
    [ "$FAILED" -eq 1 ] && grep -B2 -A25 "FAILED\|ERROR\|Sanitizer" "$LOGDIR/ctest.log" | head -80
fi

# ---- benchmarks -------------------------------------------------------------------------
# all figures in one JSON-lines file, all stderr in one log (few files in $OUT)
JSON=$LOGDIR/kernels.jsonl
: >"$JSON"
: >"$LOGDIR/kernels.log"
if [ -x "$BIN/tessera-bench" ]; then
    # fields: rows, keys, timeout, rows of the join/filter/partition figures (0: none)
    for run in "$BIG_ROWS 1000 150 67108864" "10M 1000 60 0" "100M 8 60 0"; do
        set -- $run # shellcheck disable=SC2086
        say "tessera-bench kernels --device cuda --rows $1 --keys $2 --repeat 5 (ops rows $4)"
        if ! TSR_BENCH_OPS_ROWS=$4 timeout "$3" "$BIN/tessera-bench" kernels --device cuda \
            --rows "$1" --keys "$2" --repeat 5 --json >>"$JSON" 2>"$BUILD/kernels.err"; then
            FAILED=1
            echo "   failed:"
            sed 's/^/   /' "$BUILD/kernels.err" | tail -10
        fi
        { echo "--- rows $1 keys $2"; cat "$BUILD/kernels.err"; } >>"$LOGDIR/kernels.log"
    done
fi

run_variants

# ---- summary ----------------------------------------------------------------------------
if [ -s "$JSON" ] && command -v python3 >/dev/null; then
    say "summary (targets on an H100: aggregation >= 0.60 of copy bandwidth, >= 5e9 inserts/s)"
    python3 - "$JSON" <<'EOF'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    try:
        f = json.loads(line)
    except ValueError:
        continue
    p = f["params"]
    runs.setdefault((p["rows"], p["keys"]), {})[f["name"]] = f["value"]
hdr = ("rows", "keys", "copy GB/s", "agg Grows/s", "agg GB/s", "of copy", "host Grows/s",
       "distinct Grows/s", "inserts G/s")
print("  " + " ".join("%12s" % h for h in hdr))
for (rows, keys), v in sorted(runs.items(), reverse=True):
    g = lambda k, s=1.0: ("%12.3f" % (v[k] / s)) if v.get(k) is not None else "%12s" % "-"
    print("  %12d %12d" % (rows, keys), g("copy_bytes_per_s"), g("hashagg_rows_per_s", 1e9),
          g("hashagg_bytes_per_s"), g("hashagg_copy_fraction"), g("hashagg_host_rows_per_s", 1e9),
          g("distinct_agg_rows_per_s", 1e9), g("insert_per_s", 1e9))
ops = [("join_build_rows_per_s", "join build"), ("join_probe_rows_per_s", "join probe+pairs"),
       ("filter_rows_per_s", "filter"), ("partition64_rows_per_s", "partition P=64"),
       ("partition1024_rows_per_s", "partition P=1024")]
for (rows, keys), v in sorted(runs.items(), reverse=True):
    got = [(label, v[k]) for k, label in ops if v.get(k) is not None]
    if got:
        print("  from host memory (rows %d, at most 64M): " % rows +
              ", ".join("%s %.3f G rows/s" % (label, x / 1e9) for label, x in got))
for (rows, keys), v in sorted(runs.items(), reverse=True):
    frac, ins = v.get("hashagg_copy_fraction"), v.get("insert_per_s")
    if frac is not None:
        print("  %d rows x %d keys: aggregation at %.2f of copy bandwidth: %s" %
              (rows, keys, frac, "target met" if frac >= 0.60 else "BELOW the 0.60 target"))
    if ins is not None:
        print("  %d rows: %.2f G inserts/s: %s" %
              (rows, ins / 1e9, "target met" if ins >= 5e9 else "BELOW the 5 G/s target"))
EOF
fi
if [ "$FAILED" -ne 0 ]; then
    say "FAILED (logs in $LOGDIR)"
    exit 1
fi
say "done: tests passed, benchmarks ran (logs in $LOGDIR)"
exit 0
