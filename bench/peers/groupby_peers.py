#!/usr/bin/env python3
"""groupby_peers.py - the group-by comparison of Tessera with SQLite and DuckDB.

Run it through groupby_peers.sh, which prepares the virtual environment with
DuckDB and the data file; this script does the measuring.

    groupby_peers.py gen  --rows N --keys K --seed S FILE.csv
    groupby_peers.py run  --csv FILE.csv --rows N --keys K --threads T --bin DIR
                          [--repeat R] [--json]

The query, the same text for every engine:
    SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store

Two scenarios, each the best of R runs (default 3):
  in memory   the table is already loaded; only the query is timed.
              Tessera: `tessera-bench query` (load once, query R times, in process).
              sqlite3: CLI, `:memory:` database, table imported, `.timer on`.
              DuckDB:  Python API, table created from the CSV, query timed with
                       perf_counter around execute().fetchall().
  from CSV    the file is read and queried, end to end.
              Tessera: wall time of `tessera sql --table sales=FILE --format csv`,
                       a whole process (start, load, query, print).
              sqlite3: wall time of a `sqlite3 :memory:` process that creates the
                       table, `.import`s the file and runs the query.
              DuckDB:  in process: connect, SELECT ... FROM read_csv_auto(FILE)
                       GROUP BY store, fetchall. Python's own start-up (~0.1 s)
                       is NOT counted, which favours DuckDB.
ratio = peer time / Tessera time: how many times faster Tessera is (>1: Tessera wins).
Tessera and DuckDB use the same number of threads (DuckDB: SET threads=T);
SQLite is single-threaded by design. Nothing is pinned.

Results of all engines are compared (sums and counts exactly, averages to 1e-9
relative); a disagreement is an error (exit 1), since timing a wrong answer
means nothing.
"""

import argparse
import csv
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

QUERY = "SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store"


def error(msg, code=1):
    print(f"tessera: error: {msg}", file=sys.stderr)
    sys.exit(code)


def note(msg):
    print(f"groupby_peers: {msg}", file=sys.stderr)


# ---- data ------------------------------------------------------------------------


M64 = (1 << 64) - 1


def gen(args):
    """Writes the sales CSV exactly as `tessera gen sales` does (cli/cmd_gen.c),
    for when the CLI has no gen command: splitmix64 draws, multiply-shift below n.
    Slow (about 1 M rows/s) but byte-identical."""
    state = args.seed & M64
    regions = ["north", "south", "east", "west", "central", "north east", '"south, west"',
               "overseas"]

    def below(n):
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        return (z * n) >> 64

    with open(args.file, "w", newline="") as f:
        f.write("id,store,region,product,quantity,price\n")
        buf = []
        for i in range(1, args.rows + 1):
            store = below(args.keys)
            region = regions[below(8)]
            u = below(1000)
            qty = str(below(104) - 3) if below(100) != 0 else ""
            cents = 50 + below(49950)
            buf.append(f"{i},{store},{region},product-{u * u // 2000:04d},{qty},"
                       f"{cents // 100}.{cents % 100:02d}\n")
            if len(buf) >= 100000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


# ---- results ---------------------------------------------------------------------


def normalise(rows):
    """{store: (sum or None, count, avg)} from rows of 4 values."""
    out = {}
    for store, s, c, a in rows:
        s = None if s in (None, "") else int(float(s))
        out[int(store)] = (s, int(c), float(a))
    return out


def compare(name_a, a, name_b, b):
    if len(a) != len(b):
        error(f"results differ: {name_a} has {len(a)} groups, {name_b} has {len(b)}")
    for k, (s, c, avg) in a.items():
        if k not in b:
            error(f"results differ: store {k} is in {name_a}'s result, not in {name_b}'s")
        s2, c2, avg2 = b[k]
        if (s or 0) != (s2 or 0) or c != c2 or abs(avg - avg2) > 1e-9 * max(1.0, abs(avg)):
            error(f"results differ for store {k}: {name_a} {(s, c, avg)}, {name_b} {(s2, c2, avg2)}")


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Best:
    """Keeps the fastest run's wall time and the least CPU time of any run."""

    def __init__(self):
        self.wall = None
        self.cpu = None

    def add(self, wall, cpu):
        self.wall = wall if self.wall is None else min(self.wall, wall)
        self.cpu = cpu if self.cpu is None else min(self.cpu, cpu)


# ---- Tessera ---------------------------------------------------------------------


def tessera_inmem(bin_dir, path, threads, repeat):
    cmd = [os.path.join(bin_dir, "tessera-bench"), "query", "--table", f"sales={path}",
           "--threads", str(threads), "--repeat", str(repeat), "--json", QUERY]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        error(f"tessera-bench query failed (exit {p.returncode}): {p.stderr.strip()}")
    figs = {}
    for line in p.stdout.splitlines():
        o = json.loads(line)
        figs[o["name"]] = o["value"]
    return figs["query_s"], figs.get("query_cpu_s")


def tessera_sql_supports(bin_dir, flag):
    p = subprocess.run([os.path.join(bin_dir, "tessera"), "sql", "--help"], capture_output=True,
                       text=True)
    return flag in p.stdout or flag in p.stderr


def tessera_e2e(bin_dir, path, threads, repeat):
    cmd = [os.path.join(bin_dir, "tessera"), "sql", "--table", f"sales={path}", "--format", "csv"]
    if tessera_sql_supports(bin_dir, "--threads"):
        cmd += ["--threads", str(threads)]
    cmd.append(QUERY)
    best, out = Best(), None
    for _ in range(repeat):
        c0, t0 = children_cpu(), time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        best.add(time.perf_counter() - t0, children_cpu() - c0)
        if p.returncode != 0:
            error(f"tessera sql failed (exit {p.returncode}): {p.stderr.strip()}")
        out = p.stdout
    rows = list(csv.reader(io.StringIO(out)))[1:]
    return best, normalise(rows)


# ---- SQLite ----------------------------------------------------------------------

SQLITE_SCHEMA = ("CREATE TABLE sales(id INTEGER, store INTEGER, region TEXT, product TEXT, "
                 "quantity INTEGER, price REAL);")


def sqlite_inmem(path, repeat):
    # .import stores an empty field as '' (text), not NULL: fix that before
    # timing so SUM sees the same values as the other engines.
    script = [SQLITE_SCHEMA, f".import --csv --skip 1 '{path}' sales",
              "UPDATE sales SET quantity = NULL WHERE quantity = '';", ".timer on"]
    for _ in range(repeat):
        script += [".once /dev/null", QUERY + ";"]
    script += [".timer off", ".mode csv", QUERY + ";"]
    p = subprocess.run(["sqlite3", ":memory:"], input="\n".join(script) + "\n",
                       capture_output=True, text=True)
    if p.returncode != 0:
        error(f"sqlite3 failed (exit {p.returncode}): {p.stderr.strip()}")
    runs = re.findall(r"Run Time: real ([0-9.]+) user ([0-9.]+) sys ([0-9.]+)", p.stdout)
    if len(runs) < repeat:
        error(f"could not read sqlite3's timings from: {p.stdout[:200]!r}")
    best = Best()
    for real, user, sys_ in runs[-repeat:]:
        best.add(float(real), float(user) + float(sys_))
    rows = [r for r in csv.reader(io.StringIO(p.stdout)) if r and not r[0].startswith("Run Time")]
    return best, normalise(rows)


def sqlite_e2e(path, repeat):
    # End to end the '' values stay as they are: SUM treats them as 0, so the
    # numbers match, and a real user would not run the UPDATE either.
    script = "\n".join([SQLITE_SCHEMA, f".import --csv --skip 1 '{path}' sales", ".mode csv",
                        QUERY + ";"]) + "\n"
    best = Best()
    for _ in range(repeat):
        c0, t0 = children_cpu(), time.perf_counter()
        p = subprocess.run(["sqlite3", ":memory:"], input=script, capture_output=True, text=True)
        best.add(time.perf_counter() - t0, children_cpu() - c0)
        if p.returncode != 0:
            error(f"sqlite3 failed (exit {p.returncode}): {p.stderr.strip()}")
    return best


# ---- DuckDB ----------------------------------------------------------------------


def duckdb_inmem(duckdb, path, threads, repeat):
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("CREATE TABLE sales AS SELECT * FROM read_csv_auto(?)", [path])
    best, rows = Best(), None
    for _ in range(repeat):
        c0, t0 = self_cpu(), time.perf_counter()
        rows = con.execute(QUERY).fetchall()
        best.add(time.perf_counter() - t0, self_cpu() - c0)
    con.close()
    return best, normalise(rows)


def duckdb_e2e(duckdb, path, threads, repeat):
    q = QUERY.replace("FROM sales", "FROM read_csv_auto(?)")
    best = Best()
    for _ in range(repeat):
        c0, t0 = self_cpu(), time.perf_counter()
        con = duckdb.connect()
        con.execute(f"SET threads={threads}")
        con.execute(q, [path]).fetchall()
        best.add(time.perf_counter() - t0, self_cpu() - c0)
        con.close()
    return best


# ---- report ----------------------------------------------------------------------


def fmt_s(s):
    if s is None:
        return "skipped"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.3f} s"


def run(args):
    try:
        import duckdb  # noqa: PLC0415 - optional: the venv may lack it
        duck_version = duckdb.__version__
    except ImportError:
        duckdb, duck_version = None, None
        note("DuckDB is not installed in this Python: skipping DuckDB")
    if args.no_duckdb:
        duckdb, duck_version = None, None
    have_sqlite = shutil.which("sqlite3") is not None
    if not have_sqlite:
        note("sqlite3 not found on PATH: skipping SQLite (apt-get install sqlite3)")
    sqlite_version = None
    if have_sqlite:
        sqlite_version = subprocess.run(["sqlite3", "--version"], capture_output=True,
                                        text=True).stdout.split()[0]

    size = os.path.getsize(args.csv)
    loadavg = round(os.getloadavg()[0], 2)  # how busy the machine was: distorts timings
    results = {}  # (scenario, engine) -> seconds
    answers = {}  # engine -> normalised result

    note("Tessera in memory")
    t = Best()
    t.add(*tessera_inmem(args.bin, args.csv, args.threads, args.repeat))
    results["inmem", "tessera"] = t
    note("Tessera from CSV")
    results["e2e", "tessera"], answers["tessera"] = tessera_e2e(args.bin, args.csv, args.threads,
                                                                 args.repeat)
    if duckdb:
        note("DuckDB in memory")
        results["inmem", "duckdb"], answers["duckdb"] = duckdb_inmem(duckdb, args.csv,
                                                                     args.threads, args.repeat)
        note("DuckDB from CSV")
        results["e2e", "duckdb"] = duckdb_e2e(duckdb, args.csv, args.threads, args.repeat)
    if have_sqlite:
        note("sqlite3 in memory")
        results["inmem", "sqlite3"], answers["sqlite3"] = sqlite_inmem(args.csv, args.repeat)
        note("sqlite3 from CSV")
        results["e2e", "sqlite3"] = sqlite_e2e(args.csv, args.repeat)
    for engine, ans in answers.items():
        if engine != "tessera":
            compare("tessera", answers["tessera"], engine, ans)

    params = {"rows": args.rows, "keys": args.keys, "threads": args.threads,
              "repeat": args.repeat, "bytes": size, "query": QUERY,
              "sqlite3": sqlite_version, "duckdb": duck_version, "loadavg": loadavg}
    scenarios = [("inmem", "inmem_query", "in memory (query only)"),
                 ("e2e", "csv_e2e", "from CSV, end to end")]
    peers = [p for p in ("sqlite3", "duckdb") if ("inmem", p) in results]

    if args.json:
        for sc, name, _ in scenarios:
            for kind, suffix in (("wall", "_s"), ("cpu", "_cpu_s")):
                t = getattr(results[sc, "tessera"], kind)
                base = {"suite": "groupby", "name": name + suffix, "value": t, "unit": "s",
                        "device": "cpu"}
                lines = [base] if not peers else []
                for p in peers:
                    pv = getattr(results[sc, p], kind)
                    lines.append({**base, "peer": p, "peer_value": pv,
                                  "ratio": pv / t if t and pv else None})
                for line in lines:
                    print(json.dumps({**line, "params": params}, separators=(",", ":")))
        return

    print(f"groupby vs peers: {args.rows} rows ({size / 1e6:.1f} MB CSV), {args.keys} stores, "
          f"{args.threads} threads for Tessera and DuckDB (SQLite: 1), best of {args.repeat}")
    print(f"  {QUERY}")
    print(f"  sqlite3 {sqlite_version or 'not run'}, DuckDB {duck_version or 'not run'}")
    for kind, title in (("wall", "wall time"), ("cpu", "CPU time, all threads")):
        header = f"  {title:<24}{'Tessera':>10}"
        for p in peers:
            header += f"{p:>12}{'vs ' + p:>12}"
        print(header)
        for sc, _, label in scenarios:
            t = getattr(results[sc, "tessera"], kind)
            line = f"  {label:<24}{fmt_s(t):>10}"
            for p in peers:
                pv = getattr(results[sc, p], kind)
                ratio = f"{pv / t:>11.2f}x" if t and pv else f"{'n/a':>12}"
                line += f"{fmt_s(pv):>12}{ratio}"
            print(line)
    print("  vs PEER = PEER time / Tessera time (above 1: Tessera is faster)")
    if answers:
        print(f"  results agree: {', '.join(sorted(answers))}")
    print(f"  load average when the run began: {loadavg} ({os.cpu_count()} cores online)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--keys", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("file")
    r = sub.add_parser("run")
    r.add_argument("--csv", required=True)
    r.add_argument("--rows", type=int, required=True)
    r.add_argument("--keys", type=int, required=True)
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--bin", required=True)
    r.add_argument("--json", action="store_true")
    r.add_argument("--no-duckdb", action="store_true")
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
