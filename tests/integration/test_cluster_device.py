#!/usr/bin/env python3
"""Device-aware placement on a real local cluster (docs/cluster.md "Scheduling").

What: starts `tessera scheduler` and two one-thread workers, one with
`--device cpu` and one with `--device opencl` (PoCL here; skipped, exit 77,
when no OpenCL device opens), then checks per-worker tasks_done from
`tessera cluster status --format json` around each job:
  - `tessera sql --device opencl` runs every task on the OpenCL worker, with
    the embedded answer; `--device cpu` and the default (auto) give the same
    answer;
  - `tessera submit --device opencl` of a .sql job file: only the OpenCL worker;
  - `--device cuda` (no CUDA worker) fails at once (< 5 s) with exit 5 and
    "no ready worker has a device matching 'cuda'", for SQL and for a graph task whose
    job file says "device": "cuda";
  - a graph job whose tasks say "device": "opencl" runs them on that worker
    only, with the embedded answer;
  - an unknown device word is exit 2 (CLI flag and job file).
Every process is stopped by its PID; every wait is bounded.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Failed, main, read, run, wait_for, write_token  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def body(test, cl, tmp):
    t = cl.t
    rc, out, _ = run(t, ["devices"])
    if "opencl" not in out:
        print("skipped: no OpenCL device")
        sys.exit(77)
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    sched, addr = cl.start_scheduler(token)
    wcpu = cl.start_worker(addr, token, "worker-cpu.log", ["--device", "cpu"])
    wocl = cl.start_worker(addr, token, "worker-ocl.log", ["--device", "opencl"])
    wait_for(lambda: read(os.path.join(tmp, "scheduler.log")).count("joined") >= 2
             or wocl.poll() is not None, 30, "2 workers to join")
    if wocl.poll() is not None:
        print("skipped: the opencl worker did not start: "
              + read(os.path.join(tmp, "worker-ocl.log"))[-500:])
        sys.exit(77)
    cdir = os.path.join(tmp, "cdir")
    os.mkdir(cdir)
    write(os.path.join(cdir, "scheduler.addr"), addr + "\n")
    write(os.path.join(cdir, "token.path"), token + "\n")
    remote = ["--scheduler", addr, "--token-file", token]

    def done_by_pid():
        rc, out, err = run(t, ["cluster", "status", "--dir", cdir, "--format", "json"])
        if rc != 0:
            raise Failed(f"cluster status: exit {rc}: {err}")
        return {w["pid"]: w["tasks_done"] for w in json.loads(out)["workers"]}

    def ran_on(fn):
        """Runs fn; returns (its result, tasks each worker ran meanwhile)."""
        before = done_by_pid()
        res = fn()
        after = done_by_pid()
        return res, {pid: after[pid] - before.get(pid, 0) for pid in after}

    data = write(os.path.join(tmp, "nums.csv"),
                 "a,b,c\n" + "".join("%d,%d,%d.5\n" % (i, i % 7, i % 13) for i in range(30000)))
    q = "SELECT b, SUM(a) AS s, COUNT(*) AS n, MIN(c) AS m FROM t WHERE a % 3 <> 1 " \
        "GROUP BY b ORDER BY b"
    sql = ["sql", "--table", "t=" + data, "--format", "csv"]
    rc, want, err = run(t, sql + [q])
    if rc != 0:
        raise Failed(f"embedded: exit {rc}: {err}")

    def sql_on_opencl_only():
        (rc, out, err), by = ran_on(lambda: run(t, sql + remote + ["--device", "opencl", q]))
        if rc != 0 or out != want:
            raise Failed(f"exit {rc}: {err}\n{out}\nwant:\n{want}")
        if by[wcpu.pid] != 0 or by[wocl.pid] == 0:
            raise Failed(f"tasks per worker pid: {by} (cpu {wcpu.pid}, opencl {wocl.pid})")

    test.check("sql --device opencl: only the opencl worker, embedded answer", sql_on_opencl_only)

    def sql_cpu_and_auto_same():
        for dev in (["--device", "cpu"], ["--device", "auto"], []):
            rc, out, err = run(t, sql + remote + dev + [q])
            if rc != 0 or out != want:
                raise Failed(f"{dev}: exit {rc}: {err}\n{out}\nwant:\n{want}")

    test.check("sql --device cpu / auto / default: embedded answer", sql_cpu_and_auto_same)

    def submit_sql_opencl():
        job = write(os.path.join(tmp, "q.sql"), q + ";\n")
        (rc, out, err), by = ran_on(lambda: run(
            t, ["submit"] + remote + ["--device", "opencl", "--format", "csv",
                                      "--table", "t=" + data, job]))
        if rc != 0 or out != want:
            raise Failed(f"exit {rc}: {err}\n{out}\nwant:\n{want}")
        if by[wcpu.pid] != 0 or by[wocl.pid] == 0:
            raise Failed(f"tasks per worker pid: {by}")

    test.check("submit --device opencl of a .sql job: only the opencl worker", submit_sql_opencl)

    def cuda_fails_at_once():
        t0 = time.time()
        rc, out, err = run(t, sql + remote + ["--device", "cuda", q], timeout=20)
        took = time.time() - t0
        if rc != 5 or "no ready worker has a device matching 'cuda'" not in err or took > 5:
            raise Failed(f"exit {rc} after {took:.1f}s: {err}")
        rc, out, err = run(t, sql + remote + ["--device", "tpu", q])
        if rc != 2 or "tpu" not in err:
            raise Failed(f"--device tpu: exit {rc}: {err}")

    test.check("--device cuda without a CUDA worker: exit 5 at once; unknown word exit 2",
               cuda_fails_at_once)

    cities = os.path.join(ROOT, "tests", "data", "cities.csv")

    def graph_job(name, device):
        tasks = [{"id": "q%d" % i, "kind": "sql", "inputs": ["cities"], "device": device,
                  "sql": "SELECT country, COUNT(*) AS n, %d AS part FROM cities "
                         "GROUP BY country" % i} for i in range(4)]
        tasks.append({"id": "merged", "kind": "concat", "inputs": ["q%d" % i for i in range(4)],
                      "device": device})
        tasks.append({"id": "report", "kind": "sql", "inputs": ["merged"], "device": device,
                      "sql": "SELECT country, SUM(n) AS n, SUM(part) AS p FROM merged "
                             "GROUP BY country ORDER BY country"})
        return write(os.path.join(tmp, name), json.dumps(
            {"tables": [{"name": "cities", "path": cities}], "tasks": tasks}))

    def graph_tasks_on_opencl():
        job = graph_job("ocl.json", "opencl")
        rc, gwant, err = run(t, ["submit", "--format", "csv", job])
        if rc != 0:
            raise Failed(f"embedded: exit {rc}: {err}")
        (rc, out, err), by = ran_on(lambda: run(t, ["submit"] + remote + ["--format", "csv", job]))
        if rc != 0 or out != gwant:
            raise Failed(f"exit {rc}: {err}\n{out}\nwant:\n{gwant}")
        if by[wcpu.pid] != 0 or by[wocl.pid] != 6:
            raise Failed(f"tasks per worker pid: {by}")

    test.check("graph tasks with \"device\": \"opencl\" run on the opencl worker only",
               graph_tasks_on_opencl)

    def graph_cuda_and_bad():
        t0 = time.time()
        rc, out, err = run(t, ["submit"] + remote + [graph_job("cuda.json", "cuda")], timeout=20)
        if rc != 5 or "has a device matching 'cuda'" not in err or time.time() - t0 > 5:
            raise Failed(f"cuda: exit {rc}: {err}")
        rc, out, err = run(t, ["submit"] + remote + [graph_job("tpu.json", "tpu")])
        if rc != 2 or "device" not in err:
            raise Failed(f"tpu: exit {rc}: {err}")

    test.check("graph: a 'cuda' task fails at once (exit 5); an unknown device is exit 2",
               graph_cuda_and_bad)


if __name__ == "__main__":
    sys.exit(main("tsr-cluster-device-", body))
