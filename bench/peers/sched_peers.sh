#!/usr/bin/env bash
# sched_peers.sh - Tessera's task-graph executor against StarPU and Dask on
# the same shapes of empty tasks, embedded (one process), in one run.
#
#   bench/peers/sched_peers.sh [TASKS] [--threads T] [--repeat R] [--dask-tasks N] [--json]
#   bench/peers/sched_peers.sh --cluster W [TASKS] [--repeat R] [--dask-tasks N] [--json]
#
# Shapes (as `tessera-bench sched`): chain (each task depends on the previous)
# and fanout (one root, TASKS-1 tasks depending on it). Per-task overhead =
# (build/submit everything + wait for the end) / tasks, best of R:
#   tessera   tessera-bench sched --json: <shape>_overhead_ns (build + run)
#   starpu    a small C program compiled here against StarPU (pkg-config
#             starpu-1.3, Debian package libstarpu-dev): starpu_task_insert of an
#             empty CPU codelet on one registered variable, STARPU_RW for the
#             chain, STARPU_W then STARPU_R for the fan-out (implicit data
#             dependencies, as Tessera infers them from handles), then
#             starpu_task_wait_for_all; STARPU_NCPU=T, no GPU workers, default
#             scheduler. Submission is included, as Tessera's build is.
#   dask      dask.threaded.get (the local threaded scheduler, num_workers=T)
#             on a dict graph of the same shape built in the timed region,
#             from bench/.venv (pip install "dask[distributed]"); it runs
#             --dask-tasks tasks (default min(TASKS, 20000): it is ~100x slower)
#             and the per-task figure is compared.
# ratio = peer ns per task / Tessera ns per task (>1: Tessera has less
# overhead). Target (issue 5): ratio against StarPU >= 1 for both shapes.
#
# --cluster W: the cluster comparison instead. Starts a local Tessera cluster
# (`tessera cluster up --workers W --threads 1`, a fresh token, in a temporary
# dir; stopped at the end) and runs `tessera-bench sched` against it
# (TESSERA_SCHEDULER: the C API's cluster mode; TASKS default 5000 "identity"
# tasks of a one-row table), then dask.distributed's LocalCluster with W
# worker processes of one thread each on the same shapes (client.get of a
# dict graph of no-op tasks, built in the timed region; --dask-tasks, default
# min(TASKS, 5000)). ratio = Tessera tasks/s / Dask tasks/s. Target (issue 5):
# >= 20x. The cluster's scheduler inherits this environment: TSR_GRAPH_PIPELINE=0
# turns off its pipelining of graph tasks (docs/cluster.md "Pipelining"), for
# a before/after comparison. On a loaded machine Dask's figures swing 2x from
# run to run: compare several runs, or --dask-tasks 1000 to keep them short.
# CPU time per task (all threads) is printed beside wall time: on a loaded
# machine it is the steadier figure (StarPU's workers poll, so its CPU time
# counts the polling).
# Exit codes: 0 ok, 1 a run failed, 2 bad usage, 3 something missing (not
# built, StarPU or Dask not installed).
#
# Environment: TSR_BIN (default build/bin) holds tessera-bench.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${TSR_BIN:-$root/build/bin}"

# shellcheck source=lib.sh
. "$here/lib.sh"

tasks="" threads="$(nproc)" repeat=5 dask_tasks="" json="" cluster=""
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) print_usage "$0"; exit 0 ;;
    --json) json=1 ;;
    --cluster)
        [ $# -ge 2 ] && [ "$2" -ge 1 ] 2>/dev/null || die 2 "$1 needs a count >= 1"
        cluster="$2"
        shift
        ;;
    --threads | --repeat | --dask-tasks)
        [ $# -ge 2 ] && [ "$2" -ge 1 ] 2>/dev/null || die 2 "$1 needs a count >= 1"
        case "$1" in
        --threads) threads="$2" ;;
        --repeat) repeat="$2" ;;
        --dask-tasks) dask_tasks="$2" ;;
        esac
        shift
        ;;
    [0-9]*) tasks="$1" ;;
    *) die 2 "unknown argument '$1'" "see $0 --help" ;;
    esac
    shift
done
[ -n "$tasks" ] || tasks=$([ -n "$cluster" ] && echo 5000 || echo 100000)
[ "$tasks" -ge 2 ] 2>/dev/null || die 2 "TASKS must be a number >= 2"

# ---- the cluster comparison (--cluster W) -------------------------------------------
if [ -n "$cluster" ]; then
    [ -n "$dask_tasks" ] || dask_tasks=$((tasks < 5000 ? tasks : 5000))
    [ -x "$bin/tessera" ] && [ -x "$bin/tessera-bench" ] ||
        die 3 "$bin/tessera or tessera-bench not found" "build first, or set TSR_BIN"
    py="$root/bench/.venv/bin/python3"
    [ -x "$py" ] && "$py" -c 'import dask.distributed' 2>/dev/null ||
        die 3 "dask.distributed not found in bench/.venv" \
            "python3 -m venv bench/.venv && bench/.venv/bin/pip install 'dask[distributed]'"
    work="$(mktemp -d)"
    export UCX_TLS="${UCX_TLS:-tcp,self}" UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"
    export UCX_WARN_UNUSED_ENV_VARS=n
    # `cluster down` stops the cluster's processes by their pids
    trap '"$bin/tessera" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
    chmod 600 "$work/token"
    addr="$("$bin/tessera" cluster up --dir "$work/cluster" --workers "$cluster" --threads 1 \
        --token-file "$work/token")" || die 1 "tessera cluster up failed"
    addr="$(echo "$addr" | tail -n 1)"
    cat > "$work/dask_cluster.py" <<'PYEOF'
# argv: WORKERS TASKS REPEAT; prints "chain|fanout <best tasks/s>" lines
import sys, time
from dask.distributed import Client, LocalCluster

def f(*args):
    return None

def main():
    w, n, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as lc, Client(lc) as client:
        for shape in ("chain", "fanout"):
            best = float("inf")
            for r in range(-1, repeat):
                m = min(n, 100) if r < 0 else n
                t0 = time.perf_counter()
                if shape == "chain":
                    dsk = {("t", 0): (f,)}
                    for i in range(1, m):
                        dsk[("t", i)] = (f, ("t", i - 1))
                    keys = [("t", m - 1)]
                else:
                    dsk = {"root": (f,)}
                    for i in range(1, m):
                        dsk[("t", i)] = (f, "root")
                    keys = [("t", i) for i in range(1, m)]
                client.get(dsk, keys)
                t = time.perf_counter() - t0
                if r >= 0:
                    best = min(best, t)
            print(shape, n / best, flush=True)


if __name__ == "__main__":  # worker processes are spawned: they re-import this file
    main()
PYEOF
    load0="$(cut -d' ' -f1 /proc/loadavg)"
    TESSERA_SCHEDULER="$addr" TESSERA_TOKEN_FILE="$work/token" \
        "$bin/tessera-bench" sched --json --rows "$tasks" --repeat "$((repeat < 3 ? repeat : 3))" \
        > "$work/tessera.json" || die 1 "tessera-bench sched on the cluster failed"
    "$bin/tessera" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true
    "$py" "$work/dask_cluster.py" "$cluster" "$dask_tasks" "$((repeat < 2 ? repeat : 2))" \
        > "$work/dask.txt" 2> "$work/dask.err" || { cat "$work/dask.err" >&2; die 1 "Dask failed"; }
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    python3 - "$work" "$cluster" "$tasks" "$dask_tasks" "$load0" "$load1" "$json" <<'PYEOF'
import json, sys
work, w, tasks, dask_tasks, load0, load1, as_json = sys.argv[1:8]
fig = {}
for line in open(f"{work}/tessera.json"):
    o = json.loads(line)
    fig[o["name"]] = o["value"]
dask = {}
for line in open(f"{work}/dask.txt"):
    shape, v = line.split()
    dask[shape] = float(v)
rows = [(s, fig[f"cluster_{s}_tasks_per_s"], dask[s]) for s in ("chain", "fanout")]
if as_json:
    for shape, ours, peer in rows:
        print(json.dumps({"suite": "sched", "name": f"cluster_{shape}_tasks_per_s",
                          "value": ours, "unit": "tasks/s", "device": "cpu", "peer": "dask",
                          "peer_value": peer, "ratio": ours / peer,
                          "params": {"tasks": int(tasks), "workers": int(w), "mode": "cluster",
                                     "peer_tasks": int(dask_tasks)}}))
    sys.exit(0)
print(f"sched peers, cluster: {w} local workers (1 thread each), {tasks} tasks per graph "
      f"(dask: {dask_tasks}), load average {load0} -> {load1}")
print(f"  {'shape':<7} {'tessera tasks/s':>15} {'dask tasks/s':>13} {'ratio':>7}")
for shape, ours, peer in rows:
    r = ours / peer
    print(f"  {shape:<7} {ours:>15.1f} {peer:>13.1f} {r:>6.2f}x"
          f"  (target >= 20x: {'met' if r >= 20 else 'NOT met'})")
print("  ratio = Tessera / Dask distributed throughput (build + run, results back)")
PYEOF
    exit 0
fi
[ -n "$dask_tasks" ] || dask_tasks=$((tasks < 20000 ? tasks : 20000))

[ -x "$bin/tessera-bench" ] || die 3 "$bin/tessera-bench not found" "build first, or set TSR_BIN"
pkg-config --exists starpu-1.3 ||
    die 3 "StarPU not found (pkg-config starpu-1.3)" "apt-get install libstarpu-dev"
py="$root/bench/.venv/bin/python3"
[ -x "$py" ] && "$py" -c 'import dask' 2>/dev/null ||
    die 3 "Dask not found in bench/.venv" \
        "python3 -m venv bench/.venv && bench/.venv/bin/pip install 'dask[distributed]'"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- the StarPU program ---------------------------------------------------------
cat > "$work/starpu_sched.c" <<'EOF'
/* Empty tasks on StarPU: argv: chain|fanout TASKS REPEAT. Prints
 * "<best ns per task> <CPU ns per task of that run>". */
#include <starpu.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void empty(void *buffers[], void *arg) { (void)buffers; (void)arg; }
static struct starpu_codelet cl_rw = {.cpu_funcs = {empty}, .nbuffers = 1, .modes = {STARPU_RW}};
static struct starpu_codelet cl_w = {.cpu_funcs = {empty}, .nbuffers = 1, .modes = {STARPU_W}};
static struct starpu_codelet cl_r = {.cpu_funcs = {empty}, .nbuffers = 1, .modes = {STARPU_R}};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int chain = strcmp(argv[1], "chain") == 0;
    long n = atol(argv[2]), repeat = atol(argv[3]);
    if (starpu_init(NULL) != 0)
        return 1;
    int x = 0;
    starpu_data_handle_t h;
    starpu_variable_data_register(&h, STARPU_MAIN_RAM, (uintptr_t)&x, sizeof(x));
    double best = 1e30, best_cpu = 0;
    for (long r = -1; r < repeat; r++) { /* r = -1: warm-up */
        long m = r < 0 ? (n < 1000 ? n : 1000) : n;
        double c0 = cpu(), t0 = now();
        for (long i = 0; i < m; i++) {
            struct starpu_codelet *cl = chain ? &cl_rw : i == 0 ? &cl_w : &cl_r;
            int mode = chain ? STARPU_RW : i == 0 ? STARPU_W : STARPU_R;
            if (starpu_task_insert(cl, mode, h, 0) != 0)
                return 1;
        }
        starpu_task_wait_for_all();
        double t = now() - t0, c = cpu() - c0;
        if (r >= 0 && t < best) {
            best = t;
            best_cpu = c;
        }
    }
    starpu_data_unregister(h);
    starpu_shutdown();
    printf("%.1f %.1f\n", best / n * 1e9, best_cpu / n * 1e9);
    return 0;
}
EOF
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -o "$work/starpu_sched" "$work/starpu_sched.c" \
    $(pkg-config --cflags --libs starpu-1.3) || die 1 "cannot compile the StarPU program"

# ---- the Dask program ----------------------------------------------------------------
cat > "$work/dask_sched.py" <<'EOF'
# argv: chain|fanout TASKS REPEAT THREADS; prints "<best ns/task> <CPU ns/task>"
import sys, time
from dask.threaded import get

def f(*args):
    return None

shape, n, repeat, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
best, best_cpu = float("inf"), 0.0
sys.setrecursionlimit(max(10000, 4 * n))
for r in range(-1, repeat):
    m = min(n, 1000) if r < 0 else n
    c0, t0 = time.process_time(), time.perf_counter()
    if shape == "chain":
        dsk = {("t", 0): (f,)}
        for i in range(1, m):
            dsk[("t", i)] = (f, ("t", i - 1))
        keys = [("t", m - 1)]
    else:
        dsk = {"root": (f,)}
        for i in range(1, m):
            dsk[("t", i)] = (f, "root")
        keys = [("t", i) for i in range(1, m)]
    get(dsk, keys, num_workers=threads)
    t, c = time.perf_counter() - t0, time.process_time() - c0
    if r >= 0 and t < best:
        best, best_cpu = t, c
print("%.1f %.1f" % (best / n * 1e9, best_cpu / n * 1e9))
EOF

load="$(cut -d' ' -f1 /proc/loadavg)"
"$bin/tessera-bench" sched --json --rows "$tasks" --threads "$threads" --repeat "$repeat" \
    > "$work/tessera.json" || die 1 "tessera-bench sched failed"
for shape in chain fanout; do
    STARPU_NCPU="$threads" STARPU_NCUDA=0 STARPU_NOPENCL=0 STARPU_SILENT=1 \
        STARPU_CALIBRATE=0 STARPU_WORKERS_NOBIND=1 \
        "$work/starpu_sched" "$shape" "$tasks" "$repeat" > "$work/starpu_$shape.txt" ||
        die 1 "the StarPU program failed ($shape)"
    "$py" "$work/dask_sched.py" "$shape" "$dask_tasks" "$(( repeat < 3 ? repeat : 3 ))" \
        "$threads" > "$work/dask_$shape.txt" || die 1 "the Dask program failed ($shape)"
done

python3 - "$work" "$tasks" "$dask_tasks" "$threads" "$load" "$json" <<'EOF'
import json, sys
work, tasks, dask_tasks, threads, load, as_json = sys.argv[1:7]
fig = {}
for line in open(f"{work}/tessera.json"):
    o = json.loads(line)
    fig[o["name"]] = o["value"]
rows = []
for shape in ("chain", "fanout"):
    ours, ours_cpu = fig[f"{shape}_overhead_ns"], fig[f"{shape}_cpu_ns"]
    for peer in ("starpu", "dask"):
        wall, cpu = map(float, open(f"{work}/{peer}_{shape}.txt").read().split())
        rows.append((shape, peer, ours, wall, wall / ours, ours_cpu, cpu, cpu / ours_cpu))
if as_json:
    for shape, peer, ours, wall, ratio, oc, pc, cratio in rows:
        params = {"tasks": int(tasks), "threads": int(threads), "mode": "embedded",
                  "peer_tasks": int(dask_tasks) if peer == "dask" else int(tasks)}
        for name, v, pv, r in ((f"{shape}_overhead_ns", ours, wall, ratio),
                               (f"{shape}_cpu_ns", oc, pc, cratio)):
            print(json.dumps({"suite": "sched", "name": name, "value": v, "unit": "ns",
                              "device": "cpu", "peer": peer, "peer_value": pv,
                              "ratio": r, "params": params}))
    sys.exit(0)
print(f"sched peers: empty tasks, {tasks} per graph (dask: {dask_tasks}), {threads} threads, "
      f"load average {load}")
print(f"  {'shape':<7} {'peer':<7} {'tessera ns/task':>15} {'peer ns/task':>13} {'ratio':>7}"
      f"   {'CPU: tessera':>12} {'peer':>9} {'ratio':>7}")
for shape, peer, ours, wall, ratio, oc, pc, cratio in rows:
    note = "  (target >= 1: " + ("met" if ratio >= 1 else "NOT met") + ")" if peer == "starpu" else ""
    print(f"  {shape:<7} {peer:<7} {ours:>15.1f} {wall:>13.1f} {ratio:>6.2f}x"
          f"   {oc:>12.1f} {pc:>9.1f} {cratio:>6.2f}x{note}")
print("  ratio = peer / Tessera per task (>1: Tessera has less overhead)")
EOF
