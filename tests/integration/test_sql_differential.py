#!/usr/bin/env python3
"""Differential SQL test: Tessera against the sqlite3 command as the oracle.

What: random tables (sqlgen.make_tables: one > 8192 rows so multi-batch paths
run, NULLs, negative and skewed keys, awkward strings) are written as CSV for
`tessera sql --format csv` and loaded into a SQLite database with the sqlite3
command; a few hundred random queries (sqlgen.QueryGen) run on both and the
outputs are compared: numbers by value (ints exactly, doubles within 1e-9
relative), rows as multisets, and for ORDER BY queries the sequence of sort
keys too. Half the queries run with --threads 1, half with --threads 2.
A second part runs queries over near-INT64 integers where Tessera must fail
with an overflow error (exit 1) exactly when the exact result does not fit
(checked by Python's big integers; SQLite turns such overflow into REAL, so it
is only the oracle where no overflow happens, and for SUM, where it errors too).

With --device DEV every tessera run gets `--device DEV` (filters, hash
aggregations and joins then run on that device where its kernels cover them);
test_sql_differential_opencl.py runs the whole suite so on OpenCL (PoCL).

Usage: test_sql_differential.py [--seed N] [--count N] [--edge-count N]
       [--only I,J] [--keep DIR] [--tessera PATH] [--device DEV] [-v]
Environment (ctest): TSR_BIN (dir holding tessera), TSR_SOURCE_DIR,
TSR_DIFF_DEVICE (the default of --device).
Exit: 0 all passed, 1 some failed, 77 skipped (no tessera or no sqlite3).
"""

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sqlgen  # noqa: E402

TIMEOUT_S = 60          # one tessera/sqlite3 run
TIME_BUDGET_S = 200     # stop starting new queries after this (ctest limit is larger)
REL_TOL = 1e-9
ABS_TOL = 1e-6          # doubles in the data are multiples of 0.25; this only absorbs
                        # summation-order noise on results that cancel to ~0


# ---------------------------------------------------------------- CSV parsing

def parse_csv(text):
    """RFC 4180 parser that keeps NULL (unquoted empty) apart from "" (empty string).
    Returns a list of rows; each field is None or a str."""
    rows, row, i, n = [], [], 0, len(text)
    if n == 0:
        return rows
    while True:
        if i < n and text[i] == '"':
            i += 1
            buf = []
            while True:
                j = text.find('"', i)
                if j < 0:
                    raise ValueError("unterminated quote")
                buf.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            field = "".join(buf)
        else:
            j = i
            while j < n and text[j] not in ',\r\n':
                j += 1
            field = text[i:j] if j > i else None
            i = j
        row.append(field)
        if i >= n:
            rows.append(row)
            break
        c = text[i]
        if c == ',':
            i += 1
            continue
        if c == '\r' and i + 1 < n and text[i + 1] == '\n':
            i += 1
        if text[i] in '\r\n':
            i += 1
            rows.append(row)
            row = []
            if i >= n:
                break
            continue
        raise ValueError("garbage after quoted field at offset %d" % i)
    return rows


# ---------------------------------------------------------------- normalising

class Bad:
    """A field that did not parse as its column's type; never equal to anything."""
    def __init__(self, s):
        self.s = s

    def __repr__(self):
        return "Bad(%r)" % self.s


def norm_value(field, typ):
    if field is None:
        return None
    try:
        if typ == "int":
            return int(field)
        if typ == "double":
            return float(field)
        if typ == "bool":
            return {"true": 1, "false": 0, "1": 1, "0": 0}[field]
    except (ValueError, KeyError):
        return Bad(field)
    return field


def values_equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Bad) or isinstance(b, Bad):
        return False
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, str) or isinstance(b, str):
            return False
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return type(a) is type(b) and a == b


def sort_key(v):
    if v is None:
        return (0, 0)
    if isinstance(v, Bad):
        return (3, v.s)
    if isinstance(v, (int, float)):
        return (1, float("%.9g" % v) if isinstance(v, float) else v)
    return (2, v)


def rows_equal(ra, rb):
    return len(ra) == len(rb) and all(values_equal(a, b) for a, b in zip(ra, rb))


def compare_results(types, order_cols, t_rows, s_rows):
    """Returns None when equal, else a reason."""
    if len(t_rows) != len(s_rows):
        return "row count %d (tessera) vs %d (sqlite)" % (len(t_rows), len(s_rows))
    for r in t_rows:
        if len(r) != len(types):
            return "tessera row has %d fields, expected %d" % (len(r), len(types))
    ta = sorted(t_rows, key=lambda r: [sort_key(v) for v in r])
    sa = sorted(s_rows, key=lambda r: [sort_key(v) for v in r])
    for i, (a, b) in enumerate(zip(ta, sa)):
        if not rows_equal(a, b):
            return "multisets differ (sorted row %d): tessera %r vs sqlite %r" % (i, a, b)
    if order_cols:
        for i, (a, b) in enumerate(zip(t_rows, s_rows)):
            ka = [a[c] for c, _ in order_cols]
            kb = [b[c] for c, _ in order_cols]
            if not rows_equal(ka, kb):
                return "ORDER BY key differs at row %d: tessera %r vs sqlite %r" % (i, ka, kb)
    return None


# ---------------------------------------------------------------- running

def run(cmd, stdin=None):
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT_S)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return "timeout", "", "timed out after %ds" % TIMEOUT_S


def trunc(s, n=1500):
    return s if len(s) <= n else s[:n] + "\n... (%d more chars)" % (len(s) - n)


class Env:
    device = None  # --device for every tessera run (None: the default, cpu)

    def __init__(self, tessera, sqlite, db, tables, dirpath, infer=()):
        self.tessera, self.sqlite, self.db, self.tables, self.dir = tessera, sqlite, db, tables, dirpath
        self.table_args = []
        for t in tables:
            self.table_args += ["--table", "%s=%s" % (t.name, os.path.join(dirpath, t.name + ".csv"))]
            if t.name not in infer:
                self.table_args += ["--schema", sqlgen.schema_arg(t)]

    def tessera_cmd(self, sql, threads, fmt="csv"):
        dev = ["--device", self.device] if self.device else []
        return [self.tessera, "sql"] + self.table_args + dev + ["--format", fmt, "--threads", str(threads), sql]

    def run_tessera(self, sql, threads, fmt="csv"):
        return run(self.tessera_cmd(sql, threads, fmt))

    def run_sqlite(self, sql):
        return run([self.sqlite, "-csv", "-header", "-cmd", "PRAGMA case_sensitive_like=ON", self.db, sql])


def setup(tessera, sqlite, tables, dirpath, rng, infer=()):
    for t in tables:
        sqlgen.write_csv(t, os.path.join(dirpath, t.name + ".csv"), rng)
    db = os.path.join(dirpath, "oracle.db")
    if os.path.exists(db):
        os.unlink(db)
    script = sqlgen.sqlite_load_script(tables)
    with open(os.path.join(dirpath, "load.sql"), "w", encoding="utf-8") as f:
        f.write(script)
    rc, _, err = run([sqlite, db], stdin=script.encode("utf-8"))
    if rc != 0:
        raise RuntimeError("sqlite3 load failed: %s" % err)
    return Env(tessera, sqlite, db, tables, dirpath, infer)


def shell_quote(a):
    if a and all(c.isalnum() or c in "-_./=:,+" for c in a):
        return a
    return "'" + a.replace("'", "'\\''") + "'"


class Reporter:
    def __init__(self, seed, args):
        self.seed, self.args = seed, args
        self.passed = self.failed = 0

    def fail(self, label, idx, sql, threads, reason, env, t_out, t_err, s_out, s_err):
        self.failed += 1
        print("FAIL %s #%d (seed %d, --threads %d): %s" % (label, idx, self.seed, threads, reason))
        print("  query:  %s" % sql)
        print("  tessera stdout:\n" + indent(trunc(t_out)))
        if t_err:
            print("  tessera stderr:\n" + indent(trunc(t_err, 600)))
        print("  sqlite stdout:\n" + indent(trunc(s_out)))
        if s_err:
            print("  sqlite stderr:\n" + indent(trunc(s_err, 600)))
        flag = "--only" if label == "query" else "--only-edge"
        dev = " --device %s" % Env.device if Env.device else ""
        print("  reproduce: python3 %s --seed %d%s %s %d --keep /tmp/tsr-diff-%d" %
              (os.path.abspath(__file__), self.seed, dev, flag, idx, self.seed))
        print("  then:      " + " ".join(shell_quote(a) for a in env.tessera_cmd(sql, threads)).replace(
            env.dir, "/tmp/tsr-diff-%d" % self.seed))
        sys.stdout.flush()


def indent(s):
    return "\n".join("    | " + line for line in s.split("\n"))


def check_query(rep, env, idx, q, threads, label="query"):
    t_rc, t_out, t_err = env.run_tessera(q.sql, threads)
    s_rc, s_out, s_err = env.run_sqlite(q.sql)
    args = (env, t_out, t_err, s_out, s_err)
    if s_rc != 0:
        # The generator avoids everything SQLite rejects; SUM overflow is the one
        # runtime error both must raise.
        if "integer overflow" in s_err and t_rc == 1 and t_err.startswith("tessera: error: "):
            rep.passed += 1
            return
        reason = "sqlite3 failed (exit %s)" % s_rc
        if "integer overflow" in s_err:
            reason = "sqlite3 reports integer overflow; tessera must exit 1 with 'tessera: error: ', got exit %s" % t_rc
        rep.fail(label, idx, q.sql, threads, reason, *args)
        return
    if t_rc != 0:
        rep.fail(label, idx, q.sql, threads, "tessera exit %s" % t_rc, *args)
        return
    try:
        t_rows = parse_csv(t_out)
        s_rows = parse_csv(s_out)
    except ValueError as e:
        rep.fail(label, idx, q.sql, threads, "unparsable CSV: %s" % e, *args)
        return
    if not t_rows:
        rep.fail(label, idx, q.sql, threads, "tessera printed no header row", *args)
        return
    t_head, t_rows = t_rows[0], t_rows[1:]
    s_head, s_rows = (s_rows[0], s_rows[1:]) if s_rows else (None, [])
    if q.names is not None and t_head != q.names:
        rep.fail(label, idx, q.sql, threads, "header %r, expected %r" % (t_head, q.names), *args)
        return
    if s_head is not None and s_head != t_head:
        rep.fail(label, idx, q.sql, threads, "header %r, sqlite has %r" % (t_head, s_head), *args)
        return
    tn = [[norm_value(f, ty) for f, ty in zip(r, q.types)] + r[len(q.types):] for r in t_rows]
    sn = [[norm_value(f, ty) for f, ty in zip(r, q.types)] for r in s_rows]
    reason = compare_results(q.types, q.order_cols, tn, sn)
    if reason:
        rep.fail(label, idx, q.sql, threads, reason, *args)
        return
    if idx % 5 == 0 and label == "query":
        # --format json must carry the same values as --format csv
        j_rc, j_out, j_err = env.run_tessera(q.sql, threads, "json")
        reason = None
        try:
            doc = json.loads(j_out, object_pairs_hook=lambda kv: kv) if j_rc == 0 else None
        except ValueError as e:
            reason = "--format json does not parse: %s" % e
        if j_rc != 0:
            reason = "--format json: exit %s" % j_rc
        elif reason is None:
            jn = [[json_value(v, ty) for (_, v), ty in zip(row, q.types)] for row in doc]
            keys = [[k for k, _ in row] for row in doc]
            if any(k != t_head for k in keys):
                reason = "--format json: keys %r, csv header %r" % (keys[0], t_head)
            else:
                reason = compare_results(q.types, q.order_cols, jn, sn)
                reason = reason and "--format json: " + reason
        if reason:
            rep.fail(label, idx, q.sql, threads, reason, env, j_out, j_err, s_out, s_err)
            return
    rep.passed += 1


def json_value(v, typ):
    if v is None:
        return None
    if typ == "bool":
        return {True: 1, False: 0}.get(v, Bad(repr(v))) if isinstance(v, bool) else Bad(repr(v))
    if typ == "int":
        return v if type(v) is int else Bad(repr(v))
    if typ == "double":
        return float(v) if type(v) in (int, float) else Bad(repr(v))
    return v if isinstance(v, str) else Bad(repr(v))


# ---------------------------------------------------------------- edge integers

def c_div(a, b):
    if b == 0:
        return None
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def c_mod(a, b):
    if b == 0:
        return None
    return a - b * c_div(a, b)


def fits(v):
    return v is None or sqlgen.INT64_MIN <= v <= sqlgen.INT64_MAX


class EdgeQuery:
    def __init__(self, sql, types, names, expect_overflow, order_cols=None):
        self.sql, self.types, self.names, self.order_cols = sql, types, names, order_cols
        self.expect_overflow = expect_overflow   # True, False, or None (ask sqlite: SUM)
        self.kind = "edge"


def gen_edge_query(rng, table):
    rows = table.rows
    cols = {c: i for i, (c, _) in enumerate(table.cols)}
    lits = [1, -1, 2, -2, 0, 3, 10, sqlgen.INT64_MAX, sqlgen.INT64_MAX, 4611686018427387904]
    a = rng.randint(0, len(rows) - 1)
    b = rng.choice([a, a, a + 1, min(a + 3, len(rows) - 1), len(rows) - 1])
    sel = [r for r in rows if a <= r[0] <= b]
    where = "id BETWEEN %d AND %d" % (a, b)
    shape = rng.choice(["arith"] * 5 + ["sum"] * 3 + ["where"] * 2 + ["group"] * 2 + ["agg", "order"])
    if shape == "sum" and rng.random() < 0.6:
        a, b = min(a, len(rows) - 2), len(rows) - 1
        sel = [r for r in rows if a <= r[0] <= b]
        where = "id BETWEEN %d AND %d" % (a, b)

    def operand():
        if rng.random() < 0.7:
            c = rng.choice(["big", "nbig", "big", "nbig", "big", "nbig", "small", "mid"])
            return c, (lambda r, c=c: r[cols[c]])
        v = rng.choice(lits)
        return str(v), (lambda r, v=v: v)

    if shape == "arith" or shape == "where":
        op = rng.choice(["+", "-", "*", "+", "-", "*", "/", "%", "neg"])
        xa, fa = operand()
        if op == "neg":
            text, f = "(- %s)" % xa, (lambda r: -fa(r))
        else:
            xb, fb = operand()
            text = "(%s %s %s)" % (xa, op, xb)
            fn = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
                  "/": c_div, "%": c_mod}[op]
            f = (lambda r: fn(fa(r), fb(r)))
        if shape == "where":
            over = any(not fits(f(r)) for r in rows)
            return EdgeQuery("SELECT id FROM edge WHERE %s > 0" % text, ["int"], ["id"], over)
        over = any(not fits(f(r)) for r in sel)
        return EdgeQuery("SELECT id, %s AS r FROM edge WHERE %s" % (text, where), ["int", "int"],
                         ["id", "r"], over)
    if shape == "sum":
        c = rng.choice(["big", "nbig", "big", "nbig", "small", "mid"])
        s = sum(r[cols[c]] for r in sel)
        # one sign per column, so a partial sum overflows exactly when the total does
        return EdgeQuery("SELECT SUM(%s) AS s, COUNT(*) AS n FROM edge WHERE %s" % (c, where),
                         ["int", "int"], ["s", "n"], not fits(s))
    if shape == "group":
        m = rng.choice([1, 2, 5, 20])
        c = rng.choice(["big", "nbig", "small", "mid"])
        groups = {}
        for r in rows:
            groups.setdefault(r[0] % m, []).append(r[cols[c]])
        over = any(not fits(sum(g)) for g in groups.values())
        return EdgeQuery("SELECT id %% %d AS g, SUM(%s) AS s FROM edge GROUP BY id %% %d" % (m, c, m),
                         ["int", "int"], ["g", "s"], over)
    if shape == "order":
        c = rng.choice(["big", "nbig"])
        return EdgeQuery("SELECT id, %s FROM edge ORDER BY %s %s LIMIT %d" % (
            c, c, rng.choice(["ASC", "DESC"]), rng.randint(1, 5)), ["int", "int"], ["id", c], False,
            order_cols=[(1, False)])
    # agg: never overflows (AVG is a double; MIN/MAX/COUNT are exact)
    return EdgeQuery("SELECT COUNT(*) AS n, MIN(big) AS a, MAX(big) AS b, MIN(nbig) AS c, "
                     "MAX(nbig) AS d, AVG(big) AS e, AVG(nbig) AS f FROM edge WHERE %s" % where,
                     ["int", "int", "int", "int", "int", "double", "double"],
                     list("nabcdef"), False)


def check_edge(rep, env, idx, q, threads):
    if q.expect_overflow:
        t_rc, t_out, t_err = env.run_tessera(q.sql, threads)
        if t_rc == 1 and t_err.startswith("tessera: error: ") and "overflow" in t_err.lower():
            rep.passed += 1
            return
        s_rc, s_out, s_err = env.run_sqlite(q.sql)
        rep.fail("edge", idx, q.sql, threads,
                 "exact result overflows INT64: expected exit 1 and 'tessera: error: ...overflow...', got exit %s"
                 % t_rc, env, t_out, t_err, s_out, s_err)
        return
    check_query(rep, env, idx, q, threads, label="edge")


# ---------------------------------------------------------------- main

def find_tessera(opt):
    cands = [opt] if opt else []
    if os.environ.get("TSR_BIN"):
        cands.append(os.path.join(os.environ["TSR_BIN"], "tessera"))
    src = os.environ.get("TSR_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    cands.append(os.path.join(src, "build", "bin", "tessera"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--edge-count", type=int, default=30)
    ap.add_argument("--only", default=None, help="comma list of query indices to run")
    ap.add_argument("--only-edge", default=None, help="comma list of edge query indices to run")
    ap.add_argument("--keep", default=None, help="write the data here (kept) instead of a temp dir")
    ap.add_argument("--tessera", default=None)
    ap.add_argument("--time-budget", type=float, default=TIME_BUDGET_S,
                    help="stop starting new queries after this many seconds")
    ap.add_argument("--device", default=os.environ.get("TSR_DIFF_DEVICE") or None,
                    help="run tessera with --device DEV (cpu, opencl, cuda, auto, ...)")
    ap.add_argument("--gen-only", action="store_true", help="print the queries, run nothing")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else int(os.environ.get("TSR_DIFF_SEED", random.randrange(1 << 31)))
    Env.device = args.device
    print("seed %d%s" % (seed, " (--device %s)" % args.device if args.device else ""))
    sys.stdout.flush()

    rng = random.Random(seed)
    tables = sqlgen.make_tables(rng)
    edge = sqlgen.make_edge_table(random.Random("%d:edge" % seed))
    # Now and then the big table's types are inferred by the CSV reader instead
    # of given (its size leaves no doubt what they are).
    infer = ("big",) if seed % 3 == 0 else ()
    print("tables: " + ", ".join("%s %d rows" % (t.name, len(t.rows)) for t in tables.values()) +
          ("; big's types inferred" if infer else ""))
    queries = [sqlgen.QueryGen(tables, random.Random("%d:%d" % (seed, i))).gen() for i in range(args.count)]
    equeries = [gen_edge_query(random.Random("%d:e%d" % (seed, i)), edge) for i in range(args.edge_count)]
    if args.gen_only:
        for i, q in enumerate(queries):
            print("%d: %s" % (i, q.sql))
        for i, q in enumerate(equeries):
            print("e%d: %s  [overflow=%s]" % (i, q.sql, q.expect_overflow))
        return 0

    tessera = find_tessera(args.tessera)
    sqlite = shutil.which("sqlite3")
    if not tessera or not sqlite:
        print("SKIP: %s not found" % ("tessera binary (set TSR_BIN)" if not tessera else "sqlite3"))
        return 77
    # A build without a working `sql` command is not something to diff against yet.
    rc, out, err = run([tessera, "--version"])
    if rc != 0:
        print("SKIP: %s --version exits %s: %s" % (tessera, rc, (out + err).strip()[:200]))
        return 77

    only = set(int(x) for x in args.only.split(",")) if args.only else None
    only_edge = set(int(x) for x in args.only_edge.split(",")) if args.only_edge else None
    if only is not None and only_edge is None:
        only_edge = set()
    if only_edge is not None and only is None:
        only = set()

    rep = Reporter(seed, args)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tsr-diff-") as tmp:
        d = args.keep or tmp
        os.makedirs(d, exist_ok=True)
        env = setup(tessera, sqlite, list(tables.values()), d, random.Random("%d:csv" % seed), infer)
        os.makedirs(os.path.join(d, "edge"), exist_ok=True)
        eenv = setup(tessera, sqlite, [edge], os.path.join(d, "edge"), random.Random("%d:csv" % seed))
        stopped = None
        for i, q in enumerate(queries):
            if only is not None and i not in only:
                continue
            if time.monotonic() - start > args.time_budget:
                stopped = i
                break
            if args.verbose:
                print("%d: %s" % (i, q.sql))
            check_query(rep, env, i, q, 1 + i % 2)
        for i, q in enumerate(equeries):
            if only_edge is not None and i not in only_edge:
                continue
            if args.verbose:
                print("e%d: %s  [overflow=%s]" % (i, q.sql, q.expect_overflow))
            check_edge(rep, eenv, i, q, 1 + i % 2)
        if stopped is not None:
            print("time budget of %ds spent: stopped before query %d of %d" % (args.time_budget, stopped, len(queries)))
    print("seed %d: %.1fs" % (seed, time.monotonic() - start))
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
