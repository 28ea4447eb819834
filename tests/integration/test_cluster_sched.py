#!/usr/bin/env python3
"""Scheduling on a real local cluster (docs/cluster.md "Scheduling").

What: starts `tessera scheduler` (a long heartbeat timeout, so a stopped
worker is slow, not dead) and 3 one-thread workers whose tasks each take
150 ms (TSR_TEST_TASK_DELAY_MS) on loopback, then:
  - work stealing and bounded queues: one worker is stopped (SIGSTOP) while
    a 24-task graph job runs, and continued after 2.5 s; the job's result is
    the embedded one, and the stopped worker ran at most its 2 slots of the
    24 parallel tasks plus the 2 tasks reading their values (per-worker
    tasks_done from `tessera cluster status --format json`; the old placement
    sent it a third of them at once): the rest was stolen by the others;
  - `--policy least-loaded --slots 1` gives the same results (graph, SQL),
    and ^C of a `tessera sql` mid-query cancels its job on the scheduler;
  - server-side cancel: a long graph job (90 tasks of 150 ms) whose client is
    interrupted (SIGINT) ends "cancelled by its client" / "went away" on the
    scheduler within a second, the workers drop its queued tasks (TASK_DROP),
    and a new job then finishes at once (the workers are free);
  - graph jobs are listed on the HTTP /jobs endpoint (kind "graph");
  - a bad --policy is refused with exit 2.
Every process is stopped by its PID; every wait is bounded.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import ENV, Failed, main, read, wait_for, write_token  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 60


def run(t, args, timeout=TIMEOUT_S):
    p = subprocess.run([t] + args, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=ENV)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def fan_job(tmp, name, cities, n):
    """n independent sql tasks over cities, summed by one sink."""
    tasks = [{"id": "q%d" % i, "kind": "sql", "inputs": ["cities"],
              "sql": "SELECT country, COUNT(*) AS n, %d AS part FROM cities GROUP BY country" % i}
             for i in range(n)]
    tasks.append({"id": "merged", "kind": "concat", "inputs": ["q%d" % i for i in range(n)]})
    tasks.append({"id": "report", "kind": "sql", "inputs": ["merged"],
                  "sql": "SELECT country, SUM(n) AS n, SUM(part) AS parts FROM merged "
                         "GROUP BY country ORDER BY country"})
    job = {"tables": [{"name": "cities", "path": cities}], "tasks": tasks}
    return write(os.path.join(tmp, name), json.dumps(job))


def done_by_pid(t, cdir):
    rc, out, err = run(t, ["cluster", "status", "--dir", cdir, "--format", "json"])
    if rc != 0:
        raise Failed(f"cluster status: exit {rc}: {err}")
    doc = json.loads(out)
    return {w["pid"]: w["tasks_done"] for w in doc["workers"]}


def body(test, cl, tmp):
    t = cl.t
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    cities = os.path.join(ROOT, "tests", "data", "cities.csv")
    http_file = os.path.join(tmp, "http.addr")
    # --slots 2 (the default is 8): the stopped worker's share is then bounded tightly
    sched, addr = cl.start_scheduler(token, ["--heartbeat-timeout", "20000", "--slots", "2", "--http",
                                             "127.0.0.1:0", "--http-addr-file", http_file])
    slog = os.path.join(tmp, "scheduler.log")
    slow = dict(ENV, TSR_TEST_TASK_DELAY_MS="150")
    workers = [cl.start_worker(addr, token, "worker%d.log" % i,
                               ["--heartbeat-timeout", "20000"], env=slow) for i in range(3)]
    cl.wait_joined(3, 30, "3 workers to join")
    cdir = os.path.join(tmp, "cdir")
    os.mkdir(cdir)
    write(os.path.join(cdir, "scheduler.addr"), addr + "\n")
    write(os.path.join(cdir, "token.path"), token + "\n")
    remote = ["--scheduler", addr, "--token-file", token]
    job = fan_job(tmp, "fan.json", cities, 24)
    rc, want, err = run(t, ["submit", "--format", "csv", job])
    if rc != 0:
        raise Failed(f"embedded fan: exit {rc}: {err}")

    def stolen_around_a_stopped_worker():
        victim = workers[0]
        before = done_by_pid(t, cdir)
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            p = subprocess.Popen([t, "submit"] + remote + ["--format", "csv", job],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, env=ENV)
            cl.procs.append(p)
            time.sleep(2.5)
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=TIMEOUT_S)
        if p.returncode != 0 or out.decode() != want:
            raise Failed(f"exit {p.returncode}: {err.decode()}\n{out.decode()}\nwant:\n{want}")
        after = done_by_pid(t, cdir)
        by = {pid: after[pid] - before.get(pid, 0) for pid in after}
        total = sum(by.values())
        if total != 26:
            raise Failed(f"26 tasks should have run once each: {by}")
        # its 2 slots, and the 2 tasks reading its values may follow them there
        # (locality); the old placement sent it a third of the 24 at once
        if by[victim.pid] > 4:
            raise Failed(f"the stopped worker kept {by[victim.pid]} tasks: {by}")
        if "placing it again" in read(slog):
            raise Failed("a task was re-run: the stopped worker was declared dead")

    test.check("a stopped worker's share is stolen; it holds at most its slots",
               stolen_around_a_stopped_worker)

    def cancel_frees_workers():
        big = fan_job(tmp, "big.json", cities, 90)  # ~4.5 s of work on 3 workers
        before = read(slog).count("graph job")
        p = subprocess.Popen([t, "submit"] + remote + ["--format", "csv", big],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)
        wait_for(lambda: read(slog).count("graph job") > before, 20, "the big job to start")
        time.sleep(0.5)
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=TIMEOUT_S)
        wait_for(lambda: "went away" in read(slog) or "cancelled by its client" in read(slog),
                 5, "the scheduler to cancel the job")
        # a new job runs now, not after the cancelled one's 60 tasks
        small = fan_job(tmp, "small.json", cities, 3)
        rc, out, err = run(t, ["submit"] + remote + ["--format", "csv", small])
        took = time.time() - t0
        if rc != 0:
            raise Failed(f"job after the cancel: exit {rc}: {err}")
        if took > 3.0:  # vs ~4 s if its tasks still waited at the workers
            raise Failed(f"the job after the cancel took {took:.1f} s: the workers were busy")
        if "failed: job" not in read(slog) or "was cancelled" not in read(slog):
            raise Failed("the scheduler did not end the job cancelled:\n" + read(slog)[-1500:])
        # each worker had one task running and the next queued (its 2 slots):
        # TASK_DROP answers the queued ones without running them
        logs = "".join(read(os.path.join(tmp, "worker%d.log" % i)) for i in range(3))
        if "queued task(s) of cancelled job" not in logs:
            raise Failed("no worker dropped a queued task of the cancelled job:\n" + logs)

    test.check("an interrupted client's job is cancelled; the workers are free at once",
               cancel_frees_workers)

    def graph_jobs_on_http():
        url = "http://%s/jobs" % read(http_file).strip()
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read().decode())
        graphs = [j for j in doc["running"] + doc["recent"] if j.get("kind") == "graph"]
        states = sorted(j["state"] for j in graphs)
        if states.count("done") < 2 or "failed" not in states:
            raise Failed(f"graph jobs on /jobs: {graphs}")
        bad = [j for j in graphs if j["state"] == "failed"]
        if "was cancelled" not in bad[0].get("error", "") or bad[0]["phase"] != "graph":
            raise Failed(f"the cancelled graph job on /jobs: {bad[0]}")
        done = [j for j in graphs if j["state"] == "done"]
        if done[0]["tasks_total"] != done[0]["tasks_done"] or done[0]["tasks_total"] < 5:
            raise Failed(f"a finished graph job on /jobs: {done[0]}")

    test.check("graph jobs are listed on HTTP /jobs (done, and the cancelled one failed)",
               graph_jobs_on_http)

    def bad_policy():
        rc, _, err = run(t, ["scheduler", "--policy", "fastest", "--token-file", token])
        if rc != 2 or "least-loaded" not in err:
            raise Failed(f"bad --policy: exit {rc}: {err}")

    test.check("an unknown --policy exits 2 naming the known ones", bad_policy)

    def least_loaded_same_result():
        addr_file = os.path.join(tmp, "ll.addr")
        cl.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                  "--addr-file", addr_file, "--policy", "least-loaded", "--slots", "1",
                  "--min-range", "1", "--ranges-per-worker", "6"], "ll-scheduler.log")
        wait_for(lambda: os.path.exists(addr_file) and read(addr_file).strip(), 20,
                 "the least-loaded scheduler")
        laddr = read(addr_file).strip()
        for i in range(2):
            cl.start_worker(laddr, token, "ll-worker%d.log" % i,
                            env=dict(ENV, TSR_TEST_TASK_DELAY_MS="60"))
        wait_for(lambda: read(os.path.join(tmp, "ll-scheduler.log")).count("joined") >= 2, 30,
                 "2 workers to join the least-loaded scheduler")
        rc, out, err = run(t, ["submit", "--scheduler", laddr, "--token-file", token,
                               "--format", "csv", job])
        if rc != 0 or out != want:
            raise Failed(f"exit {rc}: {err}\n{out}\nwant:\n{want}")
        data = write(os.path.join(tmp, "nums.csv"),
                     "a,b\n" + "".join("%d,%d\n" % (i, i % 7) for i in range(20000)))
        q = "SELECT b, SUM(a) AS s, COUNT(*) AS n FROM t GROUP BY b ORDER BY b"
        sql = ["sql", "--table", "t=" + data, "--format", "csv", q]
        lremote = ["--scheduler", laddr, "--token-file", token]
        rc, out, err = run(t, sql[:1] + lremote + sql[1:])
        rc2, out2, err2 = run(t, sql)
        if rc != 0 or out != out2:
            raise Failed(f"sql: exit {rc}: {err}\n{out}\nembedded: {out2} {err2}")
        # ^C of `tessera sql` mid-query cancels its job on the scheduler
        llog = os.path.join(tmp, "ll-scheduler.log")
        before = read(llog).count("over ")
        p = subprocess.Popen([t] + sql[:1] + lremote + sql[1:], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)
        wait_for(lambda: read(llog).count("over ") > before, 20, "the query to start")
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=TIMEOUT_S)
        wait_for(lambda: "its client went away" in read(llog), 5,
                 "the scheduler to cancel the query")

    test.check("--policy least-loaded --slots 1: same results; ^C cancels a SQL job",
               least_loaded_same_result)


if __name__ == "__main__":
    sys.exit(main("tsr-cluster-sched-", body))
