#!/usr/bin/env python3
"""Broadcast joins through a real local cluster, against sqlite3.

What: a scheduler and 3 workers (processes on loopback); the differential
suite's random tables (sqlgen.make_tables: big > 8192 rows with long quoted
text, so it splits into several byte ranges; mid and dim small, with NULL and
duplicated join keys on both sides) and random join queries (sqlgen
QueryGen.gen("join"): 2 and 3 tables, inner joins, with and without GROUP BY
and aggregates, DISTINCT, ORDER BY/LIMIT, self-joins that must stay whole)
run through `tessera sql --scheduler` and through the sqlite3 command, and
are compared exactly as test_sql_differential.py compares (header, types,
multisets, ORDER BY keys). The scheduler's log then says which shape each
query took: most must run as "join" (split over several ranges on several
workers, the small tables broadcast), and a scheduler with --broadcast-max 1
must run the same joins whole (checked on a few). A worker SIGKILLed while it
holds range tasks of a join: they run again elsewhere (with the broadcast
tables), same answer as embedded.

Usage: test_cluster_join.py [--tessera PATH] [-v]
Environment: TSR_BIN (dir holding tessera), TSR_DIFF_SEED (the seed),
TSR_JOIN_COUNT (queries, default 40), TSR_JOIN_BUDGET (seconds for them, default 20).
Exit: 0 passed, 1 failed, 77 skipped (no tessera, no cluster support, no sqlite3).
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
import sqlgen  # noqa: E402
import test_sql_differential as diff  # noqa: E402
from clusterlib import Failed, read, write_token  # noqa: E402

TIME_BUDGET_S = 20  # stop starting queries after this (each takes 0.3-1 s on a loaded machine)


class ClusterEnv(diff.Env):
    """diff.Env whose tessera runs go through the cluster at addr."""

    addr = token = None

    def tessera_cmd(self, sql, threads, fmt="csv"):
        return [self.tessera, "sql", "--scheduler", self.addr, "--token-file", self.token] + \
            self.table_args + ["--format", fmt, sql]

    def run_tessera(self, sql, threads, fmt="csv"):
        return diff.run(self.tessera_cmd(sql, threads, fmt))


def shapes_of(log_text):
    """{job id: (shape, ranges or why, workers)} from the scheduler's log."""
    out = {}
    for m in re.finditer(r"job (\d+): (join|agg|scan) over (\d+) range\(s\) of '[^']*' on (\d+) worker",
                         log_text):
        out[int(m.group(1))] = (m.group(2), int(m.group(3)), int(m.group(4)))
    for m in re.finditer(r"job (\d+): whole on one worker \(([^)]*)\)", log_text):
        out[int(m.group(1))] = ("whole", m.group(2), 1)  # also after a split that did not bind
    return out


def body(test, cl, tmp):
    sqlite = shutil.which("sqlite3")
    seed = int(os.environ.get("TSR_DIFF_SEED", "20261127"))
    count = int(os.environ.get("TSR_JOIN_COUNT", "40"))
    rng = random.Random(seed)
    tables = sqlgen.make_tables(rng)
    token = os.path.join(tmp, "token")
    write_token(token, "%032x" % rng.getrandbits(128))
    env = diff.setup(cl.t, sqlite, list(tables.values()), tmp, random.Random("%d:csv" % seed))
    cenv = ClusterEnv(cl.t, sqlite, env.db, env.tables, tmp)
    sched, addr = cl.start_scheduler(token, ["--min-range", "1"])
    cenv.addr, cenv.token = addr, token
    for i in range(3):
        cl.start_worker(addr, token, "worker%d.log" % i)
    cl.wait_joined(3, 30, "3 workers to join")
    slog = os.path.join(tmp, "scheduler.log")
    queries = [sqlgen.QueryGen(tables, random.Random("%d:j%d" % (seed, i))).gen("join")
               for i in range(count)]
    ran = []

    def differential():
        rep = diff.Reporter(seed, None)
        start = time.monotonic()
        for i, q in enumerate(queries):
            if time.monotonic() - start > float(os.environ.get("TSR_JOIN_BUDGET", TIME_BUDGET_S)):
                print("time budget spent: %d of %d join queries ran" % (i, len(queries)))
                break
            diff.check_query(rep, cenv, i, q, 1)
            ran.append(q)
        if rep.failed:
            raise Failed("%d of %d join queries differ from sqlite3 (seed %d)" %
                         (rep.failed, rep.failed + rep.passed, seed))

    test.check("join queries through the cluster equal sqlite3", differential)

    def shapes():
        got = shapes_of(read(slog))
        kinds = [v[0] for v in got.values()]
        joins = [v for v in got.values() if v[0] == "join"]
        whys = {}
        for v in got.values():
            if v[0] == "whole":
                whys[v[1]] = whys.get(v[1], 0) + 1
        print("shapes: %d join, %d whole %r" % (len(joins), kinds.count("whole"), whys))
        if not joins or len(joins) < len(got) // 2:
            raise Failed("only %d of %d jobs ran as join: %r" % (len(joins), len(got), whys))
        if not any(n >= 3 and w >= 2 for _, n, w in joins):
            raise Failed("no join was split into several ranges on several workers: %r" % joins[:5])
        if "broadcasts" not in read(slog):
            raise Failed("no 'broadcasts' line in the scheduler log")

    test.check("most join queries ran as the join shape over several ranges", shapes)

    # Hand-picked decisions: (query, shape). Compared with embedded tessera
    # (rows as multisets): query 3 orders by a name that is an alias in
    # SQLite and a column here.
    fixed = [
        ("SELECT d.name, COUNT(*) AS n, SUM(b.v) AS sv FROM big b JOIN dim d ON b.k = d.k "
         "GROUP BY d.name ORDER BY d.name", "join"),
        ("SELECT m.name, d.label, m.x + d.k AS s FROM mid m JOIN dim d ON m.k = d.k WHERE m.x > 0",
         "join"),
        ("SELECT d.label, COUNT(*), MIN(b.name), MAX(m.e) FROM dim d JOIN big b ON d.k = b.k "
         "JOIN mid m ON m.bid = b.id GROUP BY d.label", "join"),
        # output columns of one name (k, name): the merge could not tell them apart
        ("SELECT * FROM mid m JOIN dim d ON m.k = d.k ORDER BY m.id, d.name", "whole"),
        # ORDER BY x: the column m.x wins over the alias x, a probe sees it
        ("SELECT m.x AS k2, d.k AS x FROM mid m JOIN dim d ON m.k = d.k ORDER BY x, k2", "whole"),
        ("SELECT b.k, COUNT(*) AS n FROM big b JOIN big c ON b.id = c.id GROUP BY b.k", "whole"),
    ]

    def fixed_decisions():
        bad = []
        emb = [cl.t, "sql"] + cenv.table_args + ["--format", "csv"]
        for q, want in fixed:
            before = len(read(slog))
            rc, out, err = diff.run(cenv.tessera_cmd(q, 1))
            rc2, out2, err2 = diff.run(emb + [q])
            new = read(slog)[before:]
            got = "whole" if "whole on one worker" in new else "join" if " join over " in new else "?"
            if rc != 0 or rc2 != 0:
                bad.append(f"{q}: cluster rc={rc} {err.strip()} / embedded rc={rc2} {err2.strip()}")
            elif sorted(out.split("\n")) != sorted(out2.split("\n")):
                bad.append(f"{q}: cluster and embedded differ:\n{out[:300]}\n{out2[:300]}")
            if got != want:
                bad.append(f"{q}: ran as {got}, expected {want}: {new.strip()[:300]}")
            if want == "join" and "big" in q and "join splits '%s'" % os.path.join(tmp, "big.csv") \
                    not in new:
                bad.append(f"{q}: big.csv (the largest file) was not the split one: {new[:300]}")
        if bad:
            raise Failed("\n  " + "\n  ".join(bad))

    test.check("hand-picked joins: the expected shape, same rows as embedded", fixed_decisions)

    def threshold():
        # --broadcast-max 1: no table fits, the same joins run whole, same answers
        cl2_log = "scheduler2.log"
        addr_file = os.path.join(tmp, "sched2.addr")
        s2 = cl.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                       "--addr-file", addr_file, "--min-range", "1", "--broadcast-max", "0"], cl2_log)
        clusterlib.wait_for(lambda: os.path.exists(addr_file) or s2.poll() is not None, 20,
                            "the second scheduler")
        addr2 = read(addr_file).strip()
        cl.start_worker(addr2, token, "worker2-0.log")
        clusterlib.wait_for(lambda: read(os.path.join(tmp, cl2_log)).count("joined") >= 1, 30,
                            "a worker to join the second scheduler")
        env2 = ClusterEnv(cl.t, sqlite, env.db, env.tables, tmp)
        env2.addr, env2.token = addr2, token
        rep = diff.Reporter(seed, None)
        picked = [q for q in ran if "JOIN" in q.sql.upper()][:4]
        for i, q in enumerate(picked):
            diff.check_query(rep, env2, i, q, 1)
        if rep.failed:
            raise Failed("--broadcast-max 0: %d queries differ" % rep.failed)
        got = shapes_of(read(os.path.join(tmp, cl2_log)))
        if any(v[0] == "join" for v in got.values()):
            raise Failed("--broadcast-max 0 still split a join: %r" % got)

    test.check("--broadcast-max 0 keeps joins whole, same answers", threshold)

    def kill_mid_join():
        slow_env = dict(clusterlib.ENV, TSR_TEST_TASK_DELAY_MS="1500")
        victim = cl.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1"],
                          "victim.log", env=slow_env)
        # (not count("joined"): "a table joined with itself" is in the log too)
        clusterlib.wait_for(lambda: len(re.findall(r"worker \d+ joined:", read(slog))) >= 4, 20,
                            "the slow worker to join")
        q = fixed[2][0]  # three tables, big split
        before = read(slog).count(" join over ")
        p = subprocess.Popen(cenv.tessera_cmd(q, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=clusterlib.ENV)
        cl.procs.append(p)
        clusterlib.wait_for(lambda: read(slog).count(" join over ") > before, 20, "the join to start")
        time.sleep(0.4)  # the slow worker sleeps 1.5 s in each of its tasks
        os.kill(victim.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        if p.returncode != 0:
            raise Failed(f"join failed after the kill: rc={p.returncode} {err.decode()}")
        rc2, out2, err2 = diff.run([cl.t, "sql"] + cenv.table_args + ["--format", "csv", q])
        if rc2 != 0 or sorted(out.decode().split("\n")) != sorted(out2.split("\n")):
            raise Failed(f"wrong result after the kill:\n{out.decode()[:300]}\n{out2[:300]}")
        if "placing it again" not in read(slog):
            raise Failed("the kill did not hit a running task:\n" + read(slog)[-1500:])

    test.check("worker SIGKILLed mid-join: its ranges re-run, same answer", kill_mid_join)


if __name__ == "__main__":
    if not shutil.which("sqlite3"):
        print("skipped: no sqlite3 command")
        sys.exit(77)
    sys.exit(clusterlib.main("tsr-cjoin-", body))
