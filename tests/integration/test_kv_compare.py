#!/usr/bin/env python3
"""Fresh kv replicas of a partition in doubt are compared (scheduler/
kv_compare.c; docs/kv.md "Doubt"): a write in flight when the scheduler
died may have been applied on one replica and not the other; neither copy
may then be left to answer once the other fails.

What: a scheduler with a data dir and 2 workers A and B with data dirs; a
2-partition 2-replica table holds 50 rows.
  1. B SIGSTOPped, `kv put t k1 diverged` sent: A applies it (the value is
     seen in A's log file), B cannot; the scheduler is SIGKILLed (the put
     was never acknowledged), B SIGKILLed, A stopped; the scheduler
     restarted on its data dir, then A and B on theirs: every partition is
     in doubt, so the scheduler must compare both partitions' fresh
     replicas: k1's partition must be logged as differing on exactly one
     replica (marked stale, then refilled from the primary by the one hash
     range of keys that differs: k1's), the other one as agreeing. The
     workers run with TSR_TEST_KV_DIGEST_DELAY_MS=5000: once that copy by
     ranges started, its target is SIGSTOPped inside its digest's delay
     and k1 put (applied on the source, forwarded to the target's queue
     while its digest is still out), then the target resumed: the put
     must survive the RDROP of k1's range, which goes first. Then
     the value `kv get` reads of k1 (the last put), with the primary of k1's partition
     SIGKILLed, must stay the value it read before (a read going back in
     time otherwise), and the table read from the remaining replica alone
     must equal the model with that value; GET /metrics must count one
     comparison agreeing, one differing, one resync by ranges, no
     partition in doubt and the dead worker's 2 replicas down;
  2. the scheduler SIGKILLed with nothing in flight and restarted with both
     workers: both partitions must be logged as agreeing (out of doubt, no
     replica marked stale); then B SIGKILLed, 16 puts, B restarted on its
     data dir: both of its copies must be refilled by their missed keys (a
     partition still in doubt would be copied by ranges), and with A SIGKILLed
     B's copies alone equal the model.
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_compare.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import glob
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402
from kvlib import Kv, write_csv  # noqa: E402
from test_http import http, parse_metrics  # noqa: E402

WAIT_S = 60
# each resync digest chunk a worker answers waits this long (TSR_TEST_KV_DIGEST_DELAY_MS):
# a write lands while a resync by ranges waits for its digests
DELAY = dict(ENV, TSR_TEST_KV_DIGEST_DELAY_MS="5000")


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    sdir = os.path.join(tmp, "sched")
    # a long heartbeat: B SIGSTOPped stays a member until it is killed
    sargs = ["--data-dir", sdir, "--heartbeat-timeout", "60000"]
    state = {"runs": 0, "joined": 0}
    workers = {}
    kv = Kv(ps.t, "", token)

    def start_scheduler():
        state["runs"] += 1
        state["log"] = os.path.join(tmp, "scheduler%d.log" % state["runs"])
        afile = os.path.join(tmp, "sched%d.addr" % state["runs"])
        hfile = os.path.join(tmp, "http%d.addr" % state["runs"])
        p = ps.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                      "--addr-file", afile, "--http", "127.0.0.1:0", "--http-addr-file", hfile]
                     + sargs, os.path.basename(state["log"]))
        wait_for(lambda: os.path.exists(afile) or p.poll() is not None, 20, "the scheduler")
        if p.poll() is not None:
            raise Failed("the scheduler exited: " + read(state["log"]))
        state["sched"], state["addr"] = p, read(afile).strip()
        wait_for(lambda: os.path.exists(hfile), 20, "the scheduler's HTTP address")
        state["http"] = "http://%s/metrics" % read(hfile).strip()
        kv.conn = ["--scheduler", state["addr"], "--token-file", token]
        state["joined"] = 0

    def start_worker(i):
        workers[i] = ps.start_worker(state["addr"], token, "worker%d.log" % i, env=DELAY,
                                     extra=["--data-dir", os.path.join(tmp, "w%d" % i)])
        state["joined"] += 1
        wait_for(lambda: read(state["log"]).count("joined") >= state["joined"], 30,
                 f"worker {i} to join")

    def stop(p, sig):
        if p.poll() is None:
            if sig != signal.SIGKILL:  # a stopped B woken would apply what it holds
                p.send_signal(signal.SIGCONT)
            p.send_signal(sig)
        p.wait(timeout=30)

    def all_up():
        place = kv.placement("t")
        return place is not None and all(st == "up" for reps in place.values() for _, st in reps)

    def compared(log):
        """{partition: (outcome, replica)} of the comparisons in log."""
        out = {}
        for p, rid in re.findall(r"kv table 't' partition (\d+): the replica on (\S+) differs",
                                 log):
            if p in out:
                raise Failed(f"partition {p}: more than one replica differs")
            out[p] = ("differs", rid)
        for p in re.findall(r"kv table 't' partition (\d+): its fresh replicas agree", log):
            if p in out:
                raise Failed(f"partition {p}: logged as agreeing and differing")
            out[p] = ("agree", None)
        return out

    def restart_and_compare():
        """The scheduler and both workers started (again) on their data
        dirs; every partition is in doubt: both comparisons' outcomes."""
        start_scheduler()
        start_worker(0)
        start_worker(1)
        wait_for(lambda: len(compared(read(state["log"]))) == 2, WAIT_S,
                 "both partitions to be compared")
        return compared(read(state["log"]))

    start_scheduler()
    start_worker(0)
    start_worker(1)
    kv.expect(0, "create", "create", "t", "--partitions", 2, "--replicas", 2)
    model = {"k%d" % i: "v%d" % i for i in range(50)}
    csv = os.path.join(tmp, "rows.csv")
    write_csv(csv, model)
    kv.expect(0, "load", "load", "t", csv)

    def in_a_log(value):
        for path in glob.glob(os.path.join(tmp, "w0", "kv", "wal-*.log")):
            with open(path, "rb") as f:
                if value in f.read():
                    return True
        return False

    def diverged():
        os.kill(workers[1].pid, signal.SIGSTOP)
        put = subprocess.Popen([ps.t, "kv", "put", "t", "k1", "diverged"] + kv.conn,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=ENV)
        wait_for(lambda: in_a_log(b"diverged"), 30, "A to log the put")
        stop(state["sched"], signal.SIGKILL)
        if put.wait(timeout=30) == 0:
            raise Failed("the put was acknowledged with B stopped")
        stop(workers[1], signal.SIGKILL)
        stop(workers[0], signal.SIGTERM)
        got = restart_and_compare()
        outcomes = sorted(o for o, _ in got.values())
        if outcomes != ["agree", "differs"]:
            raise Failed(f"comparisons {got}: wanted one partition differing, one agreeing")
        part = next(p for p, (o, _) in got.items() if o == "differs")
        # its copy by ranges waits for the digests: a put of k1 now is
        # forwarded to it while they come in, and must survive the RDROP
        # of k1's range, which goes first
        starting = "kv table 't' partition %s: copying the partition to the replica on %s" % (
            part, got[part][1])
        wait_for(lambda: starting in read(state["log"]), WAIT_S, "the copy by ranges to start")
        # the target stopped inside its digest's delay: it answers only once
        # the put (applied on the source, forwarded) is in its queue
        target = workers[0 if got[part][1].endswith("/w0") else 1]
        os.kill(target.pid, signal.SIGSTOP)
        try:
            kv.expect(0, "a put while the digests come in", "put", "t", "k1", "during")
            if "key ranges differ" in read(state["log"]).split(starting, 1)[1]:
                raise Failed("the target's digest came back before the put")
        finally:
            os.kill(target.pid, signal.SIGCONT)
        model["k1"] = "during"
        wait_for(all_up, WAIT_S, "the differing replica to be copied")
        # refilled by the one hash range of its keys that differs (k1's)
        ranges = re.findall(r"kv table 't' partition %s: (\d+) of (\d+) key ranges differ on "
                            r"the replica on %s " % (part, re.escape(got[part][1])),
                            read(state["log"]))
        if len(ranges) != 1 or ranges[0][0] != "1":
            raise Failed(f"the differing replica's copy by ranges: {ranges}, wanted 1 range")
        before = kv.expect(0, "get k1", "get", "t", "k1")[1].strip()
        if before != "during":
            raise Failed(f"k1 reads {before!r}: not the last put")
        primary = kv.placement("t")[int(part)][0][0]
        victim = 0 if primary.endswith("/w0") else 1
        stop(workers[victim], signal.SIGKILL)
        wait_for(lambda: kv.placement("t")[int(part)][0][1] == "down", 15,
                 "the scheduler to see the primary die")
        after = kv.expect(0, "get k1 from the other replica", "get", "t", "k1")[1].strip()
        if after != before:
            raise Failed(f"k1 read {before!r} from the primary and {after!r} once it died")
        kv.check_table("t", model)
        state["victim"] = victim
        want = {("tessera_kv_tables", ""): 1, ("tessera_kv_partitions", ""): 2,
                ("tessera_kv_partitions_in_doubt", ""): 0,
                ("tessera_kv_comparisons_total", '{outcome="agree"}'): 1,
                ("tessera_kv_comparisons_total", '{outcome="differ"}'): 1,
                ("tessera_kv_comparisons_total", '{outcome="failed"}'): 0,
                ("tessera_kv_resyncs_total", '{kind="ranges"}'): 1,
                ("tessera_kv_resyncs_total", '{kind="whole"}'): 0,
                ("tessera_kv_replicas", '{state="down"}'): 2}
        seen = {}

        def metrics_match():  # (a snapshot may lag the loop by a tick)
            m = parse_metrics(http(state["http"])[2])
            seen.update({k: m.get(k) for k in want})
            return seen == want
        try:
            wait_for(metrics_match, 15, "GET /metrics to count the comparisons")
        except Failed:
            raise Failed(f"GET /metrics: {seen}, wanted {want}")

    test.check("a put applied on one replica when the scheduler died: the replicas are "
               "compared, the differing one copied from the primary; a read does not go back "
               "once the primary dies", diverged)

    def agree():
        stop(state["sched"], signal.SIGKILL)
        for w in workers.values():
            stop(w, signal.SIGTERM)
        got = restart_and_compare()
        if any(o != "agree" for o, _ in got.values()):
            raise Failed(f"comparisons {got}: wanted both agreeing")
        wait_for(all_up, WAIT_S, "every replica up")
        stop(workers[1], signal.SIGKILL)
        wait_for(lambda: all(st == "down" for reps in kv.placement("t").values()
                             for rid, st in reps if rid.endswith("/w1")), 15,
                 "the scheduler to see B die")
        for i in range(16):  # keys of both partitions (all in one: 2^-15)
            kv.expect(0, "put", "put", "t", "k%d" % i, "after%d" % i)
            model["k%d" % i] = "after%d" % i
        mark = len(read(state["log"]))
        start_worker(1)
        wait_for(all_up, WAIT_S, "B's copies to be refilled")
        log = read(state["log"])[mark:]
        kinds = re.findall(r"kv table 't' partition \d+: (copying the partition|refilling the)", log)
        if sorted(kinds) != ["refilling the", "refilling the"]:
            raise Failed(f"B's copies were resynced by {kinds}: wanted both refilled by their "
                         "missed keys")
        stop(workers[0], signal.SIGKILL)
        wait_for(lambda: all(st == "down" for reps in kv.placement("t").values()
                             for rid, st in reps if rid.endswith("/w0")), 15,
                 "the scheduler to see A die")
        kv.check_table("t", model)

    test.check("after a crash with nothing in flight the replicas agree and leave doubt: a "
               "copy that goes stale later is refilled by its missed keys", agree)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_compare_", body))
