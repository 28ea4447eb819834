#!/usr/bin/env python3
"""The task-graph C API in cluster mode (tsr_graph_cluster(), docs/graph.md
"On a cluster"), through examples/graph_example.c.

What: starts `tessera scheduler` and 2 `tessera worker --plugin` processes on
loopback (the plugin is examples/plugins/density_plugin.c, compiled here) and
checks
  - graph_example gives the same output embedded and with --scheduler
    (its user task from the plugin, its input table shipped as a file);
  - without the plugin the function-pointer kind is refused at submit with a
    message naming the task and the kind;
  - on a second scheduler whose one worker is slow (TSR_TEST_TASK_DELAY_MS),
    --timeout 300 makes the wait time out and the cancel end every task
    "cancelled", well before the job could have finished; run to the end
    there, each task's time (from the scheduler) is about the worker's 1 s;
  - an unreachable scheduler fails with exit 5, not a hang;
  - where `tessera devices` lists an OpenCL device (PoCL here): the kind's
    OpenCL implementation (examples/plugins/density_opencl.h) gives the same
    output embedded (--device opencl; the example says it ran), and on the
    cluster on a third worker started with --device opencl0 (the task
    requires it: --task-device opencl), whose task contexts have the device;
  - `tessera cluster up --plugin` hands the plugin to its workers (the
    example runs on that cluster), `cluster down` stops it.
Every process is stopped by its PID; every wait is bounded.

Usage: test_graph_cluster.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera and example_graph_example),
CC (default cc).
Exit: 0 passed, 1 failed, 77 skipped (no binary or no cluster support).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
TIMEOUT_S = 60


def build_plugin(tmp):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("clang") or "gcc"
    so = os.path.join(tmp, "density_plugin.so")
    p = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I", os.path.join(ROOT, "include"),
                        "-o", so, os.path.join(ROOT, "examples", "plugins", "density_plugin.c")],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise Failed("cannot build the plugin: " + p.stderr.decode())
    return so


def run(cmd, timeout=TIMEOUT_S, env=None):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env=env or ENV)
    err = p.stderr.decode("utf-8", "replace")
    for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if mark in err:  # the example itself, under a sanitizer build
            raise Failed(f"{os.path.basename(cmd[0])}: sanitizer report:\n{err[-3000:]}")
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


def table_part(out):
    """The result table the example prints (before the blank line)."""
    return out.split("\n\n")[0]


def task_states(out):
    """The state column of the example's "task LABEL STATE ran ..." lines."""
    return [line.split(" ran ")[0].split()[-1]
            for line in out.split("\n\n")[1].strip().split("\n")]


def body(test, cl, tmp):
    t = cl.t
    ex = os.path.join(os.path.dirname(t), "example_graph_example")
    if not os.path.exists(ex):
        raise Failed("no example_graph_example next to " + t)
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef0123456789abcdef")
    plugin = build_plugin(tmp)

    sched, addr = cl.start_scheduler(token)
    slog = os.path.join(tmp, "scheduler.log")
    for i in range(2):
        cl.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1",
                  "--plugin", plugin], "worker%d.log" % i)
    wait_for(lambda: read(slog).count("joined") >= 2, 30, "2 workers to join")
    remote = ["--scheduler", addr, "--token-file", token]

    def same_output():
        rc, emb, err = run([ex, DATA])
        if rc != 0:
            raise Failed(f"embedded: exit {rc}: {err}")
        rc, got, err = run([ex, DATA, "--plugin", plugin] + remote)
        if rc != 0:
            raise Failed(f"cluster: exit {rc}: {err}")
        if table_part(got) != table_part(emb) or "France" not in got:
            raise Failed(f"cluster:\n{got}\nembedded:\n{emb}")
        if task_states(got) != ["done", "done"]:
            raise Failed("task states on the cluster: " + got)
        if "graph job" not in read(slog):
            raise Failed("the scheduler did not run a graph job")
        # the address may come from the environment too
        rc, got2, err = run([ex, DATA, "--token-file", token],
                            env=dict(ENV, TESSERA_SCHEDULER=addr, TESSERA_GRAPH_PLUGIN=plugin))
        if rc != 0 or table_part(got2) != table_part(emb):
            raise Failed(f"TESSERA_SCHEDULER: exit {rc}: {err}\n{got2}")

    test.check("graph_example: same output embedded and on a 2-worker cluster", same_output)

    rc, devs, _ = run([t, "devices", "--format", "csv"])
    has_opencl = rc == 0 and any(line.startswith("opencl,") for line in devs.splitlines()[1:])

    def opencl_implementation():
        rc, emb, err = run([ex, DATA])
        if rc != 0:
            raise Failed(f"embedded: exit {rc}: {err}")
        rc, got, err = run([ex, DATA, "--device", "opencl"], timeout=120)
        if rc != 0 or table_part(got) != table_part(emb):
            raise Failed(f"--device opencl: exit {rc}: {err}\n{got}\nembedded:\n{emb}")
        if "density ran its opencl implementation" not in err:
            raise Failed("the OpenCL implementation did not run: " + err)
        cl.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1",
                  "--device", "opencl0", "--plugin", plugin], "worker-opencl.log")
        wait_for(lambda: read(slog).count("joined") >= 3, 30, "the OpenCL worker to join")
        # required there (the preference alone may yield to an idle CPU worker)
        rc, got, err = run([ex, DATA, "--plugin", plugin, "--task-device", "opencl"] + remote,
                           timeout=120)
        if rc != 0 or table_part(got) != table_part(emb):
            raise Failed(f"cluster, on the OpenCL worker: exit {rc}: {err}\n{got}")

    if has_opencl:
        test.check("OpenCL implementation: same output embedded and on an opencl0 worker",
                   opencl_implementation)

    def function_pointer_refused():
        rc, out, err = run([ex, DATA] + remote)
        if rc == 0 or out:
            raise Failed(f"a function-pointer kind ran remotely: exit {rc}\n{out}")
        for want in ("compute density", "'density'", "function pointer",
                     "cannot run on a cluster", "plugin"):
            if want not in err:
                raise Failed(f"the refusal does not say {want!r}: {err}")

    test.check("a kind registered only by function pointer is refused, naming the task",
               function_pointer_refused)

    def timeout_and_cancel():
        # a second scheduler with one slow worker (each task takes 1 s)
        addr_file = os.path.join(tmp, "slow.addr")
        cl.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                  "--addr-file", addr_file], "slow-scheduler.log")
        wait_for(lambda: os.path.exists(addr_file) and read(addr_file).strip(), 20,
                 "the slow scheduler")
        saddr = read(addr_file).strip()
        cl.start(["worker", "--scheduler", saddr, "--token-file", token, "--threads", "1",
                  "--plugin", plugin], "slow-worker.log",
                 env=dict(ENV, TSR_TEST_TASK_DELAY_MS="1000"))
        wait_for(lambda: "joined" in read(os.path.join(tmp, "slow-scheduler.log")), 30,
                 "the slow worker to join")
        t0 = time.time()
        rc, out, err = run([ex, DATA, "--plugin", plugin, "--scheduler", saddr,
                            "--token-file", token, "--timeout", "300"])
        took = time.time() - t0
        if rc == 0 or "did not end within 300 ms" not in err:
            raise Failed(f"no timeout: exit {rc}: {err}\n{out}")
        if "task compute density: cancelled" not in err or "task report: cancelled" not in err:
            raise Failed("the tasks were not cancelled: " + err)
        if took > 1.8:  # the job takes > 2 s: cancel must not wait for it
            raise Failed(f"timeout + cancel took {took:.1f} s (a task takes 1 s)")
        # and without the timeout: per-task times come from the scheduler
        rc, out, err = run([ex, DATA, "--plugin", plugin, "--scheduler", saddr,
                            "--token-file", token])
        if rc != 0:
            raise Failed(f"slow run: exit {rc}: {err}")
        ran = [float(line.split(" ran ")[1].split()[0])
               for line in out.split("\n\n")[1].strip().split("\n")]
        if len(ran) != 2 or min(ran) < 900 or max(ran) > 5000:
            raise Failed("per-task times (each task takes 1 s on the worker): " + out)

    test.check("wait times out, cancel ends remote tasks 'cancelled'; per-task times",
               timeout_and_cancel)

    def unreachable():
        t0 = time.time()
        rc, out, err = run([ex, DATA, "--plugin", plugin, "--scheduler", "127.0.0.1:1",
                            "--token-file", token], timeout=30)
        if rc != 5 or "failed" not in err:
            raise Failed(f"exit {rc}: {err}")
        if time.time() - t0 > 15:
            raise Failed("took too long")

    test.check("an unreachable scheduler fails with exit 5", unreachable)

    def cluster_up_plugin():
        cdir = os.path.join(tmp, "up")
        pids = []
        try:
            rc, out, err = run([t, "cluster", "up", "--dir", cdir, "--workers", "1",
                                "--threads", "1", "--token-file", token, "--plugin", plugin])
            if rc != 0:
                raise Failed(f"cluster up: exit {rc}: {err}")
            uaddr = out.strip().split("\n")[-1]
            rc, st, err = run([t, "cluster", "status", "--dir", cdir, "--format", "json"])
            if rc == 0:
                doc = json.loads(st)
                pids = [w["pid"] for w in doc.get("workers", []) if w.get("pid")]
                if doc.get("scheduler", {}).get("pid"):
                    pids.append(doc["scheduler"]["pid"])
            rc, got, err = run([ex, DATA, "--plugin", plugin, "--scheduler", uaddr,
                                "--token-file", token])
            # the kind exists only in the plugin: running proves the worker loaded it
            if rc != 0 or "France" not in got:
                raise Failed(f"on the cluster up cluster: exit {rc}: {err}")
        finally:
            run([t, "cluster", "down", "--dir", cdir], timeout=30)
            for pid in pids:  # by PID, in case `down` did not stop one
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    test.check("cluster up --plugin passes the plugin to its workers", cluster_up_plugin)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_graph_cluster_", body))
