#!/usr/bin/env python3
"""`tessera kv` against a real local cluster.

What: starts `tessera scheduler` and 3 `tessera worker` processes (each with
its own --data-dir) on loopback and checks, through the CLI only:
  - random put/insert/update/get/del sequences (text and --hex binary keys)
    against a Python dict model: every exit code and every value; then scan
    and count equal the model;
  - exit codes: 2 for an oversized key or value, bad hex, a bad table name,
    wrong arguments, a malformed CSV; 3 for a missing table or key; 4 for an
    insert of a present key and a create of a present table;
  - `kv load` of a CSV (quoted fields, duplicate keys: the last row wins,
    more rows than one batch) then scan and count equal the file;
  - a worker killed with SIGKILL and restarted on its data dir serves every
    acknowledged write of a 1-replica table again (exit 5 while it is down,
    when it hosts a partition);
  - with 2 replicas, a worker killed with SIGKILL loses no acknowledged write:
    reads and writes go on at once on the backups, and once it is restarted
    its now-stale copies are not used (the values written while it was down
    are what reads see); they are resynced, after which a second worker can
    die without loss;
  - 4 concurrent CLI writers racing on 3 keys of a 2-replica table: the
    replicas agree (a scan before and after losing a worker is the same).
Every process is stopped by its PID; every wait is bounded.

Usage: test_kv_cli.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import os
import random
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402

TIMEOUT_S = 30


def body(test, ps, tmp):
    t = ps.t
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    slog = os.path.join(tmp, "scheduler.log")
    sched, addr = ps.start_scheduler(token)
    workers = {}

    def start_worker(i):
        workers[i] = ps.start(["worker", "--scheduler", addr, "--token-file", token,
                               "--threads", "1", "--data-dir", os.path.join(tmp, "w%d" % i)],
                              "worker%d.log" % i)

    for i in range(3):
        start_worker(i)
    wait_for(lambda: read(slog).count("joined") >= 3, 15, "3 workers to join")
    conn = ["--scheduler", addr, "--token-file", token]
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))

    def kv(*args, data=False):
        p = subprocess.run([t, "kv"] + [str(a) for a in args] + conn, capture_output=True,
                           timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, env=ENV)
        out = p.stdout if data else p.stdout.decode("utf-8", "replace")
        return p.returncode, out, p.stderr.decode("utf-8", "replace")

    def expect(res, code, what):
        if res[0] != code:
            raise Failed(f"{what}: exit {res[0]}, wanted {code}; stderr: {res[2].strip()}")
        return res

    def scan_dict(name, hexmode=False):
        args = ["scan", name] + (["--hex"] if hexmode else [])
        rc, out, err = expect(kv(*args), 0, "scan " + name)
        got = {}
        for line in out.splitlines():
            k, v = parse_csv_line(line)
            if k in got:
                raise Failed(f"scan of {name} printed key {k!r} twice")
            got[k] = v
        return got

    def check_table(name, model, hexmode=False):
        got = scan_dict(name, hexmode)
        if got != model:
            missing = {k for k in model if k not in got}
            extra = {k for k in got if k not in model}
            wrong = {k for k in model if k in got and got[k] != model[k]}
            raise Failed(f"{name}: scan differs from the model: missing {sorted(missing)[:5]}, "
                         f"extra {sorted(extra)[:5]}, wrong {sorted(wrong)[:5]}")
        rc, out, err = expect(kv("count", name), 0, "count " + name)
        if int(out.strip()) != len(model):
            raise Failed(f"{name}: count {out.strip()}, model {len(model)}")

    # -- random operations against a model (1 replica: the restart check uses it)
    m1 = {}

    def random_ops():
        expect(kv("create", "t1", "--partitions", 5, "--replicas", 1), 0, "create t1")
        keys = ["k%d" % i for i in range(10)] + ["a b", "-dash", "x,y", "q\"uote"]
        for step in range(50):
            op = rng.choice(["put", "put", "insert", "update", "get", "get", "del"])
            k = rng.choice(keys)
            v = rng.choice(["v", "val ue", "a,b", "\"q\"", "ü"]) + str(rng.randrange(1000))
            if op in ("put", "insert", "update"):
                rc, out, err = kv(op, "t1", k, v)
                want = 0
                if op == "insert" and k in m1:
                    want = 4
                if op == "update" and k not in m1:
                    want = 3
                expect((rc, out, err), want, f"step {step}: {op} {k!r}")
                if want == 0:
                    m1[k] = v
            elif op == "get":
                rc, out, err = kv("get", "t1", k)
                if k in m1:
                    expect((rc, out, err), 0, f"step {step}: get {k!r}")
                    if out != m1[k] + "\n":
                        raise Failed(f"step {step}: get {k!r} printed {out!r}, want {m1[k]!r}")
                else:
                    expect((rc, out, err), 3, f"step {step}: get of absent {k!r}")
            else:
                expect(kv("del", "t1", k), 0 if k in m1 else 3, f"step {step}: del {k!r}")
                m1.pop(k, None)
        check_table("t1", m1)
        # binary keys and values through --hex (a separate table: scan --hex)
        expect(kv("create", "tb", "--max-key", 8, "--max-value", 16), 0, "create tb")
        mb = {}
        for _ in range(6):
            k = os.urandom(rng.randrange(0, 9)).hex()
            v = os.urandom(rng.randrange(0, 17)).hex()
            expect(kv("put", "tb", k, v, "--hex"), 0, "put --hex")
            mb[k] = v
        for k, v in mb.items():
            rc, out, err = expect(kv("get", "tb", k, "--hex"), 0, "get --hex")
            if out.strip() != v:
                raise Failed(f"get --hex {k}: {out.strip()!r}, want {v!r}")
        check_table("tb", mb, hexmode=True)

    test.check("random put/insert/update/get/del vs a dict model", random_ops)

    def exit_codes():
        expect(kv("create", "t1"), 4, "create of an existing table")
        expect(kv("get", "nosuch", "k"), 3, "get from a missing table")
        expect(kv("put", "nosuch", "k", "v"), 3, "put into a missing table")
        expect(kv("count", "nosuch"), 3, "count of a missing table")
        expect(kv("drop", "nosuch"), 3, "drop of a missing table")
        expect(kv("get", "t1", "never-there"), 3, "get of a missing key")
        expect(kv("put", "t1", "k" * 65, "v"), 2, "oversized key (max 64)")
        expect(kv("put", "t1", "k", "v" * 257), 2, "oversized value (max 256)")
        expect(kv("put", "tb", "zz", "00", "--hex"), 2, "bad hex key")
        expect(kv("put", "tb", "00", "abc", "--hex"), 2, "odd hex value")
        expect(kv("put", "tb", "001122334455667788", "00", "--hex"), 2, "oversized hex key")
        expect(kv("create", "bad.name"), 2, "bad table name")
        expect(kv("create", "x", "--partitions", 0), 2, "zero partitions")
        expect(kv("create", "x", "--replicas", 4), 5, "more replicas than workers")
        expect(kv("put", "t1", "k"), 2, "put without a value")
        expect(kv("frob", "t1"), 2, "unknown kv command")
        expect(kv("get", "t1", "k", "--bogus"), 2, "unknown option")
        p = subprocess.run([t, "kv", "list", "--scheduler", addr, "--token-file",
                            os.path.join(tmp, "nope")], capture_output=True, timeout=TIMEOUT_S,
                           stdin=subprocess.DEVNULL, env=ENV)
        if p.returncode not in (2, 5):
            raise Failed(f"missing token file: exit {p.returncode}")
        rc, out, err = expect(kv("list"), 0, "list")
        if "t1\t5\t1" not in out or "tb\t8\t2" not in out:
            raise Failed("kv list: " + out)
        expect(kv("create", "gone"), 0, "create gone")
        expect(kv("put", "gone", "a", "1"), 0, "put gone")
        expect(kv("drop", "gone"), 0, "drop gone")
        expect(kv("get", "gone", "a"), 3, "get from a dropped table")
        expect(kv("create", "gone"), 0, "create gone again")
        expect(kv("get", "gone", "a"), 3, "a re-created table starts empty")

    test.check("exit codes for bad input, missing table or key, exists", exit_codes)

    # -- bulk load (2 replicas), then scan/count equal the file
    m2 = {}

    def load():
        expect(kv("create", "t2", "--partitions", 8), 0, "create t2")
        csv_path = os.path.join(tmp, "load.csv")
        rows = []
        for i in range(5000):
            k = "key%d" % rng.randrange(4000)  # duplicates: the last row wins
            v = rng.choice(["plain%d" % i, "with,comma%d" % i, "q\"%d" % i, "sp ace %d" % i])
            rows.append((k, v))
            m2[k] = v
        with open(csv_path, "w", encoding="utf-8") as f:
            f.write("key,value\n")
            for k, v in rows:
                f.write(csv_field(k) + "," + csv_field(v) + "\n")
        expect(kv("load", "t2", csv_path, "--header"), 0, "load")
        check_table("t2", m2)
        rc, out, err = expect(kv("scan", "t2", "--limit", 7), 0, "scan --limit")
        if len(out.splitlines()) != 7:
            raise Failed(f"scan --limit 7 printed {len(out.splitlines())} lines")
        bad = os.path.join(tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write("a,1\nb,\"unterminated\n")
        expect(kv("load", "t2", bad), 2, "malformed CSV")
        with open(bad, "w") as f:
            f.write("a,1,extra\n")
        expect(kv("load", "t2", bad), 2, "CSV row with 3 fields")
        expect(kv("load", "t2", os.path.join(tmp, "missing.csv")), 3, "missing CSV file")
        check_table("t2", m2)  # a refused load wrote nothing

    test.check("kv load of a CSV, then scan and count equal the file", load)

    def restart_keeps_writes():
        victim = workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        wait_for(lambda: "is dead" in read(slog), 15, "the scheduler to see worker 1 die")
        rc, out, err = expect(kv("describe", "t1"), 0, "describe t1")
        if "w0 (down)" in out:  # it hosts a partition of t1: unavailable now
            expect(kv("count", "t1"), 5, "count with a partition's only worker down")
        start_worker(0)
        wait_for(lambda: read(slog).count("joined") >= 4, 15, "the restarted worker to join")
        check_table("t1", m1)
        expect(kv("put", "t1", "after", "restart"), 0, "put after the restart")
        m1["after"] = "restart"
        check_table("t1", m1)

    test.check("a worker SIGKILLed and restarted keeps every acknowledged write",
               restart_keeps_writes)

    def failover():
        victim = workers[1]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        check_table("t2", m2)  # at once: the backups answer
        for i in range(15):  # writes while it is down: acknowledged by the survivors
            k = "key%d" % rng.randrange(4000)
            v = "new%d" % i
            expect(kv("put", "t2", k, v), 0, "put with a worker down")
            m2[k] = v
        k = next(iter(m2))
        expect(kv("del", "t2", k), 0, "del with a worker down")
        del m2[k]
        check_table("t2", m2)
        start_worker(1)
        wait_for(lambda: read(slog).count("joined") >= 5, 15, "worker 2 to rejoin")
        check_table("t2", m2)  # its stale copies must not answer

    test.check("replicas 2: a SIGKILLed worker loses no acknowledged write", failover)

    def resync():
        # requests on the table resync the rejoined worker's stale copies
        def synced():
            rc, out, err = kv("describe", "t2")
            return rc == 0 and "(stale)" not in out and "(down)" not in out
        wait_for(synced, 20, "the stale replicas to resync")
        for i in range(5):
            k = "key%d" % rng.randrange(4000)
            expect(kv("put", "t2", k, "post%d" % i), 0, "put after the resync")
            m2[k] = "post%d" % i
        # now lose another worker: the resynced copies must hold everything
        victim = workers[2]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        check_table("t2", m2)

    test.check("replicas 2: a rejoined worker is resynced and can lose its partner", resync)

    def concurrent_writers():
        # workers 0 and 1 are up: 4 CLI processes race on 3 keys; the
        # replicas must apply them in one order, so losing either worker
        # afterwards changes nothing a scan shows. The create waits until the
        # scheduler has seen worker 3 die (killed by the check before): a
        # worker it still counts as up could get a replica of t3, and losing
        # worker 1 then could leave a partition with no replica up
        wait_for(lambda: read(slog).count("is dead") >= 3, 30, "the scheduler to see worker 3 die")
        expect(kv("create", "t3", "--partitions", 2, "--replicas", 2), 0, "create t3")
        procs = []
        for w in range(4):
            script = " ; ".join(
                f"{t} kv put t3 k{(w + i) % 3} w{w}i{i} " + " ".join(conn) for i in range(6))
            procs.append(subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=ENV))
        for p in procs:
            if p.wait(timeout=TIMEOUT_S) != 0:
                raise Failed("a concurrent writer failed")
        before = scan_dict("t3")
        if sorted(before) != ["k0", "k1", "k2"]:
            raise Failed(f"t3 holds {sorted(before)}")
        victim = workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        after = scan_dict("t3")
        if after != before:
            raise Failed(f"the replicas disagree: {before} before losing a worker, {after} after")

    test.check("concurrent writers of one key: replicas agree", concurrent_writers)


def csv_field(s):
    if any(c in s for c in ",\"\n\r"):
        return "\"" + s.replace("\"", "\"\"") + "\""
    return s


def parse_csv_line(line):
    """Two RFC 4180 fields (the scan output never has a newline inside here)."""
    fields, cur, i, quoted = [], [], 0, False
    while i < len(line):
        c = line[i]
        if quoted:
            if c == "\"":
                if i + 1 < len(line) and line[i + 1] == "\"":
                    cur.append("\"")
                    i += 1
                else:
                    quoted = False
            else:
                cur.append(c)
        elif c == "\"":
            quoted = True
        elif c == ",":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    if len(fields) != 2:
        raise Failed(f"scan line {line!r} is not key,value")
    return fields[0], fields[1]


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr_kv_cli_", body))
