#!/usr/bin/env python3
"""`tessera lock` against a real local cluster.

What: starts `tessera scheduler` and 3 `tessera worker` processes on loopback
(free ports, a temp token file, a temp dir) and checks, through the CLI only:
  - acquire prints a fencing token; a second exclusive acquire with
    --timeout-ms 200 exits 4 in bounded time; status (table and json) shows
    the holder; shared acquires coexist and keep a writer out;
  - release with the right token works, with a wrong token (or twice) exits 3;
  - renew extends the lease: a waiter that would have taken over the old lease
    is still refused, and status shows the new lease;
  - lease expiry lets the next acquire in with a larger token, and the expired
    holder's release is refused (exit 4: the lease ran out, the lock was reset);
  - bad input exits 2 (empty, 256-byte and non-UTF-8 names, negative lease,
    malformed/zero tokens, missing --token, unknown subcommand); status of an
    unknown lock exits 3; a wrong or missing token file exits 5 (and the
    scheduler logs the refusal); the default address from a cluster dir;
  - 4 concurrent CLI loops doing acquire / read-increment-write a file /
    release end with the exact count and strictly increasing tokens.
Every process is stopped by its PID; every wait is bounded.

Usage: test_lock_cli.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import ENV, Failed, read, wait_for, write_token  # noqa: E402

TIMEOUT_S = 30


def body(test, ps, tmp):
    t = ps.t
    token = os.path.join(tmp, "token")
    write_token(token, os.urandom(16).hex())
    bad_token = os.path.join(tmp, "bad_token")
    write_token(bad_token, "not-the-cluster-token-0123456789")
    slog = os.path.join(tmp, "scheduler.log")
    sched, addr = ps.start_scheduler(token)
    for i in range(3):
        ps.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1"],
                 "worker%d.log" % i)
    wait_for(lambda: read(slog).count("joined") >= 3, 15, "3 workers to join")
    joined_at = time.time()
    conn = ["--scheduler", addr, "--token-file", token]

    def lock(*args, timeout=TIMEOUT_S, extra=None):
        argv = [t, "lock"] + list(args) + (conn if extra is None else extra)
        p = subprocess.run(argv, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=ENV)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def expect(res, code, what):
        if res[0] != code:
            raise Failed(f"{what}: exit {res[0]}, wanted {code}; stderr: {res[2].strip()}")
        return res

    def acquire(name, *opts):
        rc, out, err = expect(lock("acquire", name, *opts), 0, "acquire " + name)
        tok = int(out.strip())
        if tok <= 0:
            raise Failed(f"acquire printed {out!r}")
        return tok

    def status(name):
        rc, out, err = expect(lock("status", name, "--format", "json"), 0, "status " + name)
        return json.loads(out)

    def exclusive():
        tok = acquire("alpha")
        t0 = time.time()
        rc, out, err = lock("acquire", "alpha", "--timeout-ms", "200")
        took = time.time() - t0
        if rc != 4 or "not granted" not in err:
            raise Failed(f"second acquire: exit {rc} ({err.strip()})")
        if took > 5:
            raise Failed(f"a 200 ms timeout took {took:.1f}s")
        st = status("alpha")
        if st["state"] != "exclusive" or st["holders"] != 1 or st["last_token"] != tok:
            raise Failed(f"status: {st}")
        rc, out, err = expect(lock("status", "alpha"), 0, "status table")
        if "exclusive" not in out or str(tok) not in out:
            raise Failed("status table: " + out)
        expect(lock("release", "alpha", "--token", str(tok + 12345)), 3, "wrong token")
        expect(lock("release", "alpha", "--token", str(tok)), 0, "release")
        expect(lock("release", "alpha", "--token", str(tok)), 3, "second release")
        tok2 = acquire("alpha", "--timeout-ms", "2000")
        if tok2 <= tok:
            raise Failed(f"next token {tok2} not above {tok}")
        expect(lock("release", "alpha", "--token", str(tok2)), 0, "release 2")
        if status("alpha")["state"] != "free":
            raise Failed("lock not free after release")

    def shared():
        a = acquire("beta", "--shared")
        b = acquire("beta", "--shared", "--timeout-ms", "2000")
        st = status("beta")
        if st["state"] != "shared" or st["holders"] != 2:
            raise Failed(f"status: {st}")
        expect(lock("acquire", "beta", "--timeout-ms", "200"), 4, "writer among readers")
        expect(lock("release", "beta", "--token", str(a)), 0, "release reader a")
        expect(lock("release", "beta", "--token", str(b)), 0, "release reader b")
        w = acquire("beta", "--timeout-ms", "3000")
        expect(lock("acquire", "beta", "--shared", "--timeout-ms", "200"), 4, "reader vs writer")
        expect(lock("release", "beta", "--token", str(w)), 0, "release writer")

    def renew():
        tok = acquire("gamma", "--lease-ms", "700")
        expect(lock("renew", "gamma", "--token", str(tok), "--lease-ms", "5000"), 0, "renew")
        if status("gamma")["lease_ms"] != 5000:
            raise Failed("status does not show the renewed lease")
        # without the renew this waiter would take over after ~0.8 s
        t0 = time.time()
        expect(lock("acquire", "gamma", "--timeout-ms", "1500"), 4, "acquire over a renewed lease")
        if time.time() - t0 > 8:
            raise Failed("timeout not honoured")
        expect(lock("release", "gamma", "--token", str(tok)), 0, "release after renew")
        expect(lock("renew", "gamma", "--token", str(tok)), 3, "renew a released grant")

    def expiry():
        tok = acquire("delta", "--lease-ms", "400")
        t0 = time.time()
        tok2 = acquire("delta", "--timeout-ms", "8000")
        took = time.time() - t0
        if tok2 <= tok:
            raise Failed(f"token after expiry {tok2} not above {tok}")
        if took < 0.2:
            raise Failed(f"granted after {took:.2f}s, before the lease ran out")
        rc, out, err = lock("release", "delta", "--token", str(tok))
        if rc != 4 or "lease ran out" not in err:
            raise Failed(f"release by the expired holder: exit {rc} {err.strip()}")
        st = status("delta")
        if st["last_token"] != tok2 or st["state"] != "exclusive":
            raise Failed(f"status after takeover: {st}")
        expect(lock("release", "delta", "--token", str(tok2)), 0, "release new holder")

    def bad_input():
        cases = [
            (("acquire", ""), "empty name"),
            (("acquire", "x" * 256), "256-byte name"),
            (("acquire", "ok", "--lease-ms", "-5"), "negative lease"),
            (("acquire", "ok", "--timeout-ms", "-1"), "negative timeout"),
            (("release", "ok", "--token", "abc"), "malformed token"),
            (("release", "ok", "--token", "0"), "zero token"),
            (("release", "ok"), "missing token"),
            (("renew", "ok", "--token", "5", "--lease-ms", "x"), "bad lease"),
            (("frobnicate", "ok"), "unknown subcommand"),
            (("acquire",), "missing name"),
            (("status", "ok", "--format", "xml"), "bad format"),
            (("acquire", "ok", "--bogus"), "unknown option"),
        ]
        for args, what in cases:
            rc, out, err = lock(*args)
            if rc != 2 or "error:" not in err:
                raise Failed(f"{what}: exit {rc}, stderr {err.strip()!r}")
        # a name only the worker can refuse: not UTF-8
        p = subprocess.run([os.fsencode(t), b"lock", b"acquire", b"\xff\xfe"] +
                           [os.fsencode(a) for a in conn], capture_output=True,
                           timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, env=ENV)
        if p.returncode != 2 or b"UTF-8" not in p.stderr:
            raise Failed(f"non-UTF-8 name: exit {p.returncode} {p.stderr!r}")
        expect(lock("status", "never-acquired"), 3, "status of an unknown lock")
        expect(lock("release", "never-acquired-2", "--token", "77"), 3, "release unknown lock")
        x = "x" * 255
        expect(lock("status", x), 3, "255-byte name is valid")

    def auth():
        before = read(slog).count("authentication failed")
        rc, out, err = lock("acquire", "eps", extra=["--scheduler", addr, "--token-file",
                                                     bad_token])
        if rc != 5 or "authentication" not in err:
            raise Failed(f"wrong token: exit {rc} {err.strip()}")
        rc, out, err = lock("status", "eps", extra=["--scheduler", addr, "--token-file",
                                                    os.path.join(tmp, "missing")])
        if rc != 5:
            raise Failed(f"missing token file: exit {rc} {err.strip()}")
        wait_for(lambda: read(slog).count("authentication failed") > before, 5,
                 "the scheduler to log the refusal")
        rc, out, err = lock("status", "eps", extra=["--scheduler", "127.0.0.1:1",
                                                    "--token-file", token])
        if rc != 5:
            raise Failed(f"no scheduler: exit {rc}")

    def default_dir():
        d = os.path.join(tmp, "lc")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "scheduler.addr"), "w") as f:
            f.write(addr + "\n")
        with open(os.path.join(d, "token.path"), "w") as f:
            f.write(token + "\n")
        tok = int(expect(lock("acquire", "zeta", extra=["--dir", d]), 0, "acquire via --dir")[1])
        expect(lock("release", "zeta", "--token", str(tok), extra=["--dir", d]), 0,
               "release via --dir")
        expect(lock("status", "zeta", extra=["--dir", os.path.join(tmp, "nothing")]), 5,
               "--dir without a cluster")

    def concurrent():
        # separate shell processes, each: acquire, a plain read-sleep-write
        # of the counter file (the sleep widens the race a broken lock would
        # lose), release; tokens logged per process
        counter = os.path.join(tmp, "counter")
        with open(counter, "w") as f:
            f.write("0\n")
        nproc, iters = 4, 10
        script = (
            'i=0; while [ "$i" -lt "$N" ]; do '
            't=$("$TSR" lock acquire counter --timeout-ms 20000 $CONN) || exit 10; '
            'echo "$t" >> "$TOKS"; '
            'v=$(cat "$CTR"); sleep 0.01; echo $((v + 1)) > "$CTR"; '
            '"$TSR" lock release counter --token "$t" $CONN || exit 11; '
            'i=$((i + 1)); done')
        procs = []
        for k in range(nproc):
            env = dict(ENV, TSR=t, CONN=" ".join(conn), CTR=counter, N=str(iters),
                       TOKS=os.path.join(tmp, "tokens%d" % k))
            procs.append(subprocess.Popen(["sh", "-c", script], env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE))
        errors = []
        deadline = time.time() + 60
        for p in procs:
            try:
                _, err = p.communicate(timeout=max(1, deadline - time.time()))
                if p.returncode != 0:
                    errors.append(f"exit {p.returncode}: {err.decode(errors='replace')[-300:]}")
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.communicate(timeout=5)
                errors.append("a client loop did not finish in 60 s")
        if errors:
            raise Failed("; ".join(errors[:3]))
        got = int(read(counter))
        if got != nproc * iters:
            raise Failed(f"counter {got}, wanted {nproc * iters}")
        tokens = [[int(x) for x in read(os.path.join(tmp, "tokens%d" % k)).split()]
                  for k in range(nproc)]
        for k in range(nproc):
            if len(tokens[k]) != iters or tokens[k] != sorted(set(tokens[k])):
                raise Failed(f"tokens of client {k} do not increase: {tokens[k]}")
        if len(set(sum(tokens, []))) != nproc * iters:
            raise Failed("a token was granted twice")

    def membership():
        # names on two different homes; the home of `victim` is killed
        homes = {}
        for i in range(64):
            homes.setdefault(status_or_acquire("m%d" % i)[1], "m%d" % i)
            if len(homes) >= 2:
                break
        if len(homes) < 2:
            raise Failed(f"64 names all on one home: {homes}")
        (hv, victim), (hk, keeper) = sorted(homes.items())[:2]
        tv = acquire(victim)
        tk = acquire(keeper)
        pids = [int(line.split("pid ")[1].split()[0])
                for line in read(slog).splitlines() if " joined: pid " in line]
        os.kill(pids[hv], signal.SIGKILL)
        wait_for(lambda: "is dead" in read(slog), 10, "the scheduler to see the worker die")
        rc, out, err = lock("acquire", victim, "--timeout-ms", "200")
        if rc != 5 or "down" not in err:
            raise Failed(f"acquire on a dead home: exit {rc} {err.strip()}")
        # the other home kept its grant
        expect(lock("acquire", keeper, "--timeout-ms", "200"), 4, "keeper still held")
        expect(lock("release", keeper, "--token", str(tk)), 0, "release on a live home")
        # a home seeds its tokens with the second it started (docs/locks.md)
        time.sleep(max(0.0, joined_at + 1.2 - time.time()))
        ps.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1"],
                 "worker3.log")
        wait_for(lambda: read(slog).count("joined") >= 4, 15, "a 4th worker to join")
        tv2 = acquire(victim, "--timeout-ms", "2000")
        if tv2 <= tv:
            raise Failed(f"token on the new home {tv2} not above the lost one {tv}")
        if "moves from dead worker" not in read(slog):
            raise Failed("the scheduler did not log the home's move")
        expect(lock("release", victim, "--token", str(tv)), 3, "a grant lost with its home")
        expect(lock("release", victim, "--token", str(tv2)), 0, "release on the new home")

    def status_or_acquire(name):
        rc, out, err = lock("status", name, "--format", "json")
        if rc == 3:
            tok = acquire(name)
            expect(lock("release", name, "--token", str(tok)), 0, "release " + name)
            rc, out, err = lock("status", name, "--format", "json")
        if rc != 0:
            raise Failed(f"status {name}: exit {rc} {err.strip()}")
        st = json.loads(out)
        return st, st["home"]

    test.check("exclusive acquire, timeout, status, release", exclusive)
    test.check("shared holders coexist, exclude a writer", shared)
    test.check("renew extends the lease", renew)
    test.check("lease expiry hands over with a larger token", expiry)
    test.check("bad input exits 2, unknown lock 3", bad_input)
    test.check("wrong or missing token exits 5", auth)
    test.check("default address from a cluster dir", default_dir)
    test.check("concurrent CLI clients keep a counter exact", concurrent)
    test.check("a dead home worker: exit 5, then a new worker takes over", membership)


if __name__ == "__main__":
    sys.exit(clusterlib.main("tsr-lock-cli-", body))
