#!/usr/bin/env bash
# lock_peers.sh - Tessera's distributed locks against the usual Redis lock and
# raw UCX atomics, with the same client processes.
#
#   bench/peers/lock_peers.sh [MS_PER_POINT] [--clients N] [--cluster W] [--json]
#
# Starts Debian's redis-server bound to 127.0.0.1 on a free port (no
# persistence), runs `tessera-bench lock` with TSR_BENCH_REDIS pointing at it,
# so for 1..N client processes (default 32) the same harness measures
#   tessera  acquire + release (exclusive and shared, one lock and many locks)
#   redis    SET name token NX PX 10000 (retried at once while refused), then
#            EVALSHA of the compare-and-delete script
#   raw      two blocking UCX fetch-and-adds to the home's memory
# plus ucx_perftest ucp_cswap latency on the same transport (client CPU 0,
# server CPU 1), and prints the ratios against the targets:
#   uncontended acquire+release p50 <= 2.5 x two raw UCX atomic round trips
#   throughput at 16 clients >= 5 x the Redis lock's
# --cluster W: instead of the suite's own home, a local cluster of W workers
# (`tessera cluster up --workers W --dir D` in a temp dir, its own token, the
# same UCX transport set) whose published lock homes the same client
# processes reach with tsr_lock_cluster_connect (`tessera-bench lock
# --scheduler`); the Redis ratios are printed for that case (no raw atomics
# there). The cluster is stopped with `tessera cluster down`, then any of its
# PIDs still alive is killed; every wait is bounded.
# The Redis server is stopped by its PID on exit, whatever happens.
# TSR_BENCH_TLS=sm (default) or tcp picks the UCX transport set; TSR_BIN the
# directory of tessera-bench (default build/bin).
#
# Exit: 0 ran (targets missed are reported, not failures), 1 a run failed,
# 2 bad usage, 3 a tool is missing (redis-server: apt-get install redis-server).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

ms=400
clients=32
json=0
cluster=0
while [ $# -gt 0 ]; do
    case "$1" in
    --json) json=1 ;;
    --clients)
        shift
        [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]] || die 2 "--clients needs a number"
        clients="$1"
        ;;
    --cluster)
        shift
        [ $# -gt 0 ] && [[ "$1" =~ ^[1-9][0-9]*$ ]] || die 2 "--cluster needs a worker count"
        cluster="$1"
        ;;
    -h | --help)
        print_usage "$0"
        exit 0
        ;;
    *)
        [[ "$1" =~ ^[0-9]+$ ]] || die 2 "unknown argument '$1'" "see $0 --help"
        ms="$1"
        ;;
    esac
    shift
done

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TSR_BIN:-$root/build/bin}"
[ -x "$bin/tessera-bench" ] || die 3 "$bin/tessera-bench not found" "run 'make build' or set TSR_BIN"
[ "$cluster" = 0 ] || [ -x "$bin/tessera" ] || die 3 "$bin/tessera not found" "run 'make build' or set TSR_BIN"
need_tool redis-server "apt-get install redis-server"
need_tool redis-cli "apt-get install redis-tools"

export UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"
export UCX_WARN_UNUSED_ENV_VARS=n
set_name="${TSR_BENCH_TLS:-sm}"
case "$set_name" in
sm) tls="posix,cma,self,tcp" ;;
tcp) tls="tcp" ;;
*) die 2 "TSR_BENCH_TLS must be sm or tcp" ;;
esac

tmp="$(mktemp -d)"
rpid=""
cdir=""
# The cluster's processes: `cluster down` (bounded), then whatever PID of
# its files is still alive gets SIGKILL.
cluster_stop() {
    [ -n "$cdir" ] || return 0
    timeout 30 "$bin/tessera" cluster down --dir "$cdir" >/dev/null 2>&1 || true
    for f in "$cdir"/*.pid; do
        [ -f "$f" ] || continue
        local pid
        pid="$(cat "$f" 2>/dev/null || true)"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
            grep -q tessera "/proc/$pid/cmdline" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    cdir=""
}
cleanup() {
    cluster_stop
    if [ -n "$rpid" ]; then
        kill "$rpid" 2>/dev/null || true
        wait "$rpid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Redis on a free port, 127.0.0.1 only, no persistence, in the foreground of
# a background job so we own its PID.
rport=$((30000 + RANDOM % 20000))
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --protected-mode yes \
    --daemonize no --dir "$tmp" --logfile "$tmp/redis.log" &
rpid=$!
wait_for_redis "$rport" "$rpid"
rver="$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"

# ucx_perftest ucp_cswap on the same transport, client CPU 0 / server CPU 1
cswap=""
if [ "$cluster" = 0 ] && command -v ucx_perftest >/dev/null && command -v taskset >/dev/null; then
    port=$((20000 + RANDOM % 10000))
    UCX_TLS="$tls" taskset -c 1 timeout 60 ucx_perftest -p "$port" >"$tmp/perf_srv.log" 2>&1 &
    spid=$!
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.2
        if out="$(UCX_TLS="$tls" taskset -c 0 timeout 60 ucx_perftest 127.0.0.1 -p "$port" \
            -t ucp_cswap -s 8 -n 20000 2>&1)"; then
            cswap="$(echo "$out" | grep '^Final:' | tail -1 | awk '{print $3}')"
            break
        fi
    done
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
fi

sched_args=()
if [ "$cluster" != 0 ]; then
    cdir="$tmp/cluster"
    token="$tmp/token"
    export TESSERA_TOKEN_FILE="$token" # the cluster's and the bench clients'
    UCX_TLS="$tls" timeout 120 "$bin/tessera" cluster up --workers "$cluster" --dir "$cdir" \
        --token-file "$token" --threads 1 >"$tmp/cluster_up.log" 2>&1 ||
        die 1 "tessera cluster up failed: $(tail -3 "$tmp/cluster_up.log")"
    addr="$(cat "$cdir/scheduler.addr")"
    sched_args=(--scheduler "$addr")
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
bench_env=(TSR_BENCH_REDIS="127.0.0.1:$rport")
[ "$cluster" = 0 ] || bench_env+=(UCX_TLS="$tls")
t0=$(date +%s.%N)
env "${bench_env[@]}" "$bin/tessera-bench" lock --json --rows "$ms" --threads "$clients" \
    ${sched_args[@]+"${sched_args[@]}"} >"$tmp/lock.json" || die 1 "tessera-bench lock failed"
wall="$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?')"
# CPU of the bench and its clients (reaped children of this shell)
cpu="$(awk '{printf "%.1f", ($16+$17)/100}' /proc/$$/stat 2>/dev/null || echo '?')"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
cluster_stop

python3 - "$tmp/lock.json" "$json" "$rver" "${cswap:-}" "$set_name" "$load_before" "$load_after" \
    "$cluster" "$wall" "$cpu" <<'EOF'
import json, sys
path, as_json, rver, cswap, tls = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4], sys.argv[5]
load_before, load_after = sys.argv[6], sys.argv[7]
workers, wall, cpu = int(sys.argv[8]), sys.argv[9], sys.argv[10]
pre = "cluster_" if workers else ""
figs = {}
for line in open(path):
    line = line.strip()
    if line.startswith("{"):
        f = json.loads(line)
        figs[f["name"]] = f
if as_json:
    for f in figs.values():
        print(json.dumps(f))
    if cswap and not workers:
        print(json.dumps({"suite": "lock", "name": "ucx_perftest_cswap_p50",
                          "value": float(cswap), "unit": "us", "device": "cpu"}))
    sys.exit(0)
load = next(iter(figs.values()))["params"] if figs else {}
if workers:
    print(f"locks on a local cluster of {workers} worker(s) (tessera cluster up; the workers' "
          f"published homes) vs Redis {rver} ({tls}); client processes; "
          f"{load.get('ms_per_point', '?')} ms per point")
    print(f"  load average (1/5/15 min) before {load_before}, after {load_after}; "
          f"bench wall {wall} s, client+bench CPU {cpu} s")
    unc = figs[pre + "excl_uncont_c1_p50"]["value"]
    print(f"  uncontended exclusive acquire+release p50, 1 client: {unc:.3f} us")
else:
    print(f"locks vs Redis {rver} and raw UCX ({tls}); client processes; "
          f"{load.get('ms_per_point', '?')} ms per point")
    print(f"  pinning: lock home CPU 1, the single client CPU 0 (busy-polling), more clients "
          f"float; ucx_perftest server CPU 1, client CPU 0")
    print(f"  load average (1/5/15 min) before {load_before}, after {load_after}")
    raw = figs["raw_2amo_p50"]["value"]
    unc = figs["excl_uncont_c1_p50"]["value"]
    print(f"  uncontended exclusive acquire+release p50: {unc:.3f} us")
    print(f"  two raw UCX atomics (tsr_atomic_fadd x2) p50: {raw:.3f} us"
          + (f"; ucx_perftest ucp_cswap p50 {float(cswap):.3f} us (x2 = {2*float(cswap):.3f})"
             if cswap else ""))
    r = unc / raw
    print(f"  ratio {r:.2f}x  (target <= 2.5x: {'met' if r <= 2.5 else 'MISSED'})")
    if "uncont_vs_2amo_cpu" in figs:
        print(f"  client CPU per pair: lock {figs['excl_uncont_c1_cpu_ns']['value']:.0f} ns, raw "
              f"{figs['raw_2amo_cpu_ns']['value']:.0f} ns: {figs['uncont_vs_2amo_cpu']['value']:.2f}x "
              f"(not distorted by descheduling on a loaded machine)")
    if cswap:
        r2 = unc / (2 * float(cswap))
        print(f"  vs 2 x ucx_perftest cswap: {r2:.2f}x")
print()
print(f"  {'clients':>7} {'mode':<22} {'tessera ops/s':>14} {'redis ops/s':>12} {'ratio':>7} "
      f"{'p50 us':>8} {'redis p50':>10} {'p99 us':>8}")
for k, kl in (("uncont", "many locks"), ("cont", "one lock")):
    n = 1
    while f"{pre}excl_{k}_c{n}_ops_s" in figs:
        f = figs[f"{pre}excl_{k}_c{n}_ops_s"]
        p = figs[f"{pre}excl_{k}_c{n}_p50"]
        p99 = figs[f"{pre}excl_{k}_c{n}_p99"]
        pv = f.get("peer_value")
        ratio = f.get("ratio")
        mark = ""
        if n == 16 and ratio is not None:
            mark = "  target >= 5x: " + ("met" if ratio >= 5 else "MISSED")
        print(f"  {n:>7} {'exclusive, ' + kl:<22} {f['value']:>14.0f} "
              f"{(pv or 0):>12.0f} {(ratio or 0):>6.1f}x {p['value']:>8.2f} "
              f"{(p.get('peer_value') or 0):>10.2f} {p99['value']:>8.2f}{mark}")
        n *= 2
    n = 1
    while f"{pre}shared_{k}_c{n}_ops_s" in figs:
        f = figs[f"{pre}shared_{k}_c{n}_ops_s"]
        p = figs[f"{pre}shared_{k}_c{n}_p50"]
        p99 = figs[f"{pre}shared_{k}_c{n}_p99"]
        print(f"  {n:>7} {'shared, ' + kl:<22} {f['value']:>14.0f} {'-':>12} {'-':>7} "
              f"{p['value']:>8.2f} {'-':>10} {p99['value']:>8.2f}")
        n *= 2
EOF
