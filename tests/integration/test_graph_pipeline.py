#!/usr/bin/env python3
"""Pipelining of graph tasks on a cluster (docs/cluster.md "Pipelining"): a
task whose unfinished inputs are all being produced on one worker is sent
there before they finish, and the worker runs it when they are done.

What (`tessera submit` of JSON task graphs, a scheduler and 2 workers):
  - a 40-task chain and a diamond give what embedded `tessera submit` gives,
    and the scheduler's job summary counts tasks sent ahead;
  - a chain whose middle task fails (a SQL error) fails the job with that
    task's message, as embedded; the successors already sent ahead to its
    worker answer without running ("graph task not run" in a worker log);
  - on a second scheduler whose values are all kept on workers
    (TSR_GRAPH_INLINE_MAX=0) and whose workers are slow
    (TSR_TEST_TASK_DELAY_MS): the worker holding a chain's first value, and
    with it the tasks sent ahead to it, is SIGKILLed; the job re-runs them
    on the survivor (lineage) and answers embedded's result;
  - cancel: a slow chain's client is interrupted (SIGINT) while tasks are
    sent ahead to its worker; the worker drops them queued (TASK_DROP), and
    a next job runs.
No timing window is tight: each step waits on a log line with a generous
bound. Every process is stopped by its PID; every wait is bounded.

Usage: test_graph_pipeline.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no binary or no cluster support).
"""

import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, run, wait_for, write_token  # noqa: E402

TIMEOUT_S = 120


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def job(tmp, name, tasks):
    return write(os.path.join(tmp, name), json.dumps({
        "tables": [{"name": "small", "path": os.path.join(tmp, "small.csv")}], "tasks": tasks}))


def chain_tasks(n, fail_at=None):
    tasks = [{"id": "t0", "kind": "sql", "inputs": ["small"], "sql": "SELECT id, val FROM small"}]
    for i in range(1, n):
        col = "nosuch" if i == fail_at else "val"
        tasks.append({"id": "t%d" % i, "kind": "sql", "inputs": ["t%d" % (i - 1)],
                      "sql": "SELECT id, %s + %d AS val FROM t%d" % (col, i, i - 1)})
    tasks.append({"id": "report", "kind": "sql", "inputs": ["t%d" % (n - 1)],
                  "sql": "SELECT id, val FROM t%d ORDER BY id" % (n - 1)})
    return tasks


def diamond_tasks():
    return [
        {"id": "a", "kind": "sql", "inputs": ["small"], "sql": "SELECT id, val FROM small"},
        {"id": "b", "kind": "sql", "inputs": ["a"], "sql": "SELECT id, val * 2 AS v FROM a"},
        {"id": "c", "kind": "sql", "inputs": ["a"], "sql": "SELECT id, val + 7 AS w FROM a"},
        {"id": "d", "kind": "sql", "inputs": ["b", "c"],
         "sql": "SELECT b.id, b.v + c.w AS s FROM b JOIN c ON b.id = c.id"},
        {"id": "e", "kind": "sql", "inputs": ["d", "a"],
         "sql": "SELECT a.id, d.s - a.val AS r FROM d JOIN a ON d.id = a.id ORDER BY a.id"}]


def embedded(t, path):
    return clusterlib.embedded_submit(t, path, TIMEOUT_S)


def sent_ahead(slog):
    """Tasks sent ahead by the last finished graph job (its summary line)."""
    found = re.findall(r"lineage re-run\(s\); (\d+) sent ahead\)", read(slog))
    if not found:
        raise Failed("no graph job summary in the scheduler's log:\n" + read(slog)[-1500:])
    return int(found[-1])


def body(test, cl, tmp):
    t = cl.t
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    write(os.path.join(tmp, "small.csv"),
          "id,val\n" + "".join("%d,%d\n" % (i, (i * 37) % 101) for i in range(50)))

    sched, addr = cl.start_scheduler(token)
    slog = os.path.join(tmp, "scheduler.log")
    for i in range(2):
        cl.start_worker(addr, token, "worker%d.log" % i)
    cl.wait_joined(2, 30, "2 workers to join")
    remote = ["--scheduler", addr, "--token-file", token]

    def same(path):
        want = embedded(t, path)
        rc, got, err = run(t, ["submit"] + remote + ["--format", "csv", path], timeout=TIMEOUT_S)
        if rc != 0:
            raise Failed(f"cluster {os.path.basename(path)}: exit {rc}: {err}")
        if got != want:
            raise Failed(f"{os.path.basename(path)} on the cluster:\n{got}\nembedded:\n{want}")

    def chain_and_diamond():
        same(job(tmp, "chain.json", chain_tasks(40)))
        if sent_ahead(slog) < 20:  # all but the first task can go ahead
            raise Failed("the chain's tasks were not sent ahead:\n" + read(slog)[-1500:])
        same(job(tmp, "diamond.json", diamond_tasks()))
        if sent_ahead(slog) < 1:
            raise Failed("no task of the diamond was sent ahead:\n" + read(slog)[-1500:])

    test.check("a 40-task chain and a diamond: same as embedded, tasks sent ahead",
               chain_and_diamond)

    def failing_middle():
        path = job(tmp, "fails.json", chain_tasks(12, fail_at=5))
        rc_e, _, err_e = run(t, ["submit", "--format", "csv", path], timeout=TIMEOUT_S)
        rc, out, err = run(t, ["submit"] + remote + ["--format", "csv", path], timeout=TIMEOUT_S)
        if rc == 0 or rc != rc_e or "task 't5'" not in err or "nosuch" not in err:
            raise Failed(f"cluster: exit {rc} {err!r}; embedded: exit {rc_e} {err_e!r}")
        # t6 was sent ahead behind t5 (when t2 answered): it answers unrun
        wlogs = [os.path.join(tmp, "worker%d.log" % i) for i in range(2)]
        wait_for(lambda: any("graph task not run" in read(w) for w in wlogs), 30,
                 "a worker to answer a task sent ahead behind the failed one unrun")
        # and the cluster goes on
        same(job(tmp, "chain2.json", chain_tasks(6)))

    test.check("a failing middle task fails the job; tasks sent ahead do not run",
               failing_middle)

    # slow clusters of their own (a scheduler and 2 workers each, own dir)
    def start_slow(name, delay_ms, inline0):
        d = os.path.join(tmp, name)
        os.mkdir(d)
        procs = clusterlib.Procs(t, d)
        sched_env = dict(ENV, TSR_GRAPH_INLINE_MAX="0") if inline0 else ENV
        addr_file = os.path.join(d, "sched.addr")
        procs.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                     "--addr-file", addr_file], "scheduler.log", env=sched_env)
        try:
            wait_for(lambda: os.path.exists(addr_file) and read(addr_file).strip(), 20,
                     "the " + name + " scheduler")
            addr2 = read(addr_file).strip()
            slow = dict(ENV, TSR_TEST_TASK_DELAY_MS=str(delay_ms))
            workers = [procs.start_worker(addr2, token, "w%d.log" % i, env=slow)
                       for i in range(2)]
            procs.wait_joined(2, 30, "2 slow workers to join")
        except BaseException:
            procs.stop_all()
            raise
        return d, procs, addr2, workers

    def submit_bg(procs, addr2, path):
        sub = subprocess.Popen([t, "submit", "--scheduler", addr2, "--token-file", token,
                                "--format", "csv", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
        procs.procs.append(sub)
        return sub

    def worker_killed():
        d2, p2, addr2, workers = start_slow("c2", 400, True)
        try:
            slog2 = os.path.join(d2, "scheduler.log")
            path = job(tmp, "kchain.json", chain_tasks(8))
            want = embedded(t, path)
            sub = submit_bg(p2, addr2, path)
            wlogs = [os.path.join(d2, "w%d.log" % i) for i in range(2)]

            def holder(task):
                for i, w in enumerate(wlogs):
                    if ("kept graph value %d of job 1 " % task) in read(w):
                        return i
                return None

            # t0 kept its value; t1.. were sent ahead to the same worker
            # with it and wait there (each task takes 0.4 s): kill it
            wait_for(lambda: holder(0) is not None, 60, "the chain's first value")
            os.kill(workers[holder(0)].pid, signal.SIGKILL)
            out, err = sub.communicate(timeout=TIMEOUT_S)
            if sub.returncode != 0 or out.decode() != want:
                raise Failed(f"chain after the kill: exit {sub.returncode}: {err.decode()}\n"
                             f"{out.decode()}\nwant:\n{want}\n{read(slog2)[-2000:]}")
            if sent_ahead(slog2) < 1:
                raise Failed("nothing was sent ahead:\n" + read(slog2)[-2000:])
        finally:
            p2.stop_all()

    test.check("a worker killed with tasks sent ahead to it: same result (lineage)",
               worker_killed)

    def cancel_piped():
        d3, p3, addr3, workers = start_slow("c3", 1000, False)
        try:
            slog3 = os.path.join(d3, "scheduler.log")
            before = read(slog3).count("graph job")
            sub = submit_bg(p3, addr3, job(tmp, "cchain.json", chain_tasks(10)))
            wait_for(lambda: read(slog3).count("graph job") > before, 30, "the job to start")
            # t0 runs (1 s) and t1.. wait queued behind it on its worker
            wlogs = [os.path.join(d3, "w%d.log" % i) for i in range(2)]
            sub.send_signal(signal.SIGINT)
            sub.communicate(timeout=TIMEOUT_S)
            wait_for(lambda: "went away" in read(slog3) or "cancelled by its client" in read(slog3),
                     30, "the scheduler to cancel the job")
            wait_for(lambda: any("queued task(s) of cancelled job" in read(w) for w in wlogs), 30,
                     "the worker to drop the tasks sent ahead")
            # the cluster runs the next job
            path = job(tmp, "after.json", chain_tasks(3))
            want = embedded(t, path)
            rc, got, err = run(t, ["submit", "--scheduler", addr3, "--token-file", token,
                                   "--format", "csv", path], timeout=TIMEOUT_S)
            if rc != 0 or got != want:
                raise Failed(f"job after the cancel: exit {rc}: {err}\n{got}\nwant:\n{want}")
        finally:
            p3.stop_all()

    test.check("cancel drops the tasks sent ahead; the next job runs", cancel_piped)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_graph_pipeline_", body))
