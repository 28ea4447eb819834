"""clusterlib - what the cluster integration tests share (test_cluster.py,
test_http.py, test_submit.py, test_lock_cli.py, test_kv_cli.py): running the
CLI, starting daemons (a scheduler, workers) and stopping them by PID, also
what `cluster up` left behind, bounded waits,
the check runner, the sanitizer-report scan of the daemons' logs and the
common main (skip with 77 when there is no tessera binary or no cluster
support).

Not a test itself (no test_ prefix: ctest registers test_*.py only); the
scripts import it from their own folder.
"""

import argparse
import os
import signal
import subprocess
import tempfile
import time

ENV = dict(os.environ, UCX_WARN_UNUSED_ENV_VARS="n", UCX_TLS="tcp,self",
           UCX_NET_DEVICES="lo")


TIMEOUT_S = 60


class Failed(Exception):
    pass


def run(tessera, args, timeout=TIMEOUT_S, env=None):
    """Runs `tessera ARGS` to its end (bounded); returns (rc, stdout, stderr)."""
    p = subprocess.run([tessera] + args, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env or ENV)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def embedded_submit(tessera, path, timeout=TIMEOUT_S):
    """`tessera submit --format csv PATH` embedded: its CSV output (Failed when it fails)."""
    rc, out, err = run(tessera, ["submit", "--format", "csv", path], timeout=timeout)
    if rc != 0 or not out:
        raise Failed(f"embedded {os.path.basename(path)}: exit {rc}: {err}")
    return out


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise Failed("timed out waiting for " + what)


def write_token(path, text):
    """A token file as the daemons want it: one line, mode 0600."""
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def stop_local_cluster(d):
    """Whatever `cluster up` left running in d, stopped by its pid files."""
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        if name.endswith(".pid"):
            try:
                pid = int(read(os.path.join(d, name)).strip())
                if "tessera" in read(f"/proc/{pid}/cmdline"):
                    os.kill(pid, signal.SIGKILL)
            except (ValueError, ProcessLookupError, PermissionError):
                pass


class Procs:
    """Processes a test started, stopped by PID at the end (SIGCONT first, so
    a stopped one can take its SIGTERM; SIGKILL after 5 s)."""

    def __init__(self, tessera, tmp):
        self.t, self.tmp, self.procs, self.logs = tessera, tmp, [], []

    def start(self, args, log_name, env=None):
        log = open(os.path.join(self.tmp, log_name), "ab")
        self.logs.append(log)
        p = subprocess.Popen([self.t] + args, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env or ENV)
        self.procs.append(p)
        return p

    def start_scheduler(self, token, extra=(), timeout=20, env=None):
        """`tessera scheduler` on a free loopback port; returns (process, address)."""
        addr_file = os.path.join(self.tmp, "sched.addr")
        sched = self.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                            "--addr-file", addr_file] + list(extra), "scheduler.log", env=env)
        wait_for(lambda: os.path.exists(addr_file) or sched.poll() is not None, timeout,
                 "the scheduler")
        if sched.poll() is not None:
            raise Failed("the scheduler exited: " + read(os.path.join(self.tmp, "scheduler.log")))
        return sched, read(addr_file).strip()

    def start_worker(self, addr, token, log_name, extra=(), env=None):
        """A one-thread `tessera worker` of the scheduler at addr."""
        return self.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1"]
                          + list(extra), log_name, env=env)

    def wait_joined(self, n, timeout, what):
        """Waits until the scheduler's log says n workers joined (in all)."""
        slog = os.path.join(self.tmp, "scheduler.log")
        wait_for(lambda: read(slog).count("joined") >= n, timeout, what)

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for log in self.logs:
            log.close()


class Test:
    def __init__(self, verbose):
        self.verbose, self.passed, self.failed = verbose, 0, 0

    def check(self, name, fn):
        t0 = time.time()
        try:
            fn()
            self.passed += 1
            if self.verbose:
                print(f"ok   {name} ({time.time() - t0:.2f}s)")
        except Exception as e:  # noqa: BLE001 - report any failure of a check
            self.failed += 1
            print(f"FAIL {name}: {e}")


def no_reports(tmp):
    """Fails with the excerpts of any sanitizer report in the logs under tmp."""
    bad = []
    for root, _, files in os.walk(tmp):
        for name in files:
            if name.endswith(".log"):
                text = read(os.path.join(root, name))
                for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                    if mark in text:
                        i = text.index(mark)
                        bad.append(f"{name}: {text[max(0, i - 200):i + 1500]}")
    if bad:
        raise Failed("\n".join(bad))


def main(prefix, body, after=None):
    """Parses [--tessera PATH] [-v], runs body(test, procs, tmp) in a fresh
    temp dir, stops every process, calls after(tessera, tmp) when given, scans
    the logs. Returns the exit code: 0 passed, 1 failed, 77 skipped."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    tessera = args.tessera or os.path.join(os.environ.get("TSR_BIN", ""), "tessera")
    if not os.path.exists(tessera):
        print("skipped: no tessera binary")
        return 77
    p = subprocess.run([tessera, "scheduler", "--help"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL, env=ENV)
    if p.returncode != 0:
        print("skipped: this tessera has no cluster support")
        return 77
    started = time.time()
    test = Test(args.v)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        procs = Procs(tessera, tmp)
        try:
            body(test, procs, tmp)
        except Failed as e:
            test.failed += 1
            print(f"FAIL setup: {e}")
        finally:
            procs.stop_all()
            if after:
                after(tessera, tmp)
        test.check("no sanitizer reports in the processes' logs", lambda: no_reports(tmp))
        if test.failed and args.v:
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log"):
                    print(f"--- {name}\n{read(os.path.join(tmp, name))[-3000:]}")
    print(f"{test.passed} passed, {test.failed} failed in {time.time() - started:.1f}s")
    return 1 if test.failed else 0
