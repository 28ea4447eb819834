#!/usr/bin/env python3
"""Cluster upserts sent to every replica at once (scheduler/sched_kv_repl.c
send_upsert; docs/kv.md "Replication"): what happens when a replica
answers an error.

What: a scheduler with a data dir and 2 workers A and B with data dirs; B
runs with the test hook TSR_TEST_KV_REFUSE_KEY=refused (its worker answers
a PUT of that key UNAVAILABLE without applying it); a 1-partition
2-replica table holds 50 rows.
  1. `kv put t refused v1`: A applies it, B refuses it: the put must be
     acknowledged (exit 0), B's copy logged stale ("missed a write") - it
     lacks an acknowledged write - and refilled by the key it missed (a
     delta: the same store; the refill is not a PUT, so the hook lets it
     through); then no replica is stale, and with A SIGKILLed B's copy
     alone equals the model (a scheduler that counted B as having applied
     it, or forgot the key, fails here);
  2. A restarted on its data dir with the hook too: `kv put t refused v2`
     is refused by both: the client must get exit 5 with the worker's
     message, no replica may go stale or the partition be in doubt (both
     answered: nothing applied), and the key keeps v1; a put of another
     key still works;
  3. both workers SIGSTOPped, a put sent (it waits for them), a second put
     sent (it waits for its turn), the table dropped, the workers resumed:
     the second put must fail with exit 3 naming the drop (run, it would
     make the workers recreate the dropped table's copies).
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_upsert.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402
from kvlib import Kv, write_csv  # noqa: E402

HOOK = dict(ENV, TSR_TEST_KV_REFUSE_KEY="refused")


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    slog = os.path.join(tmp, "scheduler.log")
    # a long heartbeat: workers SIGSTOPped for 2 s (check 3) stay alive
    sched, addr = ps.start_scheduler(token, extra=["--data-dir", os.path.join(tmp, "sched"),
                                                   "--heartbeat-timeout", "60000"])
    workers = {}
    joined = [0]

    def start_worker(i, env=None):
        workers[i] = ps.start_worker(addr, token, "worker%d.log" % i, env=env,
                                     extra=["--data-dir", os.path.join(tmp, "w%d" % i)])
        joined[0] += 1
        ps.wait_joined(joined[0], 30, f"worker {i} to join")

    start_worker(0)
    start_worker(1, HOOK)
    kv = Kv(ps.t, addr, token)
    kv.expect(0, "create", "create", "t", "--partitions", 1, "--replicas", 2)
    model = {"k%d" % i: "v%d" % i for i in range(50)}
    csv = os.path.join(tmp, "rows.csv")
    write_csv(csv, model)
    kv.expect(0, "load", "load", "t", csv)

    def all_up():
        place = kv.placement("t")
        return place is not None and all(st == "up" for reps in place.values() for _, st in reps)

    def one_refuses():
        before = len(read(slog))
        kv.expect(0, "a put B refuses", "put", "t", "refused", "v1")
        model["refused"] = "v1"
        log = read(slog)[before:]
        if not re.search(r"replica on \S+/w1 missed a write", log):
            raise Failed("B refused an acknowledged put but was not marked stale: " + log[-800:])
        wait_for(all_up, 60, "B's copy to resync")
        log = read(slog)[before:]
        if not re.search(r"refilling the 1 key\(s\) the replica on \S+/w1 missed", log):
            raise Failed("B's copy was not refilled by the one key it missed: " + log[-800:])
        kv.check_table("t", model)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)
        wait_for(lambda: any(st == "down" for reps in kv.placement("t").values()
                             for _, st in reps), 15, "the scheduler to see A die")
        kv.check_table("t", model)  # B's copy alone

    test.check("a put one replica refuses is acknowledged, that replica goes stale and is "
               "refilled by the key", one_refuses)

    def all_refuse():
        start_worker(0, HOOK)  # back on its data dir, refusing too
        wait_for(all_up, 60, "both replicas up")
        before = len(read(slog))
        rc, out, err = kv("put", "t", "refused", "v2")
        if rc != 5 or "TSR_TEST_KV_REFUSE_KEY" not in err:
            raise Failed(f"a put every replica refuses: exit {rc}, stderr {err.strip()!r}; "
                         "wanted 5 and the worker's message")
        log = read(slog)[before:]
        if "missed a write" in log or "outcome is unknown" in log:
            raise Failed("a put no replica applied made a replica stale or the partition "
                         "doubtful: " + log[-800:])
        if not all_up():
            raise Failed(f"a replica is not up after a refused put: {kv.placement('t')}")
        kv.expect(0, "another put", "put", "t", "other", "o1")
        model["other"] = "o1"
        kv.check_table("t", model)  # 'refused' still v1

    test.check("a put every replica refuses fails with their error; nothing goes stale",
               all_refuse)

    def dropped_while_waiting():
        # both workers stopped: a put goes out and waits for them, a second
        # one waits for its turn behind it; the table is dropped meanwhile.
        # The second must not run (a write would make the workers recreate
        # the dropped table's copies): NOT_FOUND, exit 3
        for w in workers.values():
            os.kill(w.pid, signal.SIGSTOP)
        try:
            first = subprocess.Popen([ps.t, "kv", "put", "t", "a", "1"] + kv.conn,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=ENV)
            time.sleep(1)
            second = subprocess.Popen([ps.t, "kv", "put", "t", "b", "2"] + kv.conn,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, env=ENV)
            time.sleep(1)
            kv.expect(0, "drop", "drop", "t")
        finally:
            for w in workers.values():
                os.kill(w.pid, signal.SIGCONT)
        first.wait(timeout=60)
        err = second.communicate(timeout=60)[1].decode(errors="replace")
        if second.returncode != 3 or "dropped" not in err:
            raise Failed(f"a put that waited while its table was dropped: exit "
                         f"{second.returncode}, stderr {err.strip()!r}; wanted 3, 'dropped'")
        kv.expect(3, "get from the dropped table", "get", "t", "b")

    test.check("a put that waited for its turn while its table was dropped is NOT_FOUND",
               dropped_while_waiting)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_upsert_", body))
