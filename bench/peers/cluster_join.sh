#!/usr/bin/env bash
# cluster_join.sh - a join + group-by (broadcast join) through a local
# 2-worker cluster against embedded mode, measured in the same run.
#
#   bench/peers/cluster_join.sh [ROWS] [KEYS] [--threads T] [--repeat R]
#                               [--pin] [--json] [--keep FILE]
#
# ROWS (default 5000000) and KEYS (default 1000) size a sales CSV made by
# `tessera gen sales --seed 1`; a stores CSV has one row per store 0..KEYS
# (store, tier: one of 7). The query, identical both ways:
#   SELECT st.tier, SUM(s.quantity), COUNT(*), AVG(s.price)
#   FROM sales s JOIN stores st ON s.store = st.store GROUP BY st.tier
# Embedded: `tessera sql --threads 2T --table sales=F --table stores=G`.
# Cluster: `tessera cluster up --workers 2 --threads T` in a temp directory,
# then `tessera sql --scheduler ADDR`: the scheduler splits sales (the larger
# file) into byte ranges, every range task reads stores whole (broadcast),
# joins and pre-aggregates; the scheduler merges. Both get 2T executor
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
cluster_bench_work cjn
dim="$work/stores.csv"
python3 -c 'import sys; k = int(sys.argv[1]); print("store,tier"); [print("%d,tier-%d" % (i, i % 7)) for i in range(k + 1)]' "$keys" >"$dim"
q="SELECT st.tier, SUM(s.quantity), COUNT(*), AVG(s.price) FROM sales s JOIN stores st ON s.store = st.store GROUP BY st.tier"
cluster_bench_up

# Runs the measurements in Python: wall via perf_counter, CPU via the child's
# rusage plus the /proc utime+stime deltas of the cluster's processes.
rc=0
TSR_PEERS_DIR="$here" python3 - "$t" "$csv" "$q" "$addr" "$token" "$threads" "$repeat" "$rows" "$keys" "$dim" \
    "${json:-0}" "$pinning" "$load_before" "$cluster_pids" "${emb_pin[@]}" <<'EOF' || rc=$?
import csv, io, math, os, sys

(t, path, q, addr, token, threads, repeat, rows, keys, dim, as_json, pinning, load_before,
 cpids) = sys.argv[1:15]
emb_pin = sys.argv[15:]
threads, repeat = int(threads), int(repeat)
cpids = [int(p) for p in cpids.split()]
sys.path.insert(0, os.environ["TSR_PEERS_DIR"])
from cpu_timing import compare, report  # noqa: E402

emb = emb_pin + [t, "sql", "--threads", str(2 * threads), "--format", "csv",
                 "--table", "sales=" + path, "--table", "stores=" + dim, q]
clu = [t, "sql", "--scheduler", addr, "--token-file", token, "--format", "csv",
       "--table", "sales=" + path, "--table", "stores=" + dim, q]
best, outs = compare(emb, clu, cpids, repeat)

def rows_of(text):
    r = list(csv.reader(io.StringIO(text)))
    return sorted(r[1:], key=lambda x: x[0])

a, b = rows_of(outs["embedded"]), rows_of(outs["cluster"])
ok = len(a) == len(b) == min(7, int(keys) + 1) and all(
    x[:3] == y[:3] and math.isclose(float(x[3]), float(y[3]), rel_tol=1e-9)
    for x, y in zip(a, b))
params = {"rows": int(rows), "keys": int(keys), "workers": 2, "threads_per_worker": threads,
          "embedded_threads": 2 * threads, "repeat": repeat, "pinning": pinning,
          "loadavg_before": load_before}
title = f"join ({rows} sales rows x {int(keys) + 1} stores, broadcast) + group-by 7 tiers from CSV"
sys.exit(report("cluster_join", title, best, params, as_json == "1", ok))
EOF
# the shape the scheduler chose (join over N ranges, or whole and why)
shape="$(grep -ho "job [0-9]*: \(join over [0-9]* range(s)\|whole on one worker.*\)" "$cdir"/*.log 2>/dev/null | tail -1 || true)"
[ -n "$json" ] || echo "scheduler: ${shape:-no job line found in $cdir}"
exit $rc
