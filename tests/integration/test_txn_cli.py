#!/usr/bin/env python3
"""Transactions on a cluster kv table: `tessera txn` and the C API, against a
real local cluster.

What: starts `tessera scheduler` and 3 `tessera worker` processes (each with
its own --data-dir) on loopback and checks:
  - random one-shot `tessera txn` scripts (get/put/del, quoted words, --hex
    binary keys) against a Python dict model: every printed get (the value
    alone, or "(missing)"; read-your-writes inside the script), then the
    table's contents through `tessera txn` and `tessera kv get`;
  - exit codes: 2 for a bad script or usage (unknown statement, wrong
    arity, unterminated quote, bad hex, oversized key, no -e), and a bad
    script writes nothing; 3 for a missing table; 5 for an unreachable
    scheduler;
  - conflicts: 3 scripts read one key, sleep inside their transaction and
    write it: exactly one of those that read the same value commits (exit 0),
    the others exit 4 and nothing of theirs is written (a process started so
    late that it read the winner's value may commit after it: the committed
    ones form one serial chain); with --retries they all commit, one after
    the other (each read the value of the previous one);
  - the C API (tests/integration/txn/txn_cluster_test.c): deterministic
    conflicts (a read that changed, an absent key that appeared, a read-only
    transaction) and write skew (two transactions each reading both of two
    keys and writing one never both commit, also concurrently);
  - the bank invariant: 100 accounts in a 2-replica table of 12 partitions
    on the 3 workers, 4 client processes doing random transfers with
    tsr_txn_run for a bounded time; every committed audit (a read-only
    transaction over all accounts) sees the same total, and at the end the
    balances are the start plus every acknowledged transfer exactly once -
    with reads one-sided (the clients' counters must show it), once more
    with TSR_TXN_ONE_SIDED=0 (every read through the scheduler), then
    while one worker is killed with SIGKILL mid-run (the table keeps
    serving through the backups), then while that worker restarts on its
    data dir and its stale copies are resynced (dropped and reloaded: the
    one-sided readers must not read the dropped copies), and once more
    after the resync;
  - a table dropped while a commit that writes it waits for another table's
    write turn: the scheduler survives (no use of the freed table), the
    commit answers NOT_FOUND or OK; dropped while the commit's validation is
    out (the replicas stopped): the commit answers NOT_FOUND, not OK.
Every process is stopped by its PID; every wait is bounded.

Usage: test_txn_cli.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera and txn_cluster_test).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402

TIMEOUT_S = 60
NACCT, START = 100, 1000
MISSING = "(missing)"


def body(test, ps, tmp):
    t = ps.t
    ctest = os.path.join(os.path.dirname(t), "txn_cluster_test")
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    slog = os.path.join(tmp, "scheduler.log")
    # a data dir, so the scheduler logs multi-partition commits (txn-log):
    # the bank runs below then go through the coordinator log's path
    sched, addr = ps.start_scheduler(token, ["--data-dir", os.path.join(tmp, "sched")])
    workers = {}
    for i in range(3):
        workers[i] = ps.start(["worker", "--scheduler", addr, "--token-file", token,
                               "--threads", "1", "--data-dir", os.path.join(tmp, "w%d" % i)],
                              "worker%d.log" % i)
    wait_for(lambda: read(slog).count("joined") >= 3, 20, "3 workers to join")
    conn = ["--scheduler", addr, "--token-file", token]
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    if test.verbose:
        print("seed", seed)

    def cli(*args):
        p = subprocess.run([t] + [str(a) for a in args] + conn, capture_output=True,
                           timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, env=ENV)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def expect(res, code, what):
        if res[0] != code:
            raise Failed(f"{what}: exit {res[0]}, wanted {code}; stderr: {res[2].strip()}")
        return res

    def txn(name, script, *extra):
        return cli("txn", name, "-e", script, *extra)

    expect(cli("kv", "create", "t", "--partitions", 8, "--replicas", 2, "--max-key", 32), 0,
           "create t")

    def quote(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def random_scripts():
        model = {}
        keys = ["a", "b", "k 1", "semi;colon", "q\"uote", "", "back\\slash"]
        for n in range(20):
            stmts, want, sim = [], [], dict(model)
            for _ in range(rng.randint(1, 6)):
                k = rng.choice(keys)
                op = rng.choice(["get", "get", "put", "put", "del"])
                if op == "get":
                    stmts.append("get " + quote(k))
                    want.append(sim.get(k, MISSING))
                elif op == "put":
                    v = rng.choice(["v%d" % rng.randint(0, 99), "with space", "x;y", ""])
                    stmts.append("put %s %s" % (quote(k), quote(v)))
                    sim[k] = v
                else:
                    stmts.append("del " + quote(k))
                    sim.pop(k, None)
            sep = rng.choice(["; ", ";", "\n", " ;\n "])
            rc, out, err = expect(txn("t", sep.join(stmts)), 0, "script %d" % n)
            got = out.split("\n")[:-1] if out else []
            if got != want:
                raise Failed(f"script {sep.join(stmts)!r}: printed {got}, wanted {want}")
            model = sim
        # the table holds the model: one transaction reading every key, and kv get
        script = "; ".join("get " + quote(k) for k in keys)
        rc, out, err = expect(txn("t", script), 0, "final read")
        got = out.split("\n")[:-1]
        want = [model.get(k, MISSING) for k in keys]
        if got != want:
            raise Failed(f"final read {got}, wanted {want}")
        for k in ["a", "b", "k 1"]:
            rc, out, err = cli("kv", "get", "t", k)
            if (rc, out[:-1] if rc == 0 else None) != ((0, model[k]) if k in model else (3, None)):
                raise Failed(f"kv get {k!r}: exit {rc} {out!r}, model {model.get(k)!r}")
        # binary keys and values with --hex
        hmodel = {}
        for n in range(5):
            k = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))).hex()
            v = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20))).hex()
            rc, out, err = expect(txn("t", f'get {k}; put {k} "{v}"; get {k}', "--hex"), 0,
                                  "hex script")
            if out.split("\n")[:-1] != [hmodel.get(k, MISSING), v]:
                raise Failed(f"hex script: {out!r}")
            hmodel[k] = v

    test.check("random one-shot scripts against a dict model", random_scripts)

    def exit_codes():
        bad = ["frob a", "get", "put a", "get a b", 'put a "x', "", " ; ;", "put a b c",
               'get "a"b', "sleep x", "sleep 70000"]
        for s in bad:
            rc, out, err = txn("t", s)
            if rc != 2 or out:
                raise Failed(f"script {s!r}: exit {rc} out {out!r}, wanted 2 and nothing")
        expect(txn("t", "put zz 1; get zz; frob"), 2, "a bad statement after a put")
        expect(txn("t", "put zz 1; get zz; get", ), 2, "a bad get after a put")
        expect(txn("t", "get zz"), 0, "read zz")
        if txn("t", "get zz")[1] != MISSING + "\n":
            raise Failed("a bad script wrote zz")
        expect(txn("t", "get 7a7a", "--hex"), 0, "hex get")
        expect(txn("t", "get xyz", "--hex"), 2, "bad hex")
        expect(txn("t", "put " + "k" * 40 + " v"), 2, "an oversized key")
        expect(cli("txn", "t"), 2, "no -e")
        expect(cli("txn", "-e", "get a"), 2, "no table")
        expect(cli("txn", "t", "-e", "get a", "--retries", "x"), 2, "bad --retries")
        expect(cli("txn", "t", "-e", "get a", "--bogus"), 2, "unknown option")
        expect(txn("nosuch", "get a"), 3, "get on a missing table")
        expect(txn("nosuch", "put a 1"), 3, "put on a missing table")
        p = subprocess.run([t, "txn", "t", "-e", "get a", "--scheduler", "127.0.0.1:1",
                            "--token-file", token], capture_output=True, timeout=TIMEOUT_S,
                           stdin=subprocess.DEVNULL, env=ENV)
        if p.returncode != 5:
            raise Failed(f"unreachable scheduler: exit {p.returncode}, wanted 5")

    test.check("exit codes 2 (bad script writes nothing), 3, 5", exit_codes)

    def start_txn(script, *extra):
        return subprocess.Popen([t, "txn", "t", "-e", script] + list(extra) + conn,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=ENV)

    def finish(ps_):
        res = []
        for p in ps_:
            try:
                out, err = p.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate(timeout=10)
                raise Failed("a txn process hung")
            res.append((p.returncode, out.decode(), err.decode()))
        return res

    def conflicts():
        expect(txn("t", "put ctr start"), 0, "init ctr")
        # all read ctr, then sleep past the others' reads: exactly one of
        # those that read "start" commits. A process that started so late
        # (a loaded machine) that it read after a commit reads the winner's
        # value and may commit too; so the check is the serial chain: every
        # committed one read "start" or another committed one's value, each
        # value read by at most one, and at least one conflict among 3.
        procs = [start_txn(f"get ctr; sleep 4000; put ctr w{i}; put mark{i} x")
                 for i in range(3)]
        res = finish(procs)
        codes = [r[0] for r in res]
        if any(c not in (0, 4) for c in codes) or codes.count(4) == 0:
            raise Failed(f"exit codes {codes}, wanted one 0 and two 4; "
                         f"stderr: {[r[2].strip() for r in res]}")
        winners = [i for i, c in enumerate(codes) if c == 0]
        reads = {i: res[i][1] for i in winners}
        chain = {reads[i].strip(): f"w{i}" for i in winners}
        cur, n = "start", 0
        while cur in chain:
            cur, n = chain[cur], n + 1
        if n != len(winners) or any(not reads[i].endswith("\n") for i in winners):
            raise Failed(f"the winners read {reads}: not one serial chain from 'start'")
        for i, (rc, out, err) in enumerate(res):
            if rc == 4 and (out or "conflict" not in err):
                raise Failed(f"loser {i}: stdout {out!r}, stderr {err!r}")
        got = txn("t", "get ctr; get mark0; get mark1; get mark2")[1].split("\n")[:-1]
        want = [cur] + ["x" if i in winners else MISSING for i in range(3)]
        if got != want:
            raise Failed(f"after the race: {got}, wanted {want}")
        win = cur[1:]
        # with retries every one commits, serially: each read the previous value
        procs = [start_txn(f"get ctr; sleep 300; put ctr r{i}", "--retries", "40")
                 for i in range(3)]
        res = finish(procs)
        if [r[0] for r in res] != [0, 0, 0]:
            raise Failed(f"with --retries: {[(r[0], r[2].strip()) for r in res]}")
        reads = sorted(r[1].strip() for r in res)
        final = txn("t", "get ctr")[1].strip()
        # a chain: w -> r_a -> r_b -> r_c; the reads are the chain minus its end
        chain = {r[1].strip(): "r%d" % i for i, r in enumerate(res)}
        cur, seen = f"w{win}", 0
        while cur in chain:
            cur, seen = chain[cur], seen + 1
        if seen != 3 or cur != final or len(set(reads)) != 3:
            raise Failed(f"retried commits are not serial: reads {reads}, final {final}")

    test.check("conflicts: one winner, losers exit 4 and write nothing; --retries", conflicts)

    def c_api():
        for role, extra in (("conflict", []), ("skew", [20])):
            p = subprocess.run([ctest, role, addr, token, "t"] + [str(e) for e in extra],
                               capture_output=True, timeout=TIMEOUT_S,
                               stdin=subprocess.DEVNULL, env=ENV)
            if p.returncode != 0:
                raise Failed(f"{role}: exit {p.returncode}: {p.stderr.decode()[-2000:]}")

    test.check("C API: deterministic conflicts and write skew", c_api)

    def bank(name, seconds, kill_after=None, one_sided=True, phase="", during=None,
             old_logs=()):
        """Clients transfer on table name for seconds, then the check.
        one_sided: reads go one-sided (the default), else TSR_TXN_ONE_SIDED=0
        and every read goes through the scheduler; the clients' counts say
        which (and must). phase: a later run on a table already made (its
        logs next to old_logs). during(): run kill_after seconds in."""
        if not phase:
            expect(cli("kv", "create", name, "--partitions", 12, "--replicas", 2), 0, "create")
            p = subprocess.run([ctest, "init", addr, token, name, str(NACCT), str(START)],
                               capture_output=True,
                               timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, env=ENV)
            if p.returncode != 0:
                raise Failed("init: " + p.stderr.decode())
        env = dict(ENV)
        if not one_sided:
            env["TSR_TXN_ONE_SIDED"] = "0"
        else:
            env.pop("TSR_TXN_ONE_SIDED", None)
        logs = [os.path.join(tmp, f"{name}{phase}-{i}.txlog") for i in range(4)]
        clogs = [os.path.join(tmp, f"{name}{phase}-c{i}.log") for i in range(4)]
        clients = [subprocess.Popen([ctest, "client", addr, token, name, str(NACCT),
                                     str(seconds), str(rng.randrange(1, 1 << 30)), logs[i],
                                     str(NACCT * START)],
                                    stdout=open(clogs[i], "wb"),
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                   for i in range(4)]
        ps.procs.extend(clients)
        if kill_after is not None:
            time.sleep(kill_after)
            during()
        for c in clients:
            c.wait(timeout=TIMEOUT_S)
        outs = [read(f) for f in clogs]
        if any(c.returncode != 0 for c in clients):
            raise Failed(f"clients: {[c.returncode for c in clients]}: {outs}")
        p = subprocess.run([ctest, "check", addr, token, name, str(NACCT), str(START)]
                           + list(old_logs) + logs,
                           capture_output=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
                           env=ENV)
        if p.returncode != 0:
            raise Failed(f"check: {p.stderr.decode()[-2000:]} {p.stdout.decode()}")
        rma = rpc = 0
        for o in outs:
            m = re.search(r"reads (\d+) one-sided (\d+) scheduler", o)
            if not m:
                raise Failed(f"no read counts in the client's output: {o}")
            rma += int(m.group(1))
            rpc += int(m.group(2))
        # one-sided: every read goes one-sided but those that fall back
        # (the partition's view or reader failed: around a kill or a
        # restart, bounded by how soon the scheduler notices, so only
        # "some one-sided" is required then)
        if one_sided and (rma == 0 or (during is None and rpc * 2 > rma)):
            raise Failed(f"reads did not go one-sided: {rma} one-sided, {rpc} scheduler")
        if not one_sided and (rma != 0 or rpc == 0):
            raise Failed(f"TSR_TXN_ONE_SIDED=0 read one-sided: {rma} one-sided, {rpc} scheduler")
        if test.verbose:
            print("   ", "".join(outs).strip().replace("\n", "\n    "))
            print("   ", p.stdout.decode().strip())
        return logs

    test.check("bank: audits see one total, acknowledged transfers applied once "
               "(reads one-sided)", lambda: bank("bank", 3))
    test.check("bank with TSR_TXN_ONE_SIDED=0 (reads through the scheduler)",
               lambda: bank("bank0", 2, one_sided=False))

    def bank_kill():
        def kill():
            victim = workers[1]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)

        logs = bank("bank2", 4, kill_after=1.5, during=kill)
        # the table goes on serving through the backups
        expect(cli("txn", "bank2", "-e", "get acct-000; get acct-099"), 0, "after the kill")

        # the worker restarted on its data dir mid-run: its copies are
        # stale, then dropped and reloaded by a resync (the readers of the
        # reloaded tables must read them with their new version masks) and
        # it becomes the primary again of the partitions it leads
        def restart():
            workers[1] = ps.start(["worker", "--scheduler", addr, "--token-file", token,
                                   "--threads", "1", "--data-dir", os.path.join(tmp, "w1")],
                                  "worker1.log")

        bank("bank2", 3, kill_after=0.3, during=restart, phase="b", old_logs=logs)
        # bounded: the resync is over once no replica is stale
        wait_for(lambda: "stale" not in cli("kv", "describe", "bank2")[1], 30,
                 "bank2's replicas to be resynced")
        bank("bank2", 1.5, phase="c", old_logs=logs + [
            os.path.join(tmp, f"bank2b-{i}.txlog") for i in range(4)])

    test.check("bank with a worker SIGKILLed mid-run, then restarted and resynced: "
               "no acknowledged transfer lost", bank_kill)

    def drop_while_waiting():
        # A commit over tables ta and tb waits for ta's write turn (a plain
        # put holds it: one of ta's replicas is stopped); tb is dropped
        # meanwhile. The scheduler must neither crash nor touch the freed
        # table (sched_txn.c's participants hold references; an ASan build
        # reports a use after free in scheduler.log otherwise): the commit
        # answers NOT_FOUND (or OK when it got there before the drop). Runs
        # last: the stopped worker may be declared dead.
        expect(cli("kv", "create", "ta", "--partitions", 1, "--replicas", 2), 0, "create ta")
        expect(cli("kv", "create", "tb", "--partitions", 1, "--replicas", 1), 0, "create tb")
        victim = workers[0]
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            put = subprocess.Popen([t, "kv", "put", "ta", "held", "1"] + conn,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL, env=ENV)
            ps.procs.append(put)
            time.sleep(0.3)
            two = subprocess.Popen([ctest, "twotables", addr, token, "ta", "tb"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, env=ENV)
            ps.procs.append(two)
            time.sleep(1.0)
            expect(cli("kv", "drop", "tb"), 0, "drop tb")
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        out, err = two.communicate(timeout=TIMEOUT_S)
        put.wait(timeout=TIMEOUT_S)
        if two.returncode != 0:
            raise Failed(f"twotables: exit {two.returncode}: {err.decode()[-2000:]}")
        expect(cli("kv", "list"), 0, "the scheduler after the drop")
        # the drop answered while the commit's validation is out (every
        # replica stopped): applying then would acknowledge writes to a
        # table that is gone, so the commit must answer NOT_FOUND
        expect(cli("kv", "create", "tc", "--partitions", 1, "--replicas", 2), 0, "create tc")
        expect(cli("kv", "create", "td", "--partitions", 1, "--replicas", 1), 0, "create td")
        two = subprocess.Popen([ctest, "twotables", addr, token, "tc", "td", "sync"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.PIPE, env=ENV)
        ps.procs.append(two)
        line = two.stdout.readline()  # bounded: the role's alarm()
        if line != b"ready\n":
            raise Failed(f"twotables sync: {line!r}")
        stopped = [w for w in workers.values() if w.poll() is None]
        for w in stopped:
            os.kill(w.pid, signal.SIGSTOP)
        try:
            two.stdin.write(b"go\n")
            two.stdin.flush()
            time.sleep(1.0)
            expect(cli("kv", "drop", "td"), 0, "drop td")
        finally:
            for w in stopped:
                os.kill(w.pid, signal.SIGCONT)
        out, err = two.communicate(timeout=TIMEOUT_S)
        if two.returncode != 0:
            raise Failed(f"twotables sync: exit {two.returncode}: {err.decode()[-2000:]}")

    test.check("a table dropped while a commit waits for a turn", drop_while_waiting)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr-txn-", body))
