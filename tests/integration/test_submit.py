#!/usr/bin/env python3
"""`tessera submit` and the progress bar on a real local cluster.

What: starts `tessera scheduler` and 2 `tessera worker --plugin` processes on
loopback (the plugin is examples/plugins/density_plugin.c, compiled here with
the C compiler) and checks
  - a SQL job file (two statements) gives what embedded `tessera sql` gives
    for each statement, on the cluster (`--scheduler` and `--dir`) and
    embedded;
  - examples/graph_job.json (a plugin user task and a sql task) gives the same
    result on the cluster as embedded `tessera submit --plugin` and as
    examples/graph_example.c (which runs the graph embedded);
  - malformed job files (bad JSON with its line, unknown key, cycle, dangling
    input, unknown output task, empty SQL) exit 2 with the reason; a missing
    file exits 3; a kind no worker knows exits 3 naming the task;
  - a worker SIGKILLed while it runs graph tasks: they run again elsewhere and
    the result is right;
  - with stderr on a pty (python's pty module) `submit` and `sql --scheduler`
    draw a progress bar and clear it; piped, stderr stays empty.
Every process is stopped by its PID; every wait is bounded.

Usage: test_submit.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera), CC (default cc).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, run, wait_for, write_token  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 60


def ok(tessera, args, what):
    rc, out, err = run(tessera, args)
    if rc != 0:
        raise Failed(f"{what}: exit {rc}: {err}")
    return out


def build_plugin(tmp):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("clang") or "gcc"
    so = os.path.join(tmp, "density_plugin.so")
    p = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I", os.path.join(ROOT, "include"),
                        "-o", so, os.path.join(ROOT, "examples", "plugins", "density_plugin.c")],
                       capture_output=True, timeout=120)
    if p.returncode != 0:
        raise Failed("cannot build the plugin: " + p.stderr.decode())
    return so


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def under_pty(cmd, timeout=TIMEOUT_S):
    """Runs cmd with stderr on a pty, stdout piped; returns (rc, stdout, tty text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                         env=ENV)
    os.close(slave)
    tty, deadline = b"", time.time() + timeout
    try:
        while time.time() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                tty += chunk
            elif p.poll() is not None:
                break
        out, _ = p.communicate(timeout=max(1, deadline - time.time()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
        os.close(master)
    return p.returncode, out.decode("utf-8", "replace"), tty.decode("utf-8", "replace")


def fan_job(tmp, name, cities, n):
    """n independent sql tasks over cities, concatenated by one sink."""
    tasks = [{"id": "q%d" % i, "kind": "sql", "inputs": ["cities"],
              "sql": "SELECT country, COUNT(*) AS n, %d AS part FROM cities GROUP BY country" % i}
             for i in range(n)]
    # q0 twice: a task may read a value more than once
    tasks.append({"id": "merged", "kind": "concat",
                  "inputs": ["q%d" % i for i in range(n)] + ["q0"]})
    tasks.append({"id": "report", "kind": "sql", "inputs": ["merged"],
                  "sql": "SELECT country, SUM(n) AS n, SUM(part) AS parts FROM merged "
                         "GROUP BY country ORDER BY country"})
    job = {"tables": [{"name": "cities", "path": cities}], "tasks": tasks}
    return write(os.path.join(tmp, name), json.dumps(job))


def body(test, cl, tmp):
    t = cl.t
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    plugin = build_plugin(tmp)
    cities = os.path.join(ROOT, "tests", "data", "cities.csv")
    graph_job = os.path.join(ROOT, "examples", "graph_job.json")

    sched, addr = cl.start_scheduler(token, ["--min-range", "1"])
    slog = os.path.join(tmp, "scheduler.log")
    for i in range(2):
        cl.start_worker(addr, token, "worker%d.log" % i, ["--plugin", plugin])
    cl.wait_joined(2, 30, "2 workers to join")
    # a `cluster up`-style directory pointing at this cluster, for --dir
    cdir = os.path.join(tmp, "cdir")
    os.mkdir(cdir)
    write(os.path.join(cdir, "scheduler.addr"), addr + "\n")
    write(os.path.join(cdir, "token.path"), token + "\n")
    remote = ["--scheduler", addr, "--token-file", token]

    def sql_job():
        stmts = ["SELECT country, COUNT(*) AS n, SUM(population) AS pop FROM cities "
                 "GROUP BY country ORDER BY country",
                 "SELECT city, area_km2 FROM cities WHERE population > 1000000 ORDER BY city"]
        job = write(os.path.join(tmp, "job.sql"),
                    "-- two statements; the ';' in this comment does not count\n"
                    + ";\n".join(stmts) + ";\n")
        want = "".join(ok(t, ["sql", "--table", "cities=" + cities, "--format", "csv", s],
                          "embedded sql") for s in stmts)
        args = ["submit", "--table", "cities=" + cities, "--format", "csv", job]
        for how, extra in (("--scheduler", remote), ("--dir", ["--dir", cdir]), ("embedded", [])):
            got = ok(t, args[:1] + extra + args[1:], "submit " + how)
            if got != want:
                raise Failed(f"submit {how}:\n{got}\nwant:\n{want}")
        # sql --dir reads the address and token from the directory
        got = ok(t, ["sql", "--dir", cdir, "--table", "cities=" + cities, "--format", "csv",
                     stmts[0]], "sql --dir")
        if got != want[:len(got)] or not got:
            raise Failed("sql --dir gave:\n" + got)

    test.check("SQL job file: cluster (--scheduler, --dir) and embedded equal tessera sql",
               sql_job)

    def graph_job_check():
        got = ok(t, ["submit"] + remote + ["--format", "csv", graph_job], "cluster graph")
        emb = ok(t, ["submit", "--plugin", plugin, "--format", "csv", graph_job], "embedded")
        if got != emb:
            raise Failed(f"cluster:\n{got}\nembedded:\n{emb}")
        rows = [line.split(",") for line in got.strip().split("\n")[1:]]
        if len(rows) != 4 or rows[0][0] != "France":
            raise Failed("unexpected result:\n" + got)
        ex = os.path.join(os.path.dirname(t), "example_graph_example")
        if os.path.exists(ex):  # the C example, embedded, prints "%.1f" densities
            p = subprocess.run([ex, os.path.join(ROOT, "tests", "data")], capture_output=True,
                               timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
            # the table, then a blank line and the tasks' timings
            lines = p.stdout.decode().split("\n\n")[0].strip().split("\n")[1:]
            want = [(c, n, d) for c, n, d in (line.split("\t") for line in lines)]
            mine = [(c, n, "NULL" if d == "" else "%.1f" % float(d)) for c, n, d in rows]
            if p.returncode != 0 or want != mine:
                raise Failed(f"graph_example says {want}, the cluster {mine}")
        if "graph job" not in read(slog):
            raise Failed("the scheduler did not run a graph job")

    test.check("JSON graph with a plugin task: cluster = embedded = graph_example",
               graph_job_check)

    def malformed():
        cases = [
            ("bad.json", '{"tasks": [\n  {"id": "a", "kind": "sql",, }\n]}', 2, "bad.json:2"),
            ("key.json", '{"tasks": [{"id": "a", "kind": "k", "input": ["x"]}]}', 2,
             "unknown key 'input' in task a"),
            ("cycle.json", '{"tasks": [{"id": "a", "kind": "identity", "inputs": ["b"]},'
             '{"id": "b", "kind": "identity", "inputs": ["a"]}]}', 2, "cycle"),
            ("dangle.json", '{"tasks": [{"id": "a", "kind": "identity", "inputs": ["nope"]}]}',
             2, "task 'a' reads 'nope'"),
            ("out.json", '{"tasks": [{"id": "a", "kind": "k"}], "outputs": ["b"]}', 2,
             "unknown task"),
            ("empty.sql", "-- nothing here\n", 2, "no SQL statement"),
        ]
        for name, text, code, want in cases:
            path = write(os.path.join(tmp, name), text)
            for extra in (remote, []):
                rc, out, err = run(t, ["submit"] + extra + [path])
                if rc != code or want not in err or "tessera: error:" not in err or out:
                    raise Failed(f"{name}: exit {rc}, stderr {err!r}")
        rc, _, err = run(t, ["submit"] + remote + [os.path.join(tmp, "missing.json")])
        if rc != 3:
            raise Failed(f"missing job file: exit {rc} {err}")
        unk = write(os.path.join(tmp, "unk.json"), json.dumps(
            {"tables": [{"name": "cities", "path": cities}],
             "tasks": [{"id": "x", "kind": "no_such_kind", "inputs": ["cities"]}]}))
        rc, _, err = run(t, ["submit"] + remote + [unk])
        if rc != 3 or "task 'x'" not in err:
            raise Failed(f"unknown kind: exit {rc} {err}")

    test.check("malformed job files exit 2 with the reason; unknown file/kind 3", malformed)

    def kill_mid_graph():
        slow_env = dict(ENV, TSR_TEST_TASK_DELAY_MS="1500")
        victim = cl.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1",
                           "--plugin", plugin], "victim.log", env=slow_env)
        wait_for(lambda: read(slog).count("joined") >= 3, 20, "the slow worker to join")
        job = fan_job(tmp, "fan.json", cities, 9)
        want = ok(t, ["submit", "--format", "csv", job], "embedded fan")
        before = read(slog).count("graph job")
        p = subprocess.Popen([t, "submit"] + remote + ["--format", "csv", job],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)
        wait_for(lambda: read(slog).count("graph job") > before, 20, "the graph to start")
        time.sleep(0.4)  # the slow worker sleeps 1.5 s in each of its tasks
        os.kill(victim.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=TIMEOUT_S)
        if p.returncode != 0:
            raise Failed(f"graph failed after the kill: rc={p.returncode} {err.decode()}")
        if out.decode() != want:
            raise Failed(f"wrong result after the kill:\n{out.decode()}\nwant:\n{want}")
        if "placing it again" not in read(slog):
            raise Failed("the kill did not hit a running task:\n" + read(slog)[-1500:])

    test.check("worker SIGKILLed while a graph runs: tasks re-run, same result", kill_mid_graph)

    def progress_bar():
        # a cluster of its own whose one worker is slow, so jobs last long
        # enough (> 100 ms) for progress messages
        ptok_dir = os.path.join(tmp, "p")
        os.mkdir(ptok_dir)
        afile = os.path.join(ptok_dir, "addr")
        ps = cl.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                       "--addr-file", afile, "--min-range", "1"], "pscheduler.log")
        wait_for(lambda: os.path.exists(afile) or ps.poll() is not None, 20, "scheduler 2")
        paddr = read(afile).strip()
        plog = os.path.join(tmp, "pscheduler.log")
        cl.start(["worker", "--scheduler", paddr, "--token-file", token, "--threads", "1",
                  "--plugin", plugin], "pworker.log", env=dict(ENV, TSR_TEST_TASK_DELAY_MS="150"))
        wait_for(lambda: "joined" in read(plog), 20, "the slow worker to join")
        premote = ["--scheduler", paddr, "--token-file", token]
        job = fan_job(tmp, "fan4.json", cities, 4)
        want = ok(t, ["submit", "--format", "csv", job], "embedded fan")
        q = "SELECT country, COUNT(*) AS n FROM cities GROUP BY country ORDER BY country"
        want_q = ok(t, ["sql", "--table", "cities=" + cities, "--format", "csv", q], "sql")
        for what, cmd, expect in (
                ("submit", [t, "submit"] + premote + ["--format", "csv", job], want),
                ("sql --scheduler", [t, "sql"] + premote + ["--table", "cities=" + cities,
                                                            "--format", "csv", q], want_q)):
            rc, out, tty = under_pty(cmd)
            if rc != 0 or out != expect:
                raise Failed(f"{what} under a pty: exit {rc}, stdout {out!r}, tty {tty!r}")
            if "tasks" not in tty or "/" not in tty or "\r" not in tty:
                raise Failed(f"{what}: no progress bar on the terminal: {tty!r}")
            if not tty.endswith("\r\033[K"):
                raise Failed(f"{what}: the bar was not cleared at the end: {tty!r}")
            rc, out, err = run(t, cmd[1:])
            if rc != 0 or out != expect or err:
                raise Failed(f"{what} piped: exit {rc}, stderr {err!r}")

    test.check("progress bar on a pty (submit, sql --scheduler), none when piped", progress_bar)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_submit_", body))
