#!/usr/bin/env python3
"""Graph task values moving directly between workers (docs/cluster.md "Data
movement"): `tessera submit` of JSON task graphs on a local cluster of a
scheduler and 2 workers.

What:
  - a chain and a fan-in graph whose intermediate values are larger than the
    inline limit (64 KiB) give what embedded `tessera submit` gives; the
    workers kept those values (their logs say "kept graph value") and the
    scheduler's job summary counts them as kept on workers, not inline;
  - a job that fails after a value was kept (a reader's SQL error) fails as
    embedded, and the worker keeping the value drops it ("dropped 1 kept
    graph value(s)");
  - a smaller limit (TSR_GRAPH_INLINE_MAX, on a second scheduler) keeps
    every non-sink value, and the answer is still the same;
  - lineage: with every task slowed (TSR_TEST_TASK_DELAY_MS), the worker
    holding one producer's kept value is SIGKILLed after it produced and
    before the consumer (sent to the other producer's worker, its home)
    fetches it: the consumer reports the input lost, the producer runs
    again on the survivor, and the job answers what embedded mode answers;
    then (a third worker joined) a chain's worker is killed while the last
    task waits there: the second value is lost and the first was already
    freed, so both run again, in order, and the answer is still embedded's.
Every process is stopped by its PID; every wait is bounded.

Usage: test_graph_values.py [--tessera PATH] [-v]
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

TIMEOUT_S = 90
ROWS = 6000  # ~150 KB as a table value: above the 64 KiB inline limit


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def make_csv(tmp):
    lines = ["id,grp,val,name"]
    for i in range(ROWS):
        lines.append("%d,%d,%d,name_%d" % (i, i % 17, (i * 7919) % 1000, i % 113))
    return write(os.path.join(tmp, "big.csv"), "\n".join(lines) + "\n")


def job(tmp, name, tasks):
    return write(os.path.join(tmp, name), json.dumps({
        "tables": [{"name": "big", "path": os.path.join(tmp, "big.csv")}], "tasks": tasks}))


def chain_job(tmp):
    return job(tmp, "chain.json", [
        {"id": "even", "kind": "sql", "inputs": ["big"],
         "sql": "SELECT * FROM big WHERE val % 2 = 0"},
        {"id": "wide", "kind": "sql", "inputs": ["even"],
         "sql": "SELECT id, grp, val * 3 AS v3, name FROM even WHERE id % 5 <> 0"},
        {"id": "report", "kind": "sql", "inputs": ["wide"],
         "sql": "SELECT grp, COUNT(*) AS n, SUM(v3) AS s FROM wide GROUP BY grp ORDER BY grp"}])


def fanin_job(tmp):
    return job(tmp, "fanin.json", [
        {"id": "lo", "kind": "sql", "inputs": ["big"], "sql": "SELECT * FROM big WHERE grp < 8"},
        {"id": "hi", "kind": "sql", "inputs": ["big"], "sql": "SELECT * FROM big WHERE grp >= 8"},
        {"id": "ids", "kind": "sql", "inputs": ["big"], "sql": "SELECT id, val FROM big"},
        {"id": "both", "kind": "concat", "inputs": ["lo", "hi"]},
        {"id": "report", "kind": "sql", "inputs": ["both", "ids"],
         "sql": "SELECT u.grp, COUNT(*) AS n, SUM(i.val) AS s FROM both u "
                "JOIN ids i ON u.id = i.id GROUP BY u.grp ORDER BY u.grp"}])


def lineage_job(tmp):
    # tasks in file order = their indices: big_part 0, small_part 1, report 2;
    # report's home is big_part's worker (its largest input)
    return job(tmp, "lineage.json", [
        {"id": "big_part", "kind": "sql", "inputs": ["big"], "sql": "SELECT * FROM big"},
        {"id": "small_part", "kind": "sql", "inputs": ["big"],
         "sql": "SELECT grp, COUNT(*) AS n FROM big GROUP BY grp"},
        {"id": "report", "kind": "sql", "inputs": ["big_part", "small_part"],
         "sql": "SELECT b.grp, MAX(s.n) AS n, SUM(b.val) AS s FROM big_part b "
                "JOIN small_part s ON b.grp = s.grp GROUP BY b.grp ORDER BY b.grp"}])


def embedded(t, path):
    return clusterlib.embedded_submit(t, path, TIMEOUT_S)


def summary(slog):
    """(kept values, kept bytes, inline bytes, reruns) of the last finished graph job."""
    found = re.findall(r"values: (\d+) kept on workers, (\d+) bytes; (\d+) bytes inline; "
                       r"(\d+) lineage", read(slog))
    if not found:
        raise Failed("no graph job summary in the scheduler's log:\n" + read(slog)[-1500:])
    return tuple(int(x) for x in found[-1])


def body(test, cl, tmp):
    t = cl.t
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    make_csv(tmp)
    chain, fanin = chain_job(tmp), fanin_job(tmp)

    sched, addr = cl.start_scheduler(token)
    slog = os.path.join(tmp, "scheduler.log")
    for i in range(2):
        cl.start_worker(addr, token, "worker%d.log" % i)
    cl.wait_joined(2, 30, "2 workers to join")
    remote = ["--scheduler", addr, "--token-file", token]

    def same(path, min_kept):
        want = embedded(t, path)
        rc, got, err = run(t, ["submit"] + remote + ["--format", "csv", path], timeout=TIMEOUT_S)
        if rc != 0:
            raise Failed(f"cluster {os.path.basename(path)}: exit {rc}: {err}")
        if got != want:
            raise Failed(f"{os.path.basename(path)} on the cluster:\n{got}\nembedded:\n{want}")
        kept, kept_bytes, _, _ = summary(slog)
        if kept < min_kept or kept_bytes < min_kept * 65536:
            raise Failed(f"{os.path.basename(path)}: {kept} value(s), {kept_bytes} bytes kept "
                         f"on workers, want >= {min_kept} above 64 KiB")

    def chain_and_fanin():
        same(chain, 2)  # even, wide
        same(fanin, 4)  # lo, hi, ids, both
        logs = read(os.path.join(tmp, "worker0.log")) + read(os.path.join(tmp, "worker1.log"))
        if logs.count("kept graph value") < 6:
            raise Failed("the workers did not keep the values:\n" + logs[-1500:])

    test.check("chain and fan-in with > 64 KiB values: same as embedded, kept on workers",
               chain_and_fanin)

    def failed_job_drops():
        path = job(tmp, "fails.json", [
            {"id": "even", "kind": "sql", "inputs": ["big"],
             "sql": "SELECT * FROM big WHERE val % 2 = 0"},
            {"id": "bad", "kind": "sql", "inputs": ["even"], "sql": "SELECT nosuch FROM even"}])
        rc_e, _, err_e = run(t, ["submit", "--format", "csv", path], timeout=TIMEOUT_S)
        rc, out, err = run(t, ["submit"] + remote + ["--format", "csv", path], timeout=TIMEOUT_S)
        if rc == 0 or rc != rc_e or "task 'bad'" not in err or "nosuch" not in err:
            raise Failed(f"cluster: exit {rc} {err!r}; embedded: exit {rc_e} {err_e!r}")
        wlogs = [os.path.join(tmp, "worker%d.log" % i) for i in range(2)]
        # the job's end drops the value 'even' still kept for the failed reader
        wait_for(lambda: any("dropped 1 kept graph value(s)" in read(w) for w in wlogs), 20,
                 "the failed job's kept value to be dropped")

    test.check("a failed job's kept values are dropped on the workers", failed_job_drops)

    # a second cluster: every non-sink value kept (limit 0), tasks slowed so
    # a kill lands between a producer's answer and its reader's fetch
    d2 = os.path.join(tmp, "c2")
    os.mkdir(d2)
    p2 = clusterlib.Procs(t, d2)

    def lineage():
        try:
            sched_env = dict(ENV, TSR_GRAPH_INLINE_MAX="0")
            addr_file = os.path.join(d2, "sched.addr")
            p2.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                      "--addr-file", addr_file], "scheduler.log", env=sched_env)
            wait_for(lambda: os.path.exists(addr_file), 20, "the second scheduler")
            addr2 = read(addr_file).strip()
            slog2 = os.path.join(d2, "scheduler.log")
            slow = dict(ENV, TSR_TEST_TASK_DELAY_MS="2500")
            workers = [p2.start_worker(addr2, token, "w%d.log" % i, env=slow) for i in range(2)]
            p2.wait_joined(2, 30, "2 slow workers to join")
            path = lineage_job(tmp)
            want = embedded(t, path)
            sub = subprocess.Popen([t, "submit", "--scheduler", addr2, "--token-file", token,
                                    "--format", "csv", path], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
            p2.procs.append(sub)
            wlogs = [os.path.join(d2, "w%d.log" % i) for i in range(3)]

            def holder(task, job=1):
                for i, w in enumerate(wlogs):
                    if ("kept graph value %d of job %d " % (task, job)) in read(w):
                        return i
                return None

            wait_for(lambda: holder(0) is not None and holder(1) is not None, 40,
                     "both producers to keep their values")
            # the reader went to big_part's worker (its home) and sleeps 2.5 s
            # before it fetches small_part: kill small_part's holder now, or,
            # should both have run on one worker, that one
            victim = holder(1)
            os.kill(workers[victim].pid, signal.SIGKILL)
            out, err = sub.communicate(timeout=TIMEOUT_S)
            if sub.returncode != 0:
                raise Failed(f"the job failed after the kill: exit {sub.returncode}: "
                             f"{err.decode()}\n{read(slog2)[-2000:]}")
            if out.decode() != want:
                raise Failed(f"wrong result after the kill:\n{out.decode()}\nwant:\n{want}")
            kept, _, _, reruns = summary(slog2)
            if reruns < 1 or kept < 2:
                raise Failed(f"no lineage re-run ({reruns}) or values not kept ({kept}):\n"
                             + read(slog2)[-2000:])
            if holder(0) != holder(1) and "lost 1 input(s)" not in read(slog2):
                raise Failed("the reader did not report its lost input:\n" + read(slog2)[-2000:])

            # recursive lineage: a chain whose first value was already freed
            # (its reader finished) and whose second is lost with its worker
            # (the reader's home): both run again, in order, on the survivor
            workers.append(p2.start_worker(addr2, token, "w2.log", env=slow))
            p2.wait_joined(3, 30, "a third slow worker to join")
            chain2 = chain_job(tmp)
            want = embedded(t, chain2)
            sub = subprocess.Popen([t, "submit", "--scheduler", addr2, "--token-file", token,
                                    "--format", "csv", chain2], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
            p2.procs.append(sub)
            wait_for(lambda: holder(1, 2) is not None, 40, "the chain's second value")
            os.kill(workers[holder(1, 2)].pid, signal.SIGKILL)
            out, err = sub.communicate(timeout=TIMEOUT_S)
            if sub.returncode != 0 or out.decode() != want:
                raise Failed(f"chain after the kill: exit {sub.returncode}: {err.decode()}\n"
                             f"{out.decode()}\nwant:\n{want}\n{read(slog2)[-2000:]}")
            _, _, _, reruns = summary(slog2)
            if reruns < 2:
                raise Failed(f"{reruns} lineage re-run(s), want both producers:\n"
                             + read(slog2)[-2000:])
        finally:
            p2.stop_all()

    test.check("producer SIGKILLed before its reader fetched: lineage re-run, same result",
               lineage)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_graph_values_", body))
