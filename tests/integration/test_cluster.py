#!/usr/bin/env python3
"""Cluster integration test: a real local cluster of processes.

What: starts `tessera scheduler` and 3 `tessera worker` processes on loopback
(free ports, a temp token file, a temp dir) and checks
  - aggregate, scan and whole-query shapes give the same answer through the
    cluster as embedded mode and as SQLite (python's sqlite3) on random data
    that is split into several byte ranges per query (quoted newlines,
    NULLs, a column NULL in its first rows, a column that widens to DOUBLE);
  - a worker killed with SIGKILL while it holds tasks of a query: the query
    still answers right (its tasks ran again elsewhere), the worker is dead;
  - a stopped (SIGSTOP) worker is declared dead within the heartbeat timeout;
  - a wrong or missing token is refused with exit 5 (and logged by the
    scheduler), malformed SQL/CSV/usage gets exit 2 with the reason;
  - a lost scheduler fails the client with exit 5, not a hang;
  - `tessera cluster up|status|down` lifecycle, a second `up` refused (4).
Every process is stopped by its PID; every wait is bounded.

Usage: test_cluster.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import csv
import json
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import (ENV, Failed, read, run, stop_local_cluster, wait_for,  # noqa: E402
                        write_token)

TIMEOUT_S = 60


# ---- data --------------------------------------------------------------------------

GROUPS = ["alpha", "beta", "x,y", 'say "hi"', "line\nbreak", "Gamma", "naïve"]
WORDS = ["a", "bb", "c c", "d,d", "e\"e", "f\nf", "zz", "Ω"]


def make_data(rng, n):
    rows = []
    for i in range(n):
        rows.append({
            "id": i + 1,
            "k": None if rng.random() < 0.05 else rng.randrange(10),
            "g": None if rng.random() < 0.05 else rng.choice(GROUPS),
            "v": None if rng.random() < 0.1 else rng.randrange(-1000, 1001),
            "d": None if rng.random() < 0.1 else rng.randrange(-4000, 4001) / 4.0,
            "s": None if rng.random() < 0.1 else rng.choice(WORDS),
            # NULL in the first rows of the file, integers later: the split
            # ranges must still agree on BIGINT
            "late": None if i < n // 2 or rng.random() < 0.3 else rng.randrange(100),
            # integers, one double near the end: the whole column is DOUBLE
            "mixed": (0.5 if i == n - 7 else rng.randrange(50)),
        })
    return rows


COLS = ["id", "k", "g", "v", "d", "s", "late", "mixed"]


def write_csv(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLS)
        for r in rows:
            out = []
            for c in COLS:
                v = r[c]
                if v is None:
                    out.append("")
                elif c == "mixed" and v == int(v):
                    out.append(str(int(v)))
                else:
                    out.append(str(v))
            w.writerow(out)


def sqlite_db(rows, urows):
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA case_sensitive_like=ON")
    db.execute("CREATE TABLE t (id INTEGER, k INTEGER, g TEXT, v INTEGER, d REAL, s TEXT, "
               "late INTEGER, mixed REAL)")
    db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?)",
                   [tuple(float(r[c]) if c == "mixed" else r[c] for c in COLS) for r in rows])
    db.execute("CREATE TABLE u (k INTEGER, w TEXT)")
    db.executemany("INSERT INTO u VALUES (?,?)", urows)
    return db


QUERIES = [
    "SELECT COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS sv, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS av FROM t",
    "SELECT k, COUNT(*) AS n, SUM(v) AS sv, AVG(d) AS ad FROM t GROUP BY k ORDER BY k",
    "SELECT g, COUNT(*) AS n, MIN(s) AS mn, MAX(s) AS mx, SUM(d) AS sd FROM t WHERE v > 0 GROUP BY g ORDER BY g",
    "SELECT k, g, SUM(v) AS sv FROM t GROUP BY k, g HAVING COUNT(*) > 5 ORDER BY sv DESC, k, g LIMIT 10",
    "SELECT SUM(late) AS sl, COUNT(late) AS cl, MAX(mixed) AS mm, SUM(mixed) AS sm FROM t",
    "SELECT k, SUM(v) * 2 + COUNT(*) AS x, MAX(d) - MIN(d) AS span FROM t WHERE d IS NOT NULL GROUP BY k ORDER BY k",
    "SELECT COUNT(*) AS n FROM t WHERE g LIKE '%a%' AND s IS NOT NULL",
    "SELECT COUNT(*) AS n, SUM(v) AS sv, AVG(v) AS av, MIN(g) AS mg FROM t WHERE v > 100000",
    "SELECT t.g AS grp, AVG(t.v) AS av FROM t GROUP BY t.g HAVING AVG(t.v) > -5 ORDER BY av DESC, grp",
    "SELECT MIN(g) AS a, MAX(g) AS b, COUNT(g) AS c, COUNT(*) - COUNT(s) AS nulls FROM t",
    "SELECT id, g, v FROM t WHERE v BETWEEN 10 AND 20 ORDER BY id",
    "SELECT id, s FROM t WHERE k = 3 ORDER BY id LIMIT 7 OFFSET 2",
    "SELECT DISTINCT k FROM t ORDER BY k",
    "SELECT COUNT(DISTINCT g) AS dg FROM t",
    "SELECT a.k AS k, COUNT(*) AS n FROM t a JOIN u b ON a.k = b.k GROUP BY a.k ORDER BY a.k",
]


def values_equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def rows_equal(ra, rb):
    return len(ra) == len(rb) and all(
        len(x) == len(y) and all(values_equal(p, q) for p, q in zip(x, y)) for x, y in zip(ra, rb))


def json_rows(text):
    data = json.loads(text, object_pairs_hook=lambda pairs: [v for _, v in pairs])
    return [list(r) for r in data]


# ---- checks -----------------------------------------------------------------------

def body(test, cl, tmp):
    t = cl.t
    rng = random.Random(int(os.environ.get("TSR_DIFF_SEED", "20261126")))
    token = os.path.join(tmp, "token")
    write_token(token, "%032x" % rng.getrandbits(128))
    bad_token = os.path.join(tmp, "bad_token")
    with open(bad_token, "w") as f:
        f.write("not-the-cluster-token-0123456789\n")
    rows = make_data(rng, 3000)
    data = os.path.join(tmp, "t.csv")
    write_csv(rows, data)
    urows = [(k, "w%d" % k) for k in range(0, 10, 2)]
    udata = os.path.join(tmp, "u.csv")
    with open(udata, "w") as f:
        f.write("k,w\n" + "".join("%d,%s\n" % r for r in urows))
    db = sqlite_db(rows, urows)

    sched, addr = cl.start_scheduler(token, ["--min-range", "1"])
    slog = os.path.join(tmp, "scheduler.log")
    workers = []
    for i in range(3):
        workers.append(cl.start_worker(addr, token, "worker%d.log" % i,
                                       ["--data-dir", os.path.join(tmp, "w%d" % i)]))
    cl.wait_joined(3, 30, "3 workers to join")
    base = ["sql", "--scheduler", addr, "--token-file", token, "--table", "t=" + data,
            "--table", "u=" + udata, "--format", "json"]
    emb = ["sql", "--table", "t=" + data, "--table", "u=" + udata, "--format", "json"]

    def differential():
        bad = []
        for q in QUERIES:
            rc, out, err = run(t, base + [q])
            rc2, out2, err2 = run(t, emb + [q])
            if rc != 0 or rc2 != 0:
                bad.append(f"{q}: cluster rc={rc} {err.strip()} / embedded rc={rc2} {err2.strip()}")
                continue
            crow, erow = json_rows(out), json_rows(out2)
            srow = [list(r) for r in db.execute(q).fetchall()]
            if not rows_equal(crow, erow):
                bad.append(f"{q}: cluster {crow[:5]} != embedded {erow[:5]}")
            elif not rows_equal(crow, srow):
                bad.append(f"{q}: cluster {crow[:5]} != sqlite {srow[:5]}")
        # --schema: the user's types hold in every range (vs embedded only: SQLite
        # has no such override)
        q = "SELECT k, SUM(v) AS sv, MAX(late) AS ml FROM t GROUP BY k ORDER BY k"
        sch = ["--schema", "t=v:double,late:varchar"]
        rc, out, err = run(t, base + sch + [q])
        rc2, out2, err2 = run(t, emb + sch + [q])
        if rc != 0 or rc2 != 0 or not rows_equal(json_rows(out), json_rows(out2)) or \
                not isinstance(json_rows(out)[1][1], float):
            bad.append(f"--schema: rc={rc}/{rc2} {out[:300]} {err} / {out2[:300]}")
        if bad:
            raise Failed("\n  " + "\n  ".join(bad))
        log = read(slog)
        for shape in ("agg over", "scan over", "whole on one worker"):
            if shape not in log:
                raise Failed(f"no query ran as '{shape}'")
        if "over 6 range(s)" not in log:
            raise Failed("queries were not split into 6 ranges")

    test.check("differential (cluster vs embedded vs sqlite)", differential)

    def errors():
        rc, _, err = run(t, base[:-2] + ["--format", "csv", "SELECT k, SUM(v) FORM t"])
        if rc != 2 or "tessera: error:" not in err or "^" not in err:
            raise Failed(f"syntax error: rc={rc} {err}")
        rc, _, err = run(t, base + ["SELECT kk, SUM(v) FROM t GROUP BY k"])
        if rc != 3 or "unknown column 'kk'" not in err or "column 8" not in err:
            raise Failed(f"unknown column: rc={rc} {err}")
        badcsv = os.path.join(tmp, "bad.csv")
        with open(badcsv, "w") as f:
            f.write("a,b\n" + "".join("%d,%d\n" % (i, i) for i in range(200)) + "1,2,3\n4,5\n")
        rc, _, err = run(t, ["sql", "--scheduler", addr, "--token-file", token,
                             "--table", "b=" + badcsv, "SELECT SUM(a) FROM b"])
        if rc != 2 or f"{badcsv}:202:" not in err:
            raise Failed(f"malformed CSV: rc={rc} {err}")
        rc, _, err = run(t, ["sql", "--scheduler", "nohostport", "SELECT 1"])
        if rc != 2:
            raise Failed(f"bad --scheduler: rc={rc} {err}")
        rc, _, err = run(t, ["worker", "--scheduler", addr, "--bogus"])
        if rc != 2:
            raise Failed(f"unknown worker option: rc={rc} {err}")
        rc, _, err = run(t, base[:-2] + ["SELECT 1 FROM t", "extra"])
        if rc != 2:
            raise Failed(f"two queries: rc={rc}")

    test.check("malformed input gets exit 2/3 with the reason", errors)

    def auth():
        before = read(slog).count("authentication failed")
        rc, _, err = run(t, ["sql", "--scheduler", addr, "--token-file", bad_token,
                             "--table", "t=" + data, "SELECT COUNT(*) FROM t"])
        if rc != 5 or "authentication" not in err:
            raise Failed(f"wrong token: rc={rc} {err}")
        rc, _, err = run(t, ["sql", "--scheduler", addr, "--token-file",
                             os.path.join(tmp, "missing"), "SELECT 1"])
        if rc != 5:
            raise Failed(f"missing token: rc={rc} {err}")
        w = cl.start(["worker", "--scheduler", addr, "--token-file", bad_token], "badworker.log")
        try:
            w.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise Failed("a worker with a wrong token kept running")
        if w.returncode != 5:
            raise Failed(f"worker with a wrong token: exit {w.returncode}")
        wait_for(lambda: read(slog).count("authentication failed") >= before + 2, 5,
                 "the scheduler to log both refusals")
        if read(token).strip() in read(slog):
            raise Failed("the token appears in the log")

    test.check("wrong token refused with exit 5 and logged", auth)

    def kill_mid_query():
        slow_env = dict(ENV, TSR_TEST_TASK_DELAY_MS="1500")
        victim = cl.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1"],
                          "victim.log", env=slow_env)
        wait_for(lambda: read(slog).count("joined") >= 4, 20, "the slow worker to join")
        q = QUERIES[1]
        jobs_before = read(slog).count(": agg over")
        p = subprocess.Popen([t] + base + [q], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)
        wait_for(lambda: read(slog).count(": agg over") > jobs_before, 20, "the query to start")
        time.sleep(0.4)  # the slow worker sleeps 1.5 s in each of its tasks
        os.kill(victim.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=TIMEOUT_S)
        if p.returncode != 0:
            raise Failed(f"query failed after the kill: rc={p.returncode} {err.decode()}")
        rc2, out2, _ = run(t, emb + [q])
        if not rows_equal(json_rows(out.decode()), json_rows(out2)):
            raise Failed("wrong result after the kill")
        log = read(slog)
        if "placing it again" not in log or "is dead" not in log:
            raise Failed("the kill did not hit a running task:\n" + log[-1500:])

    test.check("worker SIGKILLed mid-query: tasks re-run, same result", kill_mid_query)

    def dead_line(pid):
        for line in read(slog).splitlines():
            if f"(pid {pid} on" in line and "is dead" in line:
                return line
        return None

    def heartbeat():
        w = workers[2]
        os.kill(w.pid, signal.SIGSTOP)
        t0 = time.time()
        try:
            wait_for(lambda: dead_line(w.pid), 8, "the stopped worker to die")
        finally:
            os.kill(w.pid, signal.SIGCONT)
        # the scheduler's own timestamp (UTC HH:MM:SS.mmm) against the stop
        hh, mm, ss = dead_line(w.pid).split()[0].split(":")
        logged = int(hh) * 3600 + int(mm) * 60 + float(ss)
        took = (logged - t0 % 86400) % 86400
        print(f"     (declared dead {took:.2f}s after SIGSTOP)")
        if took > 3.8:  # 3 s timeout; the last answer came before the stop
            raise Failed(f"declared dead {took:.2f}s after the stop (> 3 s + slack)")
        rc, out, err = run(t, base + [QUERIES[0]])
        if rc != 0:
            raise Failed(f"query after the loss: rc={rc} {err}")
        w.wait(timeout=15)  # it lost the scheduler: exits by itself
        if w.returncode != 5:
            raise Failed(f"the stopped worker exited {w.returncode}, not 5")

    test.check("stopped worker declared dead within 3 s", heartbeat)

    def lost_scheduler():
        slow_env = dict(ENV, TSR_TEST_TASK_DELAY_MS="3000")
        cl.start(["worker", "--scheduler", addr, "--token-file", token], "slow2.log",
                 env=slow_env)
        for w in workers[:2]:  # only the slow worker is left
            os.kill(w.pid, signal.SIGTERM)
            w.wait(timeout=10)
            if w.returncode != 0:
                raise Failed(f"SIGTERM: worker exited {w.returncode}")
        p = subprocess.Popen([t] + base + [QUERIES[0]], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)
        jobs = read(slog).count(": agg over")
        wait_for(lambda: read(slog).count(": agg over") > jobs, 20, "the query to start")
        os.kill(sched.pid, signal.SIGKILL)
        t0 = time.time()
        _, err = p.communicate(timeout=20)
        if p.returncode != 5 or "scheduler" not in err.decode():
            raise Failed(f"client: rc={p.returncode} {err.decode()}")
        if time.time() - t0 > 8:
            raise Failed("the client took too long to notice")
        rc, _, err = run(t, base + [QUERIES[0]])
        if rc != 5 or "cannot reach" not in err:
            raise Failed(f"no scheduler: rc={rc} {err}")

    test.check("lost scheduler: client exits 5", lost_scheduler)

    def lifecycle():
        d = os.path.join(tmp, "lc")
        ctoken = os.path.join(tmp, "lc-token")
        up = ["cluster", "up", "--dir", d, "--workers", "2", "--threads", "1",
              "--token-file", ctoken]
        rc, _, err = run(t, up + ["--device", "nosuchdevice"], timeout=20)
        if rc != 2 or not re.search(r"worker \d+ exited", err):
            raise Failed(f"up with a bad device: rc={rc} {err}")
        if any(n.endswith(".pid") for n in os.listdir(d)):
            raise Failed("a failed up left processes behind")
        rc, out, err = run(t, up)
        if rc != 0 or ":" not in out:
            raise Failed(f"up: rc={rc} {out} {err}")
        if os.stat(ctoken).st_mode & 0o777 != 0o600:
            raise Failed("the created token is not mode 0600")
        a = out.strip()
        rc, _, err = run(t, up)
        if rc != 4 or "already running" not in err:
            raise Failed(f"second up: rc={rc} {err}")
        rc, out, err = run(t, ["cluster", "status", "--dir", d, "--format", "json"])
        if rc != 0:
            raise Failed(f"status: rc={rc} {err}")
        st = json.loads(out)
        pids = sorted(int(read(os.path.join(d, f"worker-{i}.pid"))) for i in (1, 2))
        if sorted(w["pid"] for w in st["workers"]) != pids or \
                any(w["state"] != "ready" or w["device"] != "cpu" for w in st["workers"]):
            raise Failed(f"status: {st} (pids {pids})")
        rc, out, err = run(t, ["sql", "--scheduler", a, "--token-file", ctoken, "--table",
                               "t=" + data, "--format", "csv", "SELECT COUNT(*) AS n FROM t"])
        if rc != 0 or out.split() != ["n", "3000"]:
            raise Failed(f"sql on the local cluster: rc={rc} {out} {err}")
        all_pids = pids + [int(read(os.path.join(d, "scheduler.pid")))]
        rc, out, err = run(t, ["cluster", "down", "--dir", d])
        if rc != 0 or "stopped 3" not in out:
            raise Failed(f"down: rc={rc} {out} {err}")
        for pid in all_pids:
            stat = read(f"/proc/{pid}/stat")
            if stat and stat.split(")")[-1].split()[0] not in ("Z", "X"):
                raise Failed(f"pid {pid} still running after down")
        rc, _, err = run(t, ["cluster", "status", "--dir", d])
        if rc != 5:
            raise Failed(f"status after down: rc={rc} {err}")

    test.check("cluster up/status/down lifecycle", lifecycle)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr-cluster-", body,
                             after=lambda t, tmp: stop_local_cluster(os.path.join(tmp, "lc"))))
