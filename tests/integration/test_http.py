#!/usr/bin/env python3
"""The scheduler's HTTP endpoint (`tessera scheduler --http`), end to end.

What: starts `tessera scheduler --http 127.0.0.1:0` and 2 `tessera worker`
processes on loopback (free ports, a temp token) and checks with urllib
  - GET /status carries what `tessera cluster status --format json` prints
    (scheduler address and pid; each worker's id, state, device, host, pid,
    load, tasks done);
  - GET /jobs: a query with slowed tasks shows as running with tasks
    done < total, then as done with done == total and its SQL; a failing
    query shows as failed with its error;
  - GET /metrics is Prometheus text (HELP/TYPE for each series, every sample
    line `name{labels} value`), its counters move with the queries (tasks
    run, jobs by outcome, bytes moved) and workers alive is 2;
  - a worker SIGKILLed while /status shows it holding tasks: the query
    answers right, tessera_tasks_rerun_total and the job's tasks_rerun
    move together, the worker shows as dead (workers alive/dead 2/1);
  - unknown paths are 404 with a JSON error; POST, PUT, DELETE are 405 with
    `Allow: GET, HEAD`; HEAD is 200 without a body;
  - --http-auth: 401 (with WWW-Authenticate) without or with a wrong bearer,
    200 with hex(HMAC-SHA256(token, "tsr-http"));
  - a port already in use: the scheduler exits 5 with the reason;
  - `cluster up --http`: `cluster status` shows the URL, which answers.
Every process is stopped by its PID; every wait is bounded.

Usage: test_http.py [--tessera PATH] [-v]
Environment (ctest): TSR_BIN (dir holding tessera).
Exit: 0 passed, 1 failed, 77 skipped (no tessera binary or no cluster support).
"""

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import (ENV, Failed, read, run, stop_local_cluster, wait_for,  # noqa: E402
                        write_token)

TIMEOUT_S = 60
HTTP_TIMEOUT_S = 10


def http(url, method="GET", headers=None, data=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.headers, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8")


def get_json(url, headers=None):
    code, hdrs, body = http(url, headers=headers)
    if code != 200:
        raise Failed(f"GET {url}: {code} {body}")
    if not hdrs.get("Content-Type", "").startswith("application/json"):
        raise Failed(f"GET {url}: content type {hdrs.get('Content-Type')}")
    return json.loads(body)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.e+]+|NaN)$')


def parse_metrics(text):
    """{(name, labels): value}, checking the text format on the way."""
    out, typed, helped = {}, set(), set()
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            if parts[3] not in ("counter", "gauge"):
                raise Failed(f"metric type: {line}")
            typed.add(parts[2])
            continue
        m = SAMPLE.match(line)
        if not m:
            raise Failed(f"not a Prometheus sample line: {line!r}")
        if m.group(1) not in typed or m.group(1) not in helped:
            raise Failed(f"sample before its HELP/TYPE: {line!r}")
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def body(test, cl, tmp):
    t = cl.t
    token = os.path.join(tmp, "token")
    write_token(token, "0123456789abcdef" * 4)
    data = os.path.join(tmp, "t.csv")
    with open(data, "w") as f:
        f.write("k,v\n" + "".join(f"{i % 7},{i}\n" for i in range(5000)))
    haddr_file = os.path.join(tmp, "http.addr")
    # 5 ranges of ~5 KB: queries split into several tasks per phase
    sched, addr = cl.start_scheduler(token, ["--http", "127.0.0.1:0", "--http-addr-file",
                                             haddr_file, "--min-range", "5000",
                                             "--ranges-per-worker", "4"])
    slog = os.path.join(tmp, "scheduler.log")
    base = f"http://{read(haddr_file).strip()}"
    # worker 2 sleeps in each task, so a query stays running long enough to see
    cl.start_worker(addr, token, "worker1.log")
    cl.start_worker(addr, token, "worker2.log", env=dict(ENV, TSR_TEST_TASK_DELAY_MS="300"))
    cl.wait_joined(2, 20, "2 workers to join")
    sql = ["sql", "--scheduler", addr, "--token-file", token, "--table", "t=" + data,
           "--format", "csv"]

    def status():
        st = get_json(base + "/status")
        rc, out, err = run(t, ["cluster", "status", "--scheduler", addr, "--token-file", token,
                               "--format", "json"])
        if rc != 0:
            raise Failed(f"cluster status: rc={rc} {err}")
        cli = json.loads(out)
        if st["scheduler"]["address"] != cli["scheduler"]["address"] or \
                not st["scheduler"]["pid"] == cli["scheduler"]["pid"] == sched.pid:
            raise Failed(f"scheduler: http {st['scheduler']} cli {cli['scheduler']}")
        if not st["scheduler"]["http"].startswith(base):
            raise Failed(f"http url {st['scheduler']['http']} is not {base}")
        if st["workers"] != cli["workers"] or len(st["workers"]) != 2:
            raise Failed(f"workers: http {st['workers']} cli {cli['workers']}")
        for w in st["workers"]:
            if w["state"] != "ready" or w["device"] != "cpu" or not w["pid"]:
                raise Failed(f"worker {w}")

    test.check("GET /status = cluster status --format json", status)

    def errors():
        code, hdrs, text = http(base + "/nope")
        if code != 404 or json.loads(text).get("error") != "not found":
            raise Failed(f"/nope: {code} {text}")
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/status", "/nope"):
                code, hdrs, text = http(base + path, method=method, data=b"x=1")
                if code != 405 or "GET" not in hdrs.get("Allow", "") or \
                        "error" not in json.loads(text):
                    raise Failed(f"{method} {path}: {code} {hdrs.get('Allow')} {text}")
        code, hdrs, text = http(base + "/jobs", method="HEAD")
        if code != 200 or text:
            raise Failed(f"HEAD /jobs: {code} {text!r}")
        if get_json(base + "/").get("endpoints") != ["/status", "/jobs", "/metrics"]:
            raise Failed("GET / does not list the endpoints")
        get_json(base + "/status?x=1")  # a query string is ignored

    test.check("404 for unknown paths, 405 for other methods", errors)

    def jobs_and_metrics():
        m0 = parse_metrics(http(base + "/metrics")[2])
        if m0[("tessera_workers_alive", "")] != 2:
            raise Failed(f"workers alive {m0[('tessera_workers_alive', '')]}")
        q = "SELECT k, SUM(v) AS s FROM t GROUP BY k ORDER BY k"
        p = subprocess.Popen([t] + sql + [q], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)
        seen = []

        def running():
            # A job is listed from the moment it arrives, first in phase "plan"
            # (the scheduler cuts the file) with no tasks yet: wait for its tasks.
            j = get_json(base + "/jobs")
            seen[:] = j["running"]
            return (bool(seen) and seen[0]["phase"] != "plan") or p.poll() is not None
        wait_for(running, 20, "the query to show as running")
        if not seen:
            raise Failed("the query never showed as running")
        r = seen[0]
        if r["state"] != "running" or r["sql"] != q or r["tasks_total"] < 1 or \
                r["tasks_done"] > r["tasks_total"] or r["phase"] not in ("infer", "run"):
            raise Failed(f"running job: {r}")
        out, err = p.communicate(timeout=TIMEOUT_S)
        want = ["k,s"] + [f"{k},{sum(range(k, 5000, 7))}" for k in range(7)]
        if p.returncode != 0 or out.decode().split() != want:
            raise Failed(f"query: rc={p.returncode} {out.decode()[:200]} {err.decode()}")
        j = get_json(base + "/jobs")
        done = [x for x in j["recent"] if x["id"] == r["id"]]
        if j["running"] or not done or done[0]["state"] != "done" or \
                done[0]["tasks_done"] != done[0]["tasks_total"] or \
                done[0]["tasks_total"] < 4 or done[0]["bytes"] <= 0 or done[0]["sql"] != q:
            raise Failed(f"finished job: {j}")
        rc, _, err = run(t, sql + ["SELECT nope FROM t"])
        if rc != 3:
            raise Failed(f"bad column: rc={rc} {err}")
        j = get_json(base + "/jobs")
        if j["recent"][0]["state"] != "failed" or "nope" not in j["recent"][0]["error"]:
            raise Failed(f"failed job: {j['recent'][0]}")
        m1 = parse_metrics(http(base + "/metrics")[2])
        ran = m1[("tessera_tasks_run_total", "")] - m0[("tessera_tasks_run_total", "")]
        if ran < done[0]["tasks_total"]:
            raise Failed(f"tasks run moved by {ran}, the job had {done[0]['tasks_total']}")
        for outcome in ("ok", "failed"):
            key = ("tessera_jobs_total", f'{{outcome="{outcome}"}}')
            if m1[key] != m0[key] + 1:
                raise Failed(f"jobs {outcome}: {m0[key]} -> {m1[key]}")
        key = ("tessera_bytes_moved_total", '{path="tasks"}')
        if m1[key] <= m0[key]:
            raise Failed("bytes moved did not move")
        if m1[("tessera_jobs_running", "")] != 0 or m1[("tessera_tasks_rerun_total", "")] != 0:
            raise Failed("jobs running or re-runs after the queries")
        done_sum = sum(v for (n, _), v in m1.items() if n == "tessera_worker_tasks_done_total")
        if done_sum < ran:
            raise Failed(f"per-worker tasks done {done_sum} < tasks run {ran}")

    test.check("GET /jobs and /metrics follow the queries", jobs_and_metrics)

    def rerun():
        victim = cl.start(["worker", "--scheduler", addr, "--token-file", token, "--threads", "1"],
                          "victim.log", env=dict(ENV, TSR_TEST_TASK_DELAY_MS="1500"))
        wait_for(lambda: read(slog).count("joined") >= 3, 20, "the victim to join")
        m0 = parse_metrics(http(base + "/metrics")[2])
        q = "SELECT k, COUNT(*) AS n FROM t GROUP BY k ORDER BY k"
        p = subprocess.Popen([t] + sql + [q], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=ENV)
        cl.procs.append(p)

        def victim_busy():  # the endpoint itself says when the victim holds tasks
            ws = get_json(base + "/status")["workers"]
            return any(w["pid"] == victim.pid and w["load"] > 0 for w in ws) or \
                p.poll() is not None
        wait_for(victim_busy, 20, "the victim to hold tasks")
        os.kill(victim.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=TIMEOUT_S)
        want = ["k,n"] + [f"{k},{len(range(k, 5000, 7))}" for k in range(7)]
        if p.returncode != 0 or out.decode().split() != want:
            raise Failed(f"query after the kill: rc={p.returncode} {out.decode()[:200]} "
                         f"{err.decode()}")
        m1 = parse_metrics(http(base + "/metrics")[2])
        moved = m1[("tessera_tasks_rerun_total", "")] - m0[("tessera_tasks_rerun_total", "")]
        job = get_json(base + "/jobs")["recent"][0]
        if moved < 1 or job["sql"] != q or job["tasks_rerun"] != moved or \
                job["tasks_done"] != job["tasks_total"]:
            raise Failed(f"re-runs: metric moved {moved}, job {job}")
        wait_for(lambda: any(w["pid"] == victim.pid and w["state"] == "dead"
                             for w in get_json(base + "/status")["workers"]), 10,
                 "the victim to show as dead")
        m2 = parse_metrics(http(base + "/metrics")[2])
        if m2[("tessera_workers_dead", "")] != 1 or m2[("tessera_workers_alive", "")] != 2:
            raise Failed(f"workers alive/dead: {m2[('tessera_workers_alive', '')]}/"
                         f"{m2[('tessera_workers_dead', '')]}")

    test.check("a worker killed mid-query: re-runs counted, worker dead", rerun)

    def port_in_use():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            port = s.getsockname()[1]
            p = cl.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                          "--http", f"127.0.0.1:{port}"], "inuse.log")
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise Failed("a scheduler whose --http port is taken kept running")
            log = read(os.path.join(tmp, "inuse.log"))
            if p.returncode != 5 or "Address already in use" not in log:
                raise Failed(f"port in use: exit {p.returncode} {log}")
        finally:
            s.close()
        rc, _, err = run(t, ["scheduler", "--token-file", token, "--http", "nocolon"])
        if rc != 2 or "--http needs HOST:PORT" not in err:
            raise Failed(f"bad --http: rc={rc} {err}")

    test.check("--http port in use: exit 5", port_in_use)

    def auth():
        af = os.path.join(tmp, "auth-http.addr")
        p = cl.start(["scheduler", "--listen", "127.0.0.1:0", "--token-file", token,
                      "--http", "127.0.0.1:0", "--http-auth", "--http-addr-file", af],
                     "auth.log")
        wait_for(lambda: os.path.exists(af) or p.poll() is not None, 20, "the scheduler")
        if p.poll() is not None:
            raise Failed("the --http-auth scheduler exited: " + read(os.path.join(tmp,
                                                                                 "auth.log")))
        url = f"http://{read(af).strip()}/status"
        bearer = hmac.new(read(token).strip().encode(), b"tsr-http", hashlib.sha256).hexdigest()
        for hdrs in ({}, {"Authorization": "Bearer " + "0" * 64},
                     {"Authorization": "Bearer " + bearer[:-1]},
                     {"Authorization": "Basic " + bearer}):
            code, h, text = http(url, headers=hdrs)
            if code != 401 or "Bearer" not in h.get("WWW-Authenticate", "") or "workers" in text:
                raise Failed(f"{hdrs}: {code} {text}")
        st = get_json(url, headers={"Authorization": "Bearer " + bearer})
        if "workers" not in st:
            raise Failed(f"with the bearer: {st}")
        if "no valid bearer" not in read(os.path.join(tmp, "auth.log")):
            raise Failed("refusals are not logged")
        if read(token).strip() in read(os.path.join(tmp, "auth.log")):
            raise Failed("the token appears in the log")
        os.kill(p.pid, signal.SIGTERM)
        if p.wait(timeout=10) != 0:
            raise Failed(f"the --http-auth scheduler exited {p.returncode} on SIGTERM")

    test.check("--http-auth: bearer required", auth)

    def cluster_up():
        d = os.path.join(tmp, "lc")
        rc, out, err = run(t, ["cluster", "up", "--dir", d, "--workers", "2", "--threads", "1",
                               "--token-file", token, "--http", f"127.0.0.1:{free_port()}"])
        if rc != 0:
            raise Failed(f"up --http: rc={rc} {err}")
        rc, out, err = run(t, ["cluster", "status", "--dir", d, "--format", "json"])
        if rc != 0:
            raise Failed(f"status: rc={rc} {err}")
        url = json.loads(out)["scheduler"].get("http", "")
        if not url.startswith("http://127.0.0.1:"):
            raise Failed(f"status has no http URL: {out}")
        rc, out2, err = run(t, ["cluster", "status", "--dir", d])
        if url not in out2:
            raise Failed(f"table status has no URL: {out2}")
        st = get_json(url + "status")
        if sorted(w["pid"] for w in st["workers"]) != \
                sorted(w["pid"] for w in json.loads(out)["workers"]):
            raise Failed(f"/status of the local cluster: {st}")
        # a second cluster asking for the same HTTP port: the scheduler's exit 5
        port = url.rstrip("/").rsplit(":", 1)[1]
        d2 = os.path.join(tmp, "lc2")
        rc, _, err = run(t, ["cluster", "up", "--dir", d2, "--workers", "1", "--threads", "1",
                             "--token-file", token, "--http", f"127.0.0.1:{port}"])
        stop_local_cluster(d2)
        if rc != 5:
            raise Failed(f"up on a taken HTTP port: rc={rc} {err}")
        rc, out, err = run(t, ["cluster", "down", "--dir", d])
        if rc != 0 or "stopped 3" not in out or os.path.exists(os.path.join(d, "scheduler.http")):
            raise Failed(f"down: rc={rc} {out} {err}")

    test.check("cluster up --http, status shows the URL", cluster_up)


def main():
    def after(_t, tmp):
        for d in ("lc", "lc2"):
            stop_local_cluster(os.path.join(tmp, d))
    return clusterlib.main("tsr-http-", body, after=after)


if __name__ == "__main__":
    sys.exit(main())
