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
#   redis    N redis-benchmark processes at once, -c 1 each (REQUESTS/N
#   procs    requests each, at least 2,000), rates summed: Tessera's shape
#            (N processes, one request outstanding each); N = 1 is the run
#            above
#   floor    tcp_floor N (bench/peers/tcp_floor.c, built next to
#            tessera-bench; skipped when missing): the same shape with
#            nothing but a plain C epoll server and N blocking client
#            processes - what TCP loopback allows on this machine right
#            then (Redis' and Tessera's gets as a fraction of it). Its
#            clients block in read(); a client that polls instead (Tessera's
#            single client, pinned, 2 s spin) can beat it at N = 1
#   tessera  tessera-bench kv with TSR_BENCH_KV_ONLY=clients: N client
#            processes against one owner process (CPU 1) holding the same
#            100,000 16-byte keys with 64-byte values, in memory:
#              get = tsr_kv_remote_get, one-sided RMA reads (no owner code
#                    over shared memory; the owner's UCX worker serves them
#                    over TCP), every value checked
#              put = a one-write transaction (tsr_txn_put + commit: one call
#                    to the owner, which locks, applies, unlocks)
#            and, for gets, redis-benchmark's shape: ONE client process
#            keeping N gets in flight (tsr_kv_remote_get_many of N random
#            keys per call; figures clients_get_*_<set>_m<N>)
#            per UCX transport set: tcp (TCP loopback, the shape of Redis'
#            clients) and sm (shared memory + CMA); TSR_BENCH_TLS=tcp|sm
#            runs one.
# Pinning: Redis' server and Tessera's owner on CPU 1; one client (Tessera's
# process, redis-benchmark) on CPU 0; more clients float over all CPUs.
# CPU: besides wall-clock ops/s, the CPU per operation of client(s) plus
# server (getrusage of redis-benchmark, /proc/PID/stat of redis-server and
# of Tessera's owner), which other load on a shared machine barely moves.
# Prints three tables - the mixed one (Tessera's N processes vs
# redis-benchmark -c N, as before), and the two like-for-like ones: N
# processes vs N processes, one process with N in flight vs redis-benchmark
# -c N - with ratios (Tessera / Redis), and the target (gets at 16 clients
# >= 2x Redis) read on each like-for-like shape. --json: one JSON object
# per figure (Tessera's, with peer "redis", peer_value and ratio: _c<N>
# against redis-benchmark -c N as before, with params.redis_procs_value
# and ratio_redis_procs for the per-process Redis run; _m<N> against
# redis-benchmark -c N) plus Redis' own figures (suite kv_peers:
# redis_<op>_<k>_c<N> for -c N, redis_procs_<op>_<k>_c<N> for N processes).
# The shared-memory column (sm) is compared with the same Redis over its
# Unix domain socket (--unixsocket; redis-benchmark -s), the fastest local
# transport Redis offers, so each ratio puts a transport beside its like:
# TCP loopback beside TCP, local IPC beside local IPC (the --json figures
# carry params.redis_unix_value / ratio_redis_unix; Redis' own figures
# redis_unix_<op>_<k>_c<N> and redis_unix_procs_<op>_<k>_c<N>).
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
    --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
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

def where(unix):
    return ["-s", os.path.join(tmp, "redis.sock")] if unix else ["-h", "127.0.0.1", "-p", rport]

def redis(test, n, unix=False):
    cmd = ["redis-benchmark"] + where(unix) + ["-c", str(n), "-n", str(requests),
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

def redis_procs(test, n, unix=False):
    # N redis-benchmark processes at once, one connection each: Tessera's
    # shape. Rates summed; p50: median of the processes', p99: the worst.
    per = max(requests // n, 2000)
    cmd = ["redis-benchmark"] + where(unix) + ["-c", "1", "-n", str(per),
           "-P", "1", "-r", "100000", "-d", "64", "-t", test, "--csv"]
    s0, c0 = pid_cpu(rpid), children_cpu()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    s1, c1 = pid_cpu(rpid), children_cpu()
    rates, p50s, p99s = [], [], []
    for out, err, rc in outs:
        if rc != 0:
            sys.exit(f"tessera: error: redis-benchmark failed: {err.strip()[-300:]}")
        rows = [l.replace('"', "").split(",") for l in out.splitlines() if l.strip()]
        r = dict(zip(rows[0], rows[-1]))
        rates.append(float(r["rps"]))
        p50s.append(float(r["p50_latency_ms"]) * 1000)
        p99s.append(float(r["p99_latency_ms"]) * 1000)
    p50s.sort()
    return {"ops_s": sum(rates), "p50": p50s[len(p50s) // 2], "p99": max(p99s),
            "cpu_us": ((s1 - s0) + (c1 - c0)) / (per * n) * 1e6}

def tcp_floor(n):
    # the floor of this shape over TCP loopback at this moment: a plain C
    # epoll server and n blocking client processes (bench/peers/tcp_floor.c)
    exe = os.path.join(os.path.dirname(bench), "tcp_floor")
    if not os.path.exists(exe):
        return None
    out = subprocess.run([exe, str(n), str(ms), "32", "80"], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        sys.exit(f"tessera: error: tcp_floor failed: {out.stderr.strip()[-300:]}")
    _, rate, cpu = out.stdout.split()
    return {"ops_s": float(rate), "cpu_us": float(cpu)}

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
        res[(n, op)]["redis_procs"] = res[(n, op)]["redis"] if n == 1 else redis_procs(test, n)
        if "sm" in sets:  # local IPC beside local IPC: Redis over its Unix socket
            d = res[(n, op)]
            d["redis_unix"] = redis(test, n, True)
            d["redis_procs_unix"] = d["redis_unix"] if n == 1 else redis_procs(test, n, True)
    res[(n, "get")]["floor"] = tcp_floor(n) if "tcp" in sets else None  # a TCP floor
    figs = tessera(n)
    figs_all.update(figs)
    for op in ("get", "put"):
        for s in sets:
            for shape in ("c", "m"):
                g = lambda k: figs.get(f"clients_{op}_{k}_{s}_{shape}{n}", {}).get("value")
                res[(n, op)][s + ("" if shape == "c" else "_m")] = {
                    "ops_s": g("ops_s"), "p50": g("p50"), "p99": g("p99"),
                    "cpu_us": g("total_cpu_us")}
la_end = loadavg()

if as_json:
    for (n, op), d in res.items():
        rd, rp = d["redis"], d["redis_procs"]
        for s in sets:
            for shape in ("c", "m"):
                for k, unit, time_unit in (("ops_s", "ops/s", False), ("p50", "us", True),
                                           ("p99", "us", True), ("total_cpu_us", "us", True)):
                    name = f"clients_{op}_{k}_{s}_{shape}{n}"
                    f = figs_all.get(name)
                    if not f:
                        continue
                    rk = "cpu_us" if k == "total_cpu_us" else k
                    pv = rd[rk]  # redis-benchmark -c N: the peer of both, as before
                    f["peer"] = "redis"
                    f["peer_value"] = pv
                    if pv and f["value"]:
                        f["ratio"] = pv / f["value"] if time_unit else f["value"] / pv
                    f["params"]["redis_version"] = rver
                    f["params"]["redis_shape"] = f"redis-benchmark -c {n} (one process)"
                    if shape == "c":  # the like-for-like peer: N processes, -c 1 each
                        f["params"]["redis_procs_value"] = rp[rk]
                        if rp[rk] and f["value"]:
                            f["params"]["ratio_redis_procs"] = (
                                rp[rk] / f["value"] if time_unit else f["value"] / rp[rk])
                    if s == "sm":  # and the local-IPC peer: Redis over its Unix socket
                        ru = d["redis_procs_unix" if shape == "c" else "redis_unix"][rk]
                        f["params"]["redis_unix_value"] = ru
                        if ru and f["value"]:
                            f["params"]["ratio_redis_unix"] = (
                                ru / f["value"] if time_unit else f["value"] / ru)
                    print(json.dumps(f))
        fl = d.get("floor")
        if fl:
            for k, unit in (("ops_s", "ops/s"), ("cpu_us", "us")):
                print(json.dumps({"suite": "kv_peers", "name": f"tcp_floor_{k}_c{n}",
                                  "value": fl[k], "unit": unit, "device": "cpu",
                                  "params": {"clients": n, "request_bytes": 32,
                                             "reply_bytes": 80,
                                             "shape": f"{n} processes, one request each, "
                                                      "plain C epoll server (tcp_floor)",
                                             "loadavg_before": dict(loads)[n]}}))
        peers = [("redis", rd, f"redis-benchmark -c {n}"),
                 ("redis_procs", rp, f"{n} x redis-benchmark -c 1")]
        if "redis_unix" in d:
            peers += [("redis_unix", d["redis_unix"], f"redis-benchmark -c {n} -s (Unix socket)"),
                      ("redis_unix_procs", d["redis_procs_unix"],
                       f"{n} x redis-benchmark -c 1 -s (Unix socket)")]
        for prefix, rv, shape in peers:
            for k, unit in (("ops_s", "ops/s"), ("p50", "us"), ("p99", "us"), ("cpu_us", "us")):
                print(json.dumps({"suite": "kv_peers", "name": f"{prefix}_{op}_{k}_c{n}",
                                  "value": rv[k], "unit": unit, "device": "cpu",
                                  "params": {"clients": n, "requests": requests, "shape": shape,
                                             "redis_version": rver, "persistence": "off",
                                             "loadavg_before": dict(loads)[n]}}))
    sys.exit(0)

print()
print(f"kv gets/puts vs Redis {rver} GET/SET: 100,000 keys of 16 bytes, 64-byte values, "
      f"in memory (Redis persistence off, Tessera owner without a log)")
print(f"  Tessera: {ms} ms per point; get = one-sided read (over TCP: UCX's emulated RMA, "
      f"get_many: up to N such gets in flight), put = one-write transaction (a commit call)")
print(f"  pinning: server/owner CPU 1; one client process on CPU 0; more float")
print(f"  load average at the first point {loads[0][1]}, at the end {la_end}")
def fmt(v, spec):
    return format(v, spec) if v is not None else "-"
def peer_of(d, rkey, s):
    # TCP beside TCP; shared memory beside Redis' Unix socket
    return d[rkey + "_unix"] if s == "sm" else d[rkey]
def table(title, ops, tkey, rkey, tname, rname):
    print()
    print(f"  {title}")
    hdr = f"  {'N':>4} {'op':<4}"
    for s in sets:
        hdr += f" {tname + ' ' + s:>18} {rname + (' unix' if s == 'sm' else ' tcp'):>16}"
    for s in sets:
        hdr += f" {'ratio ' + s:>9}"
    for s in sets:
        hdr += f" {'p99 us ' + s:>11} {'redis p99':>10}"
    for s in sets:
        hdr += f" {'CPU/op ' + s:>11} {'redis CPU/op':>12}"
    print(hdr + "   (ops/s; CPU/op = client+server us)")
    for op in ops:
        for n in clients:
            d = res[(n, op)]
            line = f"  {n:>4} {op:<4}"
            for s in sets:
                line += f" {fmt(d[s + tkey]['ops_s'], '18.0f'):>18}"
                line += f" {peer_of(d, rkey, s)['ops_s']:>16.0f}"
            for s in sets:
                v = d[s + tkey]["ops_s"]
                r = peer_of(d, rkey, s)["ops_s"]
                line += f" {(fmt(v / r, '.2f') + 'x') if v else '-':>9}"
            for s in sets:
                line += f" {fmt(d[s + tkey]['p99'], '11.1f'):>11}"
                line += f" {peer_of(d, rkey, s)['p99']:>10.1f}"
            for s in sets:
                line += f" {fmt(d[s + tkey]['cpu_us'], '11.2f'):>11}"
                line += f" {peer_of(d, rkey, s)['cpu_us']:>12.2f}"
            print(line)
table("mixed shapes (the earlier headline): Tessera N client processes vs redis-benchmark "
      "-c N (one process)", ("get", "put"), "", "redis", "tessera", "redis -c N")
table("like for like, Tessera's shape: N client processes, one request outstanding each "
      "(Redis: N x redis-benchmark -c 1, rates summed; p99 = worst process)",
      ("get", "put"), "", "redis_procs", "tessera", "redis N procs")
table("like for like, redis-benchmark's shape: ONE client process, N gets in flight "
      "(Tessera: tsr_kv_remote_get_many of N keys; Redis: redis-benchmark -c N -P 1)",
      ("get",), "_m", "redis", "tessera 1p", "redis -c N")
if any(res[(n, "get")].get("floor") for n in clients):
    print()
    print("  the floor of Tessera's shape over TCP loopback right then: a plain C epoll server "
          "(CPU 1) and N client processes,")
    print("  one 32-byte request outstanding each, 80-byte replies, clients blocking in read "
          "(bench/peers/tcp_floor.c);")
    print("  what Redis and Tessera reach of it (a polling client can pass it at N = 1)")
    print(f"  {'N':>4} {'floor rt/s':>12} {'CPU/rt us':>10} {'redis N procs':>14}"
          + "".join(f" {'tessera ' + s:>13}" for s in sets if s == "tcp"))
    for n in clients:
        d = res[(n, "get")]
        fl = d.get("floor")
        if not fl:
            continue
        line = f"  {n:>4} {fl['ops_s']:>12.0f} {fl['cpu_us']:>10.2f}"
        line += f" {d['redis_procs']['ops_s'] / fl['ops_s']:>13.2f}x"
        for s in sets:
            if s == "tcp":
                v = d["tcp"]["ops_s"]
                line += f" {(fmt(v / fl['ops_s'], '.2f') + 'x') if v else '-':>13}"
        print(line)
print()
if 16 in clients:
    print("  target: gets at 16 clients >= 2x Redis, read on the like-for-like shapes "
          "(redis-benchmark's shape is where issue 7's Redis figure comes from):")
    for label, tkey, rkey in (("1 process, 16 in flight vs redis-benchmark -c 16", "_m", "redis"),
                              ("16 processes vs 16 x redis-benchmark -c 1", "", "redis_procs")):
        for s in sets:
            rd = peer_of(res[(16, "get")], rkey, s)
            t = res[(16, "get")][s + tkey]
            if t["ops_s"]:
                r = t["ops_s"] / rd["ops_s"]
                rc = rd["cpu_us"] / t["cpu_us"] if t["cpu_us"] else 0
                vs = "Redis over its Unix socket" if s == "sm" else "Redis over TCP"
                print(f"    {label} ({s}, vs {vs}): {r:.2f}x wall "
                      f"({'met' if r >= 2 else 'MISSED'}); "
                      f"per CPU: {rc:.2f}x ({'met' if rc >= 2 else 'missed'})")
else:
    print("  target (gets at 16 clients >= 2x Redis): not measured (16 not in --clients)")
EOF
