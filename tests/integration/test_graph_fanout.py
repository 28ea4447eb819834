#!/usr/bin/env python3
"""Wide fan-outs on a cluster (docs/cluster.md "Task graphs on the cluster"):
every task of a 2,000-task fan-out answers its own value, also when a worker
is SIGKILLed in the middle of the job.

What (`tessera submit` of a JSON task graph: one root reading a 50-row table,
N tasks each selecting one row of the root's value plus its own index; every
one of them is a sink, so the client prints N one-row tables):
  - 2 workers, N = 2000: the output equals a model computed here (row i % 50
    of the table, val + i) and embedded `tessera submit`'s;
  - a second cluster whose values are all kept on workers
    (TSR_GRAPH_INLINE_MAX=0: the root's value lives on one worker) and whose
    workers take 3 ms per task (TSR_TEST_TASK_DELAY_MS): the worker keeping
    the root's value is SIGKILLed once the job has run for a while; the job
    re-runs the root on the survivor (lineage), places the lost tasks again
    and answers the same output.
Every process is stopped by its PID; every wait is bounded.

Usage: test_graph_fanout.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no binary or no cluster support).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, run, wait_for, write_token  # noqa: E402

TIMEOUT_S = 180
ROWS = 50


def val(i):
    return (i * 37) % 101


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def fanout_job(tmp, name, n):
    tasks = [{"id": "root", "kind": "sql", "inputs": ["small"], "sql": "SELECT id, val FROM small"}]
    for i in range(n):
        tasks.append({"id": "f%d" % i, "kind": "sql", "inputs": ["root"],
                      "sql": "SELECT id, val + %d AS v FROM root WHERE id = %d" % (i, i % ROWS)})
    return write(os.path.join(tmp, name), json.dumps({
        "tables": [{"name": "small", "path": os.path.join(tmp, "small.csv")}], "tasks": tasks}))


def model(n):
    """What the client prints: per task, its one-row table."""
    return "".join("id,v\n%d,%d\n" % (i % ROWS, val(i % ROWS) + i) for i in range(n))


def check_output(what, got, n):
    want = model(n)
    if got == want:
        return
    gl, wl = got.splitlines(), want.splitlines()
    for k in range(min(len(gl), len(wl))):
        if gl[k] != wl[k]:
            raise Failed(f"{what}: line {k + 1} is {gl[k]!r}, want {wl[k]!r} "
                         f"({len(gl)} lines, want {len(wl)})")
    raise Failed(f"{what}: {len(gl)} lines, want {len(wl)}")


def body(test, cl, tmp):
    t = cl.t
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    write(os.path.join(tmp, "small.csv"),
          "id,val\n" + "".join("%d,%d\n" % (i, val(i)) for i in range(ROWS)))
    n = 2000
    path = fanout_job(tmp, "fan.json", n)

    def fanout():
        _, addr = cl.start_scheduler(token)
        for i in range(2):
            cl.start_worker(addr, token, "worker%d.log" % i)
        cl.wait_joined(2, 30, "2 workers to join")
        rc, got, err = run(t, ["submit", "--scheduler", addr, "--token-file", token,
                               "--format", "csv", path], timeout=TIMEOUT_S)
        if rc != 0:
            raise Failed(f"cluster: exit {rc}: {err}")
        check_output("the cluster's fan-out", got, n)
        rc, emb, err = run(t, ["submit", "--format", "csv", path], timeout=TIMEOUT_S)
        if rc != 0 or emb != got:
            raise Failed(f"embedded: exit {rc}: {err} (differs from the cluster's output)")

    test.check("a 2,000-task fan-out on 2 workers: every task's value", fanout)

    def killed():
        d = os.path.join(tmp, "c2")
        os.mkdir(d)
        procs = clusterlib.Procs(t, d)
        try:
            addr_file = os.path.join(d, "sched.addr")
            procs.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                         "--addr-file", addr_file], "scheduler.log",
                        env=dict(ENV, TSR_GRAPH_INLINE_MAX="0"))
            wait_for(lambda: os.path.exists(addr_file) and read(addr_file).strip(), 20,
                     "the second scheduler")
            addr = read(addr_file).strip()
            slow = dict(ENV, TSR_TEST_TASK_DELAY_MS="3")
            workers = [procs.start_worker(addr, token, "w%d.log" % i, env=slow) for i in range(2)]
            procs.wait_joined(2, 30, "2 slow workers to join")
            sub = subprocess.Popen([t, "submit", "--scheduler", addr, "--token-file", token,
                                    "--format", "csv", path], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
            procs.procs.append(sub)
            wlogs = [os.path.join(d, "w%d.log" % i) for i in range(2)]

            def holder():
                for i, w in enumerate(wlogs):
                    if "kept graph value 0 of job 1 " in read(w):
                        return i
                return None

            # the root's value is kept on one worker; its readers run on both
            # (at 3 ms each the job takes seconds): kill the root's holder a
            # little after it kept it, while the fan-out runs
            wait_for(lambda: holder() is not None, 60, "the root's value to be kept")
            time.sleep(0.3)
            if sub.poll() is not None:
                raise Failed("the job ended before the kill (too fast to test the kill)")
            os.kill(workers[holder()].pid, signal.SIGKILL)
            out, err = sub.communicate(timeout=TIMEOUT_S)
            slog = read(os.path.join(d, "scheduler.log"))
            if sub.returncode != 0:
                raise Failed(f"after the kill: exit {sub.returncode}: {err.decode()}\n"
                             f"{slog[-2000:]}")
            check_output("the fan-out after the kill", out.decode(), n)
            reruns = re.findall(r"(\d+) lineage re-run\(s\)", slog)
            if not reruns or int(reruns[-1]) < 1:
                raise Failed("the root was not re-run (lineage):\n" + slog[-2000:])
        finally:
            procs.stop_all()

    test.check("a worker killed mid fan-out (holding the root's value): every value",
               killed)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_graph_fanout_", body))
