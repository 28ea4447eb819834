"""cpu_timing.py - wall and CPU time of one command plus the daemons it drives,
shared by cluster_groupby.sh and cluster_join.sh (imported from their inline
Python, with this directory on sys.path).

run(cmd, watch) -> (wall_s, cpu_s, stdout): cpu_s counts the command's own
CPU (children rusage) and the CPU the processes in `watch` (scheduler and
workers, from /proc/PID/stat) spent meanwhile; a failing command exits with
`tessera: error: ...` and the tail of its stderr.
"""
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
