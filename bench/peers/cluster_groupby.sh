#!/usr/bin/env bash
# cluster_groupby.sh - the group-by benchmark through a local 2-worker cluster
# against embedded mode, measured in the same run.
#
#   bench/peers/cluster_groupby.sh [ROWS] [KEYS] [--threads T] [--repeat R]
#                                  [--pin] [--json] [--keep FILE]
#
# ROWS (default 5000000) and KEYS (default 1000) size a sales CSV made by
# `tessera gen sales --seed 1`. The query, identical both ways:
#   SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store
# Embedded: `tessera sql --threads 2T --table sales=FILE` (one process).
# Cluster: `tessera cluster up --workers 2 --threads T` in a temp directory,
# then `tessera sql --scheduler ADDR` (each worker scans its byte ranges of the
# same file and pre-aggregates; the scheduler merges). Both get 2T executor
# threads in all. T defaults to 1 (this machine has 2 cores).
# Each figure is the best of R runs (default 3), embedded and cluster
# interleaved; wall time, and CPU time of every process involved (the client,
# plus the scheduler and workers for the cluster, read from /proc). The load
# average is printed before and after. Nothing is pinned unless --pin: then the
# embedded run gets cores 0-1 (taskset) and worker N core N-1 (taskset -a).
# Results must agree (integers exactly, AVG within 1e-9 relative) or exit 1.
# The cluster is stopped by its PIDs (SIGTERM, SIGKILL after 5 s) at exit.
#
# Environment: TSR_BIN (default build/bin) holds tessera; TMPDIR picks where
# the CSV and the cluster directory go (removed at exit unless --keep).
# Exit codes as the CLI's: 0 ok, 1 failure, 2 bad usage, 3 binaries not built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

cluster_bench_args "$@"
cluster_bench_work cgb
q="SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store"
cluster_bench_up

# Runs the measurements in Python: wall via perf_counter, CPU via the child's
# rusage plus the /proc utime+stime deltas of the cluster's processes.
TSR_PEERS_DIR="$here" python3 - "$t" "$csv" "$q" "$addr" "$token" "$threads" "$repeat" "$rows" "$keys" \
    "${json:-0}" "$pinning" "$load_before" "$cluster_pids" "${emb_pin[@]}" <<'EOF'
import csv, io, math, os, sys

(t, path, q, addr, token, threads, repeat, rows, keys, as_json, pinning, load_before,
 cpids) = sys.argv[1:14]
emb_pin = sys.argv[14:]
threads, repeat = int(threads), int(repeat)
cpids = [int(p) for p in cpids.split()]
sys.path.insert(0, os.environ["TSR_PEERS_DIR"])
from cpu_timing import compare, report  # noqa: E402

emb = emb_pin + [t, "sql", "--threads", str(2 * threads), "--format", "csv",
                 "--table", "sales=" + path, q]
clu = [t, "sql", "--scheduler", addr, "--token-file", token, "--format", "csv",
       "--table", "sales=" + path, q]
best, outs = compare(emb, clu, cpids, repeat)

def rows_of(text):
    r = list(csv.reader(io.StringIO(text)))
    return sorted(r[1:], key=lambda x: int(x[0]))

a, b = rows_of(outs["embedded"]), rows_of(outs["cluster"])
ok = len(a) == len(b) == int(keys) and all(
    x[:3] == y[:3] and math.isclose(float(x[3]), float(y[3]), rel_tol=1e-9)
    for x, y in zip(a, b))
params = {"rows": int(rows), "keys": int(keys), "workers": 2, "threads_per_worker": threads,
          "embedded_threads": 2 * threads, "repeat": repeat, "pinning": pinning,
          "loadavg_before": load_before}
sys.exit(report("cluster_groupby", f"group-by {rows} rows x {keys} keys from CSV", best, params, as_json == "1", ok))
EOF
