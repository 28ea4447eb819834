#!/usr/bin/env python3
"""Group commit of cluster puts (scheduler/sched_kv_repl.c gather_puts;
docs/kv.md "Replication"): the puts that wait for their partition's turn
go out together, one LOAD for every replica, and each is acknowledged
when the batch is applied everywhere.

What: a scheduler and 2 workers A and B with data dirs, B with the test
hook TSR_TEST_KV_REFUSE_KEY=refused (it refuses a put of that key, and a
group that holds one, without applying it); a 1-partition 2-replica
table holds 20 rows.
  1. A and B SIGSTOPped; a put of k0 sent (it goes out and waits for
     them), then 30 puts of k1..k29 and of `refused` in parallel
     processes, then 3 s later a put of key dup = first and 3 s after
     that dup = second (they queue behind k0's put, in arrival order); A
     and B resumed: every put must exit 0 (A applied the group), dup must
     read `second` (a group applies its puts in arrival order), and the
     table must equal the model; B must be logged stale (it refused the
     group) and refilled by the keys it missed - the group's, 2 or more;
     with A SIGKILLed, B's copy alone must equal the model (and with A
     back, B SIGKILLed, A's alone);
  2. GET /metrics must count the 33 puts and fewer writes; the scheduler
     stopped with SIGTERM: its log must count the puts and the writes they
     went out in, with at least 2 puts in groups and fewer writes than
     puts (every put alone fails it).
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_group.py [--tessera PATH] [-v]
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

HOOK = dict(ENV, TSR_TEST_KV_REFUSE_KEY="refused")
from kvlib import Kv, write_csv  # noqa: E402
from test_http import http, parse_metrics  # noqa: E402

WAIT_S = 60
PUTS = 30


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    slog = os.path.join(tmp, "scheduler.log")
    # a long heartbeat: workers SIGSTOPped for seconds stay members
    hfile = os.path.join(tmp, "http.addr")
    sched, addr = ps.start_scheduler(token, extra=["--heartbeat-timeout", "60000", "--http",
                                                   "127.0.0.1:0", "--http-addr-file", hfile])
    wait_for(lambda: os.path.exists(hfile), 20, "the scheduler's HTTP address")
    metrics_url = "http://%s/metrics" % read(hfile).strip()
    workers = {}
    joined = [0]

    def start_worker(i):
        workers[i] = ps.start_worker(addr, token, "worker%d.log" % i, env=HOOK if i == 1 else None,
                                     extra=["--data-dir", os.path.join(tmp, "w%d" % i)])
        joined[0] += 1
        ps.wait_joined(joined[0], 30, f"worker {i} to join")

    start_worker(0)
    start_worker(1)
    kv = Kv(ps.t, addr, token)
    kv.expect(0, "create", "create", "t", "--partitions", 1, "--replicas", 2)
    model = {"k%d" % i: "v%d" % i for i in range(20)}
    csv = os.path.join(tmp, "rows.csv")
    write_csv(csv, model)
    kv.expect(0, "load", "load", "t", csv)

    def put(key, value):
        return subprocess.Popen([ps.t, "kv", "put", "t", key, value] + kv.conn,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=ENV)

    def placement_is(want):
        place = kv.placement("t")
        return place is not None and sorted(st for _, st in place[0]) == want

    def kill(i):
        os.kill(workers[i].pid, signal.SIGKILL)
        workers[i].wait(timeout=10)
        wait_for(lambda: placement_is(["down", "up"]), 15, f"the scheduler to see worker {i} die")

    def grouped():
        for w in workers.values():
            os.kill(w.pid, signal.SIGSTOP)
        try:
            first = put("k0", "first-in-flight")
            time.sleep(1)  # it goes out alone, and waits for the stopped workers
            procs = [first] + [put("k%d" % i, "g%d" % i) for i in range(1, PUTS)]
            procs.append(put("refused", "by-b"))
            # far apart: each is a new process (its start and handshake
            # take a while on a loaded machine under ASan)
            time.sleep(3)
            procs.append(put("dup", "first"))
            time.sleep(3)
            procs.append(put("dup", "second"))
            time.sleep(3)
        finally:
            for w in workers.values():
                os.kill(w.pid, signal.SIGCONT)
        for p in procs:
            try:
                rc = p.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                raise Failed("a put did not finish in time")
            if rc != 0:
                raise Failed(f"a put exited {rc}: {p.stderr.read().decode(errors='replace')}")
            p.stderr.close()
        model["k0"] = "first-in-flight"
        for i in range(1, PUTS):
            model["k%d" % i] = "g%d" % i
        model["refused"] = "by-b"
        model["dup"] = "second"
        got = kv.expect(0, "get dup", "get", "t", "dup")[1].strip()
        if got != "second":
            raise Failed(f"dup reads {got!r}: the later put of the group must win")
        kv.check_table("t", model)
        wait_for(lambda: placement_is(["up", "up"]), WAIT_S, "B to be refilled")
        log = read(slog)
        if not re.search(r"replica on \S+/w1 missed a write; it is stale", log):
            raise Failed("B refused the group and was not logged stale")
        refills = [int(n) for n in re.findall(r"refilling the (\d+) key\(s\) the replica on "
                                               r"\S+/w1 missed", log)]
        if not refills or max(refills) < 2:
            raise Failed(f"B's refills by missed keys: {refills}, wanted the group's keys")

    test.check("puts that waited behind one in flight go out together; each is acknowledged, "
               "the later put of a key wins, a replica that refused the group goes stale and "
               "gets its keys", grouped)

    def alone():
        kill(0)
        kv.check_table("t", model)
        start_worker(0)
        wait_for(lambda: placement_is(["up", "up"]), WAIT_S, "A to rejoin")
        kill(1)
        kv.check_table("t", model)

    test.check("each replica alone holds every acknowledged put", alone)

    def counted():
        seen = {}

        def metrics_match():  # (a snapshot may lag the loop by a tick)
            m = parse_metrics(http(metrics_url)[2])
            seen["puts"] = m.get(("tessera_kv_puts_total", ""))
            seen["writes"] = m.get(("tessera_kv_put_writes_total", ""))
            return seen["puts"] == PUTS + 3 and 0 < seen["writes"] < seen["puts"]
        try:
            wait_for(metrics_match, 15, "GET /metrics to count the puts")
        except Failed:
            raise Failed(f"GET /metrics: {seen}")
        sched.send_signal(signal.SIGTERM)
        sched.wait(timeout=30)
        m = re.findall(r"kv: (\d+) put\(s\) went to their replicas in (\d+) write\(s\) \((\d+) of "
                       r"them in groups\)", read(slog))
        if len(m) != 1:
            raise Failed(f"the stopped scheduler's put count: {m}")
        puts, writes, in_groups = (int(x) for x in m[0])
        if test.verbose:
            print(f"     {puts} puts in {writes} writes, {in_groups} in groups")
        if puts != PUTS + 3 or in_groups < 2 or writes >= puts:
            raise Failed(f"{puts} puts in {writes} writes, {in_groups} in groups: wanted "
                         f"{PUTS + 3} puts, fewer writes, 2 or more in groups")

    test.check("the scheduler counts the puts and the fewer writes they went out in", counted)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_group_", body))
