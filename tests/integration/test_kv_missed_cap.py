#!/usr/bin/env python3
"""The scheduler's bound on all stale replicas' missed keys together
(scheduler/kv_missed.c, docs/kv.md "Delta resync").

What: a scheduler started with TSR_TEST_KV_MISSED_MAX=1500 (bytes for every
missed set together: two sets of a few keys fit - 512 bytes of slots each,
plus the keys - a third does not) and 2 workers A and B with data dirs;
3 tables of 2 partitions and 2 replicas (6 copies on B), 200 rows each.
B is SIGKILLed, then 4 puts per table go to A alone (each of B's 6 copies
goes stale, with a missed set of its keys, in the order of the writes);
B comes back on its data dir. Wanted:
  - the scheduler logs the sets it forgot "past the scheduler's bound",
    at least one (6 sets do not fit in 1500 bytes);
  - each copy whose set was forgotten is copied whole, each other one is
    refilled by its missed keys (a delta), and there is at least one
    delta (the bound forgets what passes it, not everything);
  - every table equals its model, and with A SIGKILLed B's copies alone
    equal them.
A scheduler without the bound refills all 6 by their keys and fails the
first check.
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_missed_cap.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402
from kvlib import Kv, write_csv  # noqa: E402

TABLES = ("a", "b", "c")
ROWS = 200
WAIT_S = 60


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    slog = os.path.join(tmp, "scheduler.log")
    env = dict(ENV, TSR_TEST_KV_MISSED_MAX="1500")
    sched, addr = ps.start_scheduler(token, env=env)
    workers = {}

    def start_worker(i):
        workers[i] = ps.start_worker(addr, token, "worker%d.log" % i,
                                     extra=["--data-dir", os.path.join(tmp, "w%d" % i)])

    for i in range(2):
        start_worker(i)
    ps.wait_joined(2, 30, "2 workers to join")
    kv = Kv(ps.t, addr, token)
    models = {}
    for name in TABLES:
        kv.expect(0, "create " + name, "create", name, "--partitions", 2, "--replicas", 2)
        rows = {"k%d" % i: "%s%d" % (name, i) for i in range(ROWS)}
        csv = os.path.join(tmp, name + ".csv")
        write_csv(csv, rows)
        kv.expect(0, "load " + name, "load", name, csv)
        models[name] = rows

    def all_up():
        for name in TABLES:
            place = kv.placement(name)
            if place is None or any(st != "up" for reps in place.values() for _, st in reps):
                return False
        return True

    def down(i):
        for name in TABLES:
            place = kv.placement(name)
            if place is None or not all(st == "down" for reps in place.values()
                                        for rid, st in reps if rid.endswith("/w%d" % i)):
                return False
        return True

    def kill(i):
        os.kill(workers[i].pid, signal.SIGKILL)
        workers[i].wait(timeout=10)
        wait_for(lambda: down(i), 15, f"the scheduler to see worker {i} die")

    def bounded():
        kill(1)
        for name in TABLES:  # keys of both partitions: each of B's copies goes stale
            for i in range(4):
                kv.expect(0, "put " + name, "put", name, "k%d" % i, "new%d" % i)
                models[name]["k%d" % i] = "new%d" % i
        log_before = len(read(slog))
        start_worker(1)
        ps.wait_joined(3, 30, "worker 1 to rejoin")
        wait_for(all_up, WAIT_S, "B's copies to resync")
        log = read(slog)
        forgot = set(re.findall(r"kv table '(\w+)' partition (\d+): the keys the replica on "
                                r"\S+/w1 missed are forgotten \(\d+ bytes, past the "
                                r"scheduler's bound", log))
        kinds = dict(((t, p), k) for t, p, k in re.findall(
            r"kv table '(\w+)' partition (\d+): (copying the whole|refilling the)",
            log[log_before:]))
        test_log = print if test.verbose else (lambda *_: None)
        test_log(f"     forgotten past the bound: {sorted(forgot)}; resyncs: {kinds}")
        if not forgot:
            raise Failed("no missed set was forgotten past the scheduler's bound of 1500 bytes")
        copies = {(t, str(p)) for t in TABLES for p in range(2)}
        if set(kinds) != copies:
            raise Failed(f"resyncs logged for {sorted(kinds)}, wanted {sorted(copies)}")
        for c, k in kinds.items():
            want = "copying the whole" if c in forgot else "refilling the"
            if k != want:
                raise Failed(f"table {c[0]} partition {c[1]}: resynced by {k!r}, wanted "
                             f"{want!r} (forgotten: {c in forgot})")
        if all(c in forgot for c in copies):
            raise Failed("every missed set was forgotten: the bound is not a bound")
        for name in TABLES:
            kv.check_table(name, models[name])

    test.check("missed sets past the scheduler's bound are forgotten and those copies "
               "copied whole; the others are refilled by their keys", bounded)

    def alone():
        kill(0)
        for name in TABLES:
            kv.check_table(name, models[name])

    test.check("the resynced copies alone hold every acknowledged write", alone)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_missed_cap_", body))
