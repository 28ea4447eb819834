#!/usr/bin/env python3
"""Stale kv replicas resynced while their partitions' writes go on: copied
whole, and refilled with only the keys they missed.

What: a scheduler (with a data dir, so multi-partition transactions go
through its coordinator log) started with TSR_TEST_KV_SYNC_PAGE=4 (4 pairs
per resync page: a copy of ~10,000 pairs per partition takes thousands of
calls, each one a durable LOAD on the target: seconds, so writes overlap it;
one pair per page made it fsync-bound, past a minute under ASan on a loaded
CI machine) and 2 workers A and B; a 2-replica table of 2 partitions loaded with
20,000 rows. Writer threads (disjoint keys) run plain puts of present keys,
puts of new keys, deletes, `kv load`s of 300 new rows (the source's table
grows, so a copy's scan starts over) and two-partition `tessera txn`
scripts, each acknowledged one applied to a dict model (none may fail: a
write during a resync is served, not refused).
  0. B SIGKILLed, its data dir removed, B restarted with nothing written
     meanwhile: its copies (fresh in the catalog) must be taken for stale,
     since B's store is another one, and copied again; the table equals
     the model, and with A SIGKILLed B's copies alone equal it; A restarts
     on its data dir (it missed nothing: fresh at once);
  1. B SIGKILLed and its data dir removed, the table written, B restarted
     while the writers run: both of B's copies must be copied whole (a new
     store identity), the scheduler must log writes applied to each copy
     during its resync (writes went on while it copied), then no replica is
     stale and the table equals the model;
  2. A SIGKILLed: B's resynced copies alone equal the model;
  3. the writers write on while A is down (and a load of 1,000 new keys,
     so the refill is long enough to take writes), then A comes back on
     its data dir: its copies must be refilled by the keys they missed (a delta,
     logged), with writes applied to them during the refill; the table
     equals the model;
  4. B SIGKILLed: A's copies alone equal the model (a refill that forgot a
     key written while A was stale, or during the refill, fails here);
  5. the table written (B's copies stale), then A SIGSTOPped, a put sent
     and A SIGKILLed before it answers (exit 5): the scheduler must log the
     put's partition in doubt, and once both workers are back, B's copy of
     that partition must be copied whole (its replicas may differ on a key
     no missed set names), the table equal to the model, B's copies alone
     too;
  6. the table written while A is down (A's copies stale), a record in the
     middle of A's newest log file damaged, A restarted: its recovery cuts
     the log there (acknowledged writes lost), so its store must come back
     with a new identity and both its copies be copied whole; then A's
     copies alone equal the model.
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_resync.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402
from kvlib import Kv, write_csv  # noqa: E402

NROWS = 20000
NWRITERS = 2
NEW_PER_LOAD = 300
WAIT_S = 180


class Writer(threading.Thread):
    """Sequential writes through the CLI until stopped, on the keys this
    writer owns (writers own disjoint keys, so each one's acknowledged
    writes apply to the shared model in its own order)."""

    def __init__(self, wid, kv, tessera, conn, tmp, model, lock, own, seed):
        super().__init__(daemon=True)
        self.wid, self.kv, self.t, self.conn, self.tmp = wid, kv, tessera, conn, tmp
        self.model, self.lock, self.own = model, lock, own
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.error, self.done, self.fresh = None, 0, 0

    def pick(self):
        return self.rng.choice(sorted(self.own))

    def apply(self, puts, dels=()):
        with self.lock:
            self.model.update(puts)
            for k in dels:
                del self.model[k]
        self.own.update(puts)
        self.own.difference_update(dels)

    def one(self, i):
        rng, tag = self.rng, "w%d_%d" % (self.wid, i)
        r = rng.random()
        if r < 0.35:  # overwrite a present key
            k = self.pick()
            self.kv.expect(0, "put", "put", "t", k, tag)
            self.apply({k: tag})
        elif r < 0.55:  # a new key
            k = "n%d_%d" % (self.wid, i)
            self.kv.expect(0, "put new", "put", "t", k, tag)
            self.apply({k: tag})
        elif r < 0.7:
            k = self.pick()
            self.kv.expect(0, "del", "del", "t", k)
            self.apply({}, [k])
        elif r < 0.85:  # a batch: many new keys at once grow the source's table
            rows = {"L%d_%d_%d" % (self.wid, i, j): tag for j in range(NEW_PER_LOAD)}
            rows[self.pick()] = tag
            csv = os.path.join(self.tmp, "w%d.csv" % self.wid)
            write_csv(csv, rows)
            self.kv.expect(0, "load", "load", "t", csv)
            self.apply(rows)
        else:  # a transaction over two present keys and a new one
            a, b = rng.sample(sorted(self.own), 2)
            c = "x%d_%d" % (self.wid, i)
            p = subprocess.run([self.t, "txn", "t", "-e",
                                f"get {a}; put {a} {tag}; del {b}; put {c} {tag}"] + self.conn,
                               capture_output=True, timeout=30, stdin=subprocess.DEVNULL, env=ENV)
            if p.returncode != 0:
                raise Failed(f"txn: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
            self.apply({a: tag, c: tag}, [b])

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                self.one(i)
                i += 1
                self.done += 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    slog = os.path.join(tmp, "scheduler.log")
    env = dict(ENV, TSR_TEST_KV_SYNC_PAGE="4")
    sched, addr = ps.start_scheduler(token, extra=["--data-dir", os.path.join(tmp, "sched")],
                                     env=env)
    workers = {}

    def start_worker(i):
        workers[i] = ps.start_worker(addr, token, "worker%d.log" % i,
                                     extra=["--data-dir", os.path.join(tmp, "w%d" % i)])

    for i in range(2):
        start_worker(i)
    ps.wait_joined(2, 30, "2 workers to join")
    kv = Kv(ps.t, addr, token)
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    model = {}
    kv.expect(0, "create t", "create", "t", "--partitions", 2, "--replicas", 2)
    rows = {"k%d" % i: "v%d" % rng.randrange(10 ** 6) for i in range(NROWS)}
    csv = os.path.join(tmp, "rows.csv")
    write_csv(csv, rows)
    kv.expect(0, "load", "load", "t", csv)
    model.update(rows)

    def kill(i):
        os.kill(workers[i].pid, signal.SIGKILL)
        workers[i].wait(timeout=10)

    lock = threading.Lock()
    owned = [{k for k in rows if int(k[1:]) % NWRITERS == w} for w in range(NWRITERS)]
    writers = []
    joined = [2]

    def start_writers():
        writers[:] = [Writer(w, kv, ps.t, kv.conn, tmp, model, lock, owned[w],
                             rng.randrange(2 ** 32)) for w in range(NWRITERS)]
        for w in writers:
            w.start()
        wait_for(lambda: all(w.done >= 3 or w.error for w in writers), 30,
                 "the writers to get going")

    def failed_writer():
        for w in writers:
            if w.error:
                raise Failed(f"a write failed during the resync: {w.error}")

    def stop_writers():
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(timeout=60)
            if w.is_alive():
                raise Failed("a writer did not stop")
        failed_writer()

    def test_log(msg):
        if test.verbose:
            print("     " + msg)

    def resync_under_writes(back, mode):
        """Restarts worker `back` (killed, its copies stale) while the
        writers run; its resyncs must be of `mode` ("whole" or "missed")
        and take writes during the copy; the table then equals the model."""
        log_before = len(read(slog))
        start_worker(back)
        joined[0] += 1
        ps.wait_joined(joined[0], 30, f"worker {back} to rejoin")

        def synced():
            failed_writer()
            place = kv.placement("t")
            return (place is not None and len(place) == 2 and
                    all(st == "up" for reps in place.values() for _, st in reps))
        wait_for(synced, WAIT_S, "the stale replicas to resync")
        time.sleep(0.3)  # a few writes after the resync, on both copies
        stop_writers()
        log = read(slog)[log_before:]
        target = f"w{back}"
        modes = re.findall(r"partition (\d+): (copying the partition to the replica on|"
                           r"refilling the \d+ key\(s\) the replica on) \S+/(w\d+)", log)
        want = "copying the partition" if mode == "whole" else "refilling"
        # (a resync that failed is retried: each try logs its kind)
        if {int(p) for p, _, _ in modes} != {0, 1} or \
                not all(m.startswith(want) and w == target for _, m, w in modes):
            raise Failed(f"resyncs of w{back}'s copies, wanted {mode}: {modes}")
        done = re.findall(r"partition (\d+): replica on \S+ resynced \((\d+) pairs copied, "
                          r"(\d+) writes applied during the copy, (\d+) pairs left to them, "
                          r"(\d+) rescans", log)
        if {int(d[0]) for d in done} != {0, 1}:
            raise Failed(f"resyncs logged for partitions {[d[0] for d in done]}, wanted 0 and 1")
        during = {int(d[0]): int(d[2]) for d in done}
        # a whole copy takes seconds: both partitions took writes during it;
        # a refill of the missed keys is short: at least one did
        if not (all if mode == "whole" else any)(during.values()):
            raise Failed(f"a partition's resync applied no write during its copy: {during} "
                         f"({sum(w.done for w in writers)} writes in all): writes waited")
        test_log(f"{sum(w.done for w in writers)} writes; per partition (pairs copied, writes "
                 f"during the copy, pairs left to them, rescans): {done}")
        kv.check_table("t", model)

    def down(i):
        place = kv.placement("t")
        return place is not None and all(st == "down" for reps in place.values()
                                         for rid, st in reps if rid.endswith("/w%d" % i))

    def copy_alone(victim):
        kill(victim)
        wait_for(lambda: down(victim), 15, f"the scheduler to see worker {victim} die")
        kv.check_table("t", model)

    def replaced_store():
        # worker 1's data dir is lost while nothing is written: its copies
        # are still marked fresh, but the store it comes back with is
        # another one, so they must be taken for stale and copied again
        # before anyone reads them
        kill(1)
        wait_for(lambda: down(1), 15, "the scheduler to see worker 1 die")
        shutil.rmtree(os.path.join(tmp, "w1"))
        start_worker(1)
        joined[0] += 1
        ps.wait_joined(joined[0], 30, "worker 1 to rejoin")
        def lost():
            return sorted(re.findall(r"partition (\d+): the replica on \S+/w1 came back with "
                                     r"another store", read(slog)))
        wait_for(lambda: lost() == ["0", "1"], 15,
                 "both copies on the replaced store to be taken for stale")
        wait_for(lambda: all(st == "up" for reps in kv.placement("t").values() for _, st in reps),
                 WAIT_S, "the replaced store's copies to be copied again")
        kv.check_table("t", model)
        copy_alone(0)  # worker 1's copies alone: refilled whole
        start_worker(0)  # back on its data dir, nothing missed: fresh at once
        joined[0] += 1
        ps.wait_joined(joined[0], 30, "worker 0 to rejoin")
        kv.check_table("t", model)

    test.check("a worker back with an emptied data dir has its copies refilled before they "
               "are read", replaced_store)

    def full_copy():
        kill(1)
        wait_for(lambda: down(1), 15, "the scheduler to see worker 1 die")
        # its data dir is lost: the copies it comes back with are empty, so
        # they must be refilled whole, not by the keys they missed
        shutil.rmtree(os.path.join(tmp, "w1"))
        for i in range(10):  # both partitions' copies on worker 1 go stale
            kv.expect(0, "put while down", "put", "t", "k%d" % i, "down%d" % i)
            model["k%d" % i] = "down%d" % i
        start_writers()
        resync_under_writes(1, "whole")

    test.check("a wiped worker's copies are refilled whole while writes go on; the table "
               "equals the model", full_copy)

    test.check("the resynced copies alone hold every acknowledged write",
               lambda: copy_alone(0))

    def delta():
        # worker 0 down (above): writes go on (its copies go stale and
        # remember the keys they miss), then it comes back on its data dir
        start_writers()
        time.sleep(2)
        # 1,000 more missed keys: the refill (4 keys a page here) then
        # takes long enough for the writers' writes to land in it, however
        # few the writers managed meanwhile (under ASan on a loaded machine
        # a dozen puts of a few keys made a refill of a few ms)
        rows = {"D%d" % i: "d%d" % i for i in range(1000)}
        csv = os.path.join(tmp, "missed.csv")
        write_csv(csv, rows)
        kv.expect(0, "load while down", "load", "t", csv)
        with lock:
            model.update(rows)
        resync_under_writes(0, "missed")

    test.check("a worker back on its data dir gets only the keys it missed, while writes go "
               "on; the table equals the model", delta)
    test.check("the delta-resynced copies alone hold every acknowledged write",
               lambda: copy_alone(1))

    def in_doubt():
        # worker 1 down (above): writes make its copies stale (their missed
        # keys known); then a put whose only replica, worker 0, is stopped
        # and killed before answering: its outcome is unknown, so worker 1's
        # copy of that partition must be copied whole, not by missed keys
        for i in range(10):
            kv.expect(0, "put", "put", "t", "k%d" % i, "doubt%d" % i)
            model["k%d" % i] = "doubt%d" % i
        os.kill(workers[0].pid, signal.SIGSTOP)
        put = subprocess.Popen([ps.t, "kv", "put", "t", "in-doubt", "x"] + kv.conn,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=ENV)
        time.sleep(1)
        kill(0)
        if put.wait(timeout=60) != 5:
            raise Failed(f"the put in doubt: exit {put.returncode}, wanted 5")
        doubt = re.findall(r"partition (\d+): a write's outcome is unknown", read(slog))
        if len(doubt) != 1:
            raise Failed(f"partitions in doubt: {doubt}")
        log_before = len(read(slog))
        start_worker(0)
        start_worker(1)
        joined[0] += 2
        ps.wait_joined(joined[0], 30, "both workers to rejoin")
        wait_for(lambda: all(st == "up" for reps in kv.placement("t").values() for _, st in reps),
                 WAIT_S, "worker 1's copies to resync")
        kinds = dict(re.findall(r"partition (\d+): (copying the partition|refilling the)",
                                read(slog)[log_before:]))
        if kinds.get(doubt[0]) != "copying the partition":
            raise Failed(f"the partition in doubt ({doubt[0]}) was resynced by: {kinds}")
        kv.check_table("t", model)  # the put in doubt never reached worker 0: absent
        copy_alone(0)

    test.check("a write whose outcome is unknown makes its partition's stale copies refill "
               "whole", in_doubt)

    def cut_log():
        # worker 0 down (above): writes make its copies stale (their missed
        # keys known); then a record in the middle of its newest log file
        # is damaged: recovery cuts the log there, losing acknowledged
        # writes no missed set names, so its store must come back with a
        # new identity and both its copies be copied whole
        for i in range(10, 20):
            kv.expect(0, "put", "put", "t", "k%d" % i, "cut%d" % i)
            model["k%d" % i] = "cut%d" % i
        kvdir = os.path.join(tmp, "w0", "kv")
        logs = sorted((os.path.getsize(os.path.join(kvdir, f)), f)
                      for f in os.listdir(kvdir) if f.startswith("wal-") and f.endswith(".log"))
        path = os.path.join(kvdir, logs[-1][1])  # the largest: the copies it took
        with open(path, "r+b") as f:
            data = f.read()
            end = len(data.rstrip(b"\0"))  # records, then the preallocated zeros
            f.seek(end // 2)
            f.write(bytes([data[end // 2] ^ 0x40]))
        log_before = len(read(slog))
        start_worker(0)
        joined[0] += 1
        ps.wait_joined(joined[0], 30, "worker 0 to rejoin")
        if "records were cut or are missing" not in read(os.path.join(tmp, "worker0.log")):
            raise Failed("worker 0 did not log a new store identity after its log was cut")
        wait_for(lambda: all(st == "up" for reps in kv.placement("t").values() for _, st in reps),
                 WAIT_S, "worker 0's copies to resync")
        # (a resync that failed is retried: each try logs its kind)
        kinds = set(re.findall(r"partition (\d+): (copying the partition|refilling the)",
                               read(slog)[log_before:]))
        if kinds != {("0", "copying the partition"), ("1", "copying the partition")}:
            raise Failed(f"worker 0's copies after its log was cut were resynced by: {kinds}")
        kv.check_table("t", model)
        copy_alone(1)  # worker 0's copies alone hold every acknowledged write

    test.check("a worker whose log lost records in recovery has its copies refilled whole",
               cut_log)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_resync_", body))
