#!/usr/bin/env python3
"""Missed keys of stale kv replicas (scheduler/kv_missed.c,
kv_missed_file.c; docs/kv.md "Delta resync"): the scheduler's bound on all
of them together, and keeping them across a clean scheduler restart.

What: a scheduler with a data dir started with TSR_TEST_KV_MISSED_MAX=1500
(bytes for every missed set together: two sets of a few keys fit - 512
bytes of slots each, plus the keys - a third does not) and 2 workers A and
B with data dirs; 3 tables of 2 partitions and 2 replicas (6 copies per
worker), 200 rows each.
  1. B SIGKILLed, 4 puts per table to A alone (each of B's 6 copies goes
     stale, with a missed set of its keys, in the order of the writes), B
     back on its data dir: the scheduler must log the sets it forgot "past
     the scheduler's bound" (at least one: 6 do not fit); each copy whose
     set was forgotten is copied whole, each other one refilled by its
     missed keys, at least one of those; every table equals its model, and
     with A SIGKILLed B's copies alone equal them (a scheduler without the
     bound refills all 6 by their keys);
  2. with A down, 4 puts per table (A's copies stale; table a's sets are
     the ones kept), then B SIGSTOPped and a put of a/k0 sent (in flight),
     the scheduler stopped by SIGTERM (it must log that partition as
     having a write in flight and the 5 others as clean, with their sets),
     the workers stopped; a start on a taken port fails (exit 5) and must
     leave kv-missed in place; the scheduler restarted on its data dir and A
     and B started again: the new scheduler must log the 5 partitions
     clean at the last stop and the sets it got back, refill A's copies
     with kept sets by their keys (at least one) and copy the others
     whole, the one with the write in flight too (B may have applied that
     put: its value, whichever, must be on every copy); the tables equal
     the models, and with B SIGKILLed A's copies alone equal them (a
     scheduler that loses the sets at a restart copies all 6 whole; one
     that ignores the write in flight refills that copy by its keys);
  3. with B down, 4 puts per table, then the scheduler SIGKILLed (no clean
     stop: nothing kept, and the file the last start read is gone), the
     workers stopped, the scheduler and both workers restarted: none of
     B's 6 copies may be refilled by missed keys; each must be refilled by
     the 1..4 hash ranges of keys that differ (kv_ranges.c); the tables
     equal the models, and
     with A SIGKILLed B's copies alone equal them;
  4. with A down, 4 puts per table, a clean stop, then a byte of kv-missed
     flipped before the restart: the new scheduler must say it is not used
     (checksum mismatch), remove it, and copy all 6 of A's copies whole;
     the tables and A's copies alone equal the models.
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_missed.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

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
    sdir = os.path.join(tmp, "sched")
    env = dict(ENV, TSR_TEST_KV_MISSED_MAX="1500")
    # a long heartbeat: a SIGSTOPped worker stays alive (phase 2), so its
    # put stays in flight rather than fail (SIGKILLed ones are seen at once)
    sargs = ["--data-dir", sdir, "--heartbeat-timeout", "60000"]
    sched, addr = ps.start_scheduler(token, extra=sargs, env=env)
    state = {"sched": sched, "addr": addr, "runs": 0,
             "log": os.path.join(tmp, "scheduler.log"), "joined": 0}
    workers = {}

    def start_worker(i):
        workers[i] = ps.start_worker(state["addr"], token, "worker%d.log" % i,
                                     extra=["--data-dir", os.path.join(tmp, "w%d" % i)])

    def wait_joined(n, what):
        state["joined"] += n
        wait_for(lambda: read(state["log"]).count("joined") >= state["joined"], 30, what)

    for i in range(2):
        start_worker(i)
    wait_joined(2, "2 workers to join")
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

    def write_all(tag):
        for name in TABLES:  # keys of both partitions: each copy on the dead worker goes stale
            for i in range(4):
                kv.expect(0, "put " + name, "put", name, "k%d" % i, "%s%d" % (tag, i))
                models[name]["k%d" % i] = "%s%d" % (tag, i)

    def forgotten(log, victim):
        """The copies on worker victim whose sets log says were forgotten
        past the bound."""
        return set(re.findall(r"kv table '(\w+)' partition (\d+): the keys the replica on "
                              r"\S+/w%d missed are forgotten \(\d+ bytes, past the "
                              r"scheduler's bound" % victim, log))

    def resyncs(log):
        """{(table, partition): kind} of the resyncs in log (all 6 copies)."""
        kinds = dict(((t, p), k) for t, p, k in re.findall(
            r"kv table '(\w+)' partition (\d+): (copying the partition|refilling the)", log))
        if test.verbose:
            print(f"     resyncs: {kinds}")
        copies = {(t, str(p)) for t in TABLES for p in range(2)}
        if set(kinds) != copies:
            raise Failed(f"resyncs logged for {sorted(kinds)}, wanted {sorted(copies)}")
        return kinds

    def by_sets(kinds, forgot):
        for c, k in kinds.items():
            want = "copying the partition" if c in forgot else "refilling the"
            if k != want:
                raise Failed(f"table {c[0]} partition {c[1]}: resynced by {k!r}, wanted "
                             f"{want!r} (forgotten: {c in forgot})")
        if all(k != "refilling the" for k in kinds.values()):
            raise Failed(f"no copy was refilled by its missed keys: {kinds}")

    def check_all():
        for name in TABLES:
            kv.check_table(name, models[name])

    def bounded():
        log_before = len(read(state["log"]))
        kill(1)
        write_all("new")
        start_worker(1)
        wait_joined(1, "worker 1 to rejoin")
        wait_for(all_up, WAIT_S, "B's copies to resync")
        log = read(state["log"])[log_before:]
        kinds, forgot = resyncs(log), forgotten(log, 1)
        if not forgot:
            raise Failed("no missed set was forgotten past the scheduler's bound of 1500 bytes")
        by_sets(kinds, forgot)
        check_all()

    test.check("missed sets past the scheduler's bound are forgotten and those copies "
               "copied whole; the others are refilled by their keys", bounded)

    def alone(i):
        kill(i)
        check_all()

    test.check("the resynced copies alone hold every acknowledged write", lambda: alone(0))

    def restart(how, damage=None):
        """Stops the scheduler (SIGTERM: a clean stop; SIGKILL: a crash) and
        the workers, then starts it again on its data dir - on the same
        address first (SO_REUSEADDR), a new one if another socket took it -
        and both workers."""
        old_log = state["log"]
        state["sched"].send_signal(how)
        state["sched"].wait(timeout=30)
        for w in workers.values():
            if w.poll() is None:
                w.send_signal(signal.SIGCONT)
                w.send_signal(signal.SIGTERM)
        for w in workers.values():
            w.wait(timeout=20)
        kept = os.path.join(sdir, "kv-missed")
        if how == signal.SIGTERM:
            # a start that fails (its port taken) before serving keeps the
            # file for the next one: nothing was written meanwhile
            if not os.path.exists(kept):
                raise Failed("no kv-missed in the data dir after a clean stop")
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen(1)
                port = taken.getsockname()[1]
                failed = ps.start(["scheduler", "--listen", "127.0.0.1:%d" % port, "--token-file",
                                   token] + sargs, "scheduler-port-taken.log", env=env)
                rc = failed.wait(timeout=30)
            if rc != 5 or not os.path.exists(kept):
                raise Failed(f"a start on a taken port: exit {rc} (wanted 5), kv-missed "
                             f"{'kept' if os.path.exists(kept) else 'gone'}")
            if damage:
                damage(kept)
        p = None
        for listen in (state["addr"], "127.0.0.1:0"):
            state["runs"] += 1
            state["log"] = os.path.join(tmp, "scheduler%d.log" % state["runs"])
            afile = os.path.join(tmp, "sched%d.addr" % state["runs"])
            p = ps.start(["scheduler", "--listen", listen, "--token-file", token,
                          "--addr-file", afile] + sargs,
                         os.path.basename(state["log"]), env=env)
            wait_for(lambda: os.path.exists(afile) or p.poll() is not None, 20,
                     "the restarted scheduler")
            if p.poll() is None or "Address already in use" not in read(state["log"]):
                break
        if p.poll() is not None:
            raise Failed("the restarted scheduler exited: " + read(state["log"]))
        state["sched"], state["addr"] = p, read(afile).strip()
        kv.conn = ["--scheduler", state["addr"], "--token-file", token]
        state["joined"] = 0
        for i in range(2):
            start_worker(i)
        wait_joined(2, "both workers to join the restarted scheduler")
        wait_for(all_up, WAIT_S, "the stale copies to resync")
        return read(old_log), read(state["log"])

    def clean_restart():
        write_all("clean")  # worker 0 is down: its copies go stale (table a's sets kept)
        # a put in flight at the stop: worker 1 (its partition's only live
        # replica) is stopped, so the put stays unanswered
        os.kill(workers[1].pid, signal.SIGSTOP)
        put = subprocess.Popen([ps.t, "kv", "put", "a", "k0", "doubt"] + kv.conn,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=ENV)
        time.sleep(3)  # the CLI started, connected and sent it (ASan on a loaded machine)
        old, new = restart(signal.SIGTERM)
        if put.wait(timeout=30) != 5:
            raise Failed(f"the put in flight at the stop: exit {put.returncode}, wanted 5")
        # worker 1 may have applied it once it went on: whichever it holds
        # is what every copy must hold
        value = kv.expect(0, "get a k0", "get", "a", "k0")[1].strip()
        if value not in ("doubt", models["a"]["k0"]):
            raise Failed(f"a/k0 is {value!r}: neither the put in flight nor the value before")
        models["a"]["k0"] = value
        unclean = re.findall(r"kv table '(\w+)' partition (\d+): a write in flight at the stop",
                             old)
        if len(unclean) != 1 or unclean[0][0] != "a":
            raise Failed(f"partitions with a write in flight at the stop: {unclean}, wanted "
                         "the one of a/k0")
        kept = re.findall(r"kv: (\d+) clean partition\(s\) and the missed keys of (\d+) stale "
                          r"replica\(s\)", old)
        if len(kept) != 1 or kept[0][0] != "5" or kept[0][1] == "0":
            raise Failed(f"the stopped scheduler logged what it kept as {kept}, wanted 5 clean "
                         "partitions and some sets")
        back = re.findall(r"kv: (\d+) partition\(s\) clean at the last stop, the missed keys "
                          r"of (\d+) stale replica\(s\) kept", new)
        if back != [("5", kept[0][1])]:
            raise Failed(f"the restarted scheduler logged {back}, wanted 5 partitions and "
                         f"{kept[0][1]} sets")
        by_sets(resyncs(new), forgotten(old, 0) | set(unclean))  # in doubt: copied whole
        check_all()

    test.check("after a clean scheduler restart the kept missed keys refill their copies; "
               "the forgotten ones are copied whole", clean_restart)
    test.check("those copies alone hold every acknowledged write", lambda: alone(1))

    def crash_restart():
        write_all("crash")  # worker 1 is down: its copies go stale
        old, new = restart(signal.SIGKILL)
        if "clean at the last stop" in new or os.path.exists(os.path.join(sdir, "kv-missed")):
            raise Failed("a scheduler restarted after a crash used kept missed keys")
        kinds = resyncs(new)
        if any(k != "copying the partition" for k in kinds.values()):
            raise Failed(f"after a crash, resyncs by {kinds}: wanted none by missed keys")
        # each copy missed at most the 4 puts of its table: it is refilled
        # by the few hash ranges of keys that differ, not copied whole
        ranges = re.findall(r"kv table '(\w+)' partition (\d+): (\d+) of 4096 key ranges "
                            r"differ", new)
        if len(ranges) != 6 or any(not 1 <= int(n) <= 4 for _, _, n in ranges):
            raise Failed(f"after a crash, copies by ranges {ranges}: wanted all 6 by 1..4 "
                         "ranges")
        check_all()

    test.check("after a scheduler crash every stale copy is refilled by the key ranges that "
               "differ (no missed keys)", crash_restart)
    test.check("those copies alone hold every acknowledged write", lambda: alone(0))

    def damaged_file():
        write_all("damaged")  # worker 0 is down: its copies go stale

        def flip(path):
            with open(path, "r+b") as f:
                data = f.read()
                f.seek(len(data) // 2)
                f.write(bytes([data[len(data) // 2] ^ 0x01]))
        old, new = restart(signal.SIGTERM, damage=flip)
        if "kv-missed not used (checksum mismatch)" not in new:
            raise Failed("the restarted scheduler did not refuse the damaged kv-missed")
        if os.path.exists(os.path.join(sdir, "kv-missed")):
            raise Failed("the damaged kv-missed was left in place")
        kinds = resyncs(new)
        if any(k != "copying the partition" for k in kinds.values()):
            raise Failed(f"with kv-missed damaged, resyncs by {kinds}: wanted all whole")
        check_all()

    test.check("a damaged kv-missed is not used: every stale copy is copied whole",
               damaged_file)
    test.check("those copies alone hold every acknowledged write", lambda: alone(1))


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_missed_", body))
