"""cpu_timing.py - wall and CPU time of one command plus the daemons it drives,
shared by cluster_groupby.sh and cluster_join.sh (imported from their inline
Python, with this directory on sys.path).

run(cmd, watch) -> (wall_s, cpu_s, stdout): cpu_s counts the command's own
CPU (children rusage) and the CPU the processes in `watch` (scheduler and
workers, from /proc/PID/stat) spent meanwhile; a failing command exits with
`tessera: error: ...` and the tail of its stderr.

compare(emb, clu, cpids, repeat) -> (best, outs): runs the embedded and the
cluster command `repeat` times, interleaved, and keeps each one's best wall
and CPU time and its last output.

report(suite, title, best, params, as_json, ok) -> exit code: prints the
comparison as a table or as JSON lines (one per figure, peer "embedded").
"""
import json
import math
import os
import resource
import subprocess
import sys
import time

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pids):
    s = 0.0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            s += (int(f[11]) + int(f[12])) / _TICK
        except OSError:
            pass
    return s


def run(cmd, watch):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0 = proc_cpu(watch)
    w0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    wall = time.perf_counter() - w0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime) + proc_cpu(watch) - c0
    if p.returncode != 0:
        sys.exit(f"tessera: error: {' '.join(cmd[:3])} failed ({p.returncode}): "
                 f"{p.stderr.decode()[-500:]}")
    return wall, cpu, p.stdout.decode()


def compare(emb, clu, cpids, repeat):
    best = {"embedded": (math.inf, math.inf), "cluster": (math.inf, math.inf)}
    outs = {}
    for _ in range(repeat):  # interleaved, so drifting load hits both alike
        for name, cmd, watch in (("embedded", emb, []), ("cluster", clu, cpids)):
            wall, cpu, out = run(cmd, watch)
            b = best[name]
            best[name] = (min(b[0], wall), min(b[1], cpu))
            outs[name] = out
    return best, outs


def report(suite, title, best, params, as_json, ok):
    rows, threads = params["rows"], params["threads_per_worker"]
    params["loadavg_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    (ew, ec), (cw, cc) = best["embedded"], best["cluster"]
    if as_json:
        for name, unit, cv, ev in (("wall_s", "s", cw, ew), ("cpu_s", "s", cc, ec),
                                   ("rows_per_s", "rows/s", rows / cw, rows / ew)):
            ratio = (ev / cv) if unit == "s" else (cv / ev)
            print(json.dumps({"suite": suite, "name": name, "value": cv, "unit": unit,
                              "device": "cpu", "peer": "embedded", "peer_value": ev,
                              "ratio": ratio, "params": params}))
    else:
        print(f"{title}, best of {params['repeat']}; {params['pinning']}")
        print(f"load average before {params['loadavg_before']}, after {params['loadavg_after']}")
        print(f"{'':26} {'wall':>10} {'CPU (all processes)':>20}")
        print(f"{'embedded (' + str(2 * threads) + ' threads)':26} {ew * 1e3:8.1f}ms "
              f"{ec * 1e3:18.1f}ms")
        print(f"{'cluster (2 x ' + str(threads) + ' threads)':26} {cw * 1e3:8.1f}ms "
              f"{cc * 1e3:18.1f}ms")
        print(f"ratio embedded/cluster: wall {ew / cw:.2f}x, CPU {ec / cc:.2f}x "
              f"(above 1: the cluster is faster / cheaper)")
        print("results agree" if ok else "RESULTS DIFFER")
    return 0 if ok else 1
