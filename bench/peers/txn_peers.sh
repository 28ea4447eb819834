#!/usr/bin/env bash
# txn_peers.sh - Tessera's SmallBank transactions against PostgreSQL running
# the same mix, durable on both sides, with the same clients, in one run.
#
#   bench/peers/txn_peers.sh [MS_PER_POINT] [--clients 1,4,16] [--keys K]
#                            [--repeat R] [--json]
#
# PostgreSQL (Debian's postgresql; this script installs nothing): a fresh
# cluster (initdb) in a temporary dir, postgres listening on 127.0.0.1 on a
# free port, fsync=on, synchronous_commit=on, full_page_writes=on (the
# defaults, given explicitly), default isolation SERIALIZABLE. Run as root,
# the cluster belongs to the unprivileged `postgres` user (setpriv; postgres
# refuses to run as root). Schema: accounts(custid, name), savings(custid,
# bal), checking(custid, bal), K customers (default 1000), every balance
# 10000. The mix, as `tessera-bench txn` runs it (SmallBank, OLTP-Bench
# weights): Balance 15, DepositChecking 15, TransactSavings 15, Amalgamate
# 15, WriteCheck 25, SendPayment 15, as six pgbench script files with those
# weights; customers drawn uniformly, a quarter of the draws on the 10 hot
# customers 0..9. Each script is one SERIALIZABLE transaction; pgbench
# --max-tries=100 retries one that fails with a serialization failure or a
# deadlock, and every such failure counts as an abort (tessera-bench counts
# each conflicting commit attempt the same way). pgbench -c N -j N (N
# connections over TCP loopback, one thread each), -M prepared, -T seconds
# (MS_PER_POINT rounded up to whole seconds, at least 1); latency p50/p99
# from its per-transaction log (a transaction's time includes its retries).
#
# Tessera, per client count, right after PostgreSQL's point (alternating so
# both see the same machine load): `tessera-bench txn` with
# TSR_BENCH_TXN_ONLY=durable,remote_durable: the same K customers, mix and
# client count, durable (log in a data dir, fdatasync group commit: a commit
# returns once its record is on disk):
#   durable             client threads calling the embedded store
#   remote_durable_tcp  an owner process with the store, client processes
#                       over TCP loopback (a transaction's reads in one
#                       call - UCX would emulate one-sided gets over TCP -
#                       and a commit call): the shape of PostgreSQL's
#                       clients and server, whose scripts read both
#                       balances in one statement
#   remote_durable_sm   the same over shared memory, reads one-sided
# Target: durable transactions >= 5x PostgreSQL's txn/s at equal durability.
# --repeat R (default 1): R such pairs per client count, PostgreSQL and
# Tessera alternating; the table then shows each engine's median txn/s and
# the median of the R per-pair ratios with their range (PostgreSQL's own
# txn/s swung 4.0-7.4 k between runs minutes apart on the 2-vCPU VM, its
# commits waiting on the same virtual disk, so one pair can mislead); the
# target is read on those medians. --json prints every pair's figures,
# params.pair numbering them.
# Also: txn per CPU second of clients plus server (pgbench and every
# postgres process; Tessera's client and owner processes), which the other
# load on a shared machine barely moves. Nothing is pinned (pgbench and
# postgres float; so do Tessera's threads and owner).
#
# Every process is stopped by its PID (postgres: SIGINT, fast shutdown, 20 s,
# then SIGKILL), every wait is bounded, the temporary dir removed.
# TSR_BENCH_TLS=tcp|sm runs one remote set. TSR_BIN: tessera-bench's dir.
# Exit: 0 ran (a missed target is reported, not a failure), 1 a run failed,
# 2 bad usage, 3 a tool is missing (apt-get install postgresql).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

ms=2000
clients="1,4,16"
keys=1000
json=0
repeat=1
args=()
while [ $# -gt 0 ]; do # --repeat here, the shared options in parse_peer_args
    if [ "$1" = --repeat ]; then
        shift
        [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 20 ] ||
            die 2 "--repeat needs a number from 1 to 20"
        repeat="$1"
    else
        args+=("$1")
    fi
    shift
done
parse_peer_args keys:10 ${args[@]+"${args[@]}"}
need_bench_tls

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TSR_BIN:-$root/build/bin}"
[ -x "$bin/tessera-bench" ] || die 3 "$bin/tessera-bench not found" "run 'make build' or set TSR_BIN"
need_tool python3 "apt-get install python3"
# Debian keeps the server binaries out of PATH
pgbin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && { pgbin="$d"; break; }
done
if [ -z "$pgbin" ] && command -v postgres >/dev/null && command -v initdb >/dev/null; then
    pgbin="$(dirname "$(command -v postgres)")"
fi
[ -n "$pgbin" ] || die 3 "postgresql (postgres, initdb) not found" "sudo apt-get install -y postgresql"
tool() { # the client tool $1 next to the server binaries, else on PATH
    if [ -x "$pgbin/$1" ]; then
        echo "$pgbin/$1"
    elif command -v "$1"; then
        :
    else
        die 3 "$1 not found" "sudo apt-get install -y postgresql postgresql-contrib"
    fi
}
pgbench="$(tool pgbench)"
psql="$(tool psql)"
pg_isready="$(tool pg_isready)"
asuser=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die 3 "running as root and there is no 'postgres' user" \
        "sudo apt-get install -y postgresql (creates it), or run as an unprivileged user"
    need_tool setpriv "apt-get install util-linux"
    asuser=(setpriv --reuid=postgres --regid=postgres --clear-groups)
fi

export UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"
export UCX_WARN_UNUSED_ENV_VARS=n

tmp="$(mktemp -d)"
ppid_pg=""
cleanup() {
    stop_pid "$ppid_pg" INT 200 # fast shutdown; bounded: 20 s, then SIGKILL
    rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp"
mkdir "$tmp/pg"
[ "$(id -u)" != 0 ] || chown postgres: "$tmp/pg"

port="$(free_port)"
[ -n "$port" ] || die 1 "no free port found"

(cd "$tmp/pg" && timeout 120 "${asuser[@]}" "$pgbin/initdb" -D "$tmp/pg/data" -U postgres \
    --auth=trust -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1) ||
    die 1 "initdb failed: $(tail -3 "$tmp/initdb.log")"
# setpriv execs: $! is the postmaster itself, which we stop by PID
(cd "$tmp/pg" && exec "${asuser[@]}" "$pgbin/postgres" -D "$tmp/pg/data" \
    -c listen_addresses=127.0.0.1 -p "$port" -c unix_socket_directories="$tmp/pg" \
    -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
    -c default_transaction_isolation=serializable -c max_connections=100 \
    -c logging_collector=off >"$tmp/postgres.log" 2>&1) &
ppid_pg=$!
for _ in $(seq 1 300); do # up to 30 s on a loaded machine
    "$pg_isready" -h 127.0.0.1 -p "$port" -q && break
    kill -0 "$ppid_pg" 2>/dev/null || break
    sleep 0.1
done
"$pg_isready" -h 127.0.0.1 -p "$port" -q || die 1 "postgres did not start: $(tail -3 "$tmp/postgres.log")"
pgver="$("$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'SHOW server_version')"
settings="$("$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc \
    "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN
     ('fsync','synchronous_commit','full_page_writes','wal_sync_method','default_transaction_isolation')")"

"$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >"$tmp/schema.log" 2>&1 <<EOF || die 1 "creating the schema failed: $(tail -3 "$tmp/schema.log")"
CREATE TABLE accounts (custid bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE savings (custid bigint PRIMARY KEY REFERENCES accounts, bal bigint NOT NULL);
CREATE TABLE checking (custid bigint PRIMARY KEY REFERENCES accounts, bal bigint NOT NULL);
INSERT INTO accounts SELECT c, 'customer' || c FROM generate_series(0, $keys - 1) c;
INSERT INTO savings SELECT c, 10000 FROM generate_series(0, $keys - 1) c;
INSERT INTO checking SELECT c, 10000 FROM generate_series(0, $keys - 1) c;
VACUUM ANALYZE;
CHECKPOINT;
EOF

# The mix: one file per transaction type. c1, c2: a quarter of the draws on
# customers 0..9 (the hot ones), the rest uniform; c2 != c1.
draw='\set c1 CASE WHEN random(0, 3) = 0 THEN random(0, 9) ELSE random(0, :k - 1) END
\set c2 CASE WHEN random(0, 3) = 0 THEN random(0, 9) ELSE random(0, :k - 1) END
\if :c2 = :c1
\set c2 (:c1 + 1) % :k
\endif
\set amount random(1, 100)'
sql="$tmp/sql"
mkdir "$sql"
cat >"$sql/balance.sql" <<EOF
$draw
BEGIN;
SELECT s.bal + c.bal FROM savings s JOIN checking c USING (custid) WHERE custid = :c1;
COMMIT;
EOF
cat >"$sql/deposit.sql" <<EOF
$draw
BEGIN;
UPDATE checking SET bal = bal + :amount WHERE custid = :c1;
COMMIT;
EOF
cat >"$sql/transact.sql" <<EOF
$draw
BEGIN;
UPDATE savings SET bal = bal + :amount WHERE custid = :c1;
COMMIT;
EOF
cat >"$sql/amalgamate.sql" <<EOF
$draw
BEGIN;
UPDATE checking SET bal = bal + (SELECT s.bal + c.bal FROM savings s JOIN checking c USING (custid)
    WHERE custid = :c1) WHERE custid = :c2;
UPDATE savings SET bal = 0 WHERE custid = :c1;
UPDATE checking SET bal = 0 WHERE custid = :c1;
COMMIT;
EOF
cat >"$sql/writecheck.sql" <<EOF
$draw
BEGIN;
SELECT s.bal, c.bal FROM savings s JOIN checking c USING (custid) WHERE custid = :c1;
UPDATE checking SET bal = bal - :amount WHERE custid = :c1;
COMMIT;
EOF
cat >"$sql/sendpayment.sql" <<EOF
$draw
BEGIN;
UPDATE checking SET bal = bal - :amount WHERE custid = :c1;
UPDATE checking SET bal = bal + :amount WHERE custid = :c2;
COMMIT;
EOF

python3 - "$bin/tessera-bench" "$port" "$ppid_pg" "$clients" "$ms" "$keys" "$json" "$pgver" \
    "${TSR_BENCH_TLS:-}" "$tmp" "$pgbench" "$psql" "$settings" "$repeat" <<'EOF' || die 1 "the run failed"
import glob, json, math, os, re, resource, statistics, subprocess, sys
(bench, port, pgpid, clients, ms, keys, as_json, pgver, only, tmp, pgbench, psql,
 settings, repeat) = sys.argv[1:15]
repeat = int(repeat)
clients = [int(c) for c in clients.split(",")]
as_json = as_json == "1"
secs = max(1, math.ceil(int(ms) / 1000))
sets = [only] if only else ["tcp", "sm"]
hz = os.sysconf("SC_CLK_TCK")
pgpid = int(pgpid)

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fl = s[s.rindex(")") + 2:].split()
    return int(fl[1]), [int(x) for x in fl[11:15]]  # ppid, utime stime cutime cstime

def pg_cpu():
    """CPU seconds of the postmaster, its exited children and its live ones."""
    total = sum(stat(pgpid)[1])
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid, t = stat(int(d))
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pgpid:
                total += t[0] + t[1]
    return total / hz

def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime

def log(msg):
    if not as_json:
        print(msg, flush=True)

def pct(v, p):
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))] if v else 0.0

def postgres(n):
    for f in glob.glob(f"{tmp}/pglog*"):
        os.remove(f)
    cmd = [pgbench, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-n", "-c", str(n),
           "-j", str(n), "-T", str(secs), "-M", "prepared", "--max-tries=100",
           "-D", f"k={keys}", "-l", f"--log-prefix={tmp}/pglog"]
    for name, w in (("balance", 15), ("deposit", 15), ("transact", 15), ("amalgamate", 15),
                    ("writecheck", 25), ("sendpayment", 15)):
        cmd += ["-f", f"{tmp}/sql/{name}.sql@{w}"]
    cmd.append("postgres")
    s0, c0 = pg_cpu(), children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 120)
    s1, c1 = pg_cpu(), children_cpu()
    if out.returncode != 0:
        sys.exit(f"tessera: error: pgbench failed: {(out.stderr + out.stdout).strip()[-500:]}")
    o = out.stdout
    def num(pat, default=0.0):
        m = re.search(pat, o)
        return float(m.group(1)) if m else default
    done = num(r"number of transactions actually processed: (\d+)")
    failed = num(r"number of failed transactions: (\d+)")
    retries = num(r"total number of retries: (\d+)")
    tps = num(r"tps = ([0-9.]+) \(without initial connection time\)")
    lat = []
    for f in glob.glob(f"{tmp}/pglog*"):
        for line in open(f):
            p = line.split()
            if len(p) >= 3 and p[2].isdigit():
                lat.append(int(p[2]))
    lat.sort()
    attempts = done + failed + retries
    return {"txn_s": tps, "abort_pct": 100.0 * (retries + failed) / attempts if attempts else 0,
            "p50": pct(lat, 0.5) / 1e6, "p99": pct(lat, 0.99) / 1e6, "failed": failed,
            "per_cpu": done / ((s1 - s0) + (c1 - c0)) if (s1 - s0) + (c1 - c0) > 0 else 0}

def tessera(n):
    env = dict(os.environ, TSR_BENCH_TXN_ONLY="durable,remote_durable",
               TSR_BENCH_TXN_CLIENTS=str(n))
    if only:
        env["TSR_BENCH_TLS"] = only
    out = subprocess.run([bench, "txn", "--keys", keys, "--rows", ms, "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        sys.exit(f"tessera: error: tessera-bench txn failed: {out.stderr.strip()[-500:]}")
    figs = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            f = json.loads(line)
            figs[f["name"]] = f
    return figs

modes = ["durable"] + [f"remote_durable_{s}" for s in sets]
# runs[(n, engine)]: one result per pair; figs_runs[n]: tessera-bench's
# figures of each pair
runs, figs_runs, loads = {}, {}, {}
for n in clients:
    loads[n] = loadavg()
    log(f"  [{n} clients] load average before: {loads[n]}")
    figs_runs[n] = []
    for r in range(repeat):
        if repeat > 1:
            log(f"  [{n} clients] pair {r + 1} of {repeat}")
        runs.setdefault((n, "postgres"), []).append(postgres(n))
        figs = tessera(n)
        figs_runs[n].append(figs)
        for m in modes:
            g = lambda k: figs.get(f"{m}_{k}_c{n}", {}).get("value")
            runs.setdefault((n, m), []).append(
                {"txn_s": g("txn_per_s"), "abort_pct": g("abort_pct"), "p50": g("p50"),
                 "p99": g("p99"), "per_cpu": g("txn_per_total_cpu_s") or g("txn_per_cpu_s")})
la_end = loadavg()

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

# each engine's medians over the pairs (one pair: its figures)
res = {k: {f: med([x[f] for x in v]) for f in v[0]} for k, v in runs.items()}
res.update({k: dict(res[k], failed=sum(x["failed"] for x in v))
            for k, v in runs.items() if k[1] == "postgres"})

def pair_ratios(n, m, field="txn_s"):
    """Each pair's Tessera / PostgreSQL ratio of field."""
    out = []
    for t, pg in zip(runs[(n, m)], runs[(n, "postgres")]):
        if t[field] and pg[field]:
            out.append(t[field] / pg[field])
    return out

if as_json:
    for n in clients:
        for r, figs in enumerate(figs_runs[n]):
            pg = runs[(n, "postgres")][r]
            for m in modes:
                for k, pk, time_unit in (("txn_per_s", "txn_s", False), ("p50", "p50", True),
                                         ("p99", "p99", True), ("abort_pct", "abort_pct", None),
                                         ("txn_per_total_cpu_s", "per_cpu", False),
                                         ("txn_per_cpu_s", "per_cpu", False)):
                    f = figs.get(f"{m}_{k}_c{n}")
                    if not f:
                        continue
                    if m == "durable" and k == "txn_per_total_cpu_s":
                        continue
                    if m != "durable" and k == "txn_per_cpu_s":
                        continue  # clients only: the owner's CPU is in the figure above
                    f["peer"] = "postgresql"
                    f["peer_value"] = pg[pk]
                    if time_unit is not None and pg[pk] and f["value"]:
                        f["ratio"] = pg[pk] / f["value"] if time_unit else f["value"] / pg[pk]
                    f["params"]["postgresql"] = pgver
                    f["params"]["pair"] = r + 1
                    print(json.dumps(f))
            for k, unit in (("txn_s", "txn/s"), ("abort_pct", "%"), ("p50", "s"), ("p99", "s"),
                            ("per_cpu", "txn/s")):
                print(json.dumps({"suite": "txn_peers", "name": f"postgres_{k}_c{n}",
                                  "value": pg[k], "unit": unit, "device": "cpu",
                                  "params": {"clients": n, "customers": int(keys),
                                             "seconds": secs, "postgresql": pgver,
                                             "settings": settings, "failed": pg["failed"],
                                             "loadavg_before": loads[n], "pair": r + 1}}))
    sys.exit(0)

print()
print(f"SmallBank mix vs PostgreSQL {pgver}: {keys} customers (25% of draws on 10 hot), "
      f"durable on both sides")
print(f"  PostgreSQL: {settings}; pgbench -c N -j N -M prepared --max-tries=100, {secs} s per point, "
      f"TCP 127.0.0.1")
print(f"  Tessera: log in a data dir, fdatasync group commit; {ms} ms per point; "
      f"durable = embedded store, client threads; remote_durable_* = owner process, client "
      f"processes over the transport")
print(f"  nothing pinned; load average at the first point {loads[clients[0]]}, at the end {la_end}")
print()
rw = 20 if repeat > 1 else 8  # a ratio column with a range in it is wider
print(f"  {'clients':>7} {'engine':<22} {'txn/s':>10} {'ratio':>{rw}} {'abort %':>8} "
      f"{'p50 ms':>8} {'p99 ms':>8} {'txn/CPU s':>10} {'CPU ratio':>{rw}}")
def f(v, spec):
    return format(v, spec) if v is not None else "-"
def ratio_text(rs):
    """The median of the pairs' ratios, with their range when several."""
    if not rs:
        return "-"
    return f"{statistics.median(rs):.2f}x" + (f" ({min(rs):.2f}-{max(rs):.2f})" if len(rs) > 1 else "")
def pg_pairs(n):
    return ", ".join(format(x["txn_s"], ".0f") for x in runs[(n, "postgres")])
for n in clients:
    pg = res[(n, "postgres")]
    print(f"  {n:>7} {'postgresql':<22} {pg['txn_s']:>10.0f} {'':>{rw}} {pg['abort_pct']:>8.2f} "
          f"{pg['p50'] * 1e3:>8.2f} {pg['p99'] * 1e3:>8.2f} {pg['per_cpu']:>10.0f} {'':>{rw}}"
          + (f"  ({pg['failed']:.0f} failed after 100 tries)" if pg["failed"] else "")
          + (f"  (pairs: {pg_pairs(n)})" if repeat > 1 else ""))
    for m in modes:
        t = res[(n, m)]
        r = ratio_text(pair_ratios(n, m))
        rc = ratio_text(pair_ratios(n, m, "per_cpu"))
        print(f"  {n:>7} {'tessera ' + m:<22} {f(t['txn_s'], '10.0f'):>10} "
              f"{r:>{rw}} {f(t['abort_pct'], '8.2f'):>8} "
              f"{f(t['p50'] and t['p50'] * 1e3, '8.2f'):>8} {f(t['p99'] and t['p99'] * 1e3, '8.2f'):>8} "
              f"{f(t['per_cpu'], '10.0f'):>10} {rc:>{rw}}")
if repeat > 1:
    print(f"  (medians of {repeat} pairs; ratio: the median of the pairs' ratios, their range "
          f"in brackets)")
print()
for m in modes:
    best = [statistics.median(pair_ratios(n, m)) for n in clients if pair_ratios(n, m)]
    if best:
        lo, hi = min(best), max(best)
        print(f"  target: transactions >= 5x PostgreSQL at equal durability ({m}): "
              f"{lo:.2f}x..{hi:.2f}x over {','.join(map(str, clients))} clients "
              f"({'met at every count' if lo >= 5 else 'met at some counts' if hi >= 5 else 'MISSED'})")
EOF
