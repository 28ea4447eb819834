#!/usr/bin/env python3
"""The scheduler's persistent kv catalog (`tessera scheduler --data-dir`).

What: a scheduler with a data dir and 3 workers (each with its own data dir);
a 2-replica table gets rows (a CSV load, puts, deletes), another table is
created and dropped. Then:
  - the scheduler is killed with SIGKILL (the workers stopped), restarted on
    the same data dir, the workers restarted on theirs: `kv
    list` shows the table and not the dropped one, get/scan/count return
    every acknowledged write, new writes work, no replica is stale;
  - orphan copies: a table is dropped while a worker holding copies of it
    is down; restarted, the worker's copies of that table are dropped (the
    scheduler's log names each one, within the bound) and nothing else is:
    no copy of the live table is ever named, and it still equals the model
    with every replica up;
  - while the catalog cannot be saved (a directory in the temp file's
    place), create and drop are refused (exit 1) and change nothing;
  - with a 1-partition table's backup worker SIGKILLed and the catalog
    unsavable, the put that makes the backup stale and a later put are
    both refused (exit 1, "could not be saved"); once the catalog can be
    saved, the next put works and saves it: after a SIGKILL of the
    scheduler and a restart, the catalog has the backup stale, and once
    the workers are back it is resynced and the key reads the last put;
  - a catalog file with one flipped byte is refused at start-up (exit 1,
    "corrupted" in the log; the file is left as it was), so is a truncated
    one; the intact file loads again, also rewritten in the format of
    version 1 (no list of decommissioned workers, no store identity per
    replica), which the scheduler then saves as version 3 with every
    replica's store learned again from the workers that join.
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_catalog.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import ctypes
import os
import random
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Failed, read, wait_for, write_token  # noqa: E402
from kvlib import Kv, worker_dir_of, write_csv  # noqa: E402


XXH = None


def catalog_as_v1(data):
    """The catalog data (version 3) rewritten as version 1, and the store of
    every replica slot in order (the part version 1 lacks)."""
    global XXH
    if XXH is None:
        XXH = ctypes.CDLL("libxxhash.so.0")
        XXH.XXH3_64bits.restype = ctypes.c_uint64
        XXH.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    pos = 12
    out = [data[:8], struct.pack("<I", 1), data[12:16]]
    ntables = struct.unpack_from("<I", data, pos)[0]
    pos += 4
    stores = []

    def string():  # proto.h's str: u32 length, the bytes, a NUL
        nonlocal pos
        n = struct.unpack_from("<I", data, pos)[0]
        s = data[pos:pos + 5 + n]
        pos += 5 + n
        return s
    for _ in range(ntables):
        head = string()
        nparts, _, slots = struct.unpack_from("<III", data, pos + 8)
        out.append(head + data[pos:pos + 28])
        pos += 28
        for _ in range(nparts * slots):
            rid = string()
            out.append(rid + data[pos:pos + 1])
            if len(rid) > 5:
                stores.append(struct.unpack_from("<Q", data, pos + 1)[0])
            pos += 9
    # the list of decommissioned workers (empty here) is left out
    v1 = b"".join(out)
    return v1 + struct.pack("<Q", XXH.XXH3_64bits(v1, len(v1))), stores


def body(test, ps, tmp):
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    sdir = os.path.join(tmp, "sched")
    catalog = os.path.join(sdir, "kv-catalog")
    sched, addr = ps.start_scheduler(token, extra=["--data-dir", sdir])
    state = {"sched": sched, "log": os.path.join(tmp, "scheduler.log"), "runs": 1, "addr": addr}
    workers = {}

    def start_workers():
        for i in range(3):
            workers[i] = ps.start_worker(state["addr"], token, "worker%d.log" % i,
                                         extra=["--data-dir", os.path.join(tmp, "w%d" % i)])

    def joined(n):
        wait_for(lambda: read(state["log"]).count("joined") >= n, 20, f"{n} workers to join")

    start_workers()
    joined(3)
    kv = Kv(ps.t, addr, token)
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    model = {}

    def fill():
        kv.expect(0, "create t", "create", "t", "--partitions", 6, "--replicas", 2)
        kv.expect(0, "create gone", "create", "gone", "--partitions", 2)
        kv.expect(0, "put gone", "put", "gone", "a", "1")
        rows = {"k%d" % i: "v%d" % rng.randrange(10 ** 6) for i in range(600)}
        csv = os.path.join(tmp, "rows.csv")
        write_csv(csv, rows)
        kv.expect(0, "load", "load", "t", csv)
        model.update(rows)
        for i in range(20):
            k = "k%d" % rng.randrange(700)
            if rng.random() < 0.3:
                kv.expect(0 if k in model else 3, "del " + k, "del", "t", k)
                model.pop(k, None)
            else:
                kv.expect(0, "put " + k, "put", "t", k, "p%d" % i)
                model[k] = "p%d" % i
        kv.expect(0, "drop gone", "drop", "gone")
        kv.check_table("t", model)
        if not os.path.exists(catalog):
            raise Failed("no kv-catalog in the scheduler's data dir")

    test.check("a 2-replica table filled, another dropped", fill)

    def stop_workers():
        for w in workers.values():
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers.values():
            w.wait(timeout=20)

    def restart_scheduler():
        """The scheduler on the same data dir and, first, the same address
        (the CLI listens with SO_REUSEADDR, so its predecessor's connections
        in TIME_WAIT do not keep it out); should another process's socket
        hold that port meanwhile, on a new one. Returns its process (which
        may have exited: the caller checks). The workers and clients follow
        the address (workers exit when they lose their scheduler anyway)."""
        p = None
        for listen in (state.get("addr", "127.0.0.1:0"), "127.0.0.1:0"):
            state["runs"] += 1
            state["log"] = os.path.join(tmp, "scheduler%d.log" % state["runs"])
            afile = os.path.join(tmp, "sched%d.addr" % state["runs"])
            p = ps.start(["scheduler", "--listen", listen, "--token-file", token,
                          "--addr-file", afile, "--data-dir", sdir],
                         os.path.basename(state["log"]))
            wait_for(lambda: os.path.exists(afile) or p.poll() is not None, 20,
                     "the restarted scheduler")
            if p.poll() is None or "Address already in use" not in read(state["log"]):
                break
            print(f"note: {listen} was taken by another socket; restarting on a new port")
        if p.poll() is None:
            state["addr"] = read(afile).strip()
            kv.conn = ["--scheduler", state["addr"], "--token-file", token]
        return p

    def crash_restart():
        """The scheduler SIGKILLed, the workers stopped, the scheduler
        started again on its data dir (the workers are not)."""
        os.kill(state["sched"].pid, signal.SIGKILL)
        state["sched"].wait(timeout=10)
        stop_workers()
        p = restart_scheduler()
        if p.poll() is not None:
            raise Failed("the restarted scheduler exited: " + read(state["log"]))
        state["sched"] = p

    def restart():
        crash_restart()
        start_workers()
        joined(3)
        rc, out, err = kv.expect(0, "list", "list")
        names = [line.split("\t")[0] for line in out.splitlines()[1:]]
        if names != ["t"]:
            raise Failed(f"kv list after the restart: {names}, want ['t']")
        kv.check_table("t", model)
        for k in rng.sample(sorted(model), 5):
            rc, out, err = kv.expect(0, "get " + k, "get", "t", k)
            if out.strip() != model[k]:
                raise Failed(f"get {k}: {out.strip()!r}, want {model[k]!r}")
        kv.expect(3, "get from the dropped table", "get", "gone", "a")
        for i in range(10):
            k = "new%d" % i
            kv.expect(0, "put after the restart", "put", "t", k, "n%d" % i)
            model[k] = "n%d" % i
        kv.expect(0, "del after the restart", "del", "t", "new0")
        del model["new0"]
        kv.check_table("t", model)
        place = kv.placement("t")
        if not place or any(st != "up" for reps in place.values() for _, st in reps):
            raise Failed(f"replicas not all up after the restart: {place}")

    test.check("SIGKILLed scheduler restarted on its data dir serves every write", restart)

    def orphans():
        kv.expect(0, "create o", "create", "o", "--partitions", 4, "--replicas", 2)
        for i in range(40):
            kv.expect(0, "put o", "put", "o", "o%d" % i, "x")
        place = kv.placement("o")
        held = {}
        for p, reps in place.items():
            for rid, _ in reps:
                held.setdefault(worker_dir_of(rid), []).append(p)
        victim = sorted(held)[0]
        wi = int(victim[1:])
        os.kill(workers[wi].pid, signal.SIGKILL)
        workers[wi].wait(timeout=10)
        kv.expect(0, "drop o with a holder down", "drop", "o")
        before = read(state["log"]).count("joined")
        workers[wi] = ps.start_worker(state["addr"], token, "worker%d-b.log" % wi,
                                      extra=["--data-dir", os.path.join(tmp, victim)])
        wait_for(lambda: read(state["log"]).count("joined") > before, 30, victim + " to rejoin")
        want = len(held[victim])
        wait_for(lambda: read(state["log"]).count("catalog does not give it") >= want, 30,
                 f"{want} orphan copies of 'o' dropped on {victim}")
        named = [line for line in read(state["log"]).splitlines() if "catalog does not give" in line]
        if len(named) != want or any(" o." not in line for line in named):
            raise Failed(f"orphan drops on {victim} (held {held[victim]}): {named}")
        kv.check_table("t", model)
        place = kv.placement("t")
        if not place or any(st != "up" for reps in place.values() for _, st in reps):
            raise Failed(f"replicas of t not all up after the sweep: {place}")

    test.check("copies of a table dropped while their worker was down go when it rejoins",
               orphans)

    def unsaved():
        # a directory where the temp file goes: every save fails (EISDIR,
        # also for root), so create and drop must be refused, nothing changed
        blocker = catalog + ".tmp"
        os.mkdir(blocker)
        try:
            kv.expect(1, "create with an unsavable catalog", "create", "x")
            kv.expect(1, "drop with an unsavable catalog", "drop", "t")
            rc, out, err = kv.expect(0, "list", "list")
            if [line.split("\t")[0] for line in out.splitlines()[1:]] != ["t"]:
                raise Failed("a refused create or drop changed the catalog: " + out)
            if "was not saved" not in read(state["log"]):
                raise Failed("the scheduler did not log the failed save")
        finally:
            os.rmdir(blocker)
        kv.check_table("t", model)

    test.check("create and drop refused while the catalog cannot be saved", unsaved)

    def stale_unsaved():
        # a 1-partition table; its backup's worker killed: the next put makes
        # that replica stale. While the catalog cannot be saved, no put it
        # lacks may be acknowledged - not the first (it marked the replica)
        # nor any later one (before, those were: a restart then took the
        # stale copy for fresh); once it can, the next put saves it.
        kv.expect(0, "create s", "create", "s", "--partitions", 1, "--replicas", 2)
        kv.expect(0, "put s", "put", "s", "a", "1")
        backup = kv.placement("s")[0][1][0]
        victim = int(worker_dir_of(backup)[1:])
        os.kill(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(timeout=10)
        wait_for(lambda: kv.placement("s")[0][1][1] == "down", 15, "the backup to be down")
        blocker = catalog + ".tmp"
        os.mkdir(blocker)
        try:
            kv.expect(1, "the put that marks the backup stale", "put", "s", "a", "2")
            rc, out, err = kv.expect(1, "a later put, the catalog still unsaved", "put", "s", "a",
                                     "3")
            if "could not be saved" not in err:
                raise Failed("the refused put does not say why: " + err.strip())
        finally:
            os.rmdir(blocker)
        kv.expect(0, "a put once the catalog can be saved", "put", "s", "a", "4")
        crash_restart()
        place = kv.placement("s")  # from the catalog alone: no worker has joined
        if place is None or (backup, "stale") not in place[0]:
            raise Failed(f"the saved catalog does not have the backup stale: {place}")
        start_workers()
        joined(3)
        wait_for(lambda: all(st == "up" for _, st in kv.placement("s")[0]), 60,
                 "the backup to be resynced")
        rc, out, err = kv.expect(0, "get s a", "get", "s", "a")
        if out.strip() != "4":
            raise Failed(f"s/a reads {out.strip()!r}, wanted 4")
        kv.expect(0, "drop s", "drop", "s")  # the last check wants table t alone
        kv.check_table("t", model)

    test.check("while the catalog cannot be saved, no write a stale replica lacks is "
               "acknowledged; the next one once it can saves the catalog", stale_unsaved)

    def corrupted():
        state["sched"].send_signal(signal.SIGTERM)
        state["sched"].wait(timeout=20)
        stop_workers()
        good = open(catalog, "rb").read()
        for what, bad in (("a flipped byte", good[:len(good) // 2] +
                           bytes([good[len(good) // 2] ^ 0x10]) + good[len(good) // 2 + 1:]),
                          ("a truncated file", good[:len(good) - 5])):
            with open(catalog, "wb") as f:
                f.write(bad)
            p = restart_scheduler()
            try:
                rc = p.wait(timeout=20)
            except Exception:
                raise Failed(f"a catalog with {what} was not refused")
            log = read(state["log"])
            if rc != 1 or "corrupted" not in log:
                raise Failed(f"a catalog with {what}: exit {rc}, log: {log.strip()[-400:]}")
            if open(catalog, "rb").read() != bad:
                raise Failed("a refused catalog was rewritten")
        # version 1: no list of decommissioned workers (this one is empty:
        # its u32 count, 0, sits before the checksum), no store per replica
        if struct.unpack_from("<I", good, 8)[0] != 3 or good[-12:-8] != b"\0\0\0\0":
            raise Failed("the catalog is not a version 3 one with no decommissioned worker")
        v1, stores = catalog_as_v1(good)
        if not stores or 0 in stores:
            raise Failed(f"the catalog names no store for some replica: {stores}")
        with open(catalog, "wb") as f:
            f.write(v1)
        p = restart_scheduler()
        if p.poll() is not None or "kv catalog: 1 table(s)" not in read(state["log"]):
            raise Failed("the intact catalog (version 1) did not load: " + read(state["log"]))
        state["sched"] = p
        if struct.unpack_from("<I", open(catalog, "rb").read(), 8)[0] != 3:
            raise Failed("a version 1 catalog was not saved back as version 3")
        # the workers come back: each replica learns its store again, the
        # same one it had (their data dirs are the same)
        start_workers()
        wait_for(lambda: catalog_as_v1(open(catalog, "rb").read())[1] == stores, 30,
                 "the catalog to name every replica's store again")
        if open(catalog, "rb").read() != good:
            raise Failed("the catalog saved back differs from the one before")

    test.check("a corrupted catalog is refused (exit 1), the intact one loads", corrupted)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_catalog_", body))
