#!/usr/bin/env python3
"""A worker gone for good is replaced: its kv replicas are re-replicated.

What (docs/kv.md "On a cluster", Replacing a worker gone for good):
  - replace: a scheduler with `--kv-replace-after 2` and a data dir, 3 workers,
    a 2-replica table of 16 partitions and 1,000 rows against a dict model.
    One worker is SIGKILLed; writes go on; `kv describe` eventually (bounded)
    shows every partition with exactly 2 replicas, all up and fresh, none on
    the dead worker; the table equals the model. Then a second original
    worker is SIGKILLed: the table still equals the model (the new copies
    hold real data: every partition now lives on the one worker left). The
    first one restarts on its data dir (old copies): it rejoins (the copies
    it no longer holds are dropped on it), takes the second one's place, and
    the table equals the model throughout (no old copy is read).
  - no target: 2 workers, one killed: nothing moves (each partition keeps its
    2 replicas, one down), the scheduler says once that the replicas wait,
    and the table still serves reads and writes.
  - decommission: 3 workers, replacement of dead workers off
    (`--kv-replace-after 0`); `kv decommission` of a live worker moves every
    replica off it (bounded wait), the table equals the model, and with the
    other original worker SIGKILLed too it still does. An unknown id is
    refused (exit 3).
  - decommission across a scheduler restart (`--kv-replace-after 2`): w0
    decommissioned and settled; the scheduler and every worker are stopped
    and started again on their data dirs: the scheduler's log says w0 stays
    decommissioned, a new 16-partition table puts nothing on w0 (up), the
    first table still has nothing on it and equals the model. Once w0 is
    killed, its decommission is over (the log says it is forgotten, within
    the bound); started again, w0 is a new ring member: a third table puts
    partitions on it.
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_replace.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import random
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Failed, read, wait_for, write_token  # noqa: E402
from kvlib import Kv, worker_dir_of, write_csv  # noqa: E402

NPARTS = 16
WAIT_S = 90  # generous: a loaded 2-core CI machine


class Cluster:
    """A scheduler and workers (data dirs w0, w1, ...) in a directory of their own."""

    def __init__(self, ps, tmp, name, nworkers, sched_extra):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.ps = clusterlib.Procs(ps.t, self.dir)
        ps.procs_extra.append(self.ps)
        token = os.path.join(self.dir, "token")
        write_token(token, os.urandom(16).hex())
        self.token = token
        self.sched, addr = self.ps.start_scheduler(
            token, extra=["--data-dir", os.path.join(self.dir, "sched")] + sched_extra)
        self.addr = addr
        self.log = os.path.join(self.dir, "scheduler.log")
        self.workers = {}
        for i in range(nworkers):
            self.workers[i] = self.ps.start_worker(
                addr, token, "worker%d.log" % i,
                extra=["--data-dir", os.path.join(self.dir, "w%d" % i)])
        self.ps.wait_joined(nworkers, 30, f"{nworkers} workers to join")
        self.kv = Kv(ps.t, addr, token)

    def kill(self, i):
        os.kill(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait(timeout=10)

    def load(self, rng, model, nrows):
        self.kv.expect(0, "create t", "create", "t", "--partitions", NPARTS, "--replicas", 2)
        rows = {"k%d" % i: "v%d" % rng.randrange(10 ** 6) for i in range(nrows)}
        csv = os.path.join(self.dir, "rows.csv")
        write_csv(csv, rows)
        self.kv.expect(0, "load", "load", "t", csv)
        model.update(rows)

    def write_some(self, rng, model, n, tag):
        for j in range(n):
            k = "k%d" % rng.randrange(1200)
            if rng.random() < 0.25:
                self.kv.expect(0 if k in model else 3, "del " + tag, "del", "t", k)
                model.pop(k, None)
            else:
                v = "%s%d" % (tag, j)
                self.kv.expect(0, "put " + tag, "put", "t", k, v)
                model[k] = v


def dirs(place):
    return {p: [worker_dir_of(i) for i, _ in reps] for p, reps in place.items()}


def settled_without(kv, gone):
    """Every partition: exactly 2 replicas, all up and fresh, none on gone."""
    place = kv.placement("t")
    return (place is not None and len(place) == NPARTS and
            all(len(reps) == 2 and all(st == "up" for _, st in reps) and
                not any(worker_dir_of(i) == gone for i, _ in reps)
                for reps in place.values()))


def body(test, ps, tmp):
    ps.procs_extra = []
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    try:
        run_checks(test, ps, tmp, rng)
    finally:
        for p in ps.procs_extra:
            p.stop_all()


def run_checks(test, ps, tmp, rng):
    def replace():
        c = Cluster(ps, tmp, "replace", 3, ["--kv-replace-after", "2"])
        model = {}
        c.load(rng, model, 1000)
        before = dirs(c.kv.placement("t"))
        victim = rng.randrange(3)
        held = [p for p, d in before.items() if "w%d" % victim in d]
        if not held:
            raise Failed(f"w{victim} holds no partition: {before}")
        c.kill(victim)
        gone = "w%d" % victim
        deadline = time.time() + WAIT_S
        step = 0
        # writes go on while the replicas are replaced
        while not settled_without(c.kv, gone) or step < 3:
            if time.time() > deadline:
                raise Failed(f"not re-replicated in {WAIT_S} s: {c.kv.placement('t')}")
            c.write_some(rng, model, 4, "r%d_" % step)
            step += 1
            time.sleep(0.2)
        after = dirs(c.kv.placement("t"))
        for p in range(NPARTS):
            if p not in held and sorted(after[p]) != sorted(before[p]):
                raise Failed(f"partition {p} changed without a replica on {gone}: "
                             f"{before[p]} -> {after[p]}")
        if read(c.log).count("is replaced by") != len(held):
            raise Failed(f"{len(held)} partitions held a replica on {gone}; the log says "
                         f"{read(c.log).count('is replaced by')} were replaced")
        # the bound: at most 4 partitions copying for a replacement at once
        rounds = [(int(n), int(m)) for n, m in re.findall(
            r"kv: (\d+) partition\(s\) replace a replica on a gone worker \((\d+) copying\)",
            read(c.log))]
        if sum(n for n, _ in rounds) != len(held) or any(m > 4 for _, m in rounds):
            raise Failed(f"replacement rounds (planned, copying) {rounds}: want {len(held)} "
                         f"planned in all, at most 4 copying")
        c.kv.check_table("t", model)
        # a second original worker: every partition is on the last one now
        second = rng.choice([i for i in range(3) if i != victim])
        c.kill(second)
        c.kv.check_table("t", model)
        c.write_some(rng, model, 4, "z")
        c.kv.check_table("t", model)
        # the first victim comes back on its data dir, its copies old: it
        # rejoins (the copies it no longer holds are dropped), takes the
        # second one's place, and no old copy of it is ever read
        c.workers[victim] = c.ps.start_worker(
            c.addr, c.token, "worker%d-again.log" % victim,
            extra=["--data-dir", os.path.join(c.dir, "w%d" % victim)])
        wait_for(lambda: "rejoined after its replicas were replaced" in read(c.log), WAIT_S,
                 "the first victim to rejoin")
        deadline = time.time() + WAIT_S
        while not settled_without(c.kv, "w%d" % second):
            if time.time() > deadline:
                raise Failed(f"not re-replicated onto the returning worker in {WAIT_S} s: "
                             f"{c.kv.placement('t')}")
            c.write_some(rng, model, 3, "b")
            c.kv.check_table("t", model)
            time.sleep(0.2)
        c.kv.check_table("t", model)
        if os.environ.get("TSR_KV_REPLACE_LOG"):
            print(read(c.log))

    test.check("a dead worker's replicas are re-replicated; a 2nd loss loses nothing", replace)

    def no_target():
        c = Cluster(ps, tmp, "notarget", 2, ["--kv-replace-after", "1"])
        model = {}
        c.load(rng, model, 300)
        c.kill(1)
        wait_for(lambda: "wait: no other ready worker" in read(c.log), WAIT_S,
                 "the scheduler to say the replicas wait")
        c.write_some(rng, model, 6, "n")
        time.sleep(1.5)  # a few more ticks: still said once, nothing moved
        if read(c.log).count("wait: no other ready worker") != 1:
            raise Failed("the wait was logged more than once")
        place = c.kv.placement("t")
        if (not place or len(place) != NPARTS or
                any(sorted(d) != ["w0", "w1"] for d in dirs(place).values())):
            raise Failed(f"a placement changed with nowhere to go: {place}")
        c.kv.check_table("t", model)

    test.check("2 workers, one killed: nothing moves, the table serves", no_target)

    def decommission_w0(c, model, write):
        """`kv decommission` of w0; waits (bounded) until every replica left
        it, writing while it waits when write; returns the replica ids."""
        place = c.kv.placement("t")
        ids = {worker_dir_of(i): i for reps in place.values() for i, _ in reps}
        rc, out, err = c.kv.expect(0, "decommission w0", "decommission", ids["w0"])
        if "decommissioned" not in out:
            raise Failed(f"decommission printed {out!r}")
        deadline = time.time() + WAIT_S
        while not settled_without(c.kv, "w0"):
            if time.time() > deadline:
                raise Failed(f"w0 still holds replicas after {WAIT_S} s: "
                             f"{c.kv.placement('t')}")
            if write:
                c.write_some(rng, model, 3, "d")
            time.sleep(0.2)
        return ids

    def decommission():
        c = Cluster(ps, tmp, "decom", 3, ["--kv-replace-after", "0"])
        model = {}
        c.load(rng, model, 500)
        c.kv.expect(3, "decommission of an unknown worker", "decommission", "nosuch:/x")
        decommission_w0(c, model, True)
        c.kv.check_table("t", model)
        c.kill(1)  # w2 alone holds every partition now
        c.kv.check_table("t", model)

    test.check("kv decommission moves every replica off a live worker", decommission)

    def decommission_restart():
        c = Cluster(ps, tmp, "decom2", 3, ["--kv-replace-after", "2"])
        model = {}
        c.load(rng, model, 300)
        ids = decommission_w0(c, model, False)
        # the whole cluster restarts on its data dirs (workers exit with
        # their scheduler; they are stopped here first, then it)
        for i in range(3):
            c.workers[i].send_signal(signal.SIGTERM)
            c.workers[i].wait(timeout=30)
        c.sched.send_signal(signal.SIGTERM)
        c.sched.wait(timeout=30)
        afile = os.path.join(c.dir, "sched2.addr")
        c.sched = c.ps.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", c.token,
                              "--addr-file", afile, "--kv-replace-after", "2",
                              "--data-dir", os.path.join(c.dir, "sched")], "scheduler2.log")
        wait_for(lambda: os.path.exists(afile) or c.sched.poll() is not None, 30, "the scheduler")
        if c.sched.poll() is not None:
            raise Failed("the scheduler did not restart: " +
                         read(os.path.join(c.dir, "scheduler2.log")))
        c.addr = read(afile).strip()
        log2 = os.path.join(c.dir, "scheduler2.log")

        def start(i, run):
            c.workers[i] = c.ps.start(
                ["worker", "--scheduler", c.addr, "--token-file", c.token, "--threads", "1",
                 "--data-dir", os.path.join(c.dir, "w%d" % i)], "worker%d-%d.log" % (i, run))

        for i in range(3):
            start(i, 2)
        wait_for(lambda: read(log2).count("joined") >= 3, 60, "3 workers to rejoin")
        c.kv = Kv(ps.t, c.addr, c.token)
        if "worker %s stays decommissioned" % ids["w0"] not in read(log2):
            raise Failed("the restarted scheduler forgot the decommission: " + read(log2)[-1500:])
        c.kv.expect(0, "create t2", "create", "t2", "--partitions", NPARTS, "--replicas", 2)
        on_w0 = [p for p, reps in c.kv.placement("t2").items()
                 if any(worker_dir_of(i) == "w0" for i, _ in reps)]
        if on_w0:
            raise Failed(f"a new table put partitions {on_w0} on the decommissioned w0")
        if not settled_without(c.kv, "w0"):
            raise Failed(f"after the restart: {c.kv.placement('t')}")
        c.kv.check_table("t", model)
        # stopped, it is forgotten (2 s after the scheduler saw it go)
        c.kill(0)
        wait_for(lambda: "its decommission is over" in read(log2), WAIT_S,
                 "the decommission of a stopped w0 to end")
        start(0, 3)
        wait_for(lambda: read(log2).count("joined") >= 4, 60, "w0 to rejoin")
        c.kv.expect(0, "create t3", "create", "t3", "--partitions", NPARTS, "--replicas", 2)
        if not any(worker_dir_of(i) == "w0"
                   for reps in c.kv.placement("t3").values() for i, _ in reps):
            raise Failed(f"w0, forgotten and back, took no partition of a new table: "
                         f"{c.kv.placement('t3')}")

    test.check("a decommission survives a scheduler restart and ends when the worker stops",
               decommission_restart)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_replace_", body))
