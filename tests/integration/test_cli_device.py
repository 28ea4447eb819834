#!/usr/bin/env python3
"""CLI contract of `tessera sql --device`: names, exit codes, messages, results.

What: an unknown device name is exit 2 with "unknown device"; a backend with
no device (CUDA on machines without a GPU, or any backend `tessera devices`
shows without devices) is exit 5 with "<backend>: ... support is compiled but
no device was found"; an index past the devices is exit 3; cpu, auto and
(where `tessera devices` lists one) opencl give the same rows as the default
for filters, aggregations and joins; --help mentions --device; no error kills
the process by a signal.

Usage: test_cli_device.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 all passed, 1 some failed, 77 skipped (no tessera binary).
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile

TIMEOUT_S = 60


def run(tessera, args):
    p = subprocess.run([tessera] + args, capture_output=True, timeout=TIMEOUT_S,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tessera", default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    tessera = args.tessera or os.path.join(os.environ.get("TSR_BIN", ""), "tessera")
    if not os.path.isfile(tessera):
        print("SKIP: tessera binary not found (set TSR_BIN)")
        return 77
    passed = failed = 0

    def check(name, cond, detail=""):
        nonlocal passed, failed
        if cond:
            passed += 1
            if args.verbose:
                print("ok   %s" % name)
        else:
            failed += 1
            print("FAIL %s %s" % (name, detail))

    rc, out, _ = run(tessera, ["devices", "--format", "csv"])
    rows = [line.split(",") for line in out.splitlines()[1:] if line]
    count = {b: sum(1 for r in rows if r[0] == b) for b in ("cpu", "opencl", "cuda")}

    with tempfile.TemporaryDirectory(prefix="tsr-cli-dev-") as tmp:
        rng = random.Random(5)
        t = os.path.join(tmp, "t.csv")
        with open(t, "w") as f:
            f.write("k,v,d,s\n")
            for _ in range(20000):
                f.write("%d,%s,%s,%s\n" % (rng.randint(-3, 40),
                                           "" if rng.random() < 0.05 else rng.randint(-999, 999),
                                           "" if rng.random() < 0.05 else rng.randint(-400, 400) / 4,
                                           rng.choice(["a", "bb", "", "c c"])))
        u = os.path.join(tmp, "u.csv")
        with open(u, "w") as f:
            f.write("k,w,s\n")
            for _ in range(300):
                f.write("%d,%s,%s\n" % (rng.randint(0, 60), rng.randint(-40, 40) / 4,
                                        rng.choice(["bb", "c c", "zz"])))
        base = ["sql", "--table", "t=" + t, "--table", "u=" + u, "--format", "csv"]
        queries = [
            "SELECT k, COUNT(*), SUM(v), AVG(d), MIN(d), MAX(v) FROM t GROUP BY k ORDER BY k",
            "SELECT s, COUNT(v) FROM t WHERE v > 10 AND d <= 50.0 GROUP BY s ORDER BY s",
            "SELECT k, v, d FROM t WHERE v BETWEEN 0 AND 20 OR d IS NULL ORDER BY k, v, d",
            "SELECT u.s, COUNT(*), SUM(t.v) FROM t JOIN u ON t.k = u.k GROUP BY u.s ORDER BY u.s",
            "SELECT t.s, u.w FROM t JOIN u ON t.s = u.s AND t.k = u.k ORDER BY t.s, u.w",
        ]

        # names and exit codes
        for bad in ["gpu", "opencl:", "auto1", "CUDA"]:
            rc, out, err = run(tessera, base + ["--device", bad, queries[0]])
            check("unknown device %r exits 2" % bad, rc == 2 and "unknown device" in err, (rc, err))
        rc, out, err = run(tessera, base + ["--device", "cuda", queries[0]])
        if count["cuda"] == 0:
            check("cuda without a device exits 5", rc == 5, (rc, err))
            check("cuda message", err.startswith("tessera: error: cuda: CUDA support is ") and
                  ("compiled but no device was found" in err or "not compiled" in err), err)
        else:
            check("cuda runs", rc == 0, (rc, err))
        rc, out, err = run(tessera, base + ["--device", "opencl%d" % count["opencl"], queries[0]])
        check("opencl index past the devices exits %d" % (3 if count["opencl"] else 5),
              rc == (3 if count["opencl"] else 5), (rc, err))
        rc, out, err = run(tessera, ["sql", "--help"])
        check("help mentions --device", rc == 0 and "--device" in out)

        # the same rows on every device
        devices = ["auto"] + (["opencl"] if count["opencl"] else [])
        for i, q in enumerate(queries):
            # the other spellings on one query each
            extra = ["cpu", "--device=cpu"] + (["opencl:0", "opencl0"] if count["opencl"] else [])
            devices_q = devices + ([extra[i]] if i < len(extra) else [])
            rc, ref, err = run(tessera, base + [q])
            check("reference: %s" % q, rc == 0 and ref.count("\n") > 1, (rc, err))
            for d in devices_q:
                opt = [d] if d.startswith("--") else ["--device", d]
                rc, out, err = run(tessera, base + opt + ["--threads", "2", q])
                check("%s: %s" % (d, q), rc == 0 and out == ref, (rc, err, out[:300], ref[:300]))

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
