#!/usr/bin/env bash
# kv_peers.sh - Tessera's remote kv gets and puts against Redis GET and SET,
# with the same number of clients, keys and value sizes, in the same run.
#
#   bench/peers/kv_peers.sh [MS_PER_POINT] [--clients 1,2,4,8,16,32]
#                           [--requests N] [--json]
#
# Starts Debian's redis-server on 127.0.0.1 on a free port, pinned to CPU 1,
# persistence OFF (--save '' --appendonly no: Tessera's owner keeps its table
# in memory with no log, so neither side writes to disk), loads 100,000 keys
# "key:000000000000".."key:000000099999" with 64-byte values, then for each
# client count N, alternating so both see the same machine load:
#   redis    redis-benchmark -c N -n REQUESTS -P 1 -r 100000 -d 64 -t get
#            (then -t set), --csv: one process multiplexing N connections,
#            one request in flight per connection (no pipelining)
#   tessera  tessera-bench kv with TSR_BENCH_KV_ONLY=clients: N client
#            processes against one owner process (CPU 1) holding the same
#            100,000 16-byte keys with 64-byte values, in memory:
#              get = tsr_kv_remote_get, one-sided RMA reads (no owner code
#                    over shared memory; the owner's UCX worker serves them
#                    over TCP), every value checked
#              put = a one-write transaction (tsr_txn_put + commit: one call
#                    to the owner, which locks, applies, unlocks)
#            per UCX transport set: tcp (TCP loopback, the shape of Redis'
#            clients) and sm (shared memory + CMA); TSR_BENCH_TLS=tcp|sm
#            runs one.
# Pinning: Redis' server and Tessera's owner on CPU 1; one client (Tessera's
# process, redis-benchmark) on CPU 0; more clients float over all CPUs.
# CPU: besides wall-clock ops/s, the CPU per operation of client(s) plus
# server (getrusage of redis-benchmark, /proc/PID/stat of redis-server and
# of Tessera's owner), which other load on a shared machine barely moves.
# Prints a table, ratios (Tessera / Redis) and the target: gets at 16 clients
# >= 2x Redis. --json: one JSON object per figure (Tessera's, with peer
# "redis", peer_value and ratio) plus Redis' own figures (suite kv_peers).
# Redis is stopped by its PID on exit, whatever happens.
#
# Exit: 0 ran (a missed target is reported, not a failure), 1 a run failed,
# 2 bad usage, 3 a tool is missing (apt-get install redis-server redis-tools).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

ms=300
clients="1,2,4,8,16,32"
requests=20000
json=0
parse_peer_args requests:0 "$@"

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TSR_BIN:-$root/build/bin}"
[ -x "$bin/tessera-bench" ] || die 3 "$bin/tessera-bench not found" "run 'make build' or set TSR_BIN"
need_tool redis-server "apt-get install redis-server"
need_tool redis-cli "apt-get install redis-tools"
need_tool redis-benchmark "apt-get install redis-tools"
need_tool python3 "apt-get install python3"
need_tool taskset "apt-get install util-linux"
need_bench_tls

export UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"
export UCX_WARN_UNUSED_ENV_VARS=n

tmp="$(mktemp -d)"
rpid=""
cleanup() {
    stop_pid "$rpid" TERM 50 # bounded: 5 s, then SIGKILL
    rm -rf "$tmp"
}
trap cleanup EXIT

# Redis on a free port, 127.0.0.1 only, no persistence, pinned to CPU 1, in
# the foreground of a background job so we own its PID.
rport="$(free_port)"
[ -n "$rport" ] || die 1 "no free port found"
taskset -c 1 redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
    --protected-mode yes --daemonize no --dir "$tmp" --logfile "$tmp/redis.log" &
rpid=$!
wait_for_redis "$rport" "$rpid"
rver="$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"

# the same keys as Tessera's owner (key:%012d, what redis-benchmark -r uses)
python3 -c '
import sys
out = sys.stdout.buffer
v = b"v" * 64
for k in range(100000):
    key = b"key:%012d" % k
    out.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$64\r\n" + v + b"\r\n")
' | timeout 120 redis-cli -h 127.0.0.1 -p "$rport" --pipe >"$tmp/load.log" 2>&1 ||
    die 1 "loading Redis failed: $(tail -2 "$tmp/load.log")"
nkeys="$(redis-cli -h 127.0.0.1 -p "$rport" dbsize)"
[ "$nkeys" = 100000 ] || die 1 "Redis holds $nkeys keys, expected 100000"

python3 - "$bin/tessera-bench" "$rport" "$rpid" "$clients" "$ms" "$requests" "$json" "$rver" \
    "${TSR_BENCH_TLS:-}" "$tmp" <<'EOF' || die 1 "the run failed"
import json, os, resource, subprocess, sys
bench, rport, rpid, clients, ms, requests, as_json, rver, only, tmp = sys.argv[1:11]
clients = [int(c) for c in clients.split(",")]
requests = int(requests)
as_json = as_json == "1"
sets = [only] if only else ["tcp", "sm"]
hz = os.sysconf("SC_CLK_TCK")

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def pid_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / hz

def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime

def log(msg):
    if not as_json:
        print(msg, flush=True)

def redis(test, n):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", rport, "-c", str(n), "-n", str(requests),
           "-P", "1", "-r", "100000", "-d", "64", "-t", test, "--csv"]
    if n == 1:
        cmd = ["taskset", "-c", "0"] + cmd
    s0, c0 = pid_cpu(rpid), children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    s1, c1 = pid_cpu(rpid), children_cpu()
    if out.returncode != 0:
        sys.exit(f"tessera: error: redis-benchmark failed: {out.stderr.strip()[-300:]}")
    rows = [l.replace('"', "").split(",") for l in out.stdout.splitlines() if l.strip()]
    head, vals = rows[0], rows[-1]
    r = dict(zip(head, vals))
    return {"ops_s": float(r["rps"]), "p50": float(r["p50_latency_ms"]) * 1000,
            "p99": float(r["p99_latency_ms"]) * 1000,
            "cpu_us": ((s1 - s0) + (c1 - c0)) / requests * 1e6}

def tessera(n):
    env = dict(os.environ, TSR_BENCH_KV_ONLY="clients", TSR_BENCH_KV_CLIENTS=str(n),
               TSR_BENCH_KV_MS=str(ms))
    if only:
        env["TSR_BENCH_TLS"] = only
    out = subprocess.run([bench, "kv", "--json"], capture_output=True, text=True, env=env,
                         timeout=600)
    if out.returncode != 0:
        sys.exit(f"tessera: error: tessera-bench kv failed: {out.stderr.strip()[-500:]}")
    figs = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            f = json.loads(line)
            figs[f["name"]] = f
    return figs

res = {}  # (n, op) -> {"redis": {...}, "tcp": {...}, "sm": {...}}
figs_all = {}
loads = []
for n in clients:
    la = loadavg()
    loads.append((n, la))
    log(f"  [{n} clients] load average before: {la}")
    for op, test in (("get", "get"), ("put", "set")):
        res[(n, op)] = {"redis": redis(test, n)}
    figs = tessera(n)
    figs_all.update(figs)
    for op in ("get", "put"):
        for s in sets:
            g = lambda k: figs.get(f"clients_{op}_{k}_{s}_c{n}", {}).get("value")
            res[(n, op)][s] = {"ops_s": g("ops_s"), "p50": g("p50"), "p99": g("p99"),
                               "cpu_us": g("total_cpu_us")}
la_end = loadavg()

if as_json:
    for (n, op), d in res.items():
        rd = d["redis"]
        for s in sets:
            for k, unit, time_unit in (("ops_s", "ops/s", False), ("p50", "us", True),
                                       ("p99", "us", True), ("total_cpu_us", "us", True)):
                name = f"clients_{op}_{k}_{s}_c{n}"
                f = figs_all.get(name)
                if not f:
                    continue
                pv = rd["cpu_us" if k == "total_cpu_us" else k]
                f["peer"] = "redis"
                f["peer_value"] = pv
                if pv and f["value"]:
                    f["ratio"] = pv / f["value"] if time_unit else f["value"] / pv
                f["params"]["redis_version"] = rver
                print(json.dumps(f))
        for k, unit in (("ops_s", "ops/s"), ("p50", "us"), ("p99", "us"), ("cpu_us", "us")):
            print(json.dumps({"suite": "kv_peers", "name": f"redis_{op}_{k}_c{n}",
                              "value": rd[k], "unit": unit, "device": "cpu",
                              "params": {"clients": n, "requests": requests,
                                         "redis_version": rver, "persistence": "off",
                                         "loadavg_before": dict(loads)[n]}}))
    sys.exit(0)

print()
print(f"kv gets/puts vs Redis {rver} GET/SET: 100,000 keys of 16 bytes, 64-byte values, "
      f"in memory (Redis persistence off, Tessera owner without a log)")
print(f"  Tessera: N client processes, {ms} ms per point; get = one-sided RMA read, "
      f"put = one-write transaction (a commit call)")
print(f"  Redis: redis-benchmark -c N -n {requests} -P 1 -r 100000 -d 64 (one process, "
      f"N connections, no pipelining)")
print(f"  pinning: server/owner CPU 1; 1 client on CPU 0; more clients float")
print(f"  load average at the first point {loads[0][1]}, at the end {la_end}")
print()
hdr = f"  {'clients':>7} {'op':<4}"
for s in sets:
    hdr += f" {'tessera ' + s:>14}"
hdr += f" {'redis':>10}"
for s in sets:
    hdr += f" {'ratio ' + s:>9}"
for s in sets:
    hdr += f" {'p99 us ' + s:>11}"
hdr += f" {'redis p99':>10}"
for s in sets:
    hdr += f" {'CPU/op ' + s:>11}"
hdr += f" {'redis CPU/op':>12}"
print(hdr + "   (ops/s; CPU/op = client+server us)")
def fmt(v, spec):
    return format(v, spec) if v is not None else "-"
for op in ("get", "put"):
    for n in clients:
        d = res[(n, op)]
        rd = d["redis"]
        line = f"  {n:>7} {op:<4}"
        for s in sets:
            line += f" {fmt(d[s]['ops_s'], '14.0f'):>14}"
        line += f" {rd['ops_s']:>10.0f}"
        for s in sets:
            v = d[s]["ops_s"]
            line += f" {(fmt(v / rd['ops_s'], '.2f') + 'x') if v else '-':>9}"
        for s in sets:
            line += f" {fmt(d[s]['p99'], '11.1f'):>11}"
        line += f" {rd['p99']:>10.1f}"
        for s in sets:
            line += f" {fmt(d[s]['cpu_us'], '11.2f'):>11}"
        line += f" {rd['cpu_us']:>12.2f}"
        print(line)
print()
if 16 in clients:
    rd = res[(16, "get")]["redis"]
    for s in sets:
        t = res[(16, "get")][s]
        if t["ops_s"]:
            r = t["ops_s"] / rd["ops_s"]
            rc = rd["cpu_us"] / t["cpu_us"] if t["cpu_us"] else 0
            print(f"  target: gets at 16 clients >= 2x Redis ({s}): {r:.2f}x wall "
                  f"({'met' if r >= 2 else 'MISSED'}); per CPU: {rc:.2f}x "
                  f"({'met' if rc >= 2 else 'missed'})")
else:
    print("  target (gets at 16 clients >= 2x Redis): not measured (16 not in --clients)")
EOF
