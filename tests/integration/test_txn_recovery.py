#!/usr/bin/env python3
"""Atomic cluster commits across a scheduler crash (the coordinator log,
scheduler/txn_log.c and sched_txn.c; docs/kv.md "Transactions on a cluster").

What: a scheduler with --data-dir and 3 workers (each on its own data dir);
a 2-replica table of 16 partitions holds 12 accounts of 100 each. Then:
  - the scheduler runs with TSR_TEST_TXN_CRASH_AFTER_APPLIES=0 (it exits
    after validating a commit, before its PREPARE): a transfer touching all
    12 accounts (several partitions) fails for the client (exit 5), the
    scheduler exits 9; restarted (with the hook at 1) with the workers on
    their data dirs, no account changed (none applied);
  - with the hook at 1 the scheduler exits right after the first
    partition's apply of another transfer (the client: exit 5); restarted
    without the hook, every account ends with the transfer's value (all
    applied: the PREPARE was durable), within a bounded wait, and the total
    is still 1200, also through a transaction's consistent read; no
    replica went stale (the workers rejoin one by one: the redo waits for
    each partition's replicas instead of applying on the first);
  - the two workers holding every replica of one partition are killed: a
    commit of 200 keys (every partition) exits 5 saying it is committed,
    and once the workers are restarted on their data dirs every key has
    its value (the scheduler redid that partition's part);
  - a later commit works, and at a clean stop the scheduler's log says no
    transaction is outstanding in its log;
  - fenced writes (txn_cluster_test's fence role): after commits with
    tokens 5000 of one lock and 7 of another, older tokens are refused
    (stale, nothing written); then the scheduler is SIGKILLed and
    restarted on its data dir: it says it restored 2 locks' tokens, the
    older tokens are still refused, equal and newer ones commit.
Every process is stopped by its PID; every wait is bounded.

Usage: test_txn_recovery.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, run, wait_for, write_token  # noqa: E402
from kvlib import Kv  # noqa: E402

HOOK = "TSR_TEST_TXN_CRASH_AFTER_APPLIES"
NACC = 12


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    sdir = os.path.join(tmp, "sched")
    st = {"runs": 0, "workers": []}
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    accounts = ["acct%02d" % i for i in range(NACC)]

    def start_sched(hook, stagger=0.0):
        st["runs"] += 1
        log = os.path.join(tmp, "scheduler%d.log" % st["runs"])
        afile = os.path.join(tmp, "sched%d.addr" % st["runs"])
        env = dict(ENV)
        if hook is not None:
            env[HOOK] = str(hook)
        p = ps.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                      "--addr-file", afile, "--data-dir", sdir], os.path.basename(log), env=env)
        wait_for(lambda: os.path.exists(afile) or p.poll() is not None, 60, "the scheduler")
        if p.poll() is not None:
            raise Failed("the scheduler exited: " + read(log))
        st.update(sched=p, log=log, addr=read(afile).strip())
        st["workers"] = []
        for i in range(3):  # stagger: seconds between the workers' starts
            if i and stagger:
                time.sleep(stagger)
            st["workers"].append(
                ps.start_worker(st["addr"], token, "worker%d-%d.log" % (i, st["runs"]),
                                extra=["--data-dir", os.path.join(tmp, "w%d" % i)]))
        wait_for(lambda: read(log).count("joined") >= 3, 60, "3 workers to join")

    def cli(*args):
        return run(ps.t, [str(a) for a in args] + ["--scheduler", st["addr"], "--token-file", token],
                   timeout=30)

    def expect(res, code, what):
        if res[0] != code:
            raise Failed(f"{what}: exit {res[0]}, wanted {code}; stderr: {res[2].strip()}")
        return res

    def balances():
        got = {}
        for a in accounts:
            rc, out, err = expect(cli("kv", "get", "t", a), 0, "get " + a)
            got[a] = int(out.strip())
        return got

    def crashed(what):
        """The scheduler exits 9 by the hook; its workers are stopped."""
        try:
            rc = st["sched"].wait(timeout=60)
        except Exception:  # noqa: BLE001 - a timeout: fail with the log
            raise Failed(f"{what}: the scheduler did not exit: " + read(st["log"])[-2000:])
        if rc != 9:
            raise Failed(f"{what}: the scheduler exited {rc}, wanted 9 (the hook)")
        for w in st["workers"]:
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
        for w in st["workers"]:
            w.wait(timeout=20)

    def transfer():
        """New balances: the same total, every account changed."""
        deltas = [rng.randrange(1, 50) for _ in range(NACC - 1)]
        deltas.append(-sum(deltas))
        return {a: st["bal"][a] + d for a, d in zip(accounts, deltas)}

    def script(new):
        return "; ".join(f"put {a} {v}" for a, v in new.items())

    def setup():
        start_sched(0)
        expect(cli("kv", "create", "t", "--partitions", 16, "--replicas", 2), 0, "create")
        for a in accounts:
            expect(cli("kv", "put", "t", a, 100), 0, "put " + a)
        st["bal"] = {a: 100 for a in accounts}

    test.check("a 2-replica table of 12 accounts", setup)

    def none_applied():
        new = transfer()
        expect(cli("txn", "t", "-e", script(new)), 5, "a commit that crashes before PREPARE")
        crashed("hook 0")
        if "before a commit's PREPARE" not in read(st["log"]):
            raise Failed("the scheduler's log does not name the hook")
        start_sched(1)
        got = balances()
        if got != st["bal"]:
            raise Failed(f"a commit that was never prepared changed accounts: {got}")

    test.check("a crash before the PREPARE is durable applies nothing", none_applied)

    def all_applied():
        new = transfer()
        expect(cli("txn", "t", "-e", script(new)), 5, "a commit that crashes mid-apply")
        crashed("hook 1")
        if "exiting after 1 partition apply" not in read(st["log"]):
            raise Failed("the scheduler did not exit mid-apply: " + read(st["log"])[-1500:])
        start_sched(None, stagger=1.2)  # past the redo's 500 ms retry: rejoins one by one
        if "redone on" not in read(st["log"]):
            raise Failed("the restarted scheduler found nothing to redo: " + read(st["log"]))
        deadline = time.time() + 90
        got = balances()
        while got != new and time.time() < deadline:
            time.sleep(0.2)
            got = balances()
        if got != new:
            raise Failed(f"after recovery: {got}, want every account at {new}")
        if sum(got.values()) != 100 * NACC:
            raise Failed(f"total {sum(got.values())}, want {100 * NACC}")
        st["bal"] = new
        # the workers rejoined one by one: the redo waited for each
        # partition's replicas rather than leave all but the first stale
        stale = [ln for ln in read(st["log"]).splitlines() if "missed a write" in ln]
        if stale:
            raise Failed(f"the redo left {len(stale)} replica(s) stale: {stale[:3]}")
        # a transaction's consistent read of every account (validated with
        # the turns held, so never half of a commit)
        rc, out, err = expect(cli("txn", "t", "-e", "; ".join("get " + a for a in accounts),
                                  "--retries", 20), 0, "a read of every account")
        vals = [int(x) for x in out.split()]
        if vals != [new[a] for a in accounts]:
            raise Failed(f"transactional read after recovery: {vals}")

    test.check("a crash after the first partition's apply: all applied at restart", all_applied)

    def partition_lost():
        # the two workers holding every replica of some partition are
        # killed; a commit of 200 keys (all 16 partitions, but for a chance
        # of 2.5e-6) then finds no replica of that partition: exit 5, and
        # the message says it is committed; restarted, the workers get it
        place = Kv(ps.t, st["addr"], token).placement("t")
        if not place:
            raise Failed("kv describe failed")
        dirs = {os.path.join(tmp, "w%d" % i): i for i in range(3)}
        pair = None
        for p, reps in sorted(place.items()):
            ids = [rid for rid, _ in reps]
            idx = [dirs[d] for rid in ids for d in dirs if rid.endswith(":" + d)]
            if len(idx) == 2:
                pair = sorted(idx)
                break
        if pair is None:
            raise Failed(f"no partition with 2 replicas on known workers: {place}")
        for i in pair:
            st["workers"][i].send_signal(signal.SIGKILL)
            st["workers"][i].wait(timeout=20)
        new = {"y%03d" % i: "v%d" % rng.randrange(10 ** 6) for i in range(200)}
        rc, out, err = cli("txn", "t", "-e", script(new))
        if rc != 5 or "committed" not in err:
            raise Failed(f"a commit with a partition gone: exit {rc}, stderr {err.strip()}")
        for i in pair:
            st["workers"][i] = ps.start_worker(st["addr"], token, "worker%d-%d-b.log" % (i, st["runs"]),
                                               extra=["--data-dir", os.path.join(tmp, "w%d" % i)])
        deadline = time.time() + 90
        missing = list(new)
        while missing and time.time() < deadline:
            rc, out, err = cli("txn", "t", "-e", "; ".join("get " + k for k in missing))
            if rc == 0:
                vals = out.split("\n")
                missing = [k for k, v in zip(missing, vals) if v != new[k]]
            time.sleep(0.2)
        if missing:
            raise Failed(f"{len(missing)} key(s) of the commit never arrived: {missing[:5]}")
        if "the committed writes are applied" not in read(st["log"]):
            raise Failed("the scheduler did not log the redo")

    test.check("a partition with no replica: committed, completed when it is back",
               partition_lost)

    def after():
        new = transfer()
        expect(cli("txn", "t", "-e", script(new)), 0, "a commit after recovery")
        if balances() != new:
            raise Failed("the commit after recovery is not all there")
        st["sched"].send_signal(signal.SIGTERM)
        st["sched"].wait(timeout=20)
        log = read(st["log"])
        if ", 0 outstanding" not in log:
            raise Failed("the txn log still holds outstanding commits: " + log[-1500:])

    test.check("commits go on; nothing outstanding at a clean stop", after)

    ctest = os.path.join(os.path.dirname(ps.t), "txn_cluster_test")

    def fence(lock, tok, n, want):
        rc, out, err = run(ctest, ["fence", st["addr"], token, "t", lock, str(tok), str(n), want],
                           timeout=60)
        if rc != 0:
            raise Failed(f"fenced write {lock} {tok} ({want}): exit {rc}: {err[-1500:]}")

    def stop_all(sig):
        for p in [st["sched"]] + st["workers"]:
            if p.poll() is None:
                p.send_signal(sig)
        for p in [st["sched"]] + st["workers"]:
            p.wait(timeout=20)

    def fences():
        stop_all(signal.SIGKILL)
        start_sched(None)
        fence("fence-a", 5000, 1, "ok")
        fence("fence-a", 4999, 2, "stale")
        fence("fence-b", 7, 2, "ok")   # two keys: most likely two partitions (PREPARE)
        fence("fence-a", 5000, 2, "ok")
        stop_all(signal.SIGKILL)       # no clean stop: the FENCE records must be durable
        start_sched(None)
        if "the fencing tokens of 2 lock(s) restored" not in read(st["log"]):
            raise Failed("the restarted scheduler did not restore 2 locks' tokens: "
                         + read(st["log"])[-1500:])
        fence("fence-a", 4999, 1, "stale")
        fence("fence-b", 6, 2, "stale")
        fence("fence-b", 7, 1, "ok")
        fence("fence-a", 5001, 2, "ok")
        fence("fence-a", 5000, 1, "stale")
        stop_all(signal.SIGTERM)

    if os.path.exists(ctest):
        test.check("fenced writes: stale tokens refused, also after a scheduler SIGKILL", fences)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_txn_recovery_", body))
