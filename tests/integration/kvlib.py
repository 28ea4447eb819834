"""kvlib - what the kv catalog and rebalance tests share (test_kv_catalog.py,
test_kv_rebalance.py): running `tessera kv` against a scheduler, reading a
table back with scan/count, comparing it with a dict model, and parsing
`kv describe`'s placement lines.

Not a test itself (no test_ prefix: ctest registers test_*.py only).
"""

import os
import subprocess

from clusterlib import ENV, Failed

TIMEOUT_S = 30


class Kv:
    """`tessera kv ...` against one scheduler (conn: --scheduler/--token-file)."""

    def __init__(self, tessera, addr, token):
        self.t, self.conn = tessera, ["--scheduler", addr, "--token-file", token]

    def __call__(self, *args):
        p = subprocess.run([self.t, "kv"] + [str(a) for a in args] + self.conn,
                           capture_output=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
                           env=ENV)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def expect(self, code, what, *args):
        res = self(*args)
        if res[0] != code:
            raise Failed(f"{what}: exit {res[0]}, wanted {code}; stderr: {res[2].strip()}")
        return res

    def check_table(self, name, model):
        """scan and count of name equal the model (keys and values without
        commas or quotes, so a scan line splits at its first comma)."""
        rc, out, err = self.expect(0, "scan " + name, "scan", name)
        got = {}
        for line in out.splitlines():
            k, _, v = line.partition(",")
            if k in got:
                raise Failed(f"scan of {name} printed key {k!r} twice")
            got[k] = v
        if got != model:
            missing = sorted(k for k in model if k not in got)
            extra = sorted(k for k in got if k not in model)
            wrong = sorted(k for k in model if k in got and got[k] != model[k])
            raise Failed(f"{name}: scan differs from the model ({len(got)} vs {len(model)} "
                         f"pairs): missing {missing[:5]}, extra {extra[:5]}, wrong {wrong[:5]}")
        rc, out, err = self.expect(0, "count " + name, "count", name)
        if int(out.strip()) != len(model):
            raise Failed(f"{name}: count {out.strip()}, model {len(model)}")

    def placement(self, name):
        """{partition: [(replica id, state)]} from `kv describe`; state is
        'up', 'down' or 'stale'. None when describe failed."""
        rc, out, err = self("describe", name)
        if rc != 0:
            return None
        parts = {}
        for line in out.splitlines():
            if not line.startswith("partition "):
                continue
            head, _, rest = line.partition(":")
            reps, words = [], rest.split()
            for w in words:
                if w in ("(down)", "(stale)") and reps:
                    reps[-1] = (reps[-1][0], w.strip("()"))
                else:
                    reps.append((w, "up"))
            parts[int(head.split()[1])] = reps
        return parts


def write_csv(path, model):
    with open(path, "w", encoding="utf-8") as f:
        for k, v in model.items():
            f.write(f"{k},{v}\n")


def worker_dir_of(rep_id):
    """The data dir's last component of a replica id 'host:/.../wN' ('wN')."""
    return os.path.basename(rep_id.rpartition(":")[2])
