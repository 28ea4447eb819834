#!/usr/bin/env python3
"""kv_resync.py - write latency while a stale replica is resynced (issue 7;
docs/kv.md "On a cluster", Resync).

Starts a scheduler (with a data dir) and 2 workers on loopback, creates a
1-partition 2-replica table and loads ROWS rows (`kv load`), SIGKILLs worker
B, writes one key (B's copy goes stale), starts a client that runs `kv put`
of present keys back to back (one CLI call each: ~25-35 ms apiece, mostly
process start), restarts B and lets the client run until 1 s after the
scheduler logged the end of the resync. B comes back on its data dir, so
its copy is refilled with only the keys it missed (a delta); with --wipe
its data dir is removed first, so the whole partition is copied. With
--restart the scheduler is stopped (SIGTERM) and started again on its data
dir while B is away, worker A with it: what the stop kept (kv-missed) lets
the new scheduler refill B by its missed keys too; with --crash it is
SIGKILLed instead (nothing kept): B is refilled by the hash ranges of keys
that differ (kv_ranges.c; before 2026-11-29 it was copied whole). Prints
the resync's kind and duration (from the scheduler's log), its log line,
and the puts' median and maximum latency: a resync that paused the
partition's writes shows as a put that took about the copy's time.

Usage: bench/kv_resync.py [--tessera PATH] [--rows N] [--repeat R] [--wipe]
                          [--restart | --crash]
Every process is stopped by its PID; every wait is bounded.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import clusterlib  # noqa: E402
from clusterlib import read, wait_for, write_token  # noqa: E402
from kvlib import Kv, write_csv  # noqa: E402


def log_time(log, mark):
    for line in log.splitlines():
        if mark in line:
            h, m, s = line.split()[0].split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
    return None


def one_run(tessera, rows, wipe, restart):
    with tempfile.TemporaryDirectory(prefix="tsr_kv_resync_") as tmp:
        ps = clusterlib.Procs(tessera, tmp)
        try:
            token = os.path.join(tmp, "token")
            write_token(token, os.urandom(16).hex())
            slog = os.path.join(tmp, "scheduler.log")
            sched, addr = ps.start_scheduler(token, extra=["--data-dir", os.path.join(tmp, "s")])
            workers = {}

            def start_worker(i):
                workers[i] = ps.start_worker(addr, token, "w%d.log" % i,
                                             extra=["--data-dir", os.path.join(tmp, "w%d" % i)])
            start_worker(0)
            start_worker(1)
            ps.wait_joined(2, 30, "2 workers to join")
            kv = Kv(tessera, addr, token)
            kv.expect(0, "create", "create", "t", "--partitions", 1, "--replicas", 2)
            csv = os.path.join(tmp, "rows.csv")
            write_csv(csv, {"k%d" % i: "v%d" % i for i in range(rows)})
            kv.expect(0, "load", "load", "t", csv)
            os.kill(workers[1].pid, signal.SIGKILL)
            workers[1].wait(timeout=10)
            wait_for(lambda: "is dead" in read(slog), 15, "the scheduler to see B die")
            if wipe:
                shutil.rmtree(os.path.join(tmp, "w1"))
            kv.expect(0, "put", "put", "t", "k1", "stale")
            if restart:  # a clean stop keeps B's missed keys; A follows its scheduler
                sched.send_signal(signal.SIGKILL if restart == "crash" else signal.SIGTERM)
                sched.wait(timeout=60)
                workers[0].send_signal(signal.SIGTERM)
                workers[0].wait(timeout=60)
                slog = os.path.join(tmp, "scheduler2.log")
                sched = ps.start(["scheduler", "--listen", addr, "--token-file", token,
                                  "--data-dir", os.path.join(tmp, "s")], "scheduler2.log")
                wait_for(lambda: "listening on" in read(slog) or sched.poll() is not None, 30,
                         "the restarted scheduler")
                if sched.poll() is not None:
                    raise RuntimeError("the restarted scheduler exited: " + read(slog))
                start_worker(0)
                wait_for(lambda: "joined" in read(slog), 30, "A to rejoin")
            lat, stop, err = [], threading.Event(), []

            def client():
                i = 0
                try:
                    while not stop.is_set():
                        t0 = time.monotonic()
                        kv.expect(0, "put", "put", "t", "k%d" % (i % rows), "w%d" % i)
                        lat.append(time.monotonic() - t0)
                        i += 1
                except Exception as e:  # noqa: BLE001 - reported below
                    err.append(e)
            th = threading.Thread(target=client, daemon=True)
            th.start()
            time.sleep(1)
            start_worker(1)
            wait_for(lambda: "resynced" in read(slog) or err, 300, "the resync to end")
            time.sleep(1)
            stop.set()
            th.join(timeout=60)
            if err:
                raise err[0]
            log = read(slog)
            took = log_time(log, "resynced") - log_time(log, "resyncing the stale")
            line = next(ln for ln in log.splitlines() if "resynced" in ln)
            kind = ("delta" if "refilling the" in log else
                    "ranges" if "key ranges differ" in log else "whole")
            lat.sort()
            return kind, took, line.split("resynced", 1)[1].strip(), lat
        finally:
            ps.stop_all()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default=os.path.join(HERE, "..", "build", "bin", "tessera"))
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--wipe", action="store_true")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--restart", action="store_true")
    how.add_argument("--crash", action="store_true")
    a = ap.parse_args()
    restart = "crash" if a.crash else "clean" if a.restart else None
    for _ in range(a.repeat):
        kind, took, line, lat = one_run(a.tessera, a.rows, a.wipe, restart)
        print(f"resync ({kind}) of {a.rows} rows: {took:.3f} s {line}; {len(lat)} puts, median "
              f"{1000 * lat[len(lat) // 2]:.0f} ms, max {1000 * lat[-1]:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
